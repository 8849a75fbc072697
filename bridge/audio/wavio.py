"""Writing audio so that no reader ever sees half a file."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

_EXACT_IN_PCM24 = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24"}


def lossless_subtype(source_subtype: str) -> str:
    """The WAV sample format that holds a source's decoded samples exactly: 24-bit for integer PCM up to 24 bits,
    32-bit float for anything else (float, 32-bit, decoded Ogg/MP3), so spliced audio stays sample-identical."""
    return "PCM_24" if source_subtype in _EXACT_IN_PCM24 else "FLOAT"


def write_atomic(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    """Write ``audio`` as WAV under a hidden temporary name beside ``path``, fsync, then rename into place.

    A failure (disk full, permission denied) removes the temporary file and re-raises, leaving ``path`` as it was.
    """
    return publish([(stage_audio(Path(path), audio, sample_rate, subtype), Path(path))])[0]


def write_blocks_atomic(path: Path, blocks: Iterable[np.ndarray], sample_rate: int, channels: int,
                        subtype: str = "PCM_24") -> Path:
    """:func:`write_atomic` a block at a time."""
    return publish([(stage_blocks(Path(path), blocks, sample_rate, channels, subtype)[0], Path(path))])[0]


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a small text file (a manifest, a status file) with the same temporary-name-then-rename discipline."""
    return publish([(stage_text(Path(path), text), Path(path))])[0]


def stage_audio(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    """Write ``audio`` as WAV to a hidden, fsynced temporary beside ``path``; return the temporary's path.

    Nothing is visible under ``path`` until :func:`publish`; a failure removes the temporary and re-raises.
    """
    return stage_blocks(path, [audio], sample_rate, audio.shape[1], subtype)[0]


def stage_blocks(path: Path, blocks: Iterable[np.ndarray], sample_rate: int, channels: int,
                 subtype: str = "PCM_24") -> tuple[Path, int]:
    """:func:`stage_audio` for audio that comes a block at a time (memory follows a block, not the file): the
    temporary's path and the frames written. Whatever ``blocks`` raises removes the temporary and is re-raised."""
    written = 0

    def write(raw) -> None:
        nonlocal written
        sink = _Sink(raw)
        try:
            with sf.SoundFile(sink, "w", samplerate=sample_rate, channels=channels, format="WAV",
                              subtype=subtype) as out:
                for block in blocks:
                    out.write(block)
                    sink.raise_error()  # a full disk stops the writing at once, not after the last block
                    written += len(block)
        except Exception:
            sink.raise_error()
            raise
        sink.raise_error()  # the header is rewritten on close, through the same callbacks

    return _stage(path, write), written


def stage_text(path: Path, text: str) -> Path:
    """:func:`stage_audio` for a small text file."""
    return stage_bytes(path, text.encode("utf-8"))


def stage_bytes(path: Path, data: bytes) -> Path:
    """:func:`stage_audio` for bytes made elsewhere (a picture)."""
    return _stage(path, lambda raw: raw.write(data))


def stage_link(path: Path, source: Path) -> Path:
    """:func:`stage_audio` for audio already on disk (a kept take): a hard link to ``source`` under a hidden name
    beside ``path``, or a copy where no link can be made (a file system without hard links, another device)."""
    temporary = path.parent / f"{_temporary_prefix(path)}{uuid.uuid4().hex[:8]}.part"
    try:
        os.link(source, temporary)
        return temporary
    except FileNotFoundError:
        raise
    except OSError:
        with open(source, "rb") as original:
            return _stage(path, lambda raw: shutil.copyfileobj(original, raw))


def publish(staged: list[tuple[Path, Path]]) -> list[Path]:
    """Rename each staged temporary over its final name, in order, then fsync the folders once, so the renames
    survive a power cut too; return the final paths."""
    for temporary, final in staged:
        os.replace(temporary, final)
        # Renaming a hard link over another link to the same file does nothing (POSIX) and leaves the temporary
        # there, pinning the audio under a hidden name (a take kept twice): the final name is the file already.
        try:
            if os.path.samestat(os.lstat(temporary), os.lstat(final)):
                os.unlink(temporary)
        except FileNotFoundError:  # the rename took it, as it does unless they were the same file
            pass
    for folder in {final.parent for _, final in staged}:
        _fsync_folder(folder)
    return [final for _, final in staged]


def discard(paths) -> None:
    """Remove files (staged temporaries, or published files being rolled back) that may or may not exist."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:  # already gone, or its folder is: nothing of it is visible
            pass


def _stage(path: Path, write) -> Path:
    """Call ``write(binary file)`` on a hidden temporary beside ``path`` and fsync it."""
    fd, tmp_name = _create_hidden(path)
    try:
        with os.fdopen(fd, "wb") as raw:
            write(raw)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        _remove_quietly(tmp_name)
        raise
    return Path(tmp_name)


def _create_hidden(path: Path) -> tuple[int, str]:
    """A new hidden temporary beside ``path``, open for writing, with the mode any file the user makes gets (0644
    under the usual umask): ``mkstemp`` makes it 0600, and the renamed result kept that, so another account or a
    shared project folder could not read a delivery the producer's own files there can be read from."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = str(path.parent / f"{_temporary_prefix(path)}{uuid.uuid4().hex[:8]}.part")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:  # a name left by an earlier crash: draw another
            continue


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a folder for fsync; NTFS journals the rename itself
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_prefix(path: Path) -> str:
    """A hidden name beside ``path``: short enough that any name which fits the file system has a temporary too."""
    return f".{path.stem[:120]}."


class _Sink:
    """The file soundfile writes through, keeping the first OSError (disk full, quota, I/O error) to re-raise.

    soundfile writes through C callbacks: an OSError raised inside one is printed (a traceback on the daemon's
    stderr, past its log handlers) and swallowed, and the write then fails with a bare AssertionError, so a full disk
    would look like a bug instead of a full disk.
    """

    def __init__(self, raw):
        self._raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return self._raw.write(data)
        except OSError as exc:
            self.error = exc
            return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._kept(lambda: self._raw.seek(offset, whence))

    def tell(self) -> int:
        return self._kept(self._raw.tell)

    def _kept(self, move) -> int:
        """A seek or tell flushes the write buffer, so on a full disk it fails as a write does: kept, not raised."""
        if self.error is not None:
            return 0
        try:
            return move()
        except OSError as exc:
            self.error = exc
            return 0

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error from None  # not "during handling of AssertionError": the OSError is the story


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
