"""Writing audio so that no reader ever sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def write_atomic(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    """Write ``audio`` as WAV under a hidden temporary name beside ``path``, fsync, then rename into place.

    A failure (disk full, permission denied) removes the temporary file and re-raises, leaving ``path`` as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            with sf.SoundFile(raw, "w", samplerate=sample_rate, channels=audio.shape[1], format="WAV",
                              subtype=subtype) as out:
                out.write(audio)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a small text file (a manifest, a status file) with the same temporary-name-then-rename discipline."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    return path


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
