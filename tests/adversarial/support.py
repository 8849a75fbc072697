"""Helpers for the adversarial suite: a daemon process with its own environment, what /proc says about it, mounts.

Everything here observes the daemon from outside, as an attacker or a failing machine would meet it: its sockets,
its memory, its files. Nothing reaches into the process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.core.journal import Journal
from bridge.models import JobRecord
from tests.conftest import ROOT, DaemonProcess, Project, daemon_environment

# The fake service's delays, scaled as in the MusicGPT suites: an answered eta of 20 s becomes 0.2 s.
FAST_MUSICGPT = {"context_s": 8.0, "eta_scale": 0.01, "poll_interval_s": 0.05, "poll_max_interval_s": 0.2,
                 "retry_base_s": 0.01, "rate_limit_backoff_s": 0.02, "poll_calls_per_minute": 6000,
                 "http_timeout_s": 5.0}


class Daemon(DaemonProcess):
    """``daw-bridge serve`` in its own process, seen from outside: its pid and whether it still runs."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def run_to_exit(project: Project, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Start ``daw-bridge serve`` expecting it to refuse to run; its exit status and output."""
    return subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(project.config)],
                          env=daemon_environment(), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


def musicgpt_table(base_url: str, **settings) -> str:
    """A ``[musicgpt]`` config table pointing at the fake service, with its delays scaled down."""
    values = dict(FAST_MUSICGPT, base_url=base_url, **settings)
    lines = ["[musicgpt]"]
    for key, value in values.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml(value)}")
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"[musicgpt.{key}]")
            lines += [f"{k} = {_toml(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def journal_records(project: Project) -> list[JobRecord]:
    """Every job the project's journal holds, oldest first (read while the daemon is stopped or running: WAL)."""
    journal = Journal(project.state / "journal.sqlite")
    try:
        return list(reversed(journal.recent(10_000)))
    finally:
        journal.close()


# -- /proc -----------------------------------------------------------------------------------------------------------

def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP socket bound to 127.0.0.1:port (a full receive buffer)."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted:
            return int(fields[-1])
    raise AssertionError(f"no UDP socket on 127.0.0.1:{port}")


def listening_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every socket the process listens on: TCP in LISTEN, UDP bound to a port."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{proto}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            if proto.startswith("tcp") and fields[3] != "0A":  # only listening TCP sockets
                continue
            host, port = fields[1].split(":")
            found.append((proto, _address(host), int(port, 16)))
    return found


def _address(hex_host: str) -> str:
    raw = bytes.fromhex(hex_host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # /proc prints IPv6 as four host-order words
    return socket.inet_ntop(socket.AF_INET6, words)


def worker_processes(pid: int) -> list[int]:
    """The daemon's engine worker processes (spawned multiprocessing children, not its resource tracker)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    workers = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\x00", b" ")
        except OSError:
            continue
        if b"multiprocessing.spawn" in cmdline or b"spawn_main" in cmdline:
            workers.append(child)
    return workers


# -- mounts (machine faults) -----------------------------------------------------------------------------------------

def _mount_or_skip(args: list[str], what: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount {what} ({result.stderr.strip()}); CI must run this test as root")
        pytest.skip(f"cannot mount {what}: {result.stderr.strip()}")


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A size-limited tmpfs at ``folder`` (a drop folder that fills up), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount_or_skip(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], f"a {size} tmpfs")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(path: Path) -> None:
    """Take every byte left on the file system ``path`` is on (a small tmpfs's), in a file at ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only by a read-only bind mount onto itself: as root, the only honest "permission denied".

    Root ignores file modes, so chmod proves nothing here; a read-only mount refuses every write with EROFS, which
    the daemon must treat as it treats EACCES.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _mount_or_skip(["--bind", str(folder), str(folder)], "a bind mount")
    try:
        result = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot remount read-only: {result.stderr.strip()}")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, hidden ones included, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
