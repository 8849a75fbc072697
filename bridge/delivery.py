"""Putting a job's variants into the drop folder: audio first, manifest last, each renamed into place; then,
once the job is done, each variant's picture, published with its manifest re-written to name it."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.audio import picture
from bridge.audio.blocks import AudioReadError, FileFrames, concatenated
from bridge.audio.region import check_unchanged, read_frames, source_frames
from bridge.audio.wavio import (
    discard,
    lossless_subtype,
    publish,
    stage_blocks,
    stage_bytes,
    stage_text,
)
from bridge.exceptions import Cancelled, DeliveryError
from bridge.models import JobSpec, Rendered
from osc_schema import DECISIONS_FOLDER, KEPT_FOLDER, MANIFEST_FORMAT

log = logging.getLogger(__name__)

Draw = Callable[[picture.PictureInput], bytes]
"""Makes a picture's PNG bytes."""


def stem_for(spec: JobSpec, variant: int) -> str:
    """A readable, safe file stem: song, operation, range, variant, and a job suffix that keeps names unique."""
    song = re.sub(r"[^A-Za-z0-9_-]+", "-", spec.source.stem).strip("-")[:48] or "song"
    suffix = spec.job_id.rsplit("-", 1)[-1]
    return f"{song}_{spec.operation}_{spec.edit_start:.2f}-{spec.edit_end:.2f}_v{variant}_{suffix}"


def drop_folder_for(spec: JobSpec) -> Path:
    return drop_folder_of(spec.drop_folder, spec.source)


def drop_folder_of(drop_folder: Path | None, source: Path) -> Path:
    """The folder a job delivers into: the one it names, else a "daw-bridge" folder beside its source."""
    return drop_folder or source.parent / "daw-bridge"


# The hidden temporaries (bridge.audio.wavio's ".<stem>.<8 hex>.part") of a variant's audio, manifest or picture (and
# of a kept take's link, named as its audio), whose stem is stem_for's; and of a decision file, named by its job id.
_STAGED_VARIANT = re.compile(r"\.[A-Za-z0-9_-]{1,48}_(?:inpaint|extend)_\d+\.\d\d-\d+\.\d\d_v\d+_"
                             r"(?P<suffix>[0-9a-f]{6})\.[0-9a-f]{8}\.part")
_STAGED_DECISION = re.compile(r"\.j-\d{8}-\d{6}-(?P<suffix>[0-9a-f]{6})\.[0-9a-f]{8}\.part")


def leftover_temporaries(folder: Path, inside: Callable[[Path], bool]) -> list[tuple[Path, str]]:
    """The hidden temporaries a delivery or a decision stopped mid-write (a kill -9, a power cut) left in the drop
    folder ``folder``, its Kept folder and its decisions folder, each with the suffix of the job it belongs to
    (``stem_for``'s).

    Only regular files named exactly as this daemon names them count, in folders whose resolved path ``inside``
    accepts (the project roots): the DAW scripts' own ``.part`` files (REAPER's ".<name>.<14 digits>.part",
    Ardour's "<name>.part") and anything the producer put there are not ours. The caller decides which jobs'
    temporaries may still be being written.
    """
    found = []
    for where, pattern in ((folder, _STAGED_VARIANT), (folder / KEPT_FOLDER, _STAGED_VARIANT),
                           (folder / DECISIONS_FOLDER, _STAGED_DECISION)):
        try:
            if not inside(where.resolve()):
                continue
            with os.scandir(where) as entries:
                for entry in entries:
                    match = pattern.fullmatch(entry.name)
                    if match and entry.is_file(follow_symlinks=False):
                        found.append((Path(entry.path), match["suffix"]))
        except (OSError, RuntimeError):  # not there (no decision made yet), unreadable, a symlink loop
            continue
    return found


