"""A daemon that runs for months keeps a bounded state folder: old finished jobs, leftovers and answered inbox files
go; anything money may hang on stays; a damaged old row costs neither the start nor the jobs it would resume."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

import pytest

from bridge.audio.region import probe
from bridge.backends.musicgpt.spend import SpendGuard
from bridge.client import BridgeClient
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.retention import DAY, Pruner, Retention
from bridge.core.service import JobService
from bridge.exceptions import JournalError
from bridge.frontends.inbox import InboxFrontend
from bridge.models import JobRecord, JobSpec, State
from tests.conftest import DaemonProcess

NOW = time.time()


class Clock:
    """Time the test sets: the journal and ledger write it, the pruner reads it."""

    def __init__(self, at: float):
        self.at = at

    def __call__(self) -> float:
        return self.at


def _job(journal: Journal, song: Path, job_id: str, state: State, *, drop: Path | None = None,
         origin: dict | None = None) -> JobRecord:
    spec = JobSpec(job_id=job_id, operation="inpaint", source=song, source_info=probe(song), backend="local",
                   start=10.0, end=14.0, num_outputs=1, drop_folder=drop, request_id=f"r-{job_id}")
    record = JobRecord(job_id=job_id, request_id=spec.request_id, origin=origin or {"kind": "test"}, spec=spec,
                       state=State.ACCEPTED)
    journal.insert(record)
    if state is not State.ACCEPTED:
        journal.update(record, state=state)
    return record


def _aged(path: Path, days: float, *, text: str = "{}") -> Path:
    """A file (or folder, when ``text`` is None) last changed ``days`` ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        path.mkdir(exist_ok=True)
        (path / "v1.wav").write_bytes(b"\0" * 1000)
        os.utime(path / "v1.wav", (NOW - days * DAY,) * 2)
    else:
        path.write_text(text)
    os.utime(path, (NOW - days * DAY,) * 2)
    return path


@pytest.fixture
def state(tmp_path, demo_song_path):
    clock = Clock(NOW - 40 * DAY)
    journal = Journal(tmp_path / "state" / "journal.sqlite", clock=clock)
    yield tmp_path, clock, journal, demo_song_path
    journal.close()


def test_an_hourly_pass_removes_exactly_what_is_old_and_finished(state):
    root, clock, journal, song = state
    config = Config(state_dir=root / "state", inbox=root / "inbox")
    inbox = InboxFrontend(JobService(config, journal, {}), config.inbox)
    for folder in (inbox.processed, inbox.rejected, inbox.status, inbox.processing):
        folder.mkdir(parents=True)
    ledger = SpendGuard(root / "state" / "musicgpt" / "musicgpt-spend.sqlite", clock=clock)

    # 40 days ago: a month of history, and two jobs still waiting on something.
    for job_id, job_state in (("old-done", State.DELIVERED), ("old-failed", State.FAILED),
                              ("old-cancelled", State.CANCELLED), ("old-unknown", State.SUBMISSION_UNKNOWN),
                              ("old-paid-unsettled", State.CANCELLED)):
        _job(journal, song, job_id, job_state)
    waiting = _job(journal, song, "old-generating", State.GENERATING,
                   origin={"kind": "file", "file": "w.json", "digest": "x", "status": str(inbox.status / "w.json")})
    ledger.record_unknown(ledger.record_intent("old-paid-unsettled", "inpaint"), "answer lost")
    ledger.record_accepted(ledger.record_intent("old-done", "inpaint"), "task-1", 2.0)
    # 5 days ago: recent history stays.
    clock.at = NOW - 5 * DAY
    _job(journal, song, "recent-done", State.DELIVERED)

    work = config.work_dir
    for name, days in (("old-done", 40), ("old-failed", 40), ("old-generating", 40), ("old-unknown", 40),
                       ("orphan-old", 10), ("orphan-new", 1), ("recent-done", 5)):
        _aged(work / name, days, text=None)
    for path, days in ((inbox.processed / "a.json", 8), (inbox.processed / "b.json", 2),
                       (inbox.rejected / "c.json", 9), (inbox.rejected / "c.error.json", 9),
                       (inbox.status / "a.json", 8), (inbox.status / "w.json", 30), (inbox.status / "b.json", 2),
                       (inbox.processing / "old-claim.json", 30), (config.inbox / "waiting.json", 30)):
        _aged(path, days)

    clock.at = NOW
    pruned = Pruner(Retention.from_config(config), journal, work, inbox=inbox, ledgers=[ledger],
                    clock=clock).prune()

    left = {r.job_id for r in journal.recent(100)}
    assert left == {"old-unknown", "old-paid-unsettled", "old-generating", "recent-done"}
    assert pruned.jobs == 3 and pruned.kept_jobs == 4 == journal.count()
    assert journal.get("old-generating").state is State.GENERATING and waiting.job_id in left
    assert sorted(p.name for p in work.iterdir()) == ["old-generating", "old-unknown", "orphan-new", "recent-done"]
    assert pruned.work_folders == 3
    assert sorted(p.name for p in inbox.processed.iterdir()) == ["b.json"]
    assert list(inbox.rejected.iterdir()) == []
    assert sorted(p.name for p in inbox.status.iterdir()) == ["b.json", "w.json"], "a waiting job's status went"
    assert (inbox.processing / "old-claim.json").exists() and (config.inbox / "waiting.json").exists()
    assert pruned.inbox_files == 4
    assert pruned.freed_bytes >= 3000
    # The settled row is 40 days old and goes; the unknown one stays, and so does its job.
    assert [(e["job_id"], e["state"]) for e in ledger.entries()] == [("old-paid-unsettled", "unknown")]
    assert pruned.ledger_rows == 1
    assert "removed 3 finished job(s)" in pruned.line() and "3 work folder(s)" in pruned.line()


