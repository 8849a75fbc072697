"""The engine's workers (~270 MB each) and multiprocessing's resource tracker end with the daemon, however it ends.

A producer whose login session kills the daemon, or who kills it by hand, must not find the engine still holding
memory afterwards.
"""

from __future__ import annotations

import time

from bridge.client import BridgeClient
from tests.conftest import DaemonProcess, command_line, process_tree, still_running


def daemon_in_the_middle_of_a_job(project) -> tuple[DaemonProcess, set]:
    """A daemon whose engine worker is analysing a song, and its process tree (children, grandchildren)."""
    daemon = DaemonProcess(project).start()
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", source=str(project.song), start=10.0, end=15.0, prompt="", request_id="busy-1")
        assert client.wait_for(lambda r: r.name == "state" and r.args[1] == "generating", timeout=60) is not None
    time.sleep(0.3)  # the worker is inside the analysis now
    tree = process_tree(daemon.proc.pid)
    commands = [command_line(pid) for pid, _ in tree]
    assert sum("spawn_main" in c for c in commands) == 1 and sum("resource_tracker" in c for c in commands) == 1, \
        commands
    return daemon, tree


def seconds_until_gone(tree: set, started: float, limit: float = 10.0) -> float:
    while still_running(tree) and time.monotonic() - started < limit:
        time.sleep(0.01)
    return time.monotonic() - started


def test_sigkill_mid_job_leaves_no_engine_process_behind(project):
    daemon, tree = daemon_in_the_middle_of_a_job(project)
    killed = time.monotonic()
    daemon.kill()
    seconds = seconds_until_gone(tree, killed)
    print(f"\nprocess tree gone {seconds:.3f} s after SIGKILL")
    assert seconds < 2.0, [command_line(pid) for pid, _ in still_running(tree)]


def test_sigterm_mid_job_stops_at_once_and_leaves_nothing_behind(project):
    daemon, tree = daemon_in_the_middle_of_a_job(project)
    signalled = time.monotonic()
    assert daemon.stop() == 0
    seconds = seconds_until_gone(tree, signalled)
    print(f"\ndaemon stopped and its process tree gone {seconds:.3f} s after SIGTERM")
    assert seconds < 2.0, [command_line(pid) for pid, _ in still_running(tree)]
