"""A stand-in for Ableton Live running AbletonOSC, speaking its published protocol on loopback.

It answers the documented queries field by field the way AbletonOSC does (github ideoforms/AbletonOSC, README and
``abletonosc/``): a query's ids are repeated before the value, every answer goes to the asking host at the fixed
response port (not to the port the query came from), numbers go with python-osc's inferred types (``f`` for Live's
floats), a getter that fails inside Live returns nil, and a handler that raises is reported on ``/live/error`` with
the text AbletonOSC's log handler sends. Its own UDP socket and thread, like another program on the machine.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


@dataclass
class Clip:
    name: str
    file_path: str | None
    audio: bool = True


@dataclass
class LiveSet:
    tempo: float = 120.0
    loop_start: float = 0.0  # beats
    loop_length: float = 16.0  # beats
    tracks: list[list[Clip | None]] = field(default_factory=list)  # Session clip slots, [track][scene]
    selected: tuple[int, int] = (0, 0)  # track, scene


class FakeLive:
    """Listens on 127.0.0.1 (a free port) and answers at ``reply_port`` of the asking host."""

    def __init__(self, live_set: LiveSet, reply_port: int):
        self.live_set = live_set
        self.reply_port = reply_port
        self.received: list[tuple[str, list]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake AbletonOSC", daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def __enter__(self) -> "FakeLive":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def send(self, address: str, *params, host: str = "127.0.0.1") -> None:
        """Send on Live's own initiative (``/live/startup``, listener updates), as AbletonOSC does."""
        builder = OscMessageBuilder(address)
        for param in params:
            builder.add_arg(param)  # types inferred, as AbletonOSC's bundled python-osc does
        self._sock.sendto(builder.build().dgram, (host, self.reply_port))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            for timed in OscPacket(data).messages:
                message = timed.message
                params = list(message.params)
                self.received.append((message.address, params))
                try:
                    answer = self._answer(message.address, params)
                except KeyError:
                    self.send("/live/error", f"Unknown OSC address: {message.address}", host=sender[0])
                    continue
                except Exception as exc:  # noqa: BLE001 - what Live's handler would raise
                    self.send("/live/error", f"Error handling OSC message: {exc}", host=sender[0])
                    continue
                if answer is not None:
                    self.send(message.address, *answer, host=sender[0])

    def _answer(self, address: str, params: list) -> tuple | None:
        s = self.live_set
        song = {"/live/song/get/tempo": s.tempo, "/live/song/get/loop_start": s.loop_start,
                "/live/song/get/loop_length": s.loop_length, "/live/song/get/num_tracks": len(s.tracks)}
        if address in song:
            return (song[address],)
        if address == "/live/view/get/selected_clip":
            return s.selected
        if address == "/live/track/get/clips/name":
            track = int(params[0])
            return (track, *(clip.name if clip else None for clip in s.tracks[track]))
        if address in ("/live/clip/get/is_audio_clip", "/live/clip/get/file_path"):
            track, scene = int(params[0]), int(params[1])
            clip = s.tracks[track][scene]
            if clip is None:  # Live: clip_slots[i].clip is None, and the getter raises AttributeError
                raise AttributeError(f"'NoneType' object has no attribute '{address.rsplit('/', 1)[1]}'")
            if address.endswith("is_audio_clip"):
                return (track, scene, clip.audio)
            return (track, scene, clip.file_path if clip.audio else None)  # a MIDI clip's file_path reads as nil
        raise KeyError(address)
