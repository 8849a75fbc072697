"""Ableton Live through AbletonOSC: act on the arrangement loop of the song in the selected Session clip.

AbletonOSC (a remote script inside Live) takes queries on UDP port 11000 and answers on port 11001 of the asking host,
repeating a query's ids before the value (``/live/clip/get/file_path 0 1`` → ``0, 1, "/…/song.wav"``). When a query
fails inside Live it says so on ``/live/error``. For one ``/bridge/ableton`` command the daemon asks for:

- the loop brace: ``/live/song/get/loop_start`` and ``loop_length``, in beats, and the tempo, ``/live/song/get/tempo``.
  Beats become seconds at the current tempo (tempo automation is not followed);
- the clip: the selected one (``/live/view/get/selected_clip`` → track, scene), or the first Session clip named by
  ``[ableton] clip`` (``/live/song/get/num_tracks``, ``/live/track/get/clips/name``); it must be an audio clip
  (``/live/clip/get/is_audio_clip``), and its file (``/live/clip/get/file_path``) is the source.

The arrangement and the clip's file share one time base once placed: the file's time 0 sits at ``clip_position``
seconds of the arrangement (0: the song starts at bar 1), so source time = arrangement time - clip_position.

Results go to ``<Live project>/Samples/daw-bridge``, where Live's browser shows them under the project. The Live
project is the nearest folder above the clip's file that holds a Live Set (``*.als``) or Live's ``Ableton Project
Info`` folder; failing that, the folder holding the nearest ``Samples`` folder on the file's path.

When Live allows it, a delivered job started here is also placed in the arrangement: AbletonOSC's pending
``/live/track/create_audio_clip track_id file_path position`` (PRs #168, #196, #206; Live 12.0.5's
``Track.create_audio_clip``, position in beats) puts each variant's WAV on a new audio track at its
``timeline.position``. Whether the connected AbletonOSC has it is probed once per connection (``can_place``);
without it the files stay in the drop folder, and a ``/bridge/state`` note to the sender says so.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import osc_schema
from bridge.core.service import JobService
from bridge.exceptions import BridgeError
from bridge.frontends.osc_wire import OscSocket, encode
from bridge.models import JobRecord
from bridge.settings_schema import check_table, defaults
from osc_schema import Command, ValidationError

log = logging.getLogger(__name__)

ADDRESS = "/bridge/ableton"
DROP_SUBFOLDER = ("Samples", "daw-bridge")
# Options of /bridge/ableton that only one of the two jobs takes; anything else is shared by both.
_ONLY_FOR = {"duration": "extend", "lyrics_section_to_extend": "extend", "lyrics_section_to_replace": "inpaint"}
_JOB_OPTIONS = ("prompt", "lyrics", "lyrics_section_to_replace", "lyrics_section_to_extend", "gender", "num_outputs",
                "duration", "backend", "delivery")


CREATE_AUDIO_CLIP = "/live/track/create_audio_clip"  # AbletonOSC PRs #168/#196/#206: track_id, file_path, beats
_PROBE_TRACK = 2**31 - 1  # a track index no Live Set has (OSC int32's largest)


def _track_name(manifest: dict) -> str:
    """``daw-bridge inpaint v1 10.0-16.0``: the operation, the variant and the source range in seconds."""
    source = manifest.get("source") or {}
    return (f"daw-bridge {manifest.get('operation', '')} v{manifest.get('variant', '')} "
            f"{float(source.get('start') or 0):.1f}-{float(source.get('end') or 0):.1f}")


def refusal(rule: str) -> ValidationError:
    """A problem with Live's state rather than with one argument: the reason starts with /bridge/ableton."""
    return ValidationError("", None, rule, shown="", subject=ADDRESS)


# -- settings -------------------------------------------------------------------------------------------------------

_DEFAULTS = defaults("ableton")


