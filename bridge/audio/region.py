"""Reading a region of a source file without reading the rest of it."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from bridge.audio.blocks import AudioReadError, FileFrames
from bridge.exceptions import SourceError
from bridge.files import NotRegularFile, open_regular
from bridge.models import SourceInfo


def probe(source: Path) -> SourceInfo:
    """Read the header of a source file; a missing, unreadable or empty file raises SourceError."""
    with _opened(source, "not found") as file:
        try:
            with sf.SoundFile(file.fileno(), closefd=False) as f:
                info = SourceInfo(sample_rate=int(f.samplerate), channels=int(f.channels), frames=int(f.frames),
                                  format=f"{f.format}/{f.subtype}")
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise SourceError(f"source audio cannot be read ({_reason(exc)}): {source}",
                              code="source_unreadable") from None
    if info.frames <= 0 or info.sample_rate <= 0:
        raise SourceError(f"source audio has no frames: {source}", code="source_unreadable")
    return info


def _opened(source: Path, missing: str) -> BinaryIO:
    """The source open for reading (by its descriptor, for soundfile: a file object's read errors would be printed
    from a callback and read as the file's end); SourceError when there is none (``missing`` says how to say so)
    or it is no regular file."""
    try:
        return open_regular(source)
    except FileNotFoundError:
        raise SourceError(f"source audio {missing}: {source}", code="source_missing") from None
    except (IsADirectoryError, NotRegularFile):  # a folder, a pipe, a device: reading it could block or never end
        raise SourceError(f"source audio is not a regular file: {source}", code="source_unreadable") from None
    except OSError as exc:
        raise SourceError(f"source audio cannot be read ({exc.strerror}): {source}", code="source_unreadable") from None


def check_unchanged(source: Path, then: SourceInfo) -> None:
    """Refuse a source that is no longer the file a job was accepted for (truncated, replaced, re-rendered)."""
    now = probe(source)
    if (now.frames, now.sample_rate, now.channels) != (then.frames, then.sample_rate, then.channels):
        raise SourceError(f"source audio changed since the job was accepted ({_shape(then)}, now {_shape(now)}): "
                          f"{source}", code="source_changed")


def _shape(info: SourceInfo) -> str:
    channels = f"{info.channels} channel{'s' if info.channels != 1 else ''}"
    return f"{info.frames} frames of {channels} at {info.sample_rate} Hz"


def frame_range(sample_rate: int, frames: int, start: float, end: float) -> tuple[int, int]:
    """Frames [first, stop) for source seconds [start, end), clamped to the file."""
    first = min(max(int(round(start * sample_rate)), 0), frames)
    stop = min(max(int(round(end * sample_rate)), first), frames)
    return first, stop


def read_frames(source: Path, first: int, stop: int) -> tuple[np.ndarray, int]:
    """Read frames [first, stop) by seeking: memory follows the region's length, not the file's."""
    try:
        with _opened(source, "disappeared") as file, sf.SoundFile(file.fileno(), closefd=False) as f:
            stop = min(stop, f.frames)
            f.seek(min(first, stop))
            audio = f.read(stop - min(first, stop), dtype="float32", always_2d=True)
            sample_rate = f.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SourceError(f"source audio cannot be read ({_reason(exc)}): {source}", code="source_unreadable") from None
    if len(audio) != stop - min(first, stop):
        raise SourceError(f"source audio is shorter than its header says (truncated?): {source}",
                          code="source_unreadable")
    return audio, sample_rate


def source_frames(source: Path, first: int = 0, stop: int | None = None) -> FileFrames:
    """Frames [first, stop) of the source, read on demand a part at a time (see :class:`FileFrames`); a failed read
    raises the SourceError :func:`read_frames` would. Close it when done."""
    def failed(error: AudioReadError) -> SourceError:
        if error.missing:
            return SourceError(f"source audio disappeared: {source}", code="source_missing")
        if error.short:
            return SourceError(f"source audio is shorter than its header says (truncated?): {source}",
                               code="source_unreadable")
        return SourceError(f"source audio cannot be read ({error}): {source}", code="source_unreadable")

    return FileFrames(source, first, stop, failed=failed, file=_opened(source, "disappeared"))


def padded_slice(samples: np.ndarray, first: int, count: int) -> np.ndarray:
    """``samples[first:first + count]``, silent wherever that lies outside the array (``first`` may be negative)."""
    out = np.zeros((count,) + samples.shape[1:], dtype=samples.dtype)
    lo, hi = max(first, 0), min(first + count, len(samples))
    if hi > lo:
        out[lo - first:hi - first] = samples[lo:hi]
    return out


def read_region(source: Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """Audio of source seconds [start, end) clamped to the file, float32 shaped (frames, channels), and its rate."""
    info = probe(source)
    first, stop = frame_range(info.sample_rate, info.frames, start, end)
    return read_frames(source, first, stop)


def export_region(source: Path, start: float, end: float, dest: Path, *, context: float | None = 0.0,
                  subtype: str | None = None) -> tuple[Path, float]:
    """Write source seconds [start - context, end + context] (clamped) to ``dest``; return it and the crop's start.

    ``context=None`` exports the whole file. The format follows ``dest``'s suffix (.wav, .flac); the sample rate,
    channel count and (where the format can hold it) sample format are the source's, so the crop is exact.
    """
    info = probe(source)
    lo, hi = (0.0, info.duration) if context is None else (start - context, end + context)
    first, stop = frame_range(info.sample_rate, info.frames, lo, hi)
    fmt = "FLAC" if Path(dest).suffix.lower() == ".flac" else "WAV"
    if fmt == "WAV" and subtype is None and _copy_pcm_wav(source, first, stop, dest):
        return Path(dest), first / info.sample_rate
    try:  # a block at a time: a whole-song upload is as large as the song
        with source_frames(source, first, stop) as crop, sf.SoundFile(
                str(dest), "w", info.sample_rate, info.channels, subtype or _lossless_subtype(info, fmt),
                format=fmt) as out:
            for block in crop.blocks():
                out.write(block)
    except BaseException:
        Path(dest).unlink(missing_ok=True)
        raise
    return Path(dest), first / info.sample_rate


def _lossless_subtype(info: SourceInfo, fmt: str) -> str:
    """The source's own sample format when ``fmt`` can hold it; else float (for WAV) or 24-bit (FLAC)."""
    own = info.format.split("/")[-1]
    if sf.check_format(fmt, own):
        return own
    return "FLOAT" if fmt == "WAV" else "PCM_24"


def _copy_pcm_wav(source: Path, first: int, stop: int, dest: Path) -> bool:
    """Copy a PCM WAV's frames byte for byte (no decode, no re-encode); False when the source is not plain PCM WAV.

    The stdlib ``wave`` module reads only plain PCM WAV; anything else (float, extensible headers, other
    containers) takes the decoding path. Twice as fast as decoding and re-encoding, and exact by construction.
    """
    try:
        with _opened(source, "disappeared") as file, wave.open(file, "rb") as reader:
            params = reader.getparams()
            reader.setpos(first)
            frames = reader.readframes(stop - first)
    except (wave.Error, EOFError):
        return False
    with wave.open(str(dest), "wb") as writer:
        writer.setparams(params)
        writer.writeframes(frames)
    return True


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "Error opening" in text else text
