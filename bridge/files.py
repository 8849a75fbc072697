"""Opening a file the producer named (a config, a mapping, a take, a song, a request) without waiting on it.

A FIFO opened for reading waits for a writer, maybe for good (deaf to SIGTERM meanwhile), and a device such as
/dev/zero reads for ever. Checking the path first and opening it after leaves a moment in which another file can
take its name, so the file is opened without waiting (``O_NONBLOCK``) and what was opened is checked.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO


class NotRegularFile(OSError):
    """The path names a pipe, a device or a socket: reading it could wait or never end."""

    def __init__(self, path: Path | str):
        super().__init__(f"{path}: is not a regular file (a pipe or a device)")
        self.path = path


def open_regular(path: Path | str, encoding: str | None = None, *, follow_links: bool = True) -> IO:
    """``path`` open for reading: text in ``encoding`` when given, else bytes; only a regular file is opened.

    A folder raises IsADirectoryError (as ``open`` does), anything else that is no regular file NotRegularFile;
    ``follow_links`` False refuses a symbolic link (OSError, ELOOP) instead of opening what it points to.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow_links else os.O_NOFOLLOW)
    fd = os.open(path, flags)  # O_NOCTTY: a terminal named by mistake never becomes the daemon's
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path)
        os.set_blocking(fd, True)  # from here on, read as a file open() opened
    except BaseException:
        os.close(fd)
        raise
    file = open(fd, "r" if encoding else "rb", encoding=encoding)  # it owns fd now, and closes it if it fails
    (file.buffer if encoding else file).raw.name = os.fspath(path)  # as open(path) names it (repr, soundfile's errors)
    return file