@dataclass(frozen=True)
class AbletonSettings:
    """The ``[ableton]`` table of the daemon's config (``bridge/settings_schema/spec.py`` declares each key)."""

    enabled: bool = _DEFAULTS["enabled"]
    host: str = _DEFAULTS["host"]  # where Live runs; loopback only
    port: int = _DEFAULTS["port"]  # AbletonOSC listens here
    reply_port: int = _DEFAULTS["reply_port"]  # ...and answers here, on the asking host
    timeout: float = _DEFAULTS["timeout"]  # seconds to wait for each answer
    clip: str = _DEFAULTS["clip"]  # the Session clip holding the song, by name; "" means the selected clip
    clip_position: float = _DEFAULTS["clip_position"]  # arrangement seconds where the clip's file starts
    delivery: str = _DEFAULTS["delivery"]  # a whole-song result lines up in Live placed where the original starts

    @classmethod
    def from_table(cls, table: object, source_file: Path | None = None) -> "AbletonSettings":
        """From the table, checked by the settings schema (ConfigError names the key, the value and the rule)."""
        return cls(**check_table("ableton", table, source_file))


# -- where results go -----------------------------------------------------------------------------------------------

def live_project(file: Path) -> Path | None:
    """The Live project folder a clip's file belongs to (see the module's docstring), or None."""
    folders = list(Path(file).parents)
    for folder in folders:
        if (folder / "Ableton Project Info").is_dir() or any(folder.glob("*.als")):
            return folder
    return next((folder.parent for folder in folders if folder.name == "Samples"), None)


# -- what Live says -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveSelection:
    """Live's loop brace over the song in one audio clip, in seconds of the clip's file."""

    file: Path
    track: int  # 0-based, as AbletonOSC counts
    scene: int
    tempo: float  # beats per minute
    loop_start: float  # beats
    loop_length: float  # beats
    position: float  # arrangement seconds where the file starts
    drop_folder: Path

    @property
    def start(self) -> float:
        return round(self.loop_start * 60.0 / self.tempo - self.position, 6)

    @property
    def end(self) -> float:
        return round((self.loop_start + self.loop_length) * 60.0 / self.tempo - self.position, 6)

    @property
    def ids(self) -> dict:
        return {"item_id": f"track {self.track + 1} scene {self.scene + 1}", "track_id": f"track {self.track + 1}"}

    def context(self) -> dict:
        """The session context for pads and ``/bridge/context`` listeners: this clip's file over the loop."""
        return {"source": str(self.file), "start": self.start, "end": self.end, "position": self.position,
                "drop_folder": str(self.drop_folder), **self.ids}

    def request(self, operation: str) -> dict:
        """The inpaint/extend request this selection stands for (a request file's keys), before the options."""
        values = {"command": operation, "source": str(self.file), "position": self.position,
                  "drop_folder": str(self.drop_folder), **self.ids}
        if operation == "inpaint":
            values.update(start=self.start, end=self.end)
        else:
            values.update(extend_after=self.end)
        return values


