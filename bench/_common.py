"""Shared by the benchmarks: statistics, a throw-away project, and a daemon process to measure."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.client import BridgeClient  # noqa: E402
from bridge.lifeline import ask_to_die_with_parent  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def describe(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (f"median {statistics.median(values) * scale:.3f} {unit}, p99 {percentile(values, 99) * scale:.3f} {unit}, "
            f"min {min(values) * scale:.3f} {unit}, n={len(values)}")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchDaemon:
    """``daw-bridge serve`` in its own process with a config in a temporary project, removed when it stops."""

    def __init__(self, extra_config: str = "", python: str | None = None):
        """``python``: run that interpreter's installed daw-bridge (e.g. a fresh virtualenv's), not this tree's."""
        self.python = python
        self.root = Path(tempfile.mkdtemp(prefix="daw-bridge-bench-"))
        self.port = free_udp_port()
        self.config = self.root / "daw-bridge.toml"
        self.config.write_text(f'osc_port = {self.port}\ninbox = "{self.root / "inbox"}"\n'
                               f'state_dir = "{self.root / "state"}"\ndrop_folder = "{self.root / "drop"}"\n'
                               f'project_roots = ["{self.root}"]\n' + extra_config)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "BenchDaemon":
        env = dict(os.environ) if self.python else dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([self.python or sys.executable, "-m", "bridge", "serve", "--config",
                                      str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env, cwd=self.root, preexec_fn=ask_to_die_with_parent)
        with BridgeClient("127.0.0.1", self.port) as client:
            deadline = time.monotonic() + 60
            while not client.ping(timeout=0.3):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("daemon did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
