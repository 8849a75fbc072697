"""An inbox on a network share: requests written there by the studio's other computer come with no inotify event.

The share is a real FUSE mount (bindfs) of a folder that stands for the NAS: the daemon watches the mount, and "the
other computer" writes into the folder behind it, which the kernel reports to no watch on the mount, as with SMB,
NFS or sshfs. Writes through the mount are this machine's own, and are reported as on a local disk. The bindfs process
stopped (SIGSTOP) is a share whose server went down: every call on the mount waits until it goes on (SIGCONT).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import pytest

from bridge.client import BridgeClient
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.frontends.inbox import InboxFrontend
from tests.conftest import DaemonProcess, fuse_share, require_tool, share_down
from tests.frontends.test_inbox import drop_request, wait_for_status


@pytest.fixture
def share_server(project, tmp_path):
    """The project's inbox as a FUSE mount of ``nas``, the folder the other computer writes into: (nas, the bindfs
    process serving the mount)."""
    bindfs = require_tool("bindfs")
    nas = tmp_path / "nas"
    nas.mkdir()
    project.inbox.mkdir(parents=True, exist_ok=True)
    with fuse_share(bindfs, nas, project.inbox) as server:
        yield nas, server


@pytest.fixture
def share(share_server):
    return share_server[0]


@pytest.fixture
def share_daemon(project, share):
    process = DaemonProcess(project).start()
    # Its first pass of pruning has looked at the share: a call the bindfs process has already read when it is
    # stopped cannot be let go of, not even by the kernel for a process that exits (a NAS's kernel client can).
    wait_for_log(process, "retention: removed")
    yield process
    process.stop()


def request(project, request_id: str, after: float) -> dict:
    return {"command": "extend", "source": str(project.song), "extend_after": after, "duration": 4.0,
            "num_outputs": 1, "request_id": request_id}


def wait_for_log(daemon: DaemonProcess, text: str) -> None:
    deadline = time.monotonic() + 60
    while text not in daemon.log.read_text():
        assert time.monotonic() < deadline, daemon.log.read_text()
        time.sleep(0.05)


def jobs_by_request(project) -> dict[str, int]:
    journal = Journal(project.state / "journal.sqlite")
    try:
        counts: dict[str, int] = {}
        for record in journal.recent():
            counts[record.request_id] = counts.get(record.request_id, 0) + 1
        return counts
    finally:
        journal.close()


def test_a_request_dropped_on_the_share_by_another_computer_is_answered(project, share, share_daemon):
    drop_request(share, "from-studio-b", request(project, "from-studio-b", 10.0))
    status = wait_for_status(share, "from-studio-b")
    assert status["state"] == "delivered", status
    assert (share / "processed" / "from-studio-b.json").exists()
    assert not (share / "from-studio-b.json").exists()
    assert share_daemon.stop() == 0
    assert jobs_by_request(project) == {"from-studio-b": 1}


def test_files_seen_by_events_and_by_listings_run_once_and_none_before_it_is_written(project, share, share_daemon):
    # Written in place on this machine, half-way: its events come, and the listings see it too.
    local = open(project.inbox / "here.json", "w")
    local.write(json.dumps(request(project, "here", 8.0))[:30])
    local.flush()
    # Written in place on the other computer, half-way: only the listings see it.
    remote = open(share / "there.json", "w")
    remote.write(json.dumps(request(project, "there", 12.0))[:30])
    remote.flush()
    try:
        # A request from the other computer is answered only after a listing that came after both half-files.
        drop_request(share, "probe-1", request(project, "probe-1", 14.0))
        assert wait_for_status(share, "probe-1")["state"] == "delivered"
        assert sorted(p.name for p in share.iterdir() if p.is_file()) == ["here.json", "there.json"]
        assert not (share / "status" / "here.json").exists() and not (share / "status" / "there.json").exists()
        assert list((share / "rejected").iterdir()) == []

        remote.write(json.dumps(request(project, "there", 12.0))[30:])
        remote.close()
        local.write(json.dumps(request(project, "here", 8.0))[30:])
        local.close()  # its close event and the next listings both see the whole file
        assert wait_for_status(share, "there")["state"] == "delivered"
        assert wait_for_status(share, "here")["state"] == "delivered"
        # Touched through the mount after the other computer wrote it: an event and a listing for the same file.
        drop_request(share, "both", request(project, "both", 16.0))
        try:
            os.utime(project.inbox / "both.json")
        except FileNotFoundError:
            pass  # a listing took it first
        assert wait_for_status(share, "both")["state"] == "delivered"
        # Listings after all of them (this one's answer came from one) took none of them again.
        drop_request(share, "probe-2", request(project, "probe-2", 18.0))
        assert wait_for_status(share, "probe-2")["state"] == "delivered"
    finally:
        local.close()
        remote.close()
    assert share_daemon.stop() == 0
    assert jobs_by_request(project) == {"here": 1, "there": 1, "probe-1": 1, "both": 1, "probe-2": 1}
    assert sorted(p.name for p in (share / "processed").iterdir()) == [
        "both.json", "here.json", "probe-1.json", "probe-2.json", "there.json"]
    assert list((share / "rejected").iterdir()) == []
    log = (project.root / "daemon.log").read_text()
    assert "already run" not in log and "Traceback" not in log, log


def test_a_request_that_could_not_be_claimed_is_taken_once_what_blocked_it_is_gone(project, share, share_daemon):
    """A file named ``processing`` in the inbox (a sync tool's leftover; a lock held by the computer still writing the
    request does the same on a share): the request could not be claimed, and as no event ever came for it, it waited
    for the daemon's next start. Each listing now tries it again; the log says it once."""
    os.rmdir(share / "processing")
    (share / "processing").write_text("not a folder\n")
    drop_request(share, "held", request(project, "held", 20.0))
    wait_for_log(share_daemon, "'held.json' cannot be claimed")  # a listing found it
    (share / "processing").unlink()
    assert wait_for_status(share, "held")["state"] == "delivered"
    assert (share / "processed" / "held.json").exists()
    assert share_daemon.stop() == 0
    assert jobs_by_request(project) == {"held": 1}
    log = share_daemon.log.read_text()
    assert log.count("cannot be claimed") == 1 and "Traceback" not in log, log


