"""The audio plugin's captures as sources: find one, check what it has played, export a range of it.

A capture (format ``daw-bridge.capture/1``, written by ``daw_scripts/plugin/``) is one folder per plugin instance
under ``captures_dir``: float WAV spans, each at a known timeline frame, and ``index.json`` listing them in the
order they were played; where spans overlap, the later one is the newer take. A job never reads the capture after
admission: the range it needs (plus context) is planned there and exported into the job's work folder, newest take
first, at the job's export step (off the event loop); that file is the job's source, with ``position`` its timeline
start, and it goes with the work folder when the job is done. Nothing in the capture folder is ever written.

Confinement: the captures folder must resolve inside the project roots, a capture's folder inside the captures
folder, and each span file inside its capture's folder (symlinks resolved), like any source.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.config import Config
from bridge.exceptions import SourceError
from bridge.files import NotRegularFile, open_regular
from bridge.models import JobSpec, SourceInfo
from osc_schema import ValidationError

log = logging.getLogger(__name__)

FORMAT = "daw-bridge.capture/1"
INDEX = "index.json"
# What a capture's index may claim (the plugin writes 2 channels at the host's rate): beyond these it is malformed,
# refused before anything is sized from it. Timeline frames stay exact as floats (2**53 frames: centuries).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 768000
MAX_CHANNELS = 32
MAX_FRAME = 2 ** 53
MAX_PID = 2 ** 31  # a pid is a positive 32-bit int (and /bridge/plugins carries it as one)
# How much already-played audio beyond the required context a job gets on each side (the embedded engine re-uses
# the song's own passages, MusicGPT uploads up to context_s): bounds the export's size and time.
EXTRA_CONTEXT_S = 120.0
LIVE_WITHIN_S = 600.0  # an instance whose index changed this recently is listed even when its pid is unknown


def captures_root(config: Config) -> Path:
    """The configured captures folder, else where the plugin writes by default (the same rule as the plugin's)."""
    if config.captures_dir is not None:
        return Path(config.captures_dir)
    if os.environ.get("DAW_BRIDGE_CAPTURE_DIR"):
        return Path(os.environ["DAW_BRIDGE_CAPTURE_DIR"])
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "daw-bridge" / "captures"
    return Path.home() / ".local" / "state" / "daw-bridge" / "captures"


def _resolve(path: Path, field: str, value: object) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:
        raise ValidationError(field, value, f"cannot be resolved ({exc})") from None


def confined_root(config: Config, field: str = "capture", value: object = None) -> Path:
    """The captures folder, resolved; refused (ValidationError) when it lies outside the project roots."""
    root = _resolve(captures_root(config), field, value)
    if not config.in_project(root):
        roots = ", ".join(str(r) for r in config.project_roots)
        raise ValidationError(field, value, f"cannot be read: the captures folder {root} is outside the configured "
                                            f"project roots ({roots}); set captures_dir inside them or add it there")
    return root


@dataclass(frozen=True)
class Span:
    path: Path
    sample_rate: int
    start: int  # timeline frame of its first frame
    frames: int

    @property
    def end(self) -> int:
        return self.start + self.frames


def _read_index_file(path: Path) -> tuple[dict, float]:
    """An index.json's parsed text and its mtime. Only a regular file that is no symbolic link is read (the plugin
    writes one): a pipe would hold the reader for good, a link could lead out of the captures folder. OSError
    (NotRegularFile, or ELOOP for a link) or ValueError when it cannot be used."""
    with open_regular(path, "utf-8", follow_links=False) as file:
        mtime = os.fstat(file.fileno()).st_mtime
        return json.loads(file.read()), mtime


def _index(folder: Path, name: str) -> dict:
    try:
        data, _ = _read_index_file(folder / INDEX)
    except FileNotFoundError:
        raise ValidationError("capture", name, "has captured nothing yet (no index.json): play the range once "
                                               "with the plugin on the track") from None
    except (IsADirectoryError, NotRegularFile):
        raise ValidationError("capture", name, "has an index.json that is not a regular file (a pipe, a device "
                                               "or a folder): refused") from None
    except OSError as exc:
        if (folder / INDEX).is_symlink():
            raise ValidationError("capture", name, "has an index.json that is a symbolic link (the plugin writes "
                                                   "a file): refused, not followed") from None
        raise ValidationError("capture", name, f"has an unreadable index.json ({exc})") from None
    except ValueError as exc:
        raise ValidationError("capture", name, f"has an unreadable index.json ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError("capture", name, f"is not a {FORMAT} capture")
    return data


def _spans(data: dict, folder: Path, name: str) -> list[Span]:
    spans = []
    given = data.get("spans") or []
    if not isinstance(given, list):
        raise ValidationError("capture", name, f"has a malformed span list in its index: {given!r:.80}")
    for entry in given:
        try:
            file, rate = str(entry["file"]), int(entry["sample_rate"])
            start, frames = int(entry["timeline_start_frame"]), int(entry["frames"])
        except (KeyError, TypeError, ValueError, OverflowError):  # OverflowError: int(inf), 1e400 reads as inf
            raise ValidationError("capture", name, f"has a malformed span in its index: {entry!r:.80}") from None
        if ("/" in file or "\\" in file or file.startswith(".") or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE
                or not 0 <= frames < MAX_FRAME or not -MAX_FRAME < start < MAX_FRAME):
            raise ValidationError("capture", name, f"has a malformed span in its index: {entry!r:.80}")
        path = _resolve(folder / file, "capture", name)
        if not path.is_relative_to(folder):
            raise ValidationError("capture", name, f"span {file} resolves outside its capture folder")
        if frames:
            spans.append(Span(path, rate, start, frames))
    return spans


@dataclass(frozen=True)
class HostTransport:
    """The plugin host's transport as an instance last saw it (its index's ``transport``)."""

    playing: bool
    position: float  # timeline seconds at ``observed``
    observed: float  # wall-clock seconds (``time.time()``) when the instance's audio thread saw it
    tempo: float  # BPM; 0: the host gives no bar/beat position
    beats_per_bar: float
    heard: tuple[tuple[float, float, float, float], ...]  # (start, end, tempo, beats_per_bar): each stretch played

    def cursor(self, now: float) -> float:
        """Where the play cursor is at ``now``: moved on by the time since it was seen while the host plays."""
        return self.position + (max(now - self.observed, 0.0) if self.playing else 0.0)


def host_transport(data: dict, name: str) -> HostTransport | None:
    """The ``transport`` a capture index reports (None when it has none: an older plugin, or run() never ran);
    ValidationError when it is malformed."""
    given = data.get("transport")
    if given is None:
        return None
    try:
        heard = tuple(tuple(float(v) for v in stretch) for stretch in given["heard"])
        if any(len(stretch) != 4 for stretch in heard) or not isinstance(given["playing"], bool):
            raise ValueError
        numbers = [float(given[key]) for key in ("position", "observed", "tempo", "beats_per_bar")]
        if not all(math.isfinite(v) and v >= 0 for v in [*numbers, *(v for stretch in heard for v in stretch)]):
            raise ValueError
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ValidationError("capture", name, f"has a malformed transport in its index: {given!r:.80}") from None
    return HostTransport(given["playing"], *numbers, heard)


def merged(spans: list[Span]) -> list[tuple[int, int]]:
    """The timeline frames the spans cover, as sorted, disjoint [start, end) stretches (touching ones joined)."""
    out: list[list[int]] = []
    for lo, hi in sorted((s.start, s.end) for s in spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def describe(stretches: list[tuple[int, int]], rate: int, digits: int = 1) -> str:
    """"14.2–19.8 s, 30.0–41.5 s": starts rounded up and ends down, so it never claims more than was played."""
    scale = 10 ** digits
    return ", ".join(f"{math.ceil(lo / rate * scale) / scale:.{digits}f}–{math.floor(hi / rate * scale) / scale:.{digits}f}"
                     for lo, hi in stretches) + " s" if stretches else "nothing"


@dataclass(frozen=True)
class Plan:
    """What to export: timeline frames [first, stop) at ``sample_rate``, painted from ``spans`` in order."""

    name: str
    spans: tuple[Span, ...]
    sample_rate: int
    channels: int
    first: int
    stop: int

    @property
    def position(self) -> float:
        """Timeline seconds where the export's time 0 sits."""
        return self.first / self.sample_rate

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(sample_rate=self.sample_rate, channels=self.channels, frames=self.stop - self.first,
                          format="WAV/FLOAT")

    def export(self, dest: Path) -> Path:
        """Write the range into ``dest`` (a float WAV) atomically; the newest take wins where spans overlap."""
        used = [(span, max(span.start, self.first), min(span.end, self.stop)) for span in self.spans]
        used = [(span, lo, hi) for span, lo, hi in used if hi > lo]
        for span, _, hi in used:  # every span file checked against the index before the range is allocated
            self._read(span, hi, None)
        out = np.zeros((self.stop - self.first, self.channels), dtype=np.float32)
        for span, lo, hi in used:
            out[lo - self.first:hi - self.first] = self._read(span, hi, lo)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name("." + dest.name + ".partial")
        sf.write(str(partial), out, self.sample_rate, format="WAV", subtype="FLOAT")
        os.replace(partial, dest)
        return dest

    def _read(self, span: Span, hi: int, lo: int | None) -> np.ndarray | None:
        """Timeline frames [lo, hi) of ``span``'s file; with ``lo`` None only check that it holds frames up to ``hi``
        in the index's channels and rate. ValidationError in one line when it does not or cannot be read."""
        try:  # a span file that is a pipe is refused, not waited on (open_regular); by its descriptor, as probe does
            with open_regular(span.path) as file, sf.SoundFile(file.fileno(), closefd=False) as f:
                if f.channels != self.channels or f.samplerate != span.sample_rate:
                    raise ValidationError("capture", self.name, f"span {span.path.name} does not match its "
                                                                "index (channels or sample rate)")
                if f.frames < hi - span.start:
                    raise ValidationError("capture", self.name, f"span {span.path.name} is shorter than its index says")
                if lo is None:
                    return None
                f.seek(lo - span.start)
                audio = f.read(hi - lo, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise ValidationError("capture", self.name, f"span {span.path.name} cannot be read ({exc})") from None
        if len(audio) != hi - lo:
            raise ValidationError("capture", self.name, f"span {span.path.name} is shorter than its index says")
        return audio


def capture_folder(config: Config, name: str) -> Path:
    """The instance's capture folder, resolved and confined; refused (ValidationError) when there is none."""
    root = confined_root(config, "capture", name)
    folder = _resolve(root / name, "capture", name)
    if not folder.is_relative_to(root) or folder == root:
        raise ValidationError("capture", name, "resolves outside the captures folder")
    if not folder.is_dir():
        raise ValidationError("capture", name, f"is not a capture in {root} (/bridge/plugins lists the live ones)")
    return folder


def read_index(config: Config, name: str) -> tuple[Path, dict]:
    """The capture's folder and its checked index.json; ValidationError says what is wrong with either."""
    folder = capture_folder(config, name)
    return folder, _index(folder, name)


def plan(config: Config, name: str, need_start: float, need_end: float,
         index: tuple[Path, dict] | None = None) -> Plan:
    """Check that the capture has played timeline seconds [need_start, need_end]; say what to export.

    The export is the played stretch around that range, up to EXTRA_CONTEXT_S more on each side. Raises
    ValidationError naming the span of the timeline to play when part of the range has not been played.
    ``index`` is what :func:`read_index` returned, when the caller has read it already.
    """
    folder, data = index or read_index(config, name)
    spans = _spans(data, folder, name)
    need_start = max(need_start, 0.0)
    if not spans:
        raise ValidationError("capture", name, f"has captured nothing yet: play {need_start:.1f}–{need_end:.1f} s "
                                               "once with the plugin on the track")
    # the newest take touching the range decides the sample rate; spans at another rate are older sessions
    touching = [s for s in spans if s.start / s.sample_rate < need_end and s.end / s.sample_rate > need_start]
    rate = (touching or spans)[-1].sample_rate
    spans = [s for s in spans if s.sample_rate == rate]
    lo, hi = math.floor(need_start * rate), math.ceil(need_end * rate)
    stretches = merged(spans)
    around = next(((a, b) for a, b in stretches if a <= lo and hi <= b), None)
    if around is None:
        gaps, cursor = [], lo
        for a, b in stretches:
            if b <= cursor or a >= hi:
                continue
            if a > cursor:
                gaps.append((cursor, a))
            cursor = max(cursor, b)
        if cursor < hi:
            gaps.append((cursor, hi))
        play_from = math.floor(gaps[0][0] / rate * 10) / 10
        play_to = math.ceil(gaps[-1][1] / rate * 10) / 10
        has = [(max(a, lo), min(b, hi)) for a, b in stretches if a < hi and b > lo]
        have = (f"the capture has {describe(has, rate)} of it" if has
                else f"the capture has none of it ({describe(stretches[:4], rate)})")
        raise ValidationError("capture", name, f"has not played all of {need_start:.1f}–{need_end:.1f} s (the range "
                                               f"and its context) yet: play {play_from:.1f}–{play_to:.1f} s once "
                                               f"more; {have}")
    extra = int(EXTRA_CONTEXT_S * rate)
    first, stop = max(around[0], lo - extra), min(around[1], hi + extra)
    channels = data.get("channels")
    channels = 2 if channels is None else channels
    if not isinstance(channels, int) or isinstance(channels, bool) or not 1 <= channels <= MAX_CHANNELS:
        raise ValidationError("capture", name, f"has a malformed channel count in its index ({channels!r:.40}): "
                                               f"1 to {MAX_CHANNELS} expected")
    used = tuple(s for s in spans if s.start < stop and s.end > first)
    return Plan(name, used, rate, channels, first, stop)


def export_job_source(config: Config, spec: JobSpec) -> Path:
    """Write a capture job's source (``spec.source``, in its work folder) when it is not there: the timeline stretch
    admission planned, from the capture as it is now (newest take first). Runs at the job's export step, off the
    daemon's event loop, and again after a restart or a retry found the work folder gone.

    Raises SourceError when the capture no longer holds that stretch (deleted, or played at another rate).
    """
    if spec.source.exists():
        return spec.source
    name, rate = spec.ids["capture"], spec.source_info.sample_rate
    first = round(spec.position * rate)
    stop = first + spec.source_info.frames
    try:
        folder = capture_folder(config, name)
        data = _index(folder, name)
        spans = [s for s in _spans(data, folder, name) if s.sample_rate == rate and s.start < stop and s.end > first]
        if not any(a <= first and stop <= b for a, b in merged(spans)):
            raise ValidationError("capture", name, f"no longer holds {describe([(first, stop)], rate)} at {rate} Hz, "
                                                   "which this job exports: play that stretch again and retry")
        return Plan(name, tuple(spans), rate, spec.source_info.channels, first, stop).export(spec.source)
    except ValidationError as exc:
        raise SourceError(str(exc)) from None


def results_folder(config: Config, name: str) -> Path:
    """Where a capture's results go unless the command or the config names a drop folder: beside the captures
    (never inside a capture), one folder per instance."""
    return captures_root(config).parent / "results" / name


# -- live instances --------------------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    if not 0 < pid < MAX_PID:  # no process has it (os.kill could not even be asked)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _live(config: Config, now: float | None) -> list[tuple[os.DirEntry, dict, float, int]]:
    """(folder, index, age in seconds, pid) of each instance whose index changed within LIVE_WITHIN_S or whose
    process runs."""
    root = confined_root(config, "captures_dir", str(captures_root(config)))
    now = time.time() if now is None else now
    found = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        index = Path(entry.path) / INDEX
        try:
            data, mtime = _read_index_file(index)  # a pipe or a link is passed over, as an unreadable index is
        except (OSError, ValueError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("capture %s: its index.json is passed over (%s)", entry.name, exc)
            continue
        age = max(now - mtime, 0.0)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            continue
        pid = data.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            head = str(data.get("instance") or entry.name).split("-", 1)[0]
            # too many digits to be a pid is no live process's (and int() refuses thousands of digits)
            pid = (int(head) if len(head) <= 12 else MAX_PID) if head.isdecimal() else 0
        if age > LIVE_WITHIN_S and not _pid_alive(pid):
            continue
        found.append((entry, data, age, pid))
    return found


def live_plugins(config: Config, now: float | None = None) -> list[dict]:
    """The plugin instances whose index changed within LIVE_WITHIN_S or whose process runs, most recent first."""
    found = []
    for entry, data, age, pid in _live(config, now):
        try:
            spans = _spans(data, Path(entry.path).resolve(), entry.name)
        except ValidationError as exc:  # listed, with nothing played: the others are listed all the same
            log.warning("%s", exc)
            spans = []
        played = "; ".join(describe(merged([s for s in spans if s.sample_rate == rate]), rate, 3)
                           for rate in sorted({s.sample_rate for s in spans}))
        found.append({"capture": entry.name, "label": str(data.get("name") or ""),
                      "pid": pid if 0 < pid < MAX_PID else 0,  # 0: unknown (none is a process's)
                      "plugin_format": str(data.get("plugin_format") or ""), "age": float(age),
                      "played": "" if not spans else played})
    return sorted(found, key=lambda item: item["age"])


def reply_ports_following(config: Config, job_id: str, now: float | None = None) -> list[int]:
    """The reply ports of the live instances whose index says they follow job ``job_id``: besides the one that sent
    it, an instance the job was restored into when its project was reopened (its port is another)."""
    ports = []
    for _, data, _, pid in _live(config, now):
        job, port = data.get("job"), data.get("reply_port")
        if (pid and not _pid_alive(pid)) or not isinstance(job, dict) or job.get("job_id") != job_id:
            continue
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            ports.append(port)
    return ports


def live_transports(config: Config, now: float | None = None) -> dict[str, HostTransport]:
    """The host transport of each live instance that reports one (by capture name); an instance whose process is
    known to have ended reports none."""
    found = {}
    for entry, data, _, pid in _live(config, now):
        if pid and not _pid_alive(pid):
            continue
        try:
            transport = host_transport(data, entry.name)
        except ValidationError:
            continue
        if transport is not None:
            found[entry.name] = transport
    return found
