"""Fixtures shared by the suites: generated songs, a configured project, and a real daemon process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.demo_song import make_song

ROOT = Path(__file__).resolve().parent.parent


def require_tool(name: str) -> str:
    """The path of a Debian tool a test needs: skip without it, except in CI where a missing tool is a failure."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed, and CI must run this test (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path


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
                 ping_from: str = "127.0.0.1"):
        self.project = project
        self.proc: subprocess.Popen | None = None
        self.log = project.root / "daemon.log"
        self.env = env or {}
        self.verbose = verbose
        self.ping_from = ping_from  # the address the readiness ping is sent from (an allowlisted one)

    def start(self, timeout: float = 60.0) -> "DaemonProcess":
        args = [sys.executable, "-m", "bridge", "serve", "--config", str(self.project.config)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args + (["--verbose"] if self.verbose else []), stdout=log,
                                         stderr=subprocess.STDOUT, env=daemon_environment(self.env), cwd=ROOT)
        with BridgeClient("127.0.0.1", self.project.port, bind_host=self.ping_from) as client:
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
