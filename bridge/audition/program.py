"""What an audition plays, as plain arrays: the source's pre-roll, the variant (or the original) over the edited
range, then a post-roll; every variant loudness-matched to the original so the louder one does not win.

All of a job's programs cover the same stretch of source time and have the same length, so switching between them
at a frame keeps the producer's place in the song.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bridge import captures
from bridge.audio.fades import rms
from bridge.audio.region import check_unchanged, padded_slice, read_frames
from bridge.audition.mixer import ramp
from bridge.config import Config
from bridge.exceptions import BridgeError
from bridge.models import JobRecord, JobSpec, State

DEFAULT_TEMPO = 120.0  # BPM when nothing says otherwise: 2 bars of 4/4 are then 4 s
BEATS_PER_BAR = 4  # 4/4 unless known
GAIN_LIMIT_DB = 12.0  # a variant far quieter than the original is not pushed up further than this
GAIN_RAMP_S = 0.25  # the matching gain fades in over untouched source before the range, and out after it
SILENT_RMS = 1e-5
LONGEST_S = 24 * 3600.0  # a manifest's span_start beyond a day either way is damaged (far below where frames overflow)


class AuditionError(BridgeError):
    code = "audition"


@dataclass(frozen=True)
class Programs:
    """A job's original and variants, ready to play: float32 arrays shaped (2 channels, frames)."""

    job_id: str
    sample_rate: int
    start: float  # source seconds at the programs' first frame
    tempo: float
    original: np.ndarray
    variants: tuple[np.ndarray, ...]
    gains_db: tuple[float, ...]  # the loudness-matching gain each variant got over the edited range
    files: tuple[Path, ...] = ()  # the source and the variants' audio, as read...
    signature: tuple = ()  # ...and their file_signature then: another now means a file changed since

    def changed(self) -> bool:
        """Whether the source or a variant's audio was replaced or deleted since these programs were read (a few
        stat calls)."""
        return file_signature(self.files) != self.signature


def file_signature(paths) -> tuple:
    """(inode, modification time, size) of each file, None for one that is gone."""
    signature = []
    for path in paths:
        try:
            found = path.stat()
            signature.append((found.st_ino, found.st_mtime_ns, found.st_size))
        except OSError:
            signature.append(None)
    return tuple(signature)


def bar_seconds(tempo: float | None) -> float:
    return BEATS_PER_BAR * 60.0 / (tempo or DEFAULT_TEMPO)


def job_tempo(record: JobRecord, manifests: list[dict]) -> float:
    """The song's tempo: the embedded engine's (in each manifest's splice), else the DAW's, else 120 BPM."""
    for manifest in manifests:
        tempo = (manifest.get("splice") or {}).get("tempo")
        if isinstance(tempo, (int, float)) and tempo > 0:
            return float(tempo)
    tempo = (record.origin.get("ableton") or {}).get("tempo")
    return float(tempo) if isinstance(tempo, (int, float)) and tempo > 0 else DEFAULT_TEMPO


@contextmanager
def readable_source(config: Config, spec: JobSpec) -> Iterator[Path]:
    """The job's source as a file: itself, or for a plugin's capture, whose export went with the job's work folder
    once it was delivered, the same stretch exported again from the capture into a temporary file."""
    if spec.source.exists() or "capture" not in spec.ids:
        yield spec.source
        return
    with tempfile.TemporaryDirectory(prefix="daw-bridge-audition-") as folder:
        yield captures.export_job_source(config, replace(spec, source=Path(folder) / "capture.wav"))


def load_programs(record: JobRecord, sample_rate: int, pre_roll_bars: float, post_roll_bars: float,
                  source: Path | None = None, config: Config | None = None) -> Programs:
    """Read a delivered job's source (or ``source``, a copy of it) and variants into programs at the output's
    ``sample_rate``.

    Raises AuditionError when the job has no delivered variants or its files are gone, or a variant's audio now leads
    elsewhere (see :func:`_check_delivered`; ``config``: out of its project roots too).
    """
    if record.state is not State.DELIVERED or not record.manifests:
        raise AuditionError(f"job {record.job_id} has no delivered variants to audition ({record.state.value})")
    spec = record.spec
    try:
        manifests = [json.loads(Path(path).read_text(encoding="utf-8")) for path in record.manifests]
    except (OSError, ValueError) as exc:
        raise AuditionError(f"job {record.job_id}: a manifest cannot be read ({exc})") from None
    if not all(isinstance(manifest, dict) for manifest in manifests):
        raise AuditionError(f"job {record.job_id}: a manifest holds no JSON object")
    tempo = job_tempo(record, manifests)
    rate = spec.source_info.sample_rate
    first = max(0, round((spec.edit_start - pre_roll_bars * bar_seconds(tempo)) * rate))
    stop = round((spec.edit_end + post_roll_bars * bar_seconds(tempo)) * rate)
    edit = (round(spec.edit_start * rate) - first, round(spec.edit_end * rate) - first)
    files, signature = [], ()
    if source is None or source == spec.source:  # not a capture's stretch exported again: the job's own source
        files, signature = [spec.source], file_signature([spec.source])  # before reading, as for the variants
        check_unchanged(spec.source, spec.source_info)  # another length, rate or channel count: not its context
    original = padded_slice(read_frames(source or spec.source, first, stop)[0], 0, stop - first)
    variants, gains = [], []
    for path, manifest in zip(record.manifests, manifests):
        try:  # the drop folder is the producer's: a manifest may have been edited by hand
            audio = Path(path).parent / Path(manifest["audio"]).name
            span_start = float(manifest["source"]["span_start"])
            if not math.isfinite(span_start):
                raise ValueError("span_start is not a number")
            if abs(span_start) > LONGEST_S:  # its frame would overflow, or lie nowhere in a song anyway
                raise ValueError(f"span_start {span_start:g} s lies nowhere in a song")
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditionError(f"job {record.job_id}: the manifest {Path(path).name} is damaged "
                                f"({type(exc).__name__}: {exc})") from None
        _check_delivered(audio, config)
        files.append(audio)
        signature += file_signature([audio])  # before reading: a file replaced while it is read counts as changed
        variant = _variant_program(audio, manifest, original, first, rate, spec.operation, edit)
        gain = matching_gain(original, variant, edit, rate)
        variants.append(variant * gain)
        gains.append(round(float(20 * np.log10(gain[edit[0], 0])), 2))
    return Programs(record.job_id, sample_rate, first / rate, tempo, _for_output(original, rate, sample_rate),
                    tuple(_for_output(v, rate, sample_rate) for v in variants), tuple(gains), tuple(files),
                    signature)


