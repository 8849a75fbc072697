"""A process pool's workers end with the process that started them, even when it is SIGKILLed mid-job."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import (
    ROOT,
    Project,
    adopting_orphans,
    daemon_environment,
    process_tree,
    still_running,
)

# A stand-in for the daemon: a pool on a LifelineContext, its worker busy, started from the main thread or from a
# thread that has ended by the time the "daemon" is killed.
DAEMON = """
import concurrent.futures, os, re, sys, threading, time
from bridge.lifeline import LifelineContext

def start(busy):
    global pool
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=LifelineContext())
    pool.submit(os.getpid).result()
    pool.submit(*busy)

if sys.argv[1] == "main":
    # Catastrophic backtracking: the worker sits in one C call that never lets go of the GIL, so its pipe-watching
    # thread cannot run; only the kernel's parent-death signal can end it.
    start((re.match, r"(a+)+$", "a" * 60 + "b"))
else:
    starter = threading.Thread(target=start, args=((time.sleep, 600),))
    starter.start()
    starter.join()  # the thread that forked the worker is gone; the worker must live on with this process
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def adopting():
    """These tests kill a parent on purpose: this process adopts its children meanwhile (see adopting_orphans)."""
    with adopting_orphans():
        yield


def gone(tree: set, limit: float = 30.0) -> bool:
    """Whether the processes ended within ``limit`` (a bound for a loaded machine, not a figure: the processes these
    tests start live for good unless something ends them: a 600 s sleep, an idle worker)."""
    started = time.monotonic()
    while still_running(tree) and time.monotonic() - started < limit:
        time.sleep(0.01)
    return not still_running(tree)


@pytest.mark.parametrize("forked_by", ["main", "thread"])
def test_sigkill_of_the_pool_owner_ends_its_busy_worker(forked_by, adopting):
    owner = subprocess.Popen([sys.executable, "-c", DAEMON, forked_by], stdout=subprocess.PIPE, text=True,
                             env=daemon_environment(), cwd=ROOT)
    try:
        assert owner.stdout.readline() == "ready\n"
        time.sleep(0.3)
        tree = process_tree(owner.pid)
        assert len(tree) == 2, tree  # the worker and the resource tracker
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    assert gone(tree), f"still running: {still_running(tree)}"


# A stand-in for a test starting a long-lived program (jackd, jalv, Ardour, a daemon) the way the test helpers do.
STARTER = """
import subprocess, sys
from bridge.lifeline import ask_to_die_with_parent
program = subprocess.Popen(["sleep", "600"], preexec_fn=ask_to_die_with_parent)
print(program.pid, flush=True)
sys.stdin.read()
"""


def test_a_program_started_with_ask_to_die_with_parent_ends_when_its_starter_is_killed(adopting):
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, env=daemon_environment(), cwd=ROOT)
    try:
        pid = int(starter.stdout.readline())
        program = {key for key in process_tree(starter.pid) if key[0] == pid}
        assert program, "the program did not start"
    finally:
        starter.kill()  # no clean-up runs: only the kernel's parent-death signal can end the program
        starter.wait()
        starter.stdin.close()
        starter.stdout.close()
    assert gone(program), f"still running: {still_running(program)}"


def test_a_killed_demo_takes_its_daemon_and_the_daemons_workers_with_it(tmp_path, adopting):
    demo = subprocess.Popen([sys.executable, "-m", "bridge", "demo", "--dir", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, text=True, env=daemon_environment(), cwd=ROOT)
    try:
        for line in demo.stdout:  # "daemon up on 127.0.0.1:PORT (pid N); sending commands over OSC"
            if line.startswith("daemon up"):
                break
        daemon = {key for key in process_tree(demo.pid) if key[0] != demo.pid}
        assert daemon, "the demo started no daemon"
    finally:
        demo.kill()  # a demo stopped in its tracks runs no clean-up of its own
        demo.wait()
        demo.stdout.close()
    assert gone(daemon), f"still running: {still_running(daemon)}"


# A subreaper stands in for init: an orphan of the daemon becomes its child, which waitpid can then tell apart from a
# process the daemon itself waited for (ChildProcessError: not ours). Run as its own process, so pytest adopts nothing.
SUBREAPER = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
daemon = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--config", sys.argv[1]])
tracker = None
while tracker is None and daemon.poll() is None:  # the engine's warm-up pool starts the resource tracker
    time.sleep(0.05)
    kids = open(f"/proc/{daemon.pid}/task/{daemon.pid}/children").read().split()
    tracker = next((int(k) for k in kids if b"resource_tracker" in open(f"/proc/{k}/cmdline", "rb").read()), None)
time.sleep(1.0)
daemon.send_signal(signal.SIGTERM)
daemon.wait(timeout=60)
try:
    os.waitpid(tracker, 0)
    print("orphaned", flush=True)
except ChildProcessError:
    print("waited for by the daemon", flush=True)
"""


def test_a_daemon_stopped_cleanly_waits_for_its_resource_tracker(tmp_path, demo_song_path):
    """The pools' multiprocessing resource tracker is the daemon's child and would end only after it, adopted by init
    in between (a process nobody started): the daemon waits for it before it exits."""
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config("")
    done = subprocess.run([sys.executable, "-c", SUBREAPER, str(project.config)], capture_output=True, text=True,
                          env=daemon_environment(), cwd=ROOT, timeout=120, preexec_fn=ask_to_die_with_parent)
    assert done.stdout.splitlines()[-1:] == ["waited for by the daemon"], done.stdout + done.stderr
