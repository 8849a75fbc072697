"""The analysis cache: one file per song content, so a second job on the same song skips the analysis.

The key is a SHA-256 of the whole file (about 30 ms for a 4-minute WAV here), not its path or modification time:
a song edited in place gets a fresh analysis, and a copy under another name reuses the old one. Entries are
written under a temporary name and renamed, so concurrent workers never read half an entry; an unreadable entry
is treated as missing and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from bridge.backends.local.analysis import ANALYSIS_VERSION, SongAnalysis


def content_key(path: Path) -> str:
    """SHA-256 of the file's bytes, plus the analysis version: the cache key for this song."""
    with open(path, "rb") as song:
        digest = hashlib.file_digest(song, "sha256").hexdigest()
    return f"{digest[:40]}-v{ANALYSIS_VERSION}"


class AnalysisCache:
    """Song analyses stored as ``<key>.npz`` files in one folder."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str) -> SongAnalysis | None:
        """The stored analysis, or None when there is none or it cannot be read."""
        try:
            with open(self.path(key), "rb") as entry, np.load(entry, allow_pickle=False) as stored:
                return SongAnalysis.from_arrays(stored)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
            return None

    def store(self, key: str, analysis: SongAnalysis) -> None:
        """Write the analysis atomically; a full disk only costs the next job a new analysis."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, **analysis.to_arrays())
            os.replace(tmp_name, self.path(key))
        except OSError:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
