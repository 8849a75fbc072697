"""The session context MIDI pads act on, and the DAW feedback that keeps it current.

The context (source, range, position, ids, drop folder) lives in ``JobService.context``. Three things change it, the
latest winning: the last inpaint/extend command from any trigger, ``/bridge/context`` messages (OSC frontend), and
the DAW's own loop points:

- REAPER's native OSC control surface sends ``/loop/start/time`` and ``/loop/end/time`` (seconds on the timeline)
  to a port the daemon listens on (``[midi.daw] reaper_port``). With "loop points linked to time selection" on, they
  follow the time selection. Its ``/time`` (the play cursor, seconds) and ``/tempo/raw`` (BPM) are the transport
  that ranges in bars count from (``bars.py``).
- AbletonOSC (a remote script in Live) is asked for ``/live/song/get/loop_start``, ``loop_length`` (beats) and
  ``tempo`` on port 11000 and answers on port 11001 of the asking host, once on request and again on every change
  after ``/live/song/start_listen/<property>``. Beats become seconds at the current tempo (no tempo automation).
  ``current_song_time`` (beats) and ``signature_numerator``/``signature_denominator`` are its transport (Live
  counts beats in quarter notes: a bar of 7/8 is 3.5 of them).
- Ardour's OSC surface (``ardour``, port 3819) is asked with ``/set_surface`` for ``/position/bbt`` and
  ``/position/time``: its play cursor and its own bar count there, but no tempo and no loop (``ArdourFeedback``).
- The audio plugin writes its host's transport into its capture index (``captures.HostTransport``); it is read when a
  bars press asks (``bars_transport``). A bars press counts from the plugin host's cursor when the selection is a
  plugin's capture (the last command came from an instance), else from the DAW feedback above; with neither, from
  the one live instance reporting a transport (its capture becomes the selection when none is chosen), since
  several instances would leave it unclear which track is meant.

The DAW speaks timeline seconds, the context source seconds: a loop is mapped through the context's ``position``
(where the source's time 0 sits on the timeline, known from the last command or ``/bridge/context``) every time the
position changes, so a position that arrives after the loop still applies. The DAW feedback only moves the range.

The context is mirrored to ``<state_dir>/context.json`` so that ``daw-bridge jobs`` can show it, and restored from
there when the daemon starts. Writes wait half a second for more changes: REAPER sends a moved loop as two messages,
and each write is fsynced on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from bridge import captures
from bridge.audio.wavio import write_text_atomic
from bridge.frontends.bars import BarLines, Heard, Transport, TransportHistory
from bridge.frontends.osc_wire import OscSocket, encode
from bridge.models import JobSpec
from bridge.settings_schema import check_table, defaults
from osc_schema import ValidationError

log = logging.getLogger(__name__)

CONTEXT_FILE = "context.json"
WRITE_DELAY = 0.5  # seconds a change waits for the next before context.json is written
KEYS = ("source", "start", "end", "position", "item_id", "track_id", "take_id", "drop_folder",  # /bridge/context
        "capture")  # a plugin's capture, whose times are timeline seconds
PLUGIN_STALE_S = 2.0  # seconds: a rolling host's transport not reported for longer is not moved on from


class SessionContext:
    """``service.context`` plus where its range came from; written to ``context.json`` whenever it changes."""

    def __init__(self, service, path: Path):
        self.service = service
        self.path = Path(path)
        self.range_from = ""  # job | osc | reaper | ableton | bars | restored
        self.bars = ""  # with range_from "bars": which bars, at what tempo, from whose cursor
        self.loop: tuple[str, float, float] | None = None  # (daw, timeline start, timeline end)
        self._transport: dict = {}  # what the DAW last told of its transport (daw, cursor, tempo, beats_per_bar)
        self._history = TransportHistory()  # ...and the tempo and signature it told over the timeline
        self._bar_lines = BarLines()  # ...or, from a DAW that tells no tempo, its bar lines as they passed
        self._loop_range: tuple | None = None  # the (start, end) the loop last set, while it is the latest range
        self._seen: dict = {}
        self._pending: asyncio.TimerHandle | None = None
        self._dirty = False

    @property
    def values(self) -> dict:
        return self.service.context

    def restore(self) -> None:
        """Take up the context the daemon had when it last ran, so a pad works right after a restart."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            values = {k: v for k, v in saved["context"].items() if k in KEYS and v is not None}
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            return
        if not self.values:
            self.values.update(values)
            self.range_from = "restored"
        self._seen = dict(self.values)

    def follow_job(self, spec: JobSpec, default_drop_folder: Path | None) -> None:
        """The last command's selection becomes the context (keys it did not give are cleared, not kept). A plugin's
        capture stays the selection, in timeline seconds, not the export the job made of it."""
        values = self.values
        before = dict(values)
        capture = spec.ids.get("capture")
        offset = spec.position if capture else 0.0
        chosen = {"source": None if capture else str(spec.source), "capture": capture,
                  "position": None if capture else spec.position,
                  "drop_folder": str(spec.drop_folder) if spec.drop_folder and spec.drop_folder != default_drop_folder
                  else None}
        for kind in ("item", "track", "take"):
            chosen[f"{kind}_id"] = spec.ids.get(kind)
        if spec.operation == "inpaint":
            chosen.update(start=round(spec.start + offset, 6), end=round(spec.end + offset, 6))
        else:  # a point, not a range: keep the old start only where it still makes a range with it
            after = round(spec.extend_after + offset, 6)
            keep = ((before.get("source"), before.get("capture")) == (chosen["source"], capture)
                    and (before.get("start") or 0) < after)
            chosen.update(start=before.get("start") if keep else None, end=after)
        for key, value in chosen.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        self._loop_range = None
        self.range_from = "job"
        self._write()

    def follow_loop(self, daw: str, start: float, end: float) -> None:
        """The DAW's loop points moved (timeline seconds); points that are no numbers are left out."""
        if not (math.isfinite(start) and math.isfinite(end)):
            return
        self.publish()  # settle changes made by others first, so the loop is the latest
        self.loop = (daw, start, end)
        self.range_from = daw
        self._apply_loop()
        self._write()

    def follow_bars(self, start: float, end: float, bars: str, capture: str | None = None) -> None:
        """Whole bars from the cursor (/bridge/bars context) became the range (source seconds), of ``capture`` when
        the bars were counted on a plugin instance's capture that was not the selection yet."""
        self.publish()
        self.values.update(start=start, end=end)
        if capture is not None:
            self.values["capture"] = capture
        self._loop_range = None
        self.range_from, self.bars = "bars", bars
        self._write()

    def follow_transport(self, daw: str, **values: float) -> None:
        """The DAW's transport moved: ``cursor`` (timeline seconds), ``tempo`` (BPM), ``beats_per_bar``; or, from a
        DAW that tells no tempo, ``cursor`` with the ``bar`` it is in and the ``beat`` into that bar.

        A value that is no number of its kind (an infinite or NaN cursor, a tempo not above 0: anything on loopback
        can send to the feedback port) is left out; it ended each bars press in a traceback and 'internal error'."""
        if not all(value is None or _usable(key, value) for key, value in values.items()):
            return  # one report (Ardour's cursor with its bar and beat): a part that is no number spoils it all
        if self._transport.get("daw") != daw:
            self._transport, self._history, self._bar_lines = {"daw": daw}, TransportHistory(), BarLines()
        known = self._transport
        known.update(values)
        if known.get("cursor") is not None and known.get("tempo"):
            self._history.record(known["cursor"], known["tempo"], known.get("beats_per_bar", 4.0))
        if values.get("bar") is not None:
            self._bar_lines.learn(known["cursor"], known["bar"], known["beat"])

    @property
    def transport(self) -> Transport | None:
        """The DAW's play cursor and tempo, once it told both; built when a bars press asks, not at each of
        REAPER's /time messages (several a second while it plays)."""
        known = self._transport
        if known.get("cursor") is None or not (known.get("tempo") or known.get("bar")):
            return None
        return Transport(**known, heard=self._history.snapshot(), bar_lines=self._bar_lines.snapshot())

    def selection(self) -> dict:
        """The context as a pad should use it now."""
        self.publish()
        return dict(self.values)

    def publish(self) -> None:
        """Notice changes others made (``/bridge/context``), re-map the loop if the position moved, and write."""
        values = self.values
        if values == self._seen:
            return
        seen = self._seen
        if values.get("source") is not None:  # /bridge/context named a file: a plugin's capture no longer is chosen
            values.pop("capture", None)
        if (values.get("start"), values.get("end")) != (seen.get("start"), seen.get("end")):
            self._loop_range = None
            self.range_from = "osc"
        elif self._loop_range is not None and values.get("position") != seen.get("position"):
            self._apply_loop()
        self._write()

    def snapshot(self) -> dict:
        """What ``context.json`` holds."""
        return {"context": dict(self.values), "range_from": self.range_from, "bars": self.bars,
                "loop": ({"daw": self.loop[0], "start": self.loop[1], "end": self.loop[2]} if self.loop else None),
                "updated": time.time()}

    def _apply_loop(self) -> None:
        _, start, end = self.loop
        position = self.values.get("position") or 0.0
        self.values.update(start=round(start - position, 6), end=round(end - position, 6))
        self._loop_range = (self.values["start"], self.values["end"])

    def _write(self) -> None:
        self._seen = dict(self.values)
        self._dirty = True
        if self._pending is None:
            try:
                self._pending = asyncio.get_running_loop().call_later(WRITE_DELAY, self.flush)
            except RuntimeError:  # no event loop (a command-line tool): write now
                self.flush()

    def flush(self) -> None:
        """Write context.json now if a change is waiting."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self._dirty:
            return
        self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(self.snapshot(), indent=2) + "\n")
        except OSError as exc:
            log.warning("could not write the session context to %s: %s", self.path, exc)


def bars_transport(config, selection: dict, daw: Transport | None,
                   now: float | None = None) -> tuple[Transport | None, dict]:
    """The transport a bars press counts from and the selection it acts on: the plugin host's when the selection is
    a plugin's capture, else the DAW feedback's (``daw``), else that of the one live plugin instance reporting one,
    whose capture becomes the selection when it names no source. None when there is none (``bars_on_source`` says
    how to get one). Reads capture indexes, so it runs on a thread of its own for the captures folder (see
    ``ShareThread``): /bridge/bars and a bars pad's press await it there."""
    now = time.time() if now is None else now
    name = selection.get("capture")
    if name:
        _, index = captures.read_index(config, name)
        found = captures.host_transport(index, name)
        if found is None:
            raise ValidationError("capture", name, "reports no host transport yet: let the host play with the "
                                                   "plugin on the track (a plugin from before transport reports "
                                                   "needs rebuilding)")
        return _plugin_transport(name, found, now), selection
    if daw is not None or config is None:
        return daw, selection
    try:
        live = captures.live_transports(config, now)
    except ValidationError:  # the captures folder lies outside the project roots: no capture can be used anyway
        return None, selection
    if len(live) > 1:
        raise ValidationError("bars", None, f"need one play cursor, and {len(live)} plugin instances report their "
                                            f"host's ({', '.join(live)}): press Inpaint or Extend in the one to use "
                                            "first, so its capture is the selection", shown="")
    if not live:
        return None, selection
    [(name, found)] = live.items()
    if selection.get("source") is None:
        selection = {**selection, "capture": name}
    return _plugin_transport(name, found, now), selection