def test_the_spend_ledger_keeps_intents_unknown_submits_and_the_last_day_whatever_the_window(tmp_path):
    clock = Clock(NOW - 3 * DAY)
    ledger = SpendGuard(tmp_path / "spend.sqlite", hourly_limit=5, clock=clock)
    ledger.record_intent("crashed-mid-submit", "inpaint")
    ledger.record_unknown(ledger.record_intent("lost-answer", "extend"), "timeout")
    ledger.record_accepted(ledger.record_intent("paid-long-ago", "inpaint"), "t-1", 1.0)
    ledger.record_refused(ledger.record_intent("refused-long-ago", "inpaint"), "422")
    ledger.record_dry_run("dry-long-ago", "inpaint")
    clock.at = NOW - 2 * 3600
    ledger.record_accepted(ledger.record_intent("paid-this-morning", "inpaint"), "t-2", 1.0)
    clock.at = NOW

    assert ledger.unsettled_jobs() == {"crashed-mid-submit", "lost-answer"}
    assert ledger.prune(before=NOW) == 3  # a window of "now" still spares the last 24 hours
    assert [e["job_id"] for e in ledger.entries()] == ["crashed-mid-submit", "lost-answer", "paid-this-morning"]
    assert ledger.totals()["requests_last_hour"] == 0 and ledger.totals()["requests_last_day"] == 1


def test_zero_days_keeps_everything_forever(state):
    root, clock, journal, song = state
    _job(journal, song, "ancient", State.DELIVERED)
    _aged(root / "state" / "work" / "orphan", 400, text=None)
    clock.at = NOW + 365 * DAY
    config = Config(state_dir=root / "state", retention={"jobs_days": 0, "files_days": 0})
    pruned = Pruner(Retention.from_config(config), journal, config.work_dir, clock=clock).prune()
    assert (pruned.jobs, pruned.work_folders, journal.count()) == (0, 0, 1)
    assert (root / "state" / "work" / "orphan").exists()


def test_retention_defaults_live_in_one_place():
    assert Retention.from_config(Config()) == Retention(jobs_days=30.0, files_days=7.0)
    assert Retention.from_config(Config(retention={"files_days": 1})) == Retention(30.0, 1.0)


