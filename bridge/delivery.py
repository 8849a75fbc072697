"""Putting a job's variants into the drop folder: audio first, manifest last, each renamed into place."""

from __future__ import annotations

import errno
import json
import re
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.audio.region import read_frames
from bridge.audio.wavio import lossless_subtype, write_atomic, write_text_atomic
from bridge.exceptions import DeliveryError
from bridge.models import JobSpec, Rendered
from osc_schema import MANIFEST_FORMAT


def stem_for(spec: JobSpec, variant: int) -> str:
    """A readable, safe file stem: song, operation, range, variant, and a job suffix that keeps names unique."""
    song = re.sub(r"[^A-Za-z0-9_-]+", "-", spec.source.stem).strip("-")[:48] or "song"
    suffix = spec.job_id.rsplit("-", 1)[-1]
    return f"{song}_{spec.operation}_{spec.edit_start:.2f}-{spec.edit_end:.2f}_v{variant}_{suffix}"


def drop_folder_for(spec: JobSpec) -> Path:
    return spec.drop_folder or spec.source.parent / "daw-bridge"


def deliver(spec: JobSpec, variants: list[Rendered]) -> list[Path]:
    """Write every variant and its manifest; on any failure remove every file of this job and raise.

    An OSError (disk full, permission denied) becomes a DeliveryError naming the folder; anything else (a source
    that vanished during a full-song delivery) is raised as it is, after the same clean-up. The clean-up covers
    files an earlier, interrupted delivery of the same job left (names are fixed per job and variant).
    """
    folder = drop_folder_for(spec)
    stems = [stem_for(spec, rendered.variant) for rendered in variants]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stem in stems:  # hidden temporary files of a delivery killed mid-write
            for leftover in folder.glob(f".{stem}.*.part"):
                leftover.unlink(missing_ok=True)
        return [_deliver_one(spec, rendered, len(variants), folder) for rendered in variants]
    except Exception as exc:
        # Manifests go first so no importer can act on a manifest whose audio is being removed.
        for suffix in (".json", ".wav"):
            for stem in stems:
                try:
                    (folder / f"{stem}{suffix}").unlink(missing_ok=True)
                except OSError:  # the folder itself is unreadable or gone: nothing of ours is visible there
                    pass
        if isinstance(exc, OSError):
            raise DeliveryError(_explain(exc, folder), code=_code(exc)) from None
        raise


def _deliver_one(spec: JobSpec, rendered: Rendered, count: int, folder: Path) -> Path:
    """Write one variant's audio, then its manifest; return the manifest's path."""
    span, sample_rate = _read_rendered(rendered)
    if spec.delivery == "full":
        audio, span_start = _full_song(spec, span, rendered.span_start), 0.0
    else:
        audio, span_start = span, rendered.span_start
    stem = stem_for(spec, rendered.variant)
    audio_path = folder / f"{stem}.wav"
    write_atomic(audio_path, audio, sample_rate, subtype=lossless_subtype(spec.source_info.format.split("/")[-1]))
    manifest_path = folder / f"{stem}.json"
    manifest = _manifest(spec, rendered, count, audio_path, len(audio), sample_rate, span_start)
    write_text_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest_path


def _read_rendered(rendered: Rendered) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(rendered.path)) as f:
        return f.read(dtype="float32", always_2d=True), f.samplerate


def _full_song(spec: JobSpec, span: np.ndarray, span_start: float) -> np.ndarray:
    """The whole source with the span swapped in (for extend, what followed the extension point is dropped)."""
    info = spec.source_info
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
