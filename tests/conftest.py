"""Fixtures shared by the suites: generated songs, a configured project, and a real daemon process."""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.demo_song import make_song
from bridge.lifeline import ask_to_die_with_parent, end_resource_tracker

ROOT = Path(__file__).resolve().parent.parent
# Every process this session starts inherits this mark, so the leak check below finds it even once its parent died
# and it was handed to init (a daemon's engine worker, say); other people's test runs carry their own pid.
SESSION_MARK = f"DAW_BRIDGE_TEST_SESSION={os.getpid()}"
os.environ["DAW_BRIDGE_TEST_SESSION"] = str(os.getpid())


def require_tool(name: str) -> str:
    """The path of a Debian tool a test needs: skip without it, except in CI where a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed, and CI must run this test (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path


def require_library(name: str, package: str) -> None:
    """A Debian library a test needs (``ctypes.util.find_library(name)``): skip without it, except in CI."""
    if ctypes.util.find_library(name) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{package} is not installed, and CI must run this test (.ci/run installs it)")
        pytest.skip(f"{package} is not installed")


def end_by_closing_stdin(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Close a child's stdin, its cue to exit cleanly, and wait for it; killed when ``timeout`` s are not enough."""
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def fuse_share(bindfs: str, nas: Path, mountpoint: Path, *options: str):
    """``nas`` mounted on ``mountpoint`` with bindfs, which stands for a network share: files written into ``nas``
    (by "the other computer") come with no inotify event on the mount. bindfs runs in the foreground as a child that
    dies with this process, so a test or bench killed mid-way leaves no mount daemon behind. Yields that process:
    stopped (SIGSTOP), the share stops answering, as a NAS that went down. ``options``: bindfs's own (FUSE's -o)."""
    mount = subprocess.Popen([bindfs, "-f", *options, str(nas), str(mountpoint)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, preexec_fn=ask_to_die_with_parent)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if mount.poll() is not None or time.monotonic() > deadline:
                mount.kill()
                raise RuntimeError("bindfs could not mount the share: "
                                   + mount.communicate()[1].decode(errors="replace"))
            time.sleep(0.02)
        yield mount
        if subprocess.run(["fusermount", "-u", str(mountpoint)]).returncode != 0:
            subprocess.run(["fusermount", "-u", "-z", str(mountpoint)], check=True)  # still busy: detached
        mount.wait(timeout=30)
    finally:
        if mount.poll() is None:  # the body failed with the share still mounted
            subprocess.run(["fusermount", "-u", "-z", str(mountpoint)], check=False)
            mount.kill()
        mount.wait()
        mount.stderr.close()


@contextlib.contextmanager
def share_down(server: subprocess.Popen):
    """The share ``fuse_share`` serves does not answer until the block ends (its server stopped), whatever the block
    raises."""
    server.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.send_signal(signal.SIGCONT)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def song_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("songs")


@pytest.fixture(scope="session")
def demo_song_path(song_cache) -> Path:
    """A 40 s generated song with repeated sections (the embedded engine has material to work with)."""
    return make_song(song_cache / "song.wav", seconds=40.0)


class Project:
    """A producer's project folder with a daemon config pointing into it."""

    def __init__(self, root: Path, song: Path):
        self.root = root
        self.audio = root / "audio"
        self.audio.mkdir(parents=True, exist_ok=True)
        self.song = self.audio / song.name
        shutil.copy(song, self.song)
        self.inbox = root / "inbox"
        self.state = root / "state"
        self.drop = root / "daw-bridge"
        self.port = free_udp_port()
        self.config = root / "daw-bridge.toml"
        self.write_config()

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(
            f'osc_port = {self.port}\ninbox = "{self.inbox}"\nstate_dir = "{self.state}"\n'
            f'drop_folder = "{self.drop}"\nproject_roots = ["{self.root}"]\n' + extra, encoding="utf-8")

    def visible_drop_files(self) -> list[Path]:
        return sorted(p for p in self.drop.glob("*") if not p.name.startswith(".")) if self.drop.exists() else []

    def pictured_drop_files(self, timeout: float = 60.0) -> list[Path]:
        """The visible drop files once every delivered variant there has its picture (see ``wait_for_pictures``)."""
        wait_for_pictures(self.drop, timeout)
        return self.visible_drop_files()


def wait_for_pictures(folder: Path, timeout: float = 60.0) -> None:
    """Wait until every manifest in ``folder`` names its picture: pictures are drawn a moment after the job is done,
    then each manifest is re-published naming its PNG. Returns at ``timeout`` regardless (the caller's asserts say
    what is missing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(json.loads(p.read_text(encoding="utf-8")).get("picture")
                   for p in folder.glob("*.json") if not p.name.startswith(".")):
                return
        except (OSError, ValueError):
            pass  # a manifest being replaced right now: look again
        time.sleep(0.05)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """HOME is a fresh folder (the DAWs' and the user's config folders under it start empty)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


@pytest.fixture
def project(tmp_path, demo_song_path) -> Project:
    return Project(tmp_path / "project", demo_song_path)


def daemon_environment(extra: dict | None = None) -> dict:
    """The environment a test daemon runs with: ours, minus any real MusicGPT key or endpoint, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGPT_")}
    env.update(PYTHONPATH=str(ROOT), **(extra or {}))
    return env


class DaemonProcess:
    """``daw-bridge serve`` as its own process, as a producer's login would start it."""

    def __init__(self, project: Project, *, env: dict | None = None, verbose: bool = False,
                 ping_from: str = "127.0.0.1", host: str = "127.0.0.1"):
        self.project = project
        self.proc: subprocess.Popen | None = None
        self.log = project.root / "daemon.log"
        self.env = env or {}
        self.verbose = verbose
        self.ping_from = ping_from  # the address the readiness ping is sent from (an allowlisted one)
        self.host = host  # where it listens (its osc_host)

    def start(self, timeout: float = 60.0) -> "DaemonProcess":
        args = [sys.executable, "-m", "bridge", "serve", "--config", str(self.project.config)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args + (["--verbose"] if self.verbose else []), stdout=log,
                                         stderr=subprocess.STDOUT, env=daemon_environment(self.env), cwd=ROOT,
                                         preexec_fn=ask_to_die_with_parent)
        with BridgeClient(self.host, self.project.port, bind_host=self.ping_from) as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
                if client.ping(timeout=0.3):
                    return self
        self.kill()
        raise RuntimeError(f"daemon did not answer ping:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a crash or a power cut of the process."""
        with adopting_orphans():  # its workers end with it
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def daemon(project):
    process = DaemonProcess(project).start()
    yield process
    process.stop()


@pytest.fixture
def client(project):
    with BridgeClient("127.0.0.1", project.port) as c:
        yield c


# -- processes, and the check that no test leaves a thread or a process behind -----------------------------------

def process_status(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time in clock ticks) of a process, from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def live_processes() -> dict[tuple[int, int], int]:
    """Every running process as (pid, start time) -> parent pid; zombies (gone, waiting to be reaped) left out."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (status := process_status(int(entry))) is not None and status[1] != "Z":
            table[(int(entry), status[2])] = status[0]
    return table


def process_tree(root: int) -> set[tuple[int, int]]:
    """The running descendants of ``root`` (children, grandchildren...), as (pid, start time)."""
    table = live_processes()
    tree, parents = set(), {root}
    while True:
        found = {key for key, parent in table.items() if parent in parents and key not in tree}
        if not found:
            return tree
        tree |= found
        parents = {pid for pid, _ in found}


PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def _children() -> set[int]:
    """This process's children, those of every thread."""
    return {int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()}


@contextlib.contextmanager
def adopting_orphans(timeout: float = 10.0):
    """Stand in for init while a test kills a parent on purpose (SIGKILL of a daemon, a demo, a one-shot command).

    The parent's children end with it, and were init's for that instant: zombies for as long as init takes to reap
    them (a second or more on some machines), which a check for orphaned processes sees. Meanwhile this process is
    their subreaper: they become its children, and are reaped here before the block is left; one that does not end
    within ``timeout`` fails the test (it outlived its parent)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    before = _children()
    if prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        deadline = time.monotonic() + timeout
        for pid in _children() - before:
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                assert time.monotonic() < deadline, f"process {pid} ({command_line(pid)[:120]}) outlived its parent"
                time.sleep(0.01)


def still_running(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    return processes & set(live_processes())


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _session_processes() -> set[tuple[int, int]]:
    """This session's processes: children of pytest, and anything carrying the session's mark (orphans too)."""
    ours = set()
    for key, parent in live_processes().items():
        if key[0] == os.getpid():
            continue
        if parent == os.getpid():
            ours.add(key)
            continue
        try:
            if SESSION_MARK.encode() in Path(f"/proc/{key[0]}/environ").read_bytes().split(b"\0"):
                ours.add(key)
        except OSError:  # someone else's process, or gone meanwhile
            pass
    return ours


def _resource_tracker_pid() -> int | None:
    # multiprocessing starts one tracker per process the first time it needs one; it lives until the session ends
    import multiprocessing.resource_tracker

    return getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)


def _leftovers(threads_before: set, processes_before: set) -> list[str]:
    threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    # A process started by one that outlives the test (a shared daemon's worker, started on its first job) is that
    # process's: the check of the fixture that owns it counts it. Orphans have lost their parent and still count.
    owners = {pid for pid, _ in processes_before}
    parents = live_processes()
    processes = [key for key in _session_processes() - processes_before
                 if key[0] != _resource_tracker_pid() and parents.get(key) not in owners]
    return ([f"thread {t.name!r}" for t in threads]
            + [f"process {pid} ({command_line(pid)[:160]})" for pid, _ in sorted(processes)])


def _check_nothing_left_behind(what: str):
    threads_before, processes_before = set(threading.enumerate()), _session_processes()
    yield
    deadline = time.monotonic() + 10.0  # threads being joined, processes being reaped: slow on a loaded machine
    while (leftovers := _leftovers(threads_before, processes_before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if leftovers:
        pytest.fail(f"{what} left behind: " + "; ".join(leftovers), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """This process's pools are closed by now: their resource tracker ends before pytest does, not after it."""
    end_resource_tracker()


@pytest.fixture(autouse=True, scope="module")
def _no_leaks_from_module_fixtures():
    """Module-scoped fixtures (a JACK server, a shared daemon) must be gone when their module is done."""
    yield from _check_nothing_left_behind("this module's fixtures")


@pytest.fixture(autouse=True)
def _no_leaks():
    """Fail a test that leaves a thread or a process running after it (and its fixtures) ended."""
    yield from _check_nothing_left_behind("this test")


def run_pausing(pipe, function, pause_at: int, call) -> None:
    """``call()``, pausing before the ``pause_at``-th line ``function`` runs (its Python code) to send "paused" on
    ``pipe`` and wait for a word back: a test in another process looks at shared state right there."""
    lines = [0]

    def line(frame, event, arg):
        if event == "line":
            if lines[0] == pause_at:
                pipe.send("paused")
                pipe.recv()
            lines[0] += 1
        return line

    sys.settrace(lambda frame, event, arg: line if frame.f_code is function.__code__ else None)
    try:
        call()
    finally:
        sys.settrace(None)