class AbletonClient(OscSocket):
    """Asks AbletonOSC one thing at a time and waits for the answer on the reply port it owns.

    Messages that answer nothing we asked (listener updates, ``/live/startup``) go to the subscribers, so another
    part of the daemon can follow Live on the same port.

    ``capabilities`` caches what this AbletonOSC can do for as long as the connection lasts: it is forgotten when
    AbletonOSC (re)starts (``/live/startup``: Live opened, the script reloaded) and when Live stops answering.
    """

    def __init__(self, settings: AbletonSettings):
        self.settings = settings
        self.subscribers: list[Callable[[str, list], None]] = []
        self.capabilities: dict[str, tuple[bool, str]] = {}
        self._lock = asyncio.Lock()
        self._waiting: tuple[str, tuple, asyncio.Future, list | None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # IPv4, as AbletonOSC listens: "localhost" may name ::1 first (macOS), where Live never answers.
            await loop.create_datagram_endpoint(lambda: self, local_addr=(self.settings.host, self.settings.reply_port),
                                                family=socket.AF_INET)
        except OSError as exc:
            raise BridgeError(f"[ableton] cannot listen for AbletonOSC's answers on {self.settings.host}:"
                              f"{self.settings.reply_port}: {exc.strerror or exc} (is another program, or [midi.daw] "
                              "ableton, using that port?)", code="ableton_port") from None

    label = "AbletonOSC"  # an ICMP "port unreachable" while Live is closed is logged at debug level

    def received(self, address: str, params: list, sender: tuple | None = None) -> None:
        if address == "/live/startup":  # a new AbletonOSC (or a new Live) may not be the one probed
            self.capabilities.clear()
        waiting = self._waiting
        if waiting is not None and not waiting[2].done():
            asked, ids, future, errors = waiting
            if address == asked and tuple(params[:len(ids)]) == ids:
                future.set_result(params[len(ids):])
                return
            if address == "/live/error":
                text = " ".join(map(str, params))
                if errors is not None:  # a method's failure, reported before the answer that follows it
                    errors.append(text)
                else:
                    if text.startswith("Unknown OSC address"):  # an AbletonOSC from before the address was added
                        text += ": this AbletonOSC is older than the address, install the current one"
                    future.set_exception(refusal(f"Live could not answer {asked}: {text}"))
                return
        for subscriber in self.subscribers:
            subscriber(address, params)

    async def query(self, address: str, *ids) -> list:
        """The values AbletonOSC answers to ``address ids…`` (without the ids it repeats)."""
        return await self._ask((), address, ids, None)

    async def call(self, method: str, *params, then: tuple) -> tuple[list[str], list]:
        """Call an AbletonOSC method (which answers nothing), then ask ``then`` (address, ids…).

        AbletonOSC handles messages in the order they come, so a failure of the method reaches ``/live/error``
        before the answer to ``then``: returns the errors reported meanwhile and that answer. Waiting for the answer
        also means no stale answer is left to be taken for a later query's.
        """
        errors: list[str] = []
        answer = await self._ask(((method, list(params)),), then[0], tuple(then[1:]), errors)
        return errors, answer

    async def _ask(self, before: tuple, address: str, ids: tuple, errors: list | None) -> list:
        async with self._lock:
            future = asyncio.get_running_loop().create_future()
            self._waiting = (address, ids, future, errors)
            target = (self.settings.host, self.settings.port)
            try:
                for method, params in before:
                    self.transport.sendto(encode(method, params), target)
                self.transport.sendto(encode(address, list(ids)), target)
                return await asyncio.wait_for(future, self.settings.timeout)
            except asyncio.TimeoutError:
                self.capabilities.clear()  # Live went away: whatever answers next is probed again
                raise refusal(f"Live did not answer {address} within {self.settings.timeout:g} s: is Live running, "
                              "with AbletonOSC chosen as a Control Surface (Preferences > Link, Tempo & MIDI), "
                              f"listening on port {self.settings.port}?") from None
            finally:
                self._waiting = None


# -- the command ----------------------------------------------------------------------------------------------------

class AbletonFrontend:
    """``/bridge/ableton``: read Live's loop and clip, then run inpaint/extend on them or make them the context."""

    def __init__(self, service: JobService, settings: AbletonSettings):
        self.service = service
        self.settings = settings
        self.client = AbletonClient(settings)
        self._tasks: set[asyncio.Task] = set()
        self._counter = itertools.count(1)
        self._closed = False
        # One placement at a time: each adds a track at the end and then works on it by its index, so two jobs
        # delivered together would take the same index (a track left empty, the other job not placed).
        self._placing = asyncio.Lock()
        service.subscribe(self._on_job_event)

    async def start(self) -> None:
        await self.client.start()
        log.info("asking Live through AbletonOSC at %s:%d (answers on port %d)", self.settings.host,
                 self.settings.port, self.settings.reply_port)

    def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        self.client.close()

    async def drain(self) -> None:
        """Wait until no command or placement of this frontend is running (for one-shot use and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def selection(self) -> LiveSelection:
        """Ask Live for its loop brace, tempo and clip; ValidationError says what is wrong with them."""
        loop_start = await self._number("/live/song/get/loop_start", "loop start")
        loop_length = await self._number("/live/song/get/loop_length", "loop length")
        tempo = await self._number("/live/song/get/tempo", "tempo")
        if not tempo > 0 or not loop_length > 0 or loop_start < 0:
            raise refusal(f"Live's loop brace ({loop_start:g} + {loop_length:g} beats at {tempo:g} BPM) is not a "
                          "range: set the loop brace over the part to work on")
        track, scene = await self._clip_slot()
        where = f"the clip at track {track + 1}, scene {scene + 1}"
        names = await self.client.query("/live/track/get/clips/name", track)
        if scene >= len(names) or names[scene] is None:
            raise refusal(f"the clip slot at track {track + 1}, scene {scene + 1} is empty: select the Session clip "
                          "that holds the song")
        [is_audio] = (await self.client.query("/live/clip/get/is_audio_clip", track, scene))[-1:] or [None]
        if is_audio is not True:
            raise refusal(f"{where} is a MIDI clip: select the Session clip that holds the song's audio")
        [path] = (await self.client.query("/live/clip/get/file_path", track, scene))[-1:] or [None]
        if not isinstance(path, str) or not path:
            raise refusal(f"{where} has no audio file Live can name: save the Live Set, then try again")
        file = Path(path)
        project = live_project(file)
        if project is None:
            raise refusal(f"{file} is not inside a saved Live project: use File > Collect All and Save, so the song "
                          "lies in <project>/Samples/")
        chosen = LiveSelection(file=file, track=track, scene=scene, tempo=tempo, loop_start=loop_start,
                               loop_length=loop_length, position=self.settings.clip_position,
                               drop_folder=project.joinpath(*DROP_SUBFOLDER))
        if chosen.start < 0:
            raise refusal(f"Live's loop brace starts at {chosen.start + chosen.position:.3f} s, before the song's "
                          f"file starts ([ableton] clip_position = {chosen.position:g} s)")
        return chosen

    async def run(self, command: Command, origin: dict) -> JobRecord | dict:
        """Act on a validated ``/bridge/ableton``: the job's record, or the session context it set (``context``)."""
        args, operation = command.args, command.args["operation"]
        given = {k: args[k] for k in _JOB_OPTIONS if args.get(k) is not None}
        for name, value in given.items():
            if operation == "context" or _ONLY_FOR.get(name, operation) != operation:
                takes = _ONLY_FOR.get(name, "inpaint and extend")
                raise ValidationError(name, value, f"applies to operation {takes}, not {operation}")
        selection = await self.selection()
        if operation == "context":
            context = selection.context()
            self.service.set_context(context)
            return context
        request = {**selection.request(operation), "delivery": self.settings.delivery, **given,
                   "request_id": args.get("request_id") or f"ableton-{int(time.time())}-{next(self._counter)}"}
        # Marked as Live's, with the tempo its range was read at, so the delivery can be placed in Live (the
        # origin is journaled: a job resumed after a restart is placed too).
        return await self.service.take(osc_schema.parse_request(request),
                                       {**origin, "ableton": {"tempo": selection.tempo}})

    # -- placing results in Live's arrangement ------------------------------------------------------------------

    async def can_place(self) -> tuple[bool, str]:
        """Whether this Live and this AbletonOSC can put an audio file in the arrangement, and if not why not.

        Asked once per connection (``AbletonClient.capabilities``). AbletonOSC has no list of its addresses, so
        the address is probed: ``/live/track/create_audio_clip`` for a track index no Set has. AbletonOSC looks the
        track up before it calls anything in Live, so the probe changes nothing; it answers on ``/live/error``
        either way, "Unknown OSC address: ..." when it lacks the address and "Error handling OSC message: ..." (the
        failed track lookup) when it has it.
        """
        known = self.client.capabilities.get(CREATE_AUDIO_CLIP)
        if known is not None:
            return known
        version = await self.client.query("/live/application/get/version")
        major, minor = (list(version) + [None, None])[:2]
        if isinstance(major, int) and major < 12:
            answer = (False, f"Live {major}.{minor} has no Track.create_audio_clip: Live 12.0.5 or later")
        else:
            errors, _ = await self.client.call(CREATE_AUDIO_CLIP, _PROBE_TRACK, "", 0.0,
                                               then=("/live/song/get/num_tracks",))
            if any(error.startswith("Unknown OSC address") for error in errors):
                answer = (False, f"AbletonOSC without {CREATE_AUDIO_CLIP}")
            elif errors:
                answer = (True, "")
            else:  # an AbletonOSC too old to report errors on /live/error: nothing could be checked
                answer = (False, f"AbletonOSC did not report on /live/error whether it has {CREATE_AUDIO_CLIP}")
        self.client.capabilities[CREATE_AUDIO_CLIP] = answer
        return answer

    async def place(self, record: JobRecord) -> str:
        """Put each variant of a delivered job on a new audio track of Live's arrangement, at its position.

        Returns the note for the producer: what was placed where, or why nothing was (the files stay in the drop
        folder in every case). One track per variant: variants overlap in time (a full delivery is the whole song),
        and clips on one track would cut each other.
        """
        manifests = [(Path(path), json.loads(Path(path).read_text(encoding="utf-8"))) for path in record.manifests]
        if not manifests:
            return ""
        folder = manifests[0][0].parent
        shown = "/".join(DROP_SUBFOLDER) if folder.parts[-2:] == DROP_SUBFOLDER else str(folder)
        files_are = f"the files are in {shown}"
        async with self._placing:
            able, why = await self.can_place()
            if not able:
                return f"Live cannot place clips ({why}): {files_are}"
            tempo = await self._number("/live/song/get/tempo", "tempo")
            started = float((record.origin.get("ableton") or {}).get("tempo") or tempo)
            if abs(tempo - started) > 1e-6:
                return (f"not placed in Live: the tempo changed from {started:g} to {tempo:g} BPM since the job "
                        f"started (its range was read at {started:g} BPM): {files_are}")
            placed: list[str] = []
            for manifest_path, manifest in manifests:
                name = _track_name(manifest)
                beats = round(float(manifest["timeline"]["position"]) * tempo / 60.0, 6)
                wav = manifest_path.parent / manifest["audio"]
                try:
                    failure = await self._place_one(name, wav, beats)
                except ValidationError as exc:  # Live stopped answering half-way: say what is placed already
                    failure = exc.rule
                if failure:
                    done = f"placed {len(placed)} of {len(manifests)} in Live; " if placed else \
                        "not placed in Live: "
                    return f"{done}{name}: {failure}: {files_are}"
                placed.append(f"{name!r} at beat {beats:g}")
            return f"placed in Live's arrangement on new tracks: {', '.join(placed)} (also in {shown})"

    async def _place_one(self, name: str, wav: Path, beats: float) -> str:
        """Create a track named ``name`` at the end and ``wav`` on it at ``beats``; "" or what went wrong."""
        count = int(await self._number("/live/song/get/num_tracks", "track count"))
        # Tracks are known by index only: one the producer adds or deletes meanwhile moves ours, and the index then
        # names another track, which got our clip, or was deleted when the clip could not be made.
        moved = ("the track list changed while the track was being added (a track added or deleted in Live "
                 "meanwhile); nothing more is done to it")
        errors, answer = await self.client.call("/live/song/create_audio_track", count,
                                                then=("/live/song/get/num_tracks",))
        if errors:
            return f"Live could not add an audio track ({'; '.join(errors)})"
        if answer[-1:] != [count + 1]:  # added, but not alone: it was said Live could not add it
            return moved
        await self.client.call("/live/track/set/name", count, name, then=("/live/track/get/name", count))
        if not await self._still_ours(count, name):
            return moved
        errors_clip, starts = await self.client.call(CREATE_AUDIO_CLIP, count, str(wav), beats,
                                                     then=("/live/track/get/arrangement_clips/start_time", count))
        # Positions travel as OSC float32 (about 7 digits): a clip within 1/1000 beat plus that rounding is there.
        if any(isinstance(t, (int, float)) and abs(t - beats) <= 1e-3 + 1e-6 * beats for t in starts) \
                and not errors_clip:
            return ""
        if not await self._still_ours(count, name):
            return moved
        await self.client.call("/live/song/delete_track", count, then=("/live/song/get/num_tracks",))
        reason = "; ".join(errors_clip) or f"no clip at beat {beats:g} on the new track afterwards"
        if "attribute" in reason and "create_audio_clip" in reason:  # the PR's AbletonOSC on Live before 12.0.5
            self.client.capabilities[CREATE_AUDIO_CLIP] = (
                False, "this Live has no Track.create_audio_clip: Live 12.0.5 or later")
        return f"Live could not create the clip ({reason})"

    async def _still_ours(self, index: int, name: str) -> bool:
        """Whether the track at ``index`` is still the one placement added last: the Set has no other track since
        (it was added at the end) and it bears the name placement gave it."""
        total = int(await self._number("/live/song/get/num_tracks", "track count"))
        return total == index + 1 and (await self.client.query("/live/track/get/name", index))[-1:] == [name]

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        if self._closed or event != "done" or not isinstance((record.origin or {}).get("ableton"), dict):
            return
        task = asyncio.get_running_loop().create_task(self._deliver_to_live(record), name="ableton placement")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_to_live(self, record: JobRecord) -> None:
        try:
            note = await self.place(record)
        except ValidationError as exc:  # Live stopped answering, or answered nonsense
            note = f"not placed in Live: {exc.rule}: the files are in {'/'.join(DROP_SUBFOLDER)}"
        except Exception:  # a bug costs the placement, never the delivered files
            log.exception("placing job %s in Live failed unexpectedly", record.job_id)
            note = ("not placed in Live (internal error; see the daemon's log): the files are in "
                    f"{'/'.join(DROP_SUBFOLDER)}")
        if not note:
            return
        log.info("job %s: %s", record.job_id, note)
        self.service.journal.update(record, message=note)  # `daw-bridge jobs` shows it
        origin = record.origin
        if origin.get("kind") == "osc" and self.client.transport is not None:
            address, args = osc_schema.reply("state", job_id=record.job_id, state=record.state.value,
                                             progress=float(record.progress), message=note)
            try:
                self.client.transport.sendto(encode(address, args), (origin["host"], origin["port"]))
            except OSError as exc:
                log.debug("could not tell %s:%s about job %s: %s", origin["host"], origin["port"], record.job_id, exc)

    def dispatch(self, command: Command, origin: dict, refuse: Callable[[ValidationError], None],
                 answer: Callable[[tuple[str, list]], None] | None = None) -> asyncio.Task:
        """Run ``command`` in the background; a refusal reaches ``refuse`` ready for ``osc_schema.error_reply``.

        Replies about the job itself (accepted, state, done, failed) go wherever ``origin`` sends them, as for any
        inpaint/extend; ``context`` has no job, so ``answer`` gets its ``/bridge/context_set`` reply (address, args).
        """
        async def act() -> None:
            try:
                outcome = await self.run(command, origin)
                if isinstance(outcome, dict) and answer is not None:
                    answer(osc_schema.reply("context_set", keys=",".join(outcome)))
            except ValidationError as exc:
                refuse(self._located(exc, command))
            except BridgeError as exc:  # the clip's file cannot be read: the producer's to fix
                refuse(self._located(ValidationError("source", None, str(exc), shown=""), command))
            except Exception as exc:  # a bug costs this one command, and the sender still hears of it
                log.exception("Ableton command %s failed unexpectedly", command.name)
                refuse(self._located(ValidationError("", None, f"internal error ({type(exc).__name__}); the "
                                                           "daemon's log has the details", shown=""), command))

        task = asyncio.get_running_loop().create_task(act(), name="ableton command")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _located(error: ValidationError, command: Command) -> ValidationError:
        error.address, error.request_id = ADDRESS, command.args.get("request_id") or ""
        return error

    async def _number(self, address: str, what: str) -> float:
        values = await self.client.query(address)
        value = values[-1] if values else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise refusal(f"Live answered {address} with {values!r}, not a {what}")
        return float(value)

    async def _clip_slot(self) -> tuple[int, int]:
        if not self.settings.clip:
            try:
                answer = await self.client.query("/live/view/get/selected_clip")
            except ValidationError as exc:  # AbletonOSC looks for the selected track among the song's own tracks
                if "is not in list" not in exc.rule:
                    raise
                raise refusal("the selected track is a return track or the main track, which hold no Session clip: "
                              "select the Session clip that holds the song") from None
            if len(answer) < 2 or not all(isinstance(v, int) and v >= 0 for v in answer[:2]):
                raise refusal("no clip is selected in Live: select the Session clip that holds the song")
            return answer[0], answer[1]
        tracks = int(await self._number("/live/song/get/num_tracks", "track count"))
        for track in range(tracks):
            names = await self.client.query("/live/track/get/clips/name", track)
            if self.settings.clip in names:
                return track, names.index(self.settings.clip)
        raise refusal(f"no Session clip is named {self.settings.clip!r} ([ableton] clip) in any of Live's "
                      f"{tracks} tracks")