class CommitGate:
    """The one moment a job's results become visible, decided against a cancel under one lock.

    The delivery thread publishes only through :meth:`publish`; the core's cancel calls :meth:`close`. Whichever
    comes first wins: a closed gate publishes nothing (the delivery removes what it staged), and a gate that has
    published refuses to close, so the cancel can answer "already delivered".
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._closed = False
        self._published = False

    def close(self) -> bool:
        """Forbid publishing; False when it is too late (the files are out)."""
        with self._lock:
            if not self._published:
                self._closed = True
            return not self._published

    def check(self) -> None:
        """Raise Cancelled when the gate was closed (for the delivery to stop early)."""
        if self._closed:
            raise Cancelled("cancelled by the producer; nothing was delivered")

    def publish(self, staged: list[tuple[Path, Path]]) -> None:
        with self._lock:
            self.check()
            self._published = True  # from the first rename on, the files count as out, even if one fails
            publish(staged)

    def withdraw(self) -> None:
        """The delivery failed and removed what it had published: nothing is out, so a cancel may close the gate
        again (a retry of the delivery publishes through it as the first try would have)."""
        with self._lock:
            self._published = False


def deliver(spec: JobSpec, variants: list[Rendered], gate: CommitGate | None = None) -> list[Path]:
    """Write every variant and its manifest; on any failure remove every file of this job and raise.

    Everything is first written under hidden temporary names; then, through ``gate``, the audio files, and after
    them the manifests, are renamed into place in one go: that is the commit point (importers act on manifests
    only). An OSError (disk full, permission denied) becomes a DeliveryError naming the folder; anything else (a
    source that vanished during a full-song delivery, a cancel) is raised as it is, after the same clean-up. The
    clean-up covers files an earlier, interrupted delivery of the same job left (names are fixed per job and
    variant). The manifests name no picture yet: :func:`add_pictures` draws them once the job is done.
    """
    gate = gate or CommitGate()
    folder = drop_folder_for(spec)
    stems = [stem_for(spec, rendered.variant) for rendered in variants]
    staged: list[tuple[Path, Path]] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stem in stems:  # hidden temporary files of a delivery killed mid-write
            discard(folder.glob(f".{stem}.*.part"))
        manifests = []
        for rendered in variants:
            gate.check()
            audio, manifest = _stage_one(spec, rendered, len(variants), folder)
            staged.insert(len(staged) - len(manifests), audio)  # every audio file before any manifest
            staged.append(manifest)
            manifests.append(manifest[1])
        gate.publish(staged)
        return manifests
    except BaseException as exc:
        discard(temporary for temporary, _ in staged)
        # Manifests go first so no importer can act on a manifest whose audio is being removed.
        discard(folder / f"{stem}{suffix}" for suffix in (".json", ".wav", ".png") for stem in stems)
        gate.withdraw()
        if isinstance(exc, OSError):
            raise DeliveryError(_explain(exc, folder), code=_code(exc)) from None
        raise


def add_pictures(spec: JobSpec, variants: list[Rendered], manifests: list[Path],
                 draw: Draw = picture.render_png) -> list[Path | None]:
    """Draw each delivered variant's picture and publish it: the PNG, then its manifest re-written to name it,
    each renamed into place, so a manifest never names a picture that is not whole on disk.

    Called once the job is done (its audio and manifests published), while ``variants`` are still on disk.
    ``draw`` makes the PNG: in this thread by default; the daemon passes its :class:`picture.Painter`'s, which
    draws in a process of its own. A picture that cannot be made is one log line and the manifest keeps
    ``"picture": null``; a manifest the producer removed meanwhile gets no picture (and is not brought back).
    Returns each variant's picture, or None.
    """
    return [_add_picture(spec, rendered, manifest, draw) for rendered, manifest in zip(variants, manifests)]


def _add_picture(spec: JobSpec, rendered: Rendered, manifest_path: Path, draw: Draw) -> Path | None:
    path = manifest_path.with_suffix(".png")
    staged: list[tuple[Path, Path]] = []
    try:
        # Read on demand: the sketch reads a block, a column or an FFT window at a time, not the span whole.
        with _rendered_frames(rendered) as span:
            sample_rate = span.samplerate
            first = int(round(rendered.span_start * sample_rate))
            with source_frames(spec.source, first, first + len(span)) as original:
                joins = [j for j in (rendered.splice or {}).get("joins", []) if isinstance(j, dict) and "at" in j]
                png = draw(picture.PictureInput(
                    original=original, result=span, sample_rate=sample_rate, span_start=rendered.span_start,
                    edit_start=spec.edit_start, edit_end=spec.edit_end, joins=joins, title=path.stem))
        if not manifest_path.exists():
            return None
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        staged.append((stage_bytes(path, png), path))
        manifest["picture"] = path.name
        staged.append((stage_text(manifest_path, _manifest_text(manifest)), manifest_path))
        publish(staged)
        return path
    except Exception as exc:  # noqa: BLE001 - a picture is a convenience; the audio and manifest are the promise
        discard(temporary for temporary, _ in staged)
        log.warning("job %s variant %d: delivered without a picture (%s: %s)", spec.job_id, rendered.variant,
                    type(exc).__name__, exc)
        return None


def _stage_one(spec: JobSpec, rendered: Rendered, count: int, folder: Path) -> list[tuple[Path, Path]]:
    """Write one variant's audio and its manifest under hidden names, as (temporary, final) pairs.

    The audio is copied a block at a time (the span from the work folder, and for a full delivery the source around
    it), so a full-song delivery needs a block's memory, not the song's.
    """
    stem = stem_for(spec, rendered.variant)
    audio_path = folder / f"{stem}.wav"
    with _rendered_frames(rendered) as span:
        sample_rate = span.samplerate
        if spec.delivery == "full":
            pieces, span_start = _full_song_pieces(spec, span, rendered.span_start), 0.0
        else:
            pieces, span_start = [span], rendered.span_start
        try:
            staged_audio, frames = stage_blocks(audio_path, concatenated(pieces), sample_rate, span.channels,
                                                subtype=lossless_subtype(spec.source_info.format.split("/")[-1]))
        finally:
            for piece in pieces:
                if piece is not span:
                    piece.close()
    try:
        manifest_path = folder / f"{stem}.json"
        manifest = _manifest(spec, rendered, count, audio_path, frames, sample_rate, span_start)
        staged_manifest = stage_text(manifest_path, _manifest_text(manifest))
    except BaseException:
        discard([staged_audio])
        raise
    return [(staged_audio, audio_path), (staged_manifest, manifest_path)]


def _manifest_text(manifest: dict) -> str:
    """Strict JSON: a number that is none (NaN, infinity: a backend's figure, read by Python's lenient parser) is
    written as null, since the DAW scripts' readers refuse the whole manifest at a bare NaN, and the result with it."""
    return json.dumps(_finite(manifest), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _read_rendered(rendered: Rendered) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(rendered.path)) as f:
        return f.read(dtype="float32", always_2d=True), f.samplerate