def test_a_share_that_stops_answering_holds_up_its_requests_and_not_the_daemon(project, share_server, share_daemon):
    """A hard-mounted NFS share whose server is down, a FUSE share that stopped: a listing there waits for good. It
    ran on the daemon's event loop, and the whole daemon waited with it: no OSC reply, no job, no stop. Now only the
    inbox waits; the log says so once, and once when the share answers again."""
    nas, server = share_server
    with share_down(server):
        wait_for_log(share_daemon, "is not answering")  # a look at the inbox is stuck
        with BridgeClient("127.0.0.1", project.port) as client:
            assert client.ping(timeout=10)
            done, _ = client.run_job("extend", source=str(project.song), extend_after=20.0, duration=4.0,
                                     num_outputs=1, request_id="over-osc")
            assert done.name == "done", done
        drop_request(nas, "while-down", request(project, "while-down", 10.0))  # the other computer writes on
    assert wait_for_status(nas, "while-down")["state"] == "delivered"
    assert share_daemon.stop() == 0
    assert jobs_by_request(project) == {"over-osc": 1, "while-down": 1}
    log = share_daemon.log.read_text()
    assert log.count("is not answering") == 1 and log.count("answers again") == 1, log
    assert "Traceback" not in log, log


def test_the_daemon_stops_while_its_share_does_not_answer(project, share_server, share_daemon):
    nas, server = share_server
    with share_down(server):
        wait_for_log(share_daemon, "is not answering")
        share_daemon.proc.send_signal(signal.SIGTERM)
        assert share_daemon.proc.wait(timeout=60) == 0  # not killed by its own watchdog, nor stuck for good
    log = share_daemon.log.read_text()
    assert "stopping" in log and "Traceback" not in log, log


def test_a_pass_of_pruning_held_by_the_share_is_let_go_when_the_inbox_closes(project, share_server, caplog):
    """The hourly pruning of answered requests ran in an executor's thread, which a share that does not answer held
    for good, and the daemon's stop waited for that thread for good. The inbox prunes on its own thread now, and its
    close lets go of a pass waiting there."""
    nas, server = share_server
    project.state.mkdir(parents=True, exist_ok=True)
    journal = Journal(project.state / "journal.sqlite")

    async def story() -> tuple[int, int]:
        inbox = InboxFrontend(JobService(Config(state_dir=project.state, inbox=project.inbox), journal, {}),
                              project.inbox)
        await inbox.start()
        # Where the inbox's look holds this event loop (it did before the inbox had a thread of its own), the share
        # comes back after a minute, so that the test fails instead of waiting for good.
        back = threading.Timer(60, server.send_signal, (signal.SIGCONT,))
        try:
            with share_down(server):
                back.start()
                deadline = time.monotonic() + 60
                while "is not answering" not in caplog.text:  # a look holds the inbox's thread
                    assert time.monotonic() < deadline, caplog.text
                    await asyncio.sleep(0.05)
                pruning = asyncio.ensure_future(asyncio.to_thread(inbox.prune, time.time()))
                inbox.close()
                return await asyncio.wait_for(pruning, 60)
        finally:
            back.cancel()
            inbox.close()

    try:
        assert asyncio.run(story()) == (0, 0)
    finally:
        journal.close()
