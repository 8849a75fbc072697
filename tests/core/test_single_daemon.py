"""One daemon per state folder and per inbox, and a start that fails says why in one line.

A producer who starts daw-bridge twice (a login item plus a terminal) must not get two daemons resuming the same
jobs from one journal; the second one names the first so it can be found and stopped.
"""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import ROOT, DaemonProcess, daemon_environment, free_udp_port


def serve(project, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(project.config), *extra],
                          capture_output=True, text=True, timeout=120, env=daemon_environment(), cwd=ROOT)


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_a_second_daemon_on_the_same_state_folder_refuses_and_names_the_first(project):
    first = DaemonProcess(project).start()
    try:
        second = serve(project, "--osc-port", str(free_udp_port()))
        assert first.proc.poll() is None  # the first one runs on, untouched
    finally:
        first.stop()
    assert second.returncode == 2
    line = one_line(second.stderr)
    assert f"pid {first.proc.pid}" in line and f"127.0.0.1:{project.port}" in line, line
    assert str(project.state) in line, line


def test_a_second_daemon_on_the_same_inbox_refuses_and_names_it(project, tmp_path):
    """Another state folder gets past the state lock, but the same inbox: at its start the second daemon took up
    the requests in processing/ that the first was running, and ran them again (a paid one paid twice)."""
    first = DaemonProcess(project).start()
    try:
        second = serve(project, "--osc-port", str(free_udp_port()), "--state-dir", str(tmp_path / "other-state"))
        assert first.proc.poll() is None  # the first one runs on, untouched
    finally:
        first.stop()
    assert second.returncode == 2
    line = one_line(second.stderr)
    assert f"another daw-bridge daemon already watches the inbox {project.inbox}" in line, line
    assert sorted(p.name for p in project.inbox.iterdir() if p.is_file()) == []  # the lock is no file of ours
    DaemonProcess(project).start().stop()  # the first one's lock went with it


def test_the_lock_goes_with_a_killed_daemon(project):
    DaemonProcess(project).start().kill()
    assert (project.state / "daemon.lock").exists()  # left behind, and harmless: the lock was the kernel's
    DaemonProcess(project).start().stop()


def test_a_busy_osc_port_is_named(project):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", project.port))
        result = serve(project)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert f"cannot listen for OSC on 127.0.0.1:{project.port}" in line, line
