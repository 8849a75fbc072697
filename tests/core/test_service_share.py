"""A project on a NAS that stops answering: its drop folder, or a song in it, is on a share whose server went down.

The share is a real FUSE mount (bindfs); its process stopped (SIGSTOP) is the server down: every call on the mount
waits until it goes on (SIGCONT), in the kernel, where nothing in the daemon can end it. The share is stopped before
the daemon touches it, so each stuck call is still the kernel's to let go of when the daemon's process ends.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import signal
import time
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from tests.conftest import DaemonProcess, fuse_share, require_tool, share_down
from tests.test_cli import daw_bridge

# The system calls a thread is in while it waits on a file (stat, open, list, make, remove), by machine.
_FILE_CALLS = {
    "x86_64": {4, 6, 21, 83, 89, 217, 257, 258, 262, 263, 267, 269, 332},
    "aarch64": {34, 35, 48, 56, 61, 78, 79, 291},
}

# The kernel asks the share at each look, as it does a NAS once what it cached of it has timed out (1 s, else).
_UNCACHED = ("-o", "attr_timeout=0,entry_timeout=0")


def _nas(tmp_path: Path) -> tuple[str, Path]:
    """bindfs, and the folder it serves as the NAS (skipped where the waiting system calls are not known)."""
    bindfs = require_tool("bindfs")
    if platform.machine() not in _FILE_CALLS:
        pytest.skip(f"which system calls wait on a file is not known here ({platform.machine()})")
    nas = tmp_path / "nas"
    nas.mkdir()
    return bindfs, nas


@pytest.fixture
def drop_folder_on_nas(project, tmp_path):
    """The project's drop folder on a share: the bindfs process serving it."""
    bindfs, nas = _nas(tmp_path)
    project.drop.mkdir(parents=True, exist_ok=True)
    with fuse_share(bindfs, nas, project.drop, *_UNCACHED) as server:
        yield server


@pytest.fixture
def song_on_nas(project, tmp_path):
    """A copy of the project's song on a share in the project: (its path through the mount, the bindfs process)."""
    bindfs, nas = _nas(tmp_path)
    shutil.copy(project.song, nas / project.song.name)
    mount = project.root / "nas"
    mount.mkdir()
    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        yield mount / project.song.name, server


def wait_for_a_stuck_file_call(pid: int) -> None:
    """Until a thread of ``pid`` waits in a file system call (one on the share, nothing else here takes long)."""
    calls = _FILE_CALLS[platform.machine()]
    deadline = time.monotonic() + 60
    while True:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((task / "syscall").read_text().split()[0]) in calls:
                    return
        assert time.monotonic() < deadline, "no thread of the daemon waits on the share"
        time.sleep(0.05)


def test_a_daemon_whose_drop_folder_does_not_answer_stops_on_sigterm(project, drop_folder_on_nas):
    """At its start the daemon looks into the drop folder for what interrupted deliveries left there, in a thread.
    That thread waited for good, and so did the end of the daemon (asyncio.run joins its executor's threads, then
    the interpreter does), so SIGTERM never stopped it; the service manager killed it -9. It now stops, leaving the
    thread to end with the process, and says so once."""
    daemon = DaemonProcess(project)
    try:
        with share_down(drop_folder_on_nas):
            daemon.start()  # the start is not held up either (the check of the drop folder against the roots)
            wait_for_a_stuck_file_call(daemon.proc.pid)
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(timeout=60) == 0
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert "stopping" in log and log.count("did not end within") == 1 and "Traceback" not in log, log


