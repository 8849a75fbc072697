"""A producer's first hour with the command line and the config: Ctrl-C in the terminal, the service and its config
file, songs named relative to the folder the producer stands in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from bridge.client import BridgeClient
from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import ROOT, DaemonProcess, daemon_environment, wait_for_pictures


class TerminalDaemon(DaemonProcess):
    """``daw-bridge serve`` in a terminal of its own: Ctrl-C there reaches every process of its process group."""

    def start(self, timeout: float = 60.0) -> "TerminalDaemon":
        args = [sys.executable, "-m", "bridge", "serve", "--config", str(self.project.config)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=daemon_environment(),
                                         cwd=ROOT, preexec_fn=ask_to_die_with_parent, start_new_session=True)
        with BridgeClient("127.0.0.1", self.project.port) as client:
            while not client.ping(timeout=0.3):
                if self.proc.poll() is not None or timeout <= 0:
                    self.stop()
                    raise RuntimeError(f"daemon did not answer ping:\n{self.log.read_text()}")
                timeout -= 0.3
        return self

    def ctrl_c(self) -> int:
        """What the terminal does on Ctrl-C: SIGINT to the whole foreground process group; the exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_ctrl_c_in_the_daemons_terminal_stops_it_without_a_traceback_from_its_workers(project):
    # Ctrl-C reaches the engine's and the pictures' worker processes too: each printed a KeyboardInterrupt traceback
    # ('Process _LifelineProcess-1: Traceback ... KeyboardInterrupt') into the terminal under the daemon's clean stop
    daemon = TerminalDaemon(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=4.0, end=6.0, prompt="",
                                        num_outputs=1, timeout=300)
        assert outcome.name == "done", outcome
        wait_for_pictures(project.drop)  # the engine's worker and the pictures' are both up now
        status = daemon.ctrl_c()
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert status == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "INFO bridge.daemon: stopping" in log, log