def _rendered_frames(rendered: Rendered) -> FileFrames:
    """The variant's span in the work folder, read on demand; a failed read is a DeliveryError (nothing is out)."""
    def failed(error: AudioReadError) -> DeliveryError:
        return DeliveryError(f"variant {rendered.variant}'s audio in the work folder could not be read ({error}); "
                             "nothing was delivered", code="delivery_failed")

    return FileFrames(rendered.path, failed=failed)


def _full_song_pieces(spec: JobSpec, span: FileFrames, span_start: float) -> list[FileFrames]:
    """:func:`_full_song` as the pieces to copy in order (the source before, the span, the source after), read on
    demand. Close the source's pieces when done."""
    info = spec.source_info
    check_unchanged(spec.source, info)  # rewritten since the job read it: its parts would not fit the span
    first = int(round(span_start * info.sample_rate))
    before = source_frames(spec.source, 0, first)
    if spec.operation == "extend":
        return [before, span]
    try:
        return [before, span, source_frames(spec.source, first + len(span), info.frames)]
    except BaseException:
        before.close()
        raise


def _full_song(spec: JobSpec, span: np.ndarray, span_start: float) -> np.ndarray:
    """The whole source with the span swapped in (for extend, what followed the extension point is dropped)."""
    info = spec.source_info
    check_unchanged(spec.source, info)  # rewritten since the job read it: its parts would not fit the span
    first = int(round(span_start * info.sample_rate))
    before, _ = read_frames(spec.source, 0, first)
    if spec.operation == "extend":
        return np.concatenate([before, span])
    after, _ = read_frames(spec.source, first + len(span), info.frames)
    return np.concatenate([before, span, after])


def _manifest(spec: JobSpec, rendered: Rendered, count: int, audio_path: Path, frames: int, sample_rate: int,
              span_start: float) -> dict:
    length = frames / sample_rate
    return {
        "format": MANIFEST_FORMAT,
        "job_id": spec.job_id,
        "request_id": spec.request_id,
        "operation": spec.operation,
        "variant": rendered.variant,
        "variants": count,
        "backend": spec.backend,
        "delivery": spec.delivery,
        "audio": audio_path.name,
        "picture": None,  # named by add_pictures once the picture is on disk
        "sample_rate": sample_rate,
        "channels": spec.source_info.channels,
        "frames": frames,
        "timeline": {"position": spec.position + span_start, "length": length},
        "source": {"path": str(spec.source), "start": spec.edit_start, "end": spec.edit_end,
                   "span_start": span_start, "span_end": span_start + length, "position": spec.position},
        "ids": dict(spec.ids),
        "request": {"prompt": spec.prompt, "lyrics": spec.lyrics, "lyrics_section": spec.lyrics_section,
                    "gender": spec.gender, "num_outputs": spec.num_outputs},
        "splice": rendered.splice,
        "notes": rendered.notes,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _code(exc: OSError) -> str:
    return {errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full", errno.EACCES: "drop_folder_unwritable",
            errno.EPERM: "drop_folder_unwritable", errno.EROFS: "drop_folder_unwritable"}.get(exc.errno,
                                                                                                 "delivery_failed")


def _explain(exc: OSError, folder: Path) -> str:
    reason = {"disk_full": "the disk is full", "drop_folder_unwritable": "permission denied"}.get(
        _code(exc), exc.strerror or str(exc))
    return f"could not write the result into the drop folder {folder}: {reason}; nothing was left there"