def test_a_job_whose_song_does_not_answer_holds_up_no_ping_and_no_other_job(project, song_on_nas, daemon):
    """Admitting a job looked at its song and drop folder on the event loop: a song on a share whose server was down
    froze the whole daemon (OSC, MIDI, every other job) until the share came back. Only that command waits now, and
    it is answered once the share is."""
    song, server = song_on_nas
    with BridgeClient("127.0.0.1", project.port) as waiting, BridgeClient("127.0.0.1", project.port) as client:
        with share_down(server):
            waiting.send("extend", source=str(song), extend_after=10.0, duration=4.0, num_outputs=1,
                         request_id="on-the-nas")
            wait_for_a_stuck_file_call(daemon.proc.pid)
            assert client.ping(timeout=10)
            done, _ = client.run_job("extend", source=str(project.song), extend_after=20.0, duration=4.0,
                                     num_outputs=1, request_id="on-this-disk")
            assert done.name == "done", done
        accepted = waiting.wait_for(lambda reply: reply.name in ("accepted", "error"), timeout=60)
        assert accepted is not None and accepted.name == "accepted", accepted
        job_id = accepted.args[1]
        done = waiting.wait_for(lambda reply: reply.name in ("done", "failed") and reply.args[0] == job_id, 600)
        assert done is not None and done.name == "done", done
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log and "did not end within" not in log, log


def test_a_delivery_to_a_drop_folder_that_does_not_answer_holds_up_no_ping(project, drop_folder_on_nas, daemon):
    """A delivery checked its drop folder against the project roots on the event loop: a drop folder on a share that
    went down while the job generated froze the whole daemon. The job waits there alone, and delivers once it
    answers."""
    with BridgeClient("127.0.0.1", project.port) as waiting, BridgeClient("127.0.0.1", project.port) as client:
        waiting.send("extend", source=str(project.song), extend_after=10.0, duration=4.0, num_outputs=1,
                     request_id="to-the-nas")
        accepted = waiting.wait_for(lambda reply: reply.name in ("accepted", "error"), timeout=60)
        assert accepted is not None and accepted.name == "accepted", accepted
        job_id = accepted.args[1]
        with share_down(drop_folder_on_nas):
            delivering = waiting.wait_for(lambda reply: reply.name == "state" and reply.args[:2] == [
                job_id, "delivering"], timeout=600)
            assert delivering is not None
            wait_for_a_stuck_file_call(daemon.proc.pid)
            assert client.ping(timeout=10)
        done = waiting.wait_for(lambda reply: reply.name in ("done", "failed") and reply.args[0] == job_id, 600)
        assert done is not None and done.name == "done", done
    assert daemon.stop() == 0
    assert {p.suffix for p in project.visible_drop_files()} >= {".json", ".wav"}  # the picture may come later
    log = daemon.log.read_text()
    assert "Traceback" not in log and "did not end within" not in log, log


def test_send_tells_a_daemon_still_on_the_command_from_none(project, song_on_nas, daemon):
    """'daw-bridge send' pings a daemon that has not answered: the daemon answered in order, so a pong before the
    command's answer meant it never got the command. An admission waiting on a share now comes after the pong."""
    song, server = song_on_nas
    with share_down(server):
        sent = daw_bridge("send", "extend", f"source={song}", "extend_after=10", "duration=4", "num_outputs=1",
                          "request_id=by-hand", "--config", str(project.config), timeout=120)
    assert sent.returncode == 1, sent
    assert sent.stdout.startswith(f"the daemon on 127.0.0.1:{project.port} has not answered extend yet"), sent.stdout
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log.read_text()


def test_a_decision_on_a_job_whose_drop_folder_does_not_answer_holds_up_no_ping(project, drop_folder_on_nas,
                                                                                 daemon, tmp_path):
    """/bridge/decide read the job's last decision and the DAW scripts' ledgers in its drop folder, and wrote the
    decision there, on the event loop: a drop folder on a share that went down after the delivery froze the whole
    daemon (OSC, MIDI, every job) until it answered. Only that decision waits now; it is published once it does."""
    with BridgeClient("127.0.0.1", project.port) as deciding, BridgeClient("127.0.0.1", project.port) as client:
        outcome, _ = deciding.run_job("extend", source=str(project.song), extend_after=10.0, duration=4.0,
                                      num_outputs=1, timeout=600)
        assert outcome.name == "done", outcome
        job = outcome.args[0]
        project.pictured_drop_files()  # the pictures are out: nothing else of the job's waits on the share
        with share_down(drop_folder_on_nas):
            deciding.send("decide", job_id=job, decision="choose", choice=1)
            wait_for_a_stuck_file_call(daemon.proc.pid)
            assert client.ping(timeout=10)
            assert not (tmp_path / "nas" / ".daw-bridge-decisions").exists()  # on the NAS itself: not written yet
        decided = deciding.wait_for(lambda reply: reply.name in ("decided", "error"), timeout=60)
        assert decided is not None and decided.args == [job, "choose", 1, 1], decided
    assert (project.drop / ".daw-bridge-decisions" / f"{job}.json").is_file()
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "Traceback" not in log and "did not end within" not in log, log