def _plugin_transport(name: str, found: captures.HostTransport, now: float) -> Transport:
    """A plugin host's transport as the bars count it: the cursor moved on while it plays, the tempo of every
    stretch it played kept for the tempo-change refusal."""
    if found.tempo <= 0:
        raise ValidationError("capture", name, "reports no tempo: its host gives the plugin no bar and beat "
                                               "position; select the range in the host instead")
    if found.playing and now - found.observed > PLUGIN_STALE_S:
        raise ValidationError("capture", name, f"last reported its host's transport {now - found.observed:.0f} s "
                                               "ago while playing: is the host still running?")
    history = TransportHistory()
    for stretch in found.heard:
        history.played(Heard(*stretch))
    return Transport("plugin", round(found.cursor(now), 6), found.tempo, found.beats_per_bar or 4.0,
                     heard=history.snapshot())


def read_context(state_dir: Path) -> dict | None:
    """The context a daemon last wrote (for ``daw-bridge jobs``), or None when there is none."""
    try:
        data = json.loads((Path(state_dir) / CONTEXT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("context"), dict) else None


# -- settings -------------------------------------------------------------------------------------------------------

_DEFAULTS = defaults("midi.daw")


@dataclass(frozen=True)
class FeedbackSettings:
    """``[midi.daw]``: which DAW's loop points to follow, and on which loopback ports."""

    host: str = _DEFAULTS["host"]
    reaper_port: int | None = _DEFAULTS["reaper_port"]  # REAPER's OSC device sends its feedback here
    ableton: bool = _DEFAULTS["ableton"]
    ableton_port: int = _DEFAULTS["ableton_port"]  # AbletonOSC listens here
    ableton_reply_port: int = _DEFAULTS["ableton_reply_port"]  # ...and answers here, on the asking host
    ableton_interval: float = _DEFAULTS["ableton_interval"]  # seconds between queries (listeners also push changes)
    ardour: bool = _DEFAULTS["ardour"]
    ardour_port: int = _DEFAULTS["ardour_port"]  # Ardour's OSC surface listens here

    @classmethod
    def from_table(cls, table: object, source_file: Path | None = None) -> "FeedbackSettings":
        """From the table, checked by the settings schema."""
        return cls(**check_table("midi.daw", table, source_file))


# -- listeners ------------------------------------------------------------------------------------------------------

class _OscListener(OscSocket):
    label = "DAW feedback"  # e.g. an ICMP "port unreachable" while the DAW is closed is logged at debug level

    def __init__(self, context: SessionContext):
        self.context = context


def _usable(key: str, value: float) -> bool:
    """Whether a transport value is a number of its kind: finite (an int too big for a float is not: a bar number
    400 digits long), a tempo above 0, beats a bar not below 0 (Ardour tells none: 0)."""
    try:
        finite = math.isfinite(value)
    except OverflowError:
        return False
    return finite and (key != "tempo" or value > 0) and (key != "beats_per_bar" or value >= 0)


def _number(params: list, positive: bool = False) -> float | None:
    """The value a DAW sent, when it is a finite number (above 0 if ``positive``, as a tempo must be), else None."""
    value = params[-1] if params else None  # AbletonOSC getters may put an object id before the value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) if value > 0 or not positive else None


_REAPER_TRANSPORT = {"/time": "cursor", "/tempo/raw": "tempo"}  # REAPER's default OSC pattern (Default.ReaperOSC)


class ReaperFeedback(_OscListener):
    """Listens where REAPER's native OSC surface sends feedback; follows its loop start and end (seconds), and its
    play cursor and tempo."""

    def __init__(self, context: SessionContext):
        super().__init__(context)
        self._loop: list[float | None] = [None, None]

    def received(self, address: str, params: list, sender: tuple | None = None) -> None:
        index = {"/loop/start/time": 0, "/loop/end/time": 1}.get(address)
        value = _number(params, positive=address == "/tempo/raw")
        if value is not None and address in _REAPER_TRANSPORT:
            self.context.follow_transport("reaper", **{_REAPER_TRANSPORT[address]: value})
        if index is None or value is None:
            return
        self._loop[index] = value
        start, end = self._loop
        if start is not None and end is not None and end > start:  # REAPER sends 0, 0 for "no loop"
            self.context.follow_loop("reaper", start, end)


class AbletonFeedback(_OscListener):
    """Asks AbletonOSC for the arrangement loop brace and tempo, and listens for their changes.

    It owns AbletonOSC's reply port, or shares it with the ``[ableton]`` frontend: only one socket can hold that port,
    and that frontend's client hands on every message it did not ask for (``share``).
    """

    PROPERTIES = ("loop_start", "loop_length", "tempo", "current_song_time", "signature_numerator",
                  "signature_denominator")

    def __init__(self, context: SessionContext, live: tuple[str, int], interval: float):
        super().__init__(context)
        self.live = live
        self.interval = interval
        self._values: dict[str, float] = {}
        self._poller: asyncio.Task | None = None
        self._shared = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._ask("start_listen")
        self._poller = asyncio.get_running_loop().create_task(self._poll(), name="AbletonOSC queries")

    def share(self, client) -> None:
        """Use the ``[ableton]`` frontend's AbletonOSC client (its socket and its unclaimed messages)."""
        self._shared = client
        client.subscribers.append(self.received)
        self.live = (client.settings.host, client.settings.port)
        self.connection_made(client.transport)

    async def _poll(self) -> None:
        while True:  # listeners are lost when Live restarts without sending /live/startup to us
            self._ask("get")
            await asyncio.sleep(self.interval)

    def _ask(self, verb: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            for prop in self.PROPERTIES:
                self.transport.sendto(encode(f"/live/song/{verb}/{prop}", []), self.live)

    def received(self, address: str, params: list, sender: tuple | None = None) -> None:
        if address == "/live/startup":
            self._ask("start_listen")
            return
        prop = address.rsplit("/", 1)[-1]
        value = _number(params, positive=prop in ("tempo", "signature_numerator", "signature_denominator"))
        if not address.startswith("/live/song/get/") or prop not in self.PROPERTIES or value is None:
            return
        if self._values.get(prop) == value:
            return
        self._values[prop] = value
        start, length, tempo, cursor, numerator, denominator = (self._values.get(p) for p in self.PROPERTIES)
        # Live's tempo and song time count quarter notes whatever the signature: a bar of 7/8 is 3.5 of them
        beats_per_bar = numerator * 4.0 / denominator if numerator and denominator else numerator
        if tempo and prop in ("tempo", "current_song_time", "signature_numerator", "signature_denominator"):
            self.context.follow_transport("ableton", tempo=tempo, **({"cursor": cursor * 60.0 / tempo}
                                                                     if cursor is not None else {}),
                                          **({"beats_per_bar": beats_per_bar} if beats_per_bar else {}))
        if start is not None and length and tempo and prop in ("loop_start", "loop_length", "tempo"):
            seconds = 60.0 / tempo
            self.context.follow_loop("ableton", start * seconds, (start + length) * seconds)

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._shared is not None:  # the socket is the [ableton] frontend's to close
            if self.received in self._shared.subscribers:
                self._shared.subscribers.remove(self.received)
            return
        super().close()


class ArdourFeedback(_OscListener):
    """Registers with Ardour's OSC surface for its transport feedback and follows its play cursor and bar count.

    ``/set_surface`` asks for ``/position/bbt`` (Ardour's bar|beat|tick at the cursor), ``/position/time``
    (hh:mm:ss.mmm) and a heartbeat; Ardour sends them to the port named in the message, the position about ten times
    a second while it rolls and once after a locate. Its OSC feedback carries no tempo and no signature, so bars are
    its own bar lines as the daemon sees them pass (``bars.BarLines``). Registered again when the heartbeat stops
    (Ardour restarted or its surface was reset).
    """

    FEEDBACK = 8 + 32 + 2048  # heartbeat, /position/bbt, /position/time (Ardour's feedback bits)
    TICKS_A_BEAT = 1920  # Ardour's ticks
    SILENCE = 3.0  # seconds without a message (the heartbeat comes every second) before registering again

    def __init__(self, context: SessionContext, ardour: tuple[str, int]):
        super().__init__(context)
        self.ardour = ardour
        self._bbt: tuple[int, float] | None = None  # the bar and beat Ardour sent just before the time
        self._heard = 0.0
        self._watch: asyncio.Task | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch = asyncio.get_running_loop().create_task(self._keep_registered(), name="Ardour OSC feedback")

    async def _keep_registered(self) -> None:
        while True:
            if time.monotonic() - self._heard > self.SILENCE:
                self._register(self.FEEDBACK)
            await asyncio.sleep(self.SILENCE / 3)

    def _register(self, feedback: int) -> None:
        if self.transport is not None and not self.transport.is_closing():
            port = self.transport.get_extra_info("sockname")[1]  # Ardour's "manual" port mode needs it named
            self.transport.sendto(encode("/set_surface", [0, 0, feedback, 0, 0, 0, port]), self.ardour)

    def received(self, address: str, params: list, sender: tuple | None = None) -> None:
        self._heard = time.monotonic()
        text = params[0] if params and isinstance(params[0], str) else None
        if text is None:
            return
        try:
            if address == "/position/bbt":
                bar, beat, tick = (int(part) for part in text.split("|"))
                self._bbt = (bar, beat - 1 + tick / self.TICKS_A_BEAT)
            elif address == "/position/time":
                hours, minutes, seconds = text.split(":")
                cursor = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
                bar, beat = self._bbt or (None, 0.0)  # without its bar, the cursor counts no bars
                self._bbt = None
                self.context.follow_transport("ardour", cursor=cursor, bar=bar, beat=beat, beats_per_bar=0.0)
        except ValueError:
            log.debug("Ardour sent %s %r, not a position", address, text)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._register(0)  # no more feedback to a port nobody reads
        super().close()


async def start_feedback(context: SessionContext, settings: FeedbackSettings,
                         ableton_client=None) -> list[_OscListener]:
    """Bind the feedback sockets the settings ask for; returns the listeners (close each when done).

    ``ableton_client``: the ``[ableton]`` frontend's AbletonOSC client, when it runs, to share AbletonOSC's reply port.
    """
    loop = asyncio.get_running_loop()
    listeners: list[_OscListener] = []
    try:
        if settings.reaper_port:
            _, reaper = await loop.create_datagram_endpoint(lambda: ReaperFeedback(context),
                                                            local_addr=(settings.host, settings.reaper_port))
            listeners.append(reaper)
            log.info("following REAPER's loop points on %s:%d", settings.host, settings.reaper_port)
        if settings.ableton:
            live = (settings.host, settings.ableton_port)
            if ableton_client is not None:
                ableton = AbletonFeedback(context, live, settings.ableton_interval)
                ableton.share(ableton_client)
            else:
                _, ableton = await loop.create_datagram_endpoint(
                    lambda: AbletonFeedback(context, live, settings.ableton_interval),
                    local_addr=(settings.host, settings.ableton_reply_port))
            listeners.append(ableton)
            log.info("following Ableton's loop brace through AbletonOSC at %s:%d", *ableton.live)
        if settings.ardour:
            where = (settings.host, settings.ardour_port)
            _, ardour = await loop.create_datagram_endpoint(lambda: ArdourFeedback(context, where),
                                                            local_addr=(settings.host, 0))
            listeners.append(ardour)
            log.info("following Ardour's play cursor through its OSC surface at %s:%d", *where)
    except OSError:
        for listener in listeners:
            listener.close()
        raise
    return listeners
