"""One daemon per state folder: an OS lock on ``<state_dir>/daemon.lock``, held for the daemon's whole life.

Two daemons on one journal would both resume the same jobs, and could pay MusicGPT twice for one. The lock is the
kernel's (``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows), so it goes with the process however that
ends, and a file left by a killed daemon never blocks the next start. The file holds the holder's pid and OSC
address, so a second daemon can say which one is in the way.

``hold`` is the same kind of lock for the one-shot commands, which share theirs (see there); ``lock_folder`` one on
a folder itself (the inbox's, see ``InboxFrontend``).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from bridge.exceptions import BridgeError

LOCK_NAME = "daemon.lock"
JOURNAL_NAMES = ("journal.sqlite", "one-shot-journal.sqlite")  # see Config.journal_path, Config.one_shot_journal_path
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks are mandatory: lock a byte past the record, so it stays readable


class StateLock:
    """The held lock of one state folder; ``release()`` (or the process's end) lets the next daemon in."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path, osc_host: str, osc_port: int) -> "StateLock":
        """Lock ``state_dir`` for this process, or raise a BridgeError naming the daemon that holds it."""
        make_private(state_dir)
        path = state_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise BridgeError(f"another daw-bridge daemon ({holder}) already uses the state folder {state_dir}; "
                              "stop it first, or give this one another state_dir", code="state_folder_in_use") \
                from None
        record = json.dumps({"pid": os.getpid(), "osc": f"{osc_host}:{osc_port}"}).encode() + b"\n"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, record)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)  # the next reader finds no stale pid; the file itself stays (see _lock)
            os.close(fd)  # closing releases the lock


def make_private(state_dir: Path) -> None:
    """Create the state folder for this user only, or make it so: its journal keeps signed result addresses and
    webhook secrets, and its work folder copies of the producer's audio. An existing folder is tightened only when
    it is one an earlier version made (it holds a journal): a ``state_dir`` naming the home or a shared folder keeps
    its mode, as does one we may not change."""
    made = not state_dir.exists()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ours = made or any((state_dir / name).exists() for name in JOURNAL_NAMES)
    try:
        if ours and os.name != "nt" and stat.S_IMODE(state_dir.stat().st_mode) & 0o077:
            os.chmod(state_dir, 0o700)
    except OSError:
        pass


def lock_folder(folder: Path) -> int | None:
    """This process's exclusive lock on ``folder`` itself (no file of ours among its contents), as an open descriptor:
    closing it, or the process's end, releases it. ``BlockingIOError`` when another process holds it; None where a
    folder cannot be locked (Windows), and nothing is held there."""
    if os.name == "nt":
        return None
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _lock(fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def _lock(fd: int) -> None:
    # The file is never deleted: a daemon that unlinked it could let a third daemon lock a new file while a second
    # still waits on the old one.
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096))
        return f"pid {int(record['pid'])}, OSC on {record['osc']}"
    except (OSError, ValueError, KeyError, TypeError):  # its record is not written yet: it is starting
        return "pid unknown, still starting"


def hold(path: Path, *, exclusive: bool) -> int | None:
    """This process's lock on ``path``, as an open file descriptor (closing it, or the process's end, releases it).

    Shared, it waits for an exclusive holder; exclusive, it returns None at once when any other process holds the
    file. The one-shot commands use it so a later command can tell their jobs were orphaned: each holds the one-shot
    lock shared while it runs, and only when nobody does can a job left mid-flight be taken up. Windows has no shared
    locks, so there an exclusive request always returns None (nobody can tell).
    """
    make_private(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if os.name == "nt":
        if exclusive:
            os.close(fd)
            return None
        return fd
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def downgrade(fd: int) -> None:
    """An exclusive ``hold`` made shared, so other one-shot commands may start while this one runs."""
    if os.name != "nt":
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH)