@pytest.fixture
def captures_on_nas(project, tmp_path):
    """The plugin instances' captures folder on a share in the project, one instance's folder in it: the daemon
    restarted with it (its name, the bindfs process)."""
    bindfs, nas = _nas(tmp_path)
    (nas / "inst-1").mkdir()
    mount = project.root / "captures"
    mount.mkdir()
    project.write_config(f'captures_dir = "{mount}"\n')
    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        yield "inst-1", server


def test_plugin_requests_on_a_captures_folder_that_does_not_answer_hold_up_no_ping(project, captures_on_nas):
    """/bridge/plugins listed the captures folder, and /bridge/plugin_prompt looked for the instance's folder there,
    on the event loop: a captures_dir on a share that went down froze the whole daemon. Each waits alone now, and is
    answered once the share is."""
    instance, server = captures_on_nas
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as asking, BridgeClient("127.0.0.1", project.port) as client:
            with share_down(server):
                asking.send("plugins")
                wait_for_a_stuck_file_call(daemon.proc.pid)
                assert client.ping(timeout=10)
                asking.send("plugin_prompt", capture=instance, prompt="warm pads")
                assert client.ping(timeout=10)
            answers = [asking.wait_for(lambda reply: True, timeout=60) for _ in range(2)]  # in either order
            assert None not in answers and sorted((a.name, a.args) for a in answers) == [
                ("plugin_prompt_set", [instance, "warm pads"]), ("plugins_listed", [0])], answers
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert "Traceback" not in log and "did not end within" not in log, log


def test_plugin_requests_take_no_thread_of_the_loops_pool(tmp_path, demo_song_path):
    """A /bridge/plugins looked at the captures folder in a thread of the event loop's pool: on a share that does not
    answer, a plugin asking again and again left one thread stuck there each time, and those of the last 5 s held the
    pool's places that admissions and deliveries wait for. The captures folder has a thread of its own: with every
    place of the pool held, the plugins are still listed."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bridge.config import Config
    from bridge.core.journal import Journal
    from bridge.core.service import JobService
    from bridge.frontends.osc import OscFrontend
    from tests.conftest import Project, free_udp_port
    from tests.frontends.test_midi import HeldBackend

    async def story():
        project = Project(tmp_path / "project", demo_song_path)
        (project.root / "captures").mkdir()
        config = Config(state_dir=project.state, project_roots=(project.root,), drop_folder=project.drop,
                        inbox=project.inbox, backend="local", osc_port=free_udp_port(),
                        captures_dir=project.root / "captures")
        journal = Journal(config.journal_path)
        service = JobService(config, journal, {"local": HeldBackend("local")})
        osc = OscFrontend(service, config)
        pool, waiter, freed = ThreadPoolExecutor(1), ThreadPoolExecutor(1), threading.Event()
        asyncio.get_running_loop().set_default_executor(pool)
        held = asyncio.get_running_loop().run_in_executor(None, freed.wait)  # as pictures held it (1b5c866)
        try:
            await osc.start()
            with BridgeClient("127.0.0.1", config.osc_port) as client:
                client.send("plugins")
                return await asyncio.get_running_loop().run_in_executor(
                    waiter, client.wait_for, lambda r: r.name == "plugins_listed", 30)
        finally:
            freed.set()
            await held
            osc.close()
            await service.close()
            journal.close()
            pool.shutdown()
            waiter.shutdown()

    listed = asyncio.run(story())
    assert listed is not None and listed.args == [0], listed
