"""A stand-in for Ableton Live running AbletonOSC, speaking its published protocol on loopback.

It answers the documented queries field by field the way AbletonOSC does (github ideoforms/AbletonOSC, README and
``abletonosc/``): a query's ids are repeated before the value, every answer goes to the asking host at the fixed
response port (not to the port the query came from), numbers go with python-osc's inferred types (``f`` for Live's
floats), a getter that fails inside Live returns nil, and a handler that raises is reported on ``/live/error`` with
the text AbletonOSC's log handler sends. Its own UDP socket and thread, like another program on the machine.

Arrangement placement follows AbletonOSC's pending ``/live/track/create_audio_clip track_id file_path position`` (PRs
#168, #196 and #206, not merged): a method, so it answers nothing when it works; Live's ``Track.create_audio_clip``
takes the position in beats (0..1576800), needs an audio track, and exists from Live 12.0.5. ``FakeLive(...,
create_audio_clip=True)`` is an AbletonOSC with that PR; without it the address is unknown, and AbletonOSC says
``Unknown OSC address: ...`` on ``/live/error``. ``LiveSet(has_create_audio_clip=False)`` is a Live 12 older than
12.0.5 under an AbletonOSC with the PR (the handler is there, Live's method is not).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket


@dataclass
class Clip:
    name: str
    file_path: str | None
    audio: bool = True


@dataclass
class ArrangementClip:
    name: str  # Live names a clip made from a file after the file, without its extension
    file_path: str
    start_time: float  # beats


@dataclass
class LiveSet:
    tempo: float = 120.0
    loop_start: float = 0.0  # beats
    loop_length: float = 16.0  # beats
    tracks: list[list[Clip | None]] = field(default_factory=list)  # Session clip slots, [track][scene]
    selected: tuple[int, int] | None = (0, 0)  # track, scene; None: a return track or the main track is selected
    version: tuple[int, int] = (12, 1)  # Live's major, minor version
    has_create_audio_clip: bool = True  # Live's Track.create_audio_clip (12.0.5+)
    track_names: list[str] = field(default_factory=list)  # per track; filled with "1 Audio", ... when left out
    midi_tracks: set[int] = field(default_factory=set)  # indices of MIDI tracks (the others are audio tracks)
    arrangement: list[list[ArrangementClip]] = field(default_factory=list)  # per track

    def __post_init__(self) -> None:
        self.track_names += [f"{i + 1} Audio" for i in range(len(self.track_names), len(self.tracks))]
        self.arrangement += [[] for _ in range(len(self.arrangement), len(self.tracks))]


class FakeLive:
    """Listens on 127.0.0.1 (a free port) and answers at ``reply_port`` of the asking host."""

    def __init__(self, live_set: LiveSet, reply_port: int, create_audio_clip: bool = False):
        self.live_set = live_set
        self.reply_port = reply_port
        self.create_audio_clip = create_audio_clip  # AbletonOSC with the pending PR's address
        self.closed = False  # True: Live is closed, messages go unanswered (and unrecorded)
        self.received: list[tuple[str, list]] = []
        # The producer at work in Live: called with each message after Live handled it (Live's UI can act between
        # two of AbletonOSC's messages)
        self.between: Callable[[str, list], None] | None = None
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
            if self.closed:
                continue
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
                if self.between is not None:
                    self.between(message.address, params)

    def _answer(self, address: str, params: list) -> tuple | None:
        s = self.live_set
        song = {"/live/song/get/tempo": s.tempo, "/live/song/get/loop_start": s.loop_start,
                "/live/song/get/loop_length": s.loop_length, "/live/song/get/num_tracks": len(s.tracks)}
        if address in song:
            return (song[address],)
        if address == "/live/view/get/selected_clip":
            if s.selected is None:  # AbletonOSC looks the selected track up among song.tracks, which has neither
                raise ValueError("<Track.Track object at 0x11a2b3c4d> is not in list")
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
        return self._edit(address, params)

    def _edit(self, address: str, params: list) -> tuple | None:
        """The methods and setters placement uses; as in AbletonOSC, a method answers nothing when it works."""
        s = self.live_set
        if address == "/live/application/get/version":
            return s.version
        if address == "/live/test":  # AbletonOSC's own check that it is there
            return ("ok",)
        if address == "/live/song/create_audio_track":  # Live: index 0..len(tracks), or -1 for the end
            index = int(params[0]) if params else -1
            if not -1 <= index <= len(s.tracks):
                raise IndexError("Index out of range")
            index = len(s.tracks) if index == -1 else index
            s.tracks.insert(index, [None] * max((len(t) for t in s.tracks), default=0))
            s.track_names.insert(index, f"{index + 1} Audio")
            s.arrangement.insert(index, [])
            s.midi_tracks = {t + 1 if t >= index else t for t in s.midi_tracks}
            return None
        if address == "/live/song/delete_track":
            index = int(params[0])
            del s.tracks[index], s.track_names[index], s.arrangement[index]
            s.midi_tracks = {t - 1 if t > index else t for t in s.midi_tracks if t != index}
            return None
        if address == "/live/track/set/name":
            s.track_names[int(params[0])] = str(params[1])
            return None
        if address == "/live/track/get/name":
            track = int(params[0])
            return (track, s.track_names[track])
        if address in ("/live/track/get/arrangement_clips/start_time", "/live/track/get/arrangement_clips/name"):
            track = int(params[0])
            field_name = address.rsplit("/", 1)[1]
            return (track, *(getattr(clip, field_name) for clip in s.arrangement[track]))
        if address == "/live/track/create_audio_clip" and self.create_audio_clip:
            track = int(params[0])  # AbletonOSC: self.song.tracks[int(params[0])]
            if not 0 <= track < len(s.tracks):  # Live's track vector has no negative indices either
                raise IndexError("Index out of range")
            if not s.has_create_audio_clip:
                raise AttributeError("'Track' object has no attribute 'create_audio_clip'")
            file_path, position = params[1], params[2]
            if track in s.midi_tracks:
                raise RuntimeError("Cannot create audio clip on a MIDI track")
            if not isinstance(position, (int, float)) or not 0.0 <= position <= 1576800.0:
                raise RuntimeError("Position out of range")
            if not (isinstance(file_path, str) and Path(file_path).is_absolute() and Path(file_path).is_file()):
                raise RuntimeError("Invalid audio file path")
            s.arrangement[track].append(ArrangementClip(Path(file_path).stem, file_path, float(position)))
            s.arrangement[track].sort(key=lambda clip: clip.start_time)
            return None
        raise KeyError(address)