def _check_delivered(audio: Path, config: Config | None) -> None:
    """Refuse a variant's audio that now leads elsewhere than the file delivered beside its manifest (a link put in
    its place, maybe to a file out of the project of the same length), or, given ``config``, out of the project roots
    (a drop folder made a link): what it leads to would be played as the variant."""
    try:
        resolved, delivered = audio.resolve(), audio.parent.resolve() / audio.name
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise AuditionError(f"the variant's audio cannot be resolved ({exc}): {audio}") from None
    if resolved != delivered or config is not None and not config.in_project(resolved):
        raise AuditionError(f"the variant's audio {audio} now leads to {resolved} (a link put in its place since it "
                            "was delivered): it is not played")


def _variant_program(audio_path: Path, manifest: dict, original: np.ndarray, first: int, rate: int,
                     operation: str, edit: tuple[int, int]) -> np.ndarray:
    """The original with the delivered audio laid over it where it covers (only that part of a whole-song delivery
    is read); after an extension, silence.

    Refused when the audio is not what was delivered (another length than the manifest's ``frames``: a file
    replaced or cut short since) or lies nowhere on the edited range (a hand-edited ``span_start``): either would
    play the original, or a stretch of it, announced as the variant."""
    at = round(manifest["source"]["span_start"] * rate) - first  # where the delivered audio starts in the program
    program = original.copy()
    if operation == "extend":
        program[max(at, 0):] = 0.0
    frames = manifest.get("frames")
    try:
        with sf.SoundFile(str(audio_path)) as f:
            if f.channels != original.shape[1] or f.samplerate != rate:
                raise AuditionError(f"the variant's audio no longer matches its source: {audio_path}")
            if isinstance(frames, int) and not isinstance(frames, bool) and f.frames != frames:
                raise AuditionError(f"the variant's audio has {f.frames} frames where its manifest says {frames} "
                                    f"(replaced since it was delivered?): {audio_path}")
            if at >= edit[1] or at + f.frames <= edit[0]:
                raise AuditionError("the variant's audio lies off the range it replaced (its manifest's source "
                                    f"span_start changed since it was delivered?): {audio_path}")
            lo, hi = max(at, 0), min(at + f.frames, len(program))
            if hi > lo:
                f.seek(lo - at)
                program[lo:hi] = f.read(hi - lo, dtype="float32", always_2d=True)
    except (OSError, sf.LibsndfileError) as exc:
        raise AuditionError(f"the variant's audio cannot be read ({exc}): {audio_path}") from None
    return program


def matching_gain(original: np.ndarray, variant: np.ndarray, edit: tuple[int, int], rate: int) -> np.ndarray:
    """Per-frame gain, shaped (frames, 1): 1 outside the edited range, and inside it the gain that gives the
    variant the original's RMS there (for an extension past the song's end, the RMS of the music before it);
    limited to +/-12 dB and to no clipping, ramped over 0.25 s of untouched source on either side."""
    lo, hi = edit
    reference = rms(original[lo:hi])
    if reference < SILENT_RMS:
        reference = rms(original[max(0, lo - (hi - lo)):lo])
    level, peak = rms(variant[lo:hi]), float(np.max(np.abs(variant[lo:hi]), initial=0.0))
    gain = 1.0 if level < SILENT_RMS or reference < SILENT_RMS else reference / level
    limit = 10 ** (GAIN_LIMIT_DB / 20)
    gain = min(max(gain, 1 / limit), limit, 1 / peak if peak > 0 else limit)
    ramp = GAIN_RAMP_S * rate
    envelope = np.interp(np.arange(len(variant)), [lo - ramp, lo, hi, hi + ramp], [1.0, gain, gain, 1.0])
    return envelope.astype(np.float32)[:, None]


def _for_output(program: np.ndarray, rate: int, output_rate: int) -> np.ndarray:
    """Two channels (mono doubled, beyond two the first two), the output's rate, (channels, frames) contiguous,
    faded in and out over FADE_S so that starting and ending mid-song make no click."""
    stereo = np.repeat(program, 2, axis=1) if program.shape[1] == 1 else program[:, :2]
    if rate != output_rate:
        stereo = soxr.resample(stereo, rate, output_rate)
    out = np.array(stereo.T, dtype=np.float32, order="C")
    fade = ramp(output_rate)[:out.shape[1] // 2]
    out[:, :len(fade)] *= fade
    out[:, out.shape[1] - len(fade):] *= fade[::-1]
    return out
