"""Audio files read a block at a time, so that memory follows a block, not the file.

A MusicGPT result may be a gigabyte of WAV, and a full-song delivery is as long as the song: decoded whole, each
step held a copy or two of it (several GB for one result). :class:`FileFrames` stands in for the decoded array
where only parts are needed: the alignment reads a few seconds around each join, the splice and the delivery read
and write block by block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

BLOCK_FRAMES = 1 << 16  # 64 Ki frames: 512 KiB of stereo float, about 1.4 s at 48 kHz


class AudioReadError(Exception):
    """A sound file could not be read (``missing``: it is gone; ``short``: it holds fewer frames than it said)."""

    def __init__(self, reason: str, *, missing: bool = False, short: bool = False):
        super().__init__(reason)
        self.missing, self.short = missing, short


class FileFrames:
    """Frames [first, stop) of a sound file as a read-only (frames, channels) float32 array, read on demand.

    Enough of an array for :func:`bridge.audio.region.padded_slice`, the alignment and the splice: ``len``,
    ``shape``, ``dtype``, ``ndim`` and slicing with step 1, which reads those frames from disk (as ``float32``, the
    same values a whole-file read gives). A failed or short read raises ``failed(AudioReadError)``. The file stays
    open between reads: use it as a context manager, or call :meth:`close`. ``file``: ``path`` already open for
    reading (see :func:`bridge.files.open_regular`), read by its descriptor and closed with this.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, path: Path, first: int = 0, stop: int | None = None, *,
                 failed: Callable[[AudioReadError], Exception] = lambda error: error, file: BinaryIO | None = None):
        self.path, self._failed, self._opened = Path(path), failed, file
        try:
            self._file = self._guard(lambda: sf.SoundFile(str(self.path)) if file is None
                                     else sf.SoundFile(file.fileno(), closefd=False))
        except BaseException:
            self._close_opened()
            raise
        frames = self._file.frames
        self.first = min(max(first, 0), frames)
        self.stop = frames if stop is None else min(max(stop, self.first), frames)
        self.samplerate, self.channels = int(self._file.samplerate), int(self._file.channels)

    def __enter__(self) -> "FileFrames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self._close_opened()

    def _close_opened(self) -> None:
        if self._opened is not None:
            self._opened.close()

    def __len__(self) -> int:
        return self.stop - self.first

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.channels

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("FileFrames takes slices with step 1 only")
        lo, hi, _ = key.indices(len(self))
        return self.read(lo, max(hi, lo))

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Frames [lo, hi) (within this range; clamped to it), shaped (frames, channels)."""
        lo, hi = min(max(lo, 0), len(self)), min(max(hi, 0), len(self))
        count = max(hi - lo, 0)
        if count == 0:
            return np.zeros((0, self.channels), dtype=np.float32)

        def read() -> np.ndarray:
            at = self.first + lo
            if self._file.tell() != at:
                self._file.seek(at)
            return self._file.read(count, dtype="float32", always_2d=True)

        audio = self._guard(read)
        if len(audio) != count:
            raise self._failed(AudioReadError(f"{count - len(audio)} of its frames are missing (truncated?)",
                                              short=True))
        return audio

    def blocks(self, lo: int = 0, hi: int | None = None, size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """Frames [lo, hi) a block at a time."""
        hi = len(self) if hi is None else min(hi, len(self))
        for at in range(max(lo, 0), hi, size):
            yield self.read(at, min(at + size, hi))

    def _guard(self, call):
        try:
            return call()
        except FileNotFoundError:
            raise self._failed(AudioReadError("it is gone", missing=True)) from None
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            if not self.path.exists():  # libsndfile says "System error" for a file that is not there
                raise self._failed(AudioReadError("it is gone", missing=True)) from None
            raise self._failed(AudioReadError(sndfile_reason(exc, self.path))) from None


def read_blocks(path: Path, size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Every frame ``path`` decodes to, front to back, a block of float32 (frames, channels) at a time.

    Reads as a whole-file ``read()`` does (as many frames as the header promises, stopping early at a short read),
    so a sequential format (MP3, Ogg) is decoded once, without seeking. Errors are soundfile's own.
    """
    with sf.SoundFile(str(path)) as f:
        left = f.frames
        while left > 0:
            block = f.read(min(size, left), dtype="float32", always_2d=True)
            if len(block):
                yield block
            if len(block) < min(size, left):
                return
            left -= len(block)


def concatenated(pieces: Iterable[FileFrames | np.ndarray], size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """The blocks of each piece in turn (file pieces read a block at a time, arrays as they are)."""
    for piece in pieces:
        if isinstance(piece, FileFrames):
            yield from piece.blocks(size=size)
        elif len(piece):
            yield piece


def sndfile_reason(exc: Exception, path: Path, called: str = "the file") -> str:
    """libsndfile's own words, one line, with the file's path (a hidden download's, say) said as ``called``."""
    said = getattr(exc, "error_string", None) or str(exc).strip().replace(str(path), called)
    return said.splitlines()[-1] if said else type(exc).__name__
