"""An inbox on a network share: requests written there by the studio's other computer come with no inotify event.

The share is a real FUSE mount (bindfs) of a folder that stands for the NAS: the daemon watches the mount, and "the
other computer" writes into the folder behind it, which the kernel reports to no watch on the mount, as with SMB,
NFS or sshfs. Writes through the mount are this machine's own, and are reported as on a local disk.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from bridge.core.journal import Journal
from tests.conftest import DaemonProcess, fuse_share, require_tool
from tests.frontends.test_inbox import drop_request, wait_for_status


@pytest.fixture
def share(project, tmp_path):
    """The project's inbox as a FUSE mount of ``nas`` (returned), the folder the other computer writes into."""
    bindfs = require_tool("bindfs")
    nas = tmp_path / "nas"
    nas.mkdir()
    project.inbox.mkdir(parents=True, exist_ok=True)
    with fuse_share(bindfs, nas, project.inbox):
        yield nas


@pytest.fixture
def share_daemon(project, share):
    process = DaemonProcess(project).start()
    yield process
    process.stop()


def request(project, request_id: str, after: float) -> dict:
    return {"command": "extend", "source": str(project.song), "extend_after": after, "duration": 4.0,
            "num_outputs": 1, "request_id": request_id}


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
    deadline = time.monotonic() + 60
    while "'held.json' cannot be claimed" not in share_daemon.log.read_text():  # a listing found it
        assert time.monotonic() < deadline, share_daemon.log.read_text()
        time.sleep(0.05)
    (share / "processing").unlink()
    assert wait_for_status(share, "held")["state"] == "delivered"
    assert (share / "processed" / "held.json").exists()
    assert share_daemon.stop() == 0
    assert jobs_by_request(project) == {"held": 1}
    log = share_daemon.log.read_text()
    assert log.count("cannot be claimed") == 1 and "Traceback" not in log, log