def test_a_damaged_finished_row_is_reported_when_read_and_hides_nothing_else(state):
    root, _, journal, song = state
    _job(journal, song, "fine", State.DELIVERED)
    _job(journal, song, "damaged", State.DELIVERED)
    journal.close()
    db = sqlite3.connect(root / "state" / "journal.sqlite")
    db.execute("UPDATE jobs SET spec = '{broken' WHERE job_id = 'damaged'")
    db.commit()
    db.close()

    journal = Journal(root / "state" / "journal.sqlite")  # opens: only unfinished rows are read at start
    try:
        with pytest.raises(JournalError, match=r"job 'damaged' in the journal .* cannot be read"):
            journal.get("damaged")
        assert [r.job_id for r in journal.recent()] == ["fine"]
        assert journal.get("fine").state is State.DELIVERED and journal.count() == 2
    finally:
        journal.close()


def test_a_daemon_on_a_journal_with_a_damaged_old_job_starts_and_finishes_the_unfinished_one(project):
    journal = Journal(project.state / "journal.sqlite", clock=Clock(NOW - 2 * DAY))
    for n in range(20):
        _job(journal, project.song, f"history-{n:02d}", State.DELIVERED, drop=project.drop)
    _job(journal, project.song, "interrupted", State.GENERATING, drop=project.drop)
    journal.close()
    db = sqlite3.connect(project.state / "journal.sqlite")
    db.execute("UPDATE jobs SET spec = '{broken', state = 'delivered' WHERE job_id = 'history-07'")
    db.commit()
    db.close()

    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            ended = None
            deadline = time.monotonic() + 120
            while ended is None and time.monotonic() < deadline:
                client.send("status", job_id="interrupted")
                reply = client.wait_for(lambda r: r.name == "state", timeout=5)
                ended = reply if reply is not None and reply.args[1] in ("delivered", "failed") else None
                time.sleep(0.2)
            client.send("status", job_id="history-07")
            # each status asked while the job ran also sends its end when it comes: those are not the answer
            said = client.wait_for(lambda r: r.name == "error" or (r.name == "state" and r.args[0] == "history-07"),
                                   timeout=5)
    finally:
        assert daemon.stop() == 0
    assert ended is not None and ended.args[1] == "delivered", (ended, daemon.log.read_text())
    manifests = list(project.drop.glob("*.json"))
    assert len(manifests) == 1 and "interrupted" in manifests[0].read_text(), manifests
    assert said is not None and said.name == "error" and any("cannot be read" in str(a) for a in said.args), said
    log = daemon.log.read_text()
    assert "1 job(s) resumed" in log and "retention: removed 0 finished job(s)" in log, log
    assert "Traceback" not in log, log


def test_a_paid_job_delivered_this_morning_under_half_a_day_of_retention_is_not_reported_as_lost(state, caplog):
    """jobs_days = 0.5: the ledger keeps a paid row its last day whatever the window (the limits count it), so the
    journal keeps the job as long, or every pass after the journal's prune named a delivered job as paid with its
    journal deleted or moved away, its results not brought in."""
    tmp_path, clock, journal, song = state
    ledger = SpendGuard(tmp_path / "state" / "musicgpt" / "musicgpt-spend.sqlite", clock=clock)
    clock.at = NOW - 14 * 3600
    ledger.record_accepted(ledger.record_intent("paid-this-morning", "inpaint"), "t-1", 1.0)
    clock.at = NOW - 13 * 3600
    _job(journal, song, "paid-this-morning", State.DELIVERED)
    clock.at = NOW
    pruner = Pruner(Retention(jobs_days=0.5, files_days=0), journal, tmp_path / "state" / "work", ledgers=[ledger],
                    clock=clock)
    with caplog.at_level(logging.WARNING, logger="bridge.core.retention"):
        pruner.prune()
        pruner.prune()
    assert [r.getMessage() for r in caplog.records] == []
    assert journal.job_ids() == {"paid-this-morning"}

    clock.at = NOW + DAY  # the ledger's day is over: the job and its row go together
    pruned = pruner.prune()
    assert (pruned.jobs, pruned.ledger_rows) == (1, 1) and journal.job_ids() == set()
