"""MIDI pads: a press on a hardware controller runs a mapped inpaint/extend on the current selection, or an action.

Ports (``[midi]`` in the config):

- ``port`` names the controller's MIDI output (what its pads send): an exact port name, a glob pattern
  (``nanoPAD2*``), or any part of the name in any case. ``output_port`` names the port its LEDs listen on.
- While a port is absent the frontend looks for it every ``poll_interval`` seconds; when it vanishes (unplugged, JACK
  client gone) the frontend closes its end and looks again. The daemon runs on either way.
- With ``virtual = true`` it creates ports of those names instead, for others to connect to (``jack_connect``).
- Ports of clients left with rtmidi's default names ("RtMidiIn Client", ...) are never matched: they are our own.
- A controller unplugged and plugged back within one poll interval goes unnoticed (its name never left the listing)
  and stays unheard until it is unplugged for longer; lower ``poll_interval`` for a device that comes back that fast.
- When the JACK server itself goes away (stopped, or restarted to change the buffer size) the frontend says so once,
  lets go of its ports and listing clients, and picks the controller up on the next server (or makes its virtual
  ports there again, under the same names, for the producer's session manager to join again), saying once that it is
  back. A client of a dead server cannot tell: its listing goes on showing the dead server's ports, and on a new
  server shows nothing; so the server's socket is watched (``jack_server_identity``). The dead clients are let go
  before any new one opens: once a new client is open, libjack has freed the old server's clients, and closing one
  then crashed the process (measured: a segfault).

mido delivers messages on its own thread (for JACK, the JACK process thread); they are handed to the event loop,
which owns the job service, with ``call_soon_threadsafe``. What a press does is in ``midi_mapping``; the selection it
acts on in ``daw_feedback``. LEDs: lit while a job from the pad runs, two slow flashes when it is delivered, five
fast ones when it fails (or when the press itself was refused); a choose_original / choose_variant_n pad is lit
while its take is the chosen one of the job delivered last, whichever trigger chose it.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import osc_schema
from bridge.audition.actions import LAST, PAD_ACTIONS
from bridge.config import Config, ConfigError
from bridge.core.service import JobService
from bridge.decisions import Decision, Decisions, latest
from bridge.exceptions import BridgeError
from bridge.frontends.bars import bars_on_source, range_arguments, selection_request
from bridge.frontends.daw_feedback import (
    CONTEXT_FILE,
    FeedbackSettings,
    SessionContext,
    bars_transport,
    start_feedback,
)
from bridge.frontends.midi_mapping import (
    DECISION_ACTIONS,
    VOICE_ACTIONS,
    Leds,
    Mapping,
    Pad,
    load_mapping,
    mapping_file,
)
from bridge.models import JobRecord, JobSpec, State
from bridge.quiet_libraries import silence_client_libraries
from bridge.settings_schema import check_table, defaults
from bridge.share import ShareThread
from osc_schema import ValidationError

log = logging.getLogger(__name__)

_DEFAULT_CLIENTS = ("RtMidiIn Client", "RtMidiOut Client", "RtMidi Input Client", "RtMidi Output Client",
                    "daw-bridge")
_OTHER_BACKEND = {"local": "musicgpt", "musicgpt": "local"}


_DEFAULTS = defaults("midi")


@dataclass(frozen=True)
class MidiSettings:
    """The ``[midi]`` table, checked by the settings schema, with the mapping path resolved."""

    port: str
    output_port: str | None = _DEFAULTS["output_port"]
    virtual: bool = _DEFAULTS["virtual"]
    mapping: Path = Path(_DEFAULTS["mapping"])
    api: str | None = _DEFAULTS["api"]  # rtmidi API: LINUX_ALSA, UNIX_JACK, MACOSX_CORE, WINDOWS_MM; None: default
    poll_interval: float = _DEFAULTS["poll_interval"]
    daw: FeedbackSettings | None = None

    @classmethod
    def from_table(cls, table: dict, config_file: Path | None = None) -> "MidiSettings":
        values = check_table("midi", table, config_file)
        if values["port"] is None:
            raise ConfigError("required: name the controller's MIDI port (see 'daw-bridge midi ports')",
                              file=config_file, key="[midi] port")
        if "daw" in values:
            values["daw"] = FeedbackSettings(**values["daw"])
        values["mapping"] = mapping_file(values["mapping"], config_file)
        return cls(**values)


def _file_stamp(path: Path) -> tuple | None:
    """What tells a changed file from the one read before (an editor's save replaces it; learn appends to it)."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size, found.st_ino, found.st_dev


def midi_backend(api: str | None):
    """mido's rtmidi backend for an API name (None: rtmidi's default for this platform)."""
    import mido

    backend = mido.Backend("mido.backends.rtmidi" + (f"/{api}" if api else ""), use_environ=False)
    try:
        backend.load()
    except ImportError as exc:
        raise BridgeError(f"MIDI needs python-rtmidi ({exc}): pip install 'daw-bridge[midi]'",
                          code="midi_unavailable") from None
    if api and api not in backend.module.get_api_names():
        raise ConfigError(f"[midi] api {api!r} is not built into python-rtmidi here "
                          f"(available: {', '.join(backend.module.get_api_names()) or 'none'})")
    silence_client_libraries()
    return backend



def match_port(pattern: str, names: list[str]) -> str | None:
    """The first port called ``pattern``, else matching it as a glob, else containing it (ignoring case)."""
    names = [n for n in names if not n.startswith(_DEFAULT_CLIENTS)]
    if pattern in names:
        return pattern
    folded = pattern.casefold()
    if any(c in pattern for c in "*?["):
        found = [n for n in names if fnmatch.fnmatchcase(n.casefold(), folded)]
    else:
        found = [n for n in names if folded in n.casefold()]
    return found[0] if found else None


# A control change presses when it reaches CC_PRESS and lets go only once it falls below CC_RELEASE: a continuous
# sustain pedal or a pressure pad in CC mode wobbles around 64 while held, and each upward crossing was a press.
CC_PRESS, CC_RELEASE = 64, 32


def press_of(message, cc_values: dict) -> tuple[str, int, int] | None:
    """(kind, number, channel 1..16) when a message is a press: a note on, a CC reaching 64 from below 32, a program
    change.

    ``cc_values`` remembers which controllers are held, so a held button, a turned knob or a wobbling pedal presses
    once.
    """
    kind = message.type
    if kind == "note_on" and message.velocity > 0:
        return "note", message.note, message.channel + 1
    if kind == "control_change":
        key = (message.channel, message.control)
        if message.value >= CC_PRESS and not cc_values.get(key, False):
            cc_values[key] = True
            return "cc", message.control, message.channel + 1
        if message.value < CC_RELEASE:
            cc_values[key] = False
        return None
    if kind == "program_change":
        return "program", message.program, message.channel + 1
    return None


def release_of(message, cc_values: dict) -> tuple[str, int, int] | None:
    """(kind, number, channel 1..16) when a message lets a held pad go: a note off (or a note on at velocity 0), a
    held CC falling below 32. Ask before ``press_of``, which remembers the CC's new state."""
    kind = message.type
    if kind == "note_off" or (kind == "note_on" and message.velocity == 0):
        return "note", message.note, message.channel + 1
    if kind == "control_change" and message.value < CC_RELEASE and cc_values.get((message.channel, message.control)):
        return "cc", message.control, message.channel + 1
    return None


def jack_server_identity() -> tuple[int, int] | None:
    """The running JACK server's request socket as (device, inode): jackd2 removes it when it stops and makes a new
    one at each start. None where none is found (another JACK, another platform): a restart then goes unnoticed.

    A client cannot ask libjack instead: a dead server's client never learns it is dead (rtmidi sets no shutdown
    callback), and a client of our own in the system's libjack would be a new client on the new server, after which
    closing the audition's or the voice's dead client crashes the process (measured: a segfault)."""
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for folder in ("/dev/shm", "/tmp"):
        for name in (f"jack_{server}_{uid}_0", f"jack_{server}_0"):
            try:
                found = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            return found.st_dev, found.st_ino
    return None


class PortProbe:
    """Lists the ports over and over without opening a MIDI client each time (mido's listing opens two, ~50 ms)."""

    def __init__(self, backend, watch_server: bool = False):
        """``watch_server``: on JACK, note which server the listing clients belong to (for ``server_gone``)."""
        self.backend = backend
        self.watch_server = watch_server
        self._clients = None
        self._server = None  # jack_server_identity() when the clients were opened; None: not known

    def names(self) -> tuple[list[str], list[str]]:
        """(input port names, output port names) as mido would open them."""
        if self.backend.name != "mido.backends.rtmidi":
            return self.backend.get_input_names(), self.backend.get_output_names()
        import rtmidi

        opened = self._clients is None
        if opened:
            api = getattr(rtmidi, f"API_{self.backend.api}") if self.backend.api else rtmidi.API_UNSPECIFIED
            self._clients = (rtmidi.MidiIn(rtapi=api, name="daw-bridge"), rtmidi.MidiOut(rtapi=api, name="daw-bridge"))
        names = self._clients[0].get_ports(), self._clients[1].get_ports()  # raises while no JACK server runs
        if opened and self.watch_server and self._clients[0].get_current_api() == rtmidi.API_UNIX_JACK:
            self._server = jack_server_identity()
        return names

    def made(self, port, server: tuple[int, int] | None) -> None:
        """Note the server a virtual port was made on (``jack_server_identity()`` just before), for ``server_gone``:
        those ports are not listed, and opening listing clients first would give the ports' client another name."""
        if self.watch_server and self._server is None and getattr(port, "api", None) == "UNIX_JACK":
            self._server = server

    def server_gone(self) -> bool:
        """True once the JACK server the listing clients (and ports opened since) belong to is no longer the one
        running: stopped, or replaced by a new one under the same name."""
        return self._server is not None and jack_server_identity() != self._server

    def reset(self) -> None:
        """Forget the listing clients (those of a server that went away list its ports, or nothing)."""
        if self._clients is not None:
            for client in self._clients:
                client.delete()
            self._clients = None
        self._server = None


class LedFeedback:
    """A pad's LED: lit while its jobs run or while it names the chosen take, flashed when a job ends or a one-shot
    action was done. Keys are (kind, number, channel 1..16)."""

    FLASHES = {"done": (2, 0.15), "failed": (5, 0.06)}  # (count, seconds on and off): tell them apart by eye

    def __init__(self, values: Leds):
        self.values = values
        self.port = None
        self._jobs: dict[str, tuple] = {}  # job id -> LED key
        self._chosen: set[tuple] = set()  # pads whose take is the chosen one
        self._flashing: dict[tuple, asyncio.Task] = {}

    def attach(self, port) -> None:
        self.port = port
        for key in self._lit() - set(self._flashing):
            self._send(key, self.values.on)

    def show_chosen(self, keys: set[tuple]) -> None:
        """Light exactly these pads as the chosen take; those lit for it before go dark (unless a job holds them)."""
        before, self._chosen = self._chosen, set(keys)
        for key in (before ^ self._chosen) - set(self._flashing):
            self._settle(key)

    def job_started(self, key: tuple, job_id: str) -> None:
        self._jobs[job_id] = key
        if key not in self._flashing:
            self._send(key, self.values.on)

    def job_finished(self, job_id: str, state: State) -> None:
        key = self._jobs.pop(job_id, None)
        if key is None:
            return
        if state is State.DELIVERED:
            self.flash(key, "done")
        elif state is State.FAILED:
            self.flash(key, "failed")
        elif key not in self._flashing:
            self._settle(key)

    def light(self, key: tuple) -> None:
        """Light a pad until its next flash ends (a talk pad while it records, or while a command waits for
        confirmation)."""
        running = self._flashing.pop(key, None)
        if running is not None:
            running.cancel()
        self._send(key, self.values.on)

    def flash(self, key: tuple, outcome: str) -> None:
        """Flash a pad for ``done`` or ``failed``; a newer flash replaces one still going."""
        running = self._flashing.pop(key, None)
        if running is not None:
            running.cancel()
        count, period = self.FLASHES[outcome]
        value = getattr(self.values, outcome)
        self._flashing[key] = asyncio.get_running_loop().create_task(self._flash(key, value, count, period))

    async def _flash(self, key: tuple, value: int, count: int, period: float) -> None:
        for _ in range(count):
            self._send(key, value)
            await asyncio.sleep(period)
            self._send(key, self.values.off)
            await asyncio.sleep(period)
        self._flashing.pop(key, None)
        self._settle(key)

    def _settle(self, key: tuple) -> None:
        self._send(key, self.values.on if key in self._lit() else self.values.off)

    def _lit(self) -> set[tuple]:
        return set(self._jobs.values()) | self._chosen

    def _send(self, key: tuple, value: int) -> None:
        import mido

        kind, number, channel = key
        if self.port is None or kind == "program":  # a program change has no LED to light
            return
        if kind == "note":
            message = mido.Message("note_on", channel=channel - 1, note=number, velocity=value)
        else:
            message = mido.Message("control_change", channel=channel - 1, control=number, value=value)
        try:
            self.port.send(message)
        except (OSError, RuntimeError) as exc:
            log.debug("could not light %s: %s", key, exc)

    def close(self) -> None:
        """Stop flashing and turn off every LED this frontend lit."""
        for task in self._flashing.values():
            task.cancel()
        for key in self._lit() | set(self._flashing):
            self._send(key, self.values.off)
        self._flashing.clear()


class MidiFrontend:
    """Pads in, LEDs out. Start it with ``await start()``; ``close()`` turns the LEDs off and lets the ports go."""

    def __init__(self, service: JobService, config: Config, ableton=None, decisions: Decisions | None = None):
        """Pads as ``config.midi`` maps them. ``ableton``: the ``[ableton]`` frontend's AbletonOSC client when it
        runs ([midi.daw] ableton shares it); ``decisions``: the daemon's, for the choose/keep/discard pads."""
        self.service = service
        self.ableton = ableton
        self.decisions = decisions
        self.drop_folder = config.drop_folder
        self.settings = MidiSettings.from_table(config.midi, config.source_file)
        self._mapping_read = _file_stamp(self.settings.mapping)  # before reading it: a change meanwhile is seen
        self.mapping: Mapping = load_mapping(self.settings.mapping)  # refused here, at start, when it is wrong
        self.backend = midi_backend(self.settings.api)
        self.context = SessionContext(service, config.state_dir / CONTEXT_FILE)
        self.leds = LedFeedback(self.mapping.leds)
        self.probe = PortProbe(self.backend, watch_server=True)
        self.input = None
        self.output = None
        self.last_job_id: str | None = None
        self.audition = None  # the daemon's Audition, for the audition_* pad actions
        self.voice = None  # the daemon's VoiceFrontend, for the talk, listen and confirm pad actions
        self._cc_values: dict = {}
        self._channels: dict[tuple[str, int], int] = {}  # the channel each pad was last pressed on (1..16)...
        self._last_channel = 1  # ...and any pad
        self._listeners: list = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task | None = None
        self._mapping_check: asyncio.Task | None = None
        self._midi_missing = False
        self._server_left = False  # the JACK server went away (not: was never there)
        self._presses = 0
        self._pad_jobs: dict[tuple, tuple[str, dict]] = {}  # per pad (its LED): the last job it started, its request
        self._admissions: set[asyncio.Task] = set()  # pads' jobs being admitted, decisions made (see _admit)
        self._captures = ShareThread("pad captures")  # where a bars pad reads plugin hosts' transports (see prepared)
        self._shown = 0  # times the chosen take was lit (see _show_latest)
        service.subscribe(self._on_job_event)  # last: a frontend refused above leaves no listener behind
        if decisions is not None:
            decisions.subscribe(self._on_decision)

    async def start(self) -> None:
        """Take up the saved context, bind the DAW feedback ports, connect what is there, and keep looking."""
        self._loop = asyncio.get_running_loop()
        self.context.restore()
        recent = self.service.recent(1)
        self.last_job_id = recent[0].job_id if recent else None
        if self.decisions is not None and (delivered := self.service.last_delivered()) is not None:
            self._later(self._show_latest(delivered))  # its drop folder may be on a share
        if self.settings.daw is not None:
            self._listeners = await start_feedback(self.context, self.settings.daw, self.ableton)
        self._look_safely()
        self._watcher = self._loop.create_task(self._watch(), name="MIDI ports")
        log.info("MIDI: %d pad(s) mapped from %s; %s", len(self.mapping.pads), self.settings.mapping,
                 f"connected to {self.input.name}" if self.input else f"waiting for a port like {self.settings.port!r}")

    def close(self) -> None:
        for task in (self._watcher, self._mapping_check, *self._admissions):
            if task is not None:
                task.cancel()
        # its calls only read: none needs finishing, and one stuck on a share (left to end with the process) holds
        # the daemon's stop, on the event loop, a second at most
        self._captures.close(timeout=1)
        self.leds.close()
        self.context.flush()
        self._close_input()
        self._close_output()
        self.probe.reset()
        for listener in self._listeners:
            listener.close()

    # -- ports ------------------------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        failures = 0
        while True:
            delay = self.settings.poll_interval * (2 ** min(failures, 3))
            await asyncio.sleep(delay)
            failures = 0 if self._look_safely() else failures + 1
            self.context.publish()
            # the mapping is looked at beside the port watch, one look at a time: one on a share that hangs holds no
            # port up
            if self._mapping_check is None or self._mapping_check.done():
                self._mapping_check = self._loop.create_task(self._read_mapping_again(), name="MIDI mapping")

    async def _read_mapping_again(self) -> None:
        """Take up the mapping file once it has changed since it was read: 'daw-bridge midi learn' adds a pad to it
        while the daemon runs, and that pad did nothing (not even a log line at info) until a restart. A file that
        cannot be used as it now is is said once, and the pads keep the mapping read before."""
        path = self.settings.mapping
        stamp = await asyncio.to_thread(_file_stamp, path)
        if stamp == self._mapping_read:
            return
        self._mapping_read = stamp
        try:
            mapping = await asyncio.to_thread(load_mapping, path)
        except Exception as exc:  # MappingError names the line; anything else is said too, not lost in the task
            log.warning("MIDI mapping changed but not taken up: %s; the pads keep the mapping read before",
                        exc if isinstance(exc, BridgeError) else f"{path}: {type(exc).__name__}: {exc}")
            return
        self.mapping = mapping
        self.leds.values = mapping.leds
        log.info("MIDI: mapping %s read again: %d pad(s)", path, len(mapping.pads))

    def _look_safely(self) -> bool:
        try:
            self._look()
        except Exception as exc:  # the MIDI system itself is missing (JACK server down): the daemon lives on
            if not self._midi_missing:
                log.warning("MIDI ports cannot be listed (%s); the daemon runs on and keeps looking", exc)
            self._midi_missing = True
            if not self.settings.virtual:  # virtual: no listing clients; the server its ports were made on stays noted
                self.probe.reset()
            return False
        self._listed()
        return True

    def _listed(self) -> None:
        """Say once that the MIDI ports can be listed again, after they could not."""
        if self._midi_missing:
            log.info("the MIDI server is back" if self._server_left else "MIDI ports can be listed again")
            self._midi_missing = self._server_left = False

    def _look(self) -> None:
        settings = self.settings
        if self.probe.server_gone():
            # Let go of the dead server's ports and listing clients now, before new ones open (the listing below, or
            # the virtual ports made again under the same names).
            self._close_input()
            self._close_output()
            self.probe.reset()
            if not self._midi_missing:
                log.warning("the MIDI server went away; the daemon runs on and %s on the next one",
                            "makes its ports again" if settings.virtual else "picks the pads up")
            self._midi_missing = self._server_left = True
        if settings.virtual:
            server = jack_server_identity()  # before making them: a restart in between is then seen next time
            if self.input is None:
                self._open_input(settings.port, virtual=True)
                self.probe.made(self.input, server)
            if settings.output_port and self.output is None:
                self._open_output(settings.output_port, virtual=True)
                self.probe.made(self.output, server)
            return
        inputs, outputs = self.probe.names()
        self._listed()
        if self.input is not None and self.input.name not in inputs:
            log.info("MIDI input %s is gone; waiting for it to come back", self.input.name)
            self._close_input()
        if self.output is not None and self.output.name not in outputs:
            log.info("MIDI output %s is gone; waiting for it to come back", self.output.name)
            self._close_output()
        if self.input is None and (name := match_port(settings.port, inputs)):
            self._open_input(name)
        if settings.output_port and self.output is None and (name := match_port(settings.output_port, outputs)):
            self._open_output(name)

    def _open_input(self, name: str, virtual: bool = False) -> None:
        extra = {"virtual": True, "client_name": "daw-bridge"} if virtual else {}
        self.input = self.backend.open_input(name, callback=self._from_midi_thread, **extra)
        log.info("MIDI input %s %s", "created:" if virtual else "connected:", name)

    def _open_output(self, name: str, virtual: bool = False) -> None:
        extra = {"virtual": True, "client_name": "daw-bridge"} if virtual else {}
        self.output = self.backend.open_output(name, **extra)
        self.leds.attach(self.output)
        log.info("MIDI output (LEDs) %s %s", "created:" if virtual else "connected:", name)

    def _close_input(self) -> None:
        port, self.input = self.input, None
        self._cc_values.clear()  # a controller plugged back in starts with nothing held (its releases were lost)
        if port is not None:
            port.close()

    def _close_output(self) -> None:
        port, self.output = self.output, None
        self.leds.port = None
        if port is not None:
            port.close()

    def _from_midi_thread(self, message) -> None:
        loop = self._loop
        try:
            loop.call_soon_threadsafe(self.received, message)
        except RuntimeError:  # the loop is closed: the daemon is stopping
            pass

    # -- presses ----------------------------------------------------------------------------------------------------

    def received(self, message) -> None:
        """A MIDI message on the event loop: run the pad it presses, if any; a talk pad let go ends its take."""
        release = release_of(message, self._cc_values)
        press = press_of(message, self._cc_values)
        if release is not None and self.voice is not None:
            pad = self.mapping.find(*release)
            if pad is not None and pad.action == "talk":
                self.voice.released((pad.trigger.kind, pad.trigger.number, release[2]))
        if press is None:
            return
        pad = self.mapping.find(*press)
        if pad is None:
            log.debug("MIDI %s %d on channel %d is not mapped", *press)
            return
        self._channels[press[:2]] = self._last_channel = press[2]
        self.press(pad, press[2])

    def press(self, pad: Pad, channel: int) -> None:
        """Run a pad's command or action (a refusal is logged, and the LED flashes)."""
        try:
            self.act(pad, channel)
        except (ValidationError, BridgeError):
            pass

    def act(self, pad: Pad, channel: int, prepared: tuple[dict, dict] | None = None,
            then: Callable[[JobRecord | None, Exception | None], None] | None = None) -> None:
        """``press``, for a caller that reports a refusal itself (voice): it is logged, flashed, then raised, or
        given to ``then`` with the job it started or retried otherwise (None when there is none). A command pad's
        job is admitted in a thread (its song's files are looked at), so ``then`` may come later.
        ``prepared``: a command pad's (request, origin) from ``prepare`` earlier, instead of the selection now."""
        led = (pad.trigger.kind, pad.trigger.number, channel)
        then = then or (lambda record, error: None)
        try:
            if pad.command is not None:
                if prepared is not None:  # heard earlier (voice), and confirmed: it is this request
                    self._admit(pad, led, *prepared, then, remember=True)
                elif pad.bars is not None:
                    self._later(self._press_on_bars(pad, led, then))
                else:
                    self._press(pad, led, self._prepared(pad), then)
                return
            if pad.action == "rerun_other_backend":  # a job of its own, admitted as a command pad's
                self._admit(pad, led, self._rerun_request(), self._origin(pad), then, remember=False)
                return
            if pad.action in DECISION_ACTIONS:  # the drop folder is read and written in a thread
                self._decide(pad, led, then)
                return
            record = None
            if pad.action in PAD_ACTIONS:
                self._audition(pad, led)
            elif pad.action in VOICE_ACTIONS:
                if self.voice is None:
                    raise ValidationError("action", pad.action, "needs [voice] enabled = true in the daemon's config")
                self.voice.pressed(pad.action, led)
            else:
                record = getattr(self, f"_{pad.action}")(pad)
                if record is not None:
                    self.leds.job_started(led, record.job_id)
                else:
                    self.leds.flash(led, "done")  # an action that starts no job (cancel) still shows it was heard
        except (ValidationError, BridgeError) as exc:
            log.warning("pad %s: %s", pad.describe(), exc)
            self.leds.flash(led, "failed")
            raise
        then(record, None)

    def _press(self, pad: Pad, led: tuple, prepared: tuple[dict, dict], then) -> None:
        """Admit a command pad's ``prepared`` request, unless the pad's last job asked the same and still runs."""
        request, origin = prepared
        if (running := self._still_running(led, request)) is not None:
            # a pad that bounces, or a second press while the first job runs: a paid job is not sent twice
            log.info("pad %s: the same request is still running as job %s; nothing new started",
                     pad.describe(), running)
            then(None, None)
            return
        self._admit(pad, led, request, origin, then, remember=True)

    async def _press_on_bars(self, pad: Pad, led: tuple, then) -> None:
        try:
            self._press(pad, led, await self.prepare(pad), then)
        except Exception as exc:
            self.press_failed(pad, led, exc, then)

    def _admit(self, pad: Pad, led: tuple, request: dict, origin: dict, then, *, remember: bool) -> None:
        """Submit a pad's request, its admission's look at the song and drop folder in a thread (a project on a share
        that does not answer held up the whole daemon); light the pad and call ``then`` when it is in."""
        command = osc_schema.parse_request(request)
        if remember:
            self._pad_jobs[led] = ("", request)  # being admitted: a bounce meanwhile is the same press
        self._later(self._take(pad, led, command, request, origin, then, remember))

    def _later(self, work) -> None:
        """Run ``work``, a press's look at files in a thread, in the background (see close)."""
        task = self._loop.create_task(work)
        self._admissions.add(task)
        task.add_done_callback(self._admissions.discard)

    def press_failed(self, pad: Pad, led: tuple, exc: Exception, then) -> None:
        """A press whose work in a thread failed (called where ``exc`` is handled): said, its pad flashed, ``then``
        told; a bug costs this press, not the pads."""
        if isinstance(exc, (ValidationError, BridgeError)):
            log.warning("pad %s: %s", pad.describe(), exc)
        else:
            log.exception("pad %s failed unexpectedly", pad.describe())
            exc = BridgeError(f"internal error ({type(exc).__name__}); the daemon's log has the details",
                              code="internal_error")
        self.leds.flash(led, "failed")
        then(None, exc)

    async def _take(self, pad: Pad, led: tuple, command, request: dict, origin: dict, then, remember: bool) -> None:
        try:
            record = await self.service.take(command, origin)
        except Exception as exc:
            if remember and self._pad_jobs.get(led) == ("", request):
                del self._pad_jobs[led]
            self.press_failed(pad, led, exc, then)
            return
        if remember:
            self._pad_jobs[led] = (record.job_id, request)
        self.leds.job_started(led, record.job_id)
        then(record, None)

    def _still_running(self, led: tuple, request: dict) -> str | None:
        """The id of the job this pad last started (or "(being admitted)"), when it has not finished and asked for just
        what ``request`` asks."""
        job_id, asked = self._pad_jobs.get(led, ("", None))
        if asked is None or {k: v for k, v in asked.items() if k != "request_id"} != {
                k: v for k, v in request.items() if k != "request_id"}:
            return None
        if not job_id:
            return "(being admitted)"
        record = self.service.get(job_id)
        return job_id if record is not None and not record.state.finished else None

    async def prepare(self, pad: Pad) -> tuple[dict, dict]:
        """A command pad's request on the selection now, and its job's origin. A bars pad's transport is found on the
        captures folder's thread: a plugin host's is read from its capture index, and a captures folder on a share
        that does not answer froze the whole daemon."""
        if pad.bars is None:
            return self._prepared(pad)
        counted = await self._captures.run(bars_transport, getattr(self.service, "config", None),
                                           self.context.selection(), self.context.transport)
        return self._prepared(pad, counted)

    def _prepared(self, pad: Pad, counted: tuple | None = None) -> tuple[dict, dict]:
        """``prepare``'s answer, given a bars pad's ``counted``: the transport and selection ``bars_transport``
        found."""
        origin = self._origin(pad)
        return self.request_for(pad, origin, counted), origin

    def request_for(self, pad: Pad, origin: dict, counted: tuple | None) -> dict:
        """The request a command pad sends now: the current selection under the pad's own arguments (a range in bars,
        counted from ``counted``, is also noted in the job's ``origin``)."""
        if pad.bars is not None:
            if counted is None:
                raise ValueError("a bars pad's request needs its transport counted (see prepare)")
            transport, selection = counted
            chosen, start, end = bars_on_source(transport, selection, *pad.bars)
            request = selection_request(pad.command, selection)
            request.update(range_arguments(pad.command, start, end))
            origin["bars"] = chosen.with_tempo()
        else:
            selection = self.context.selection()
            request = selection_request(pad.command, selection)
            if pad.command == "inpaint":
                request.update({k: selection[k] for k in ("start", "end") if selection.get(k) is not None})
            elif selection.get("end") is not None:
                request["extend_after"] = selection["end"]
        request.update(pad.args)
        needed = ("start", "end") if pad.command == "inpaint" else ("extend_after",)
        if "capture" not in request:  # a plugin's capture names the audio instead
            needed = ("source", *needed)
        for key in needed:
            if key not in request:
                raise ValidationError(key, None, "is not known yet: select a range in the DAW (with [midi.daw] "
                                                 "feedback), send /bridge/context, or run one command first",
                                      shown="")
        request["request_id"] = self._request_id()
        return request

    def _request_id(self) -> str:
        self._presses += 1
        return f"midi-{time.strftime('%Y%m%d-%H%M%S')}-{self._presses}"

    def _origin(self, pad: Pad) -> dict:
        return {"kind": "midi", "pad": pad.describe()}

    def _audition(self, pad: Pad, led: tuple) -> None:
        """Audition the last delivered job; the pad's LED flashes once the audition answered."""
        if self.audition is None:
            raise ValidationError("action", pad.action, "needs the daemon's audition")

        def answered(playing, error) -> None:
            if error is not None:
                log.warning("pad %s: %s", pad.describe(), error)
            self.leds.flash(led, "failed" if error is not None else "done")

        self.audition.request(LAST, *PAD_ACTIONS[pad.action], answered)

    def _decide(self, pad: Pad, led: tuple, then) -> None:
        """Decide on the last delivered job; a choose pad then shows the chosen take, keep and discard flash. The
        decision's files are read and written in a thread (a drop folder on a share that does not answer held up
        the whole daemon), so the LED and ``then`` come once it is published."""
        if self.decisions is None:
            raise ValidationError("action", pad.action, "needs the daemon's decisions")
        self._later(self._decided(pad, led, then))

    async def _decided(self, pad: Pad, led: tuple, then) -> None:
        decision, choice = DECISION_ACTIONS[pad.action]
        try:
            await self.decisions.decide(LAST, decision, choice)
        except Exception as exc:
            self.press_failed(pad, led, exc, then)
            return
        if decision != "choose":
            self.leds.flash(led, "done")
        then(None, None)

    async def _show_latest(self, record: JobRecord) -> None:
        """Light the choose pads of the job's chosen take as its latest decision says, read in a thread, unless a
        decision or a delivery has lit them meanwhile."""
        shown = self._shown
        try:
            decided = await asyncio.to_thread(latest, record)
        except BridgeError as exc:
            log.warning("pads: %s", exc)
            decided = None
        if shown == self._shown:
            self._show_chosen(record, decided)

    def _show_chosen(self, record: JobRecord, decided: Decision | None) -> None:
        """Light the choose pads of the job's chosen take, ``decided``; none before one."""
        self._shown += 1
        wanted = ("choose", decided.choice) if decided is not None else None
        self.leds.show_chosen({(pad.trigger.kind, pad.trigger.number, pad.trigger.channel or self._channel_of(pad))
                               for pad in self.mapping.pads if wanted and DECISION_ACTIONS.get(pad.action) == wanted})

    def _channel_of(self, pad: Pad) -> int:
        """Where a pad mapped on any channel has its LED: the channel it was last pressed on, else the one any pad was
        (a controller sends on one channel), else 1."""
        return self._channels.get((pad.trigger.kind, pad.trigger.number), self._last_channel)

    def _on_decision(self, decided: Decision) -> None:
        last = self.service.last_delivered()
        if last is not None and last.job_id == decided.job_id:
            self._show_chosen(last, decided)

    def _cancel(self, pad: Pad) -> None:
        running = sorted(self.service.active(), key=lambda r: r.created)
        if not running:
            raise ValidationError("action", "cancel", "found no running job to cancel")
        self.service.cancel(running[-1].job_id)

    def _retry(self, pad: Pad) -> JobRecord:
        return self.service.retry(self._last_job("retry").job_id)  # the service refuses what must not run again

    def _rerun_request(self) -> dict:
        record = self._last_job("rerun_other_backend")
        spec = record.spec
        others = [b for b in self.service.backend_names if b != spec.backend]
        other = _OTHER_BACKEND.get(spec.backend) if _OTHER_BACKEND.get(spec.backend) in others else None
        other = other or (others[0] if others else None)
        if other is None:
            raise ValidationError("action", "rerun_other_backend", f"needs a second backend (only {spec.backend} "
                                                                   f"is configured)")
        return request_from_spec(spec, self.drop_folder, backend=other, request_id=self._request_id())

    def _last_job(self, action: str) -> JobRecord:
        record = self.service.get(self.last_job_id) if self.last_job_id else None
        if record is None:
            raise ValidationError("action", action, "found no job yet")
        return record

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        if event == "accepted":
            self.last_job_id = record.job_id
            if record.origin.get("kind") != "midi":  # a pad's job used the context; it does not change it
                self.context.follow_job(record.spec, self.drop_folder)
        elif event in ("done", "failed"):
            self.leds.job_finished(record.job_id, record.state)
        if event == "done" and self.decisions is not None:  # a new job delivered last: nothing chosen of it yet
            # (a job is decided on once delivered, after its "done": nothing to read in its drop folder, which may
            # be on a share that does not answer)
            self._show_chosen(record, None)


def request_from_spec(spec: JobSpec, default_drop_folder: Path | None, **changes) -> dict:
    """The request that would run a journaled job again (with ``changes``, e.g. another backend)."""
    request = {"command": spec.operation, "source": str(spec.source), "prompt": spec.prompt, "lyrics": spec.lyrics,
               "num_outputs": spec.num_outputs, "delivery": spec.delivery, "position": spec.position,
               "backend": spec.backend}
    if spec.gender:
        request["gender"] = spec.gender
    if spec.operation == "inpaint":
        request.update(start=spec.start, end=spec.end, lyrics_section_to_replace=spec.lyrics_section)
    else:
        request.update(extend_after=spec.extend_after, duration=spec.duration,
                       lyrics_section_to_extend=spec.lyrics_section)
    if spec.drop_folder and spec.drop_folder != default_drop_folder:  # only a folder the command itself named
        request["drop_folder"] = str(spec.drop_folder)
    request.update({f"{kind}_id": value for kind, value in spec.ids.items()})
    request.update(changes)
    return request
