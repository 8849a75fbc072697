"""An outsider's crashes of MusicGPT jobs: a process killed at a chosen instant, then time passing (or the clock
jumping ahead), then the producer doing what the daemon told them. One job, one task, whatever came between."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from bridge.backends.musicgpt.spend import SpendGuard
from bridge.backends.musicgpt.webhooks import WebhookSettings
from bridge.client import BridgeClient
from bridge.core.journal import Journal
from bridge.core.retention import Pruner, Retention
from tests.adversarial.money_scenarios import Stage
from tests.adversarial.support import free_tcp_port, musicgpt_table
from tests.backends.musicgpt.support import make_backend, make_spec, run, run_job
from tests.conftest import ROOT, adopting_orphans, daemon_environment

DAY = 86400

# Runs ``daw-bridge ARGS`` in this process after a change made at a chosen point: SIGKILL right after the spend
# ledger writes down that MusicGPT accepted the task (the answer is on disk in the ledger, not yet in the journal),
# or a clock that runs ``DAW_BRIDGE_TEST_CLOCK_AHEAD`` seconds ahead (the machine's clock jumped, or a month went by).
_BRIDGE_WITH_HOOKS = """
import os, runpy, signal, sys, time
ahead = float(os.environ.get("DAW_BRIDGE_TEST_CLOCK_AHEAD", "0"))
if ahead:
    real = time.time
    time.time = lambda: real() + ahead
if os.environ.get("DAW_BRIDGE_TEST_KILL_AFTER_ACCEPTED"):
    from bridge.backends.musicgpt import spend
    accepted = spend.SpendGuard.record_accepted
    def record_and_die(self, *args, **kwargs):
        accepted(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    spend.SpendGuard.record_accepted = record_and_die
sys.argv = ["daw-bridge"] + sys.argv[1:]
runpy.run_module("bridge", run_name="__main__", alter_sys=True)
"""


def _bridge(project, fake, *args: str, timeout: float = 120, **hooks: str) -> subprocess.CompletedProcess:
    env = daemon_environment({"MUSICGPT_API_KEY": fake.api_key, **hooks})
    with adopting_orphans():  # a hook may SIGKILL the command: its workers end with it
        return subprocess.run([sys.executable, "-c", _BRIDGE_WITH_HOOKS, *args, "--config", str(project.config)],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def _serve_once(project, fake, **hooks: str) -> None:
    """Start the daemon, wait until it answers (its start-up retention pass has run by then or runs meanwhile), give
    its retention pass time to finish, and stop it."""
    env = daemon_environment({"MUSICGPT_API_KEY": fake.api_key, **hooks})
    log = open(project.root / "daemon.log", "a")
    proc = subprocess.Popen([sys.executable, "-c", _BRIDGE_WITH_HOOKS, "serve", "--config", str(project.config)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            deadline = time.monotonic() + 60
            while not client.ping(timeout=0.3):
                assert proc.poll() is None and time.monotonic() < deadline, (project.root / "daemon.log").read_text()
        deadline = time.monotonic() + 60
        while "retention:" not in (project.root / "daemon.log").read_text():
            assert time.monotonic() < deadline, "the daemon's retention pass never reported"
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _one_shot_job(project) -> tuple[str, str]:
    with sqlite3.connect(project.state / "one-shot-journal.sqlite") as db:
        return db.execute("SELECT job_id, state FROM jobs").fetchone()


def _ledger(project) -> list[tuple[str, str | None]]:
    with sqlite3.connect(project.state / "musicgpt" / "musicgpt-spend.sqlite") as db:
        return db.execute("SELECT state, task_id FROM submits ORDER BY id").fetchall()


@pytest.mark.parametrize("retention", ["", "[retention]\nfiles_days = 0\n"], ids=["default", "files-kept"])
def test_a_one_shot_killed_once_its_task_was_accepted_is_not_paid_again_after_a_month(project, fake, retention):
    """`daw-bridge inpaint` killed just after MusicGPT accepted (the ledger knows the task, the journal still says
    "submitting"); the daemon runs a month later (or the clock jumps a month ahead), and its retention pass ages
    settled ledger rows out; then `jobs retry JOB`, as the README says for a killed one-shot command. The ledger row
    was the only record of the task: with it gone, the retry took the job for never sent and paid again (files
    kept), or failed with a traceback on the upload the same pass had deleted with the job's work folder (default)."""
    project.write_config('backend = "musicgpt"\n' + retention + '[local]\nwarm_up = false\n'
                         + musicgpt_table(fake.url, context_s=8.0, eta_scale=0.01, poll_interval_s=0.05,
                                          poll_max_interval_s=0.2, retry_base_s=0.01, poll_calls_per_minute=6000))
    killed = _bridge(project, fake, "inpaint", str(project.song), "--start", "12", "--end", "16", "--prompt",
                     "brass stabs", "--num-outputs", "1", DAW_BRIDGE_TEST_KILL_AFTER_ACCEPTED="1")
    job_id, state = _one_shot_job(project)
    assert killed.returncode == -9 and state == "submitting", (killed.returncode, state, killed.stderr)
    task = next(iter(fake.tasks))
    assert fake.total_submits == 1 and _ledger(project) == [("accepted", task)]

    _serve_once(project, fake, DAW_BRIDGE_TEST_CLOCK_AHEAD=str(31 * DAY))
    retried = _bridge(project, fake, "jobs", "retry", job_id)

    assert fake.total_submits == 1, f"paid again: {sum(fake.submit_requests.values())} POSTs; {retried.stderr}"
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert _one_shot_job(project) == (job_id, "delivered")
    listing = _bridge(project, fake, "jobs", "--json")
    assert [(j["job_id"], j["state"], j["task_id"]) for j in json.loads(listing.stdout)] == [
        (job_id, "delivered", task)]


def test_a_one_shot_journal_that_cannot_be_read_keeps_every_ledger_row_and_work_folder(tmp_path, caplog):
    """Its jobs may hang on any of them: nothing of the kind goes until it can be read (a finished job of the
    daemon's own still leaves the journal)."""
    state = tmp_path / "state"
    ledger = SpendGuard(state / "musicgpt" / "musicgpt-spend.sqlite", clock=lambda: time.time() - 40 * DAY)
    ledger.record_accepted(ledger.record_intent("one-shot-job", "inpaint"), "task-1", 1.0)
    folder = state / "work" / "one-shot-job"
    folder.mkdir(parents=True)
    os.utime(folder, (time.time() - 40 * DAY,) * 2)
    (state / "one-shot-journal.sqlite").write_bytes(b"not a database, whatever it was" * 100)
    journal = Journal(state / "journal.sqlite")
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.core.retention"):
            pruned = Pruner(Retention(), journal, state / "work", ledgers=[ledger],
                            others=[state / "one-shot-journal.sqlite"]).prune()
    finally:
        journal.close()
    assert (pruned.ledger_rows, pruned.work_folders) == (0, 0)
    assert [e["task_id"] for e in ledger.entries()] == ["task-1"] and folder.exists()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"retention: the journal {state / 'one-shot-journal.sqlite'} cannot be read"]


@pytest.mark.parametrize("loss", ["deleted", "damaged, then moved away"])
def test_a_job_killed_mid_submit_is_not_sent_again_when_the_spend_ledger_is_lost(tmp_path, demo_song_path, loss):
    """The daemon killed while MusicGPT holds its POST (the task created, the answer not yet back), then the spend
    ledger is lost: deleted, or damaged and moved away as the daemon's refusal says. The journal says "submitting";
    a new, empty ledger cannot say whether anything left, and must not be read as "never sent"."""
    with Stage(tmp_path / "project", demo_song_path) as stage:
        stage.fake.inject("submit", "slow_accept", seconds=30)
        stage.start()
        job = stage.inpaint("lost-ledger")
        stage.wait_until("the task created", lambda: stage.fake.total_submits == 1)
        stage.kill()
        ledger = stage.project.state / "musicgpt" / "musicgpt-spend.sqlite"
        if loss == "deleted":
            ledger.unlink()
        else:
            ledger.write_bytes(b"\0" * 4096)
            refused = subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(stage.project.config)],
                                     env=daemon_environment(stage.env), cwd=ROOT, capture_output=True, text=True,
                                     timeout=60, check=False)
            said = (refused.stdout + refused.stderr).strip()
            assert refused.returncode == 2 and len(said.splitlines()) == 1 and "Traceback" not in said, said
            assert f"the MusicGPT spend ledger {ledger} is damaged" in said and "move it away" in said, said
            ledger.rename(ledger.with_name("moved-away.sqlite"))
        stage.start()
        record = stage.settle(job)
        assert (record.state.value, stage.fake.total_submits, sum(stage.fake.submit_requests.values())) == (
            "submission_unknown", 1, 1), record.summary()
        assert stage.cli("retry", job).returncode != 0 and sum(stage.fake.submit_requests.values()) == 1
        assert stage.cli("resolve", job, "--task-id", stage.task_of(job)).returncode == 0
        assert stage.settle(job, leave="submission_unknown").state.value == "delivered"
    assert (stage.fake.total_submits, sum(stage.fake.submit_requests.values())) == (1, 1)


def _webhooks_on(port: int) -> WebhookSettings:
    return WebhookSettings(public_url=f"http://127.0.0.1:{port}", bind_port=port)


def test_jobs_resumed_together_all_get_their_webhooks(fake, song, tmp_path, caplog):
    """A daemon restarted with two paid jobs generating and webhooks configured: both resume at once and both
    started the receiver; all but the first failed binding its port, as internal errors with a traceback (33 jobs
    in 185 random kills of the outsider's fuzz run)."""
    port = free_tcp_port()
    fake.slow_factor = 20.0  # still generating when the daemon "restarts"
    specs = [make_spec(song, job_id=f"j-20261201-000000-{n}", num_outputs=1) for n in ("aaaa", "bbbb")]

    async def story():
        before = make_backend(fake, tmp_path / "musicgpt", webhook=_webhooks_on(port), concurrency=2)
        jobs = []
        try:
            for spec in specs:
                (tmp_path / spec.job_id).mkdir()
                prepared = await before.prepare(spec, tmp_path / spec.job_id)
                jobs.append((spec, prepared, await before.submit(spec, prepared)))
        finally:
            await before.close()  # the daemon went down
        after = make_backend(fake, tmp_path / "musicgpt", webhook=_webhooks_on(port), concurrency=2)
        try:
            return await asyncio.gather(*(after.wait(spec, prepared, receipt, tmp_path / spec.job_id,
                                                     lambda *_: None) for spec, prepared, receipt in jobs))
        finally:
            await after.close()

    with caplog.at_level(logging.WARNING, logger="bridge.backends.musicgpt"):
        rendered = run(story())
    assert [len(variants) for variants in rendered] == [1, 1] and fake.total_submits == 2
    assert [r.getMessage() for r in caplog.records if "cannot listen" in r.getMessage()] == []


def test_a_webhook_port_held_by_another_program_leaves_the_job_polling_not_failed_as_maybe_paid(fake, song,
                                                                                                 tmp_path):
    """The receiver could not listen, after the intent to pay was written down: the job failed with a traceback
    and its retry was refused as "may have been paid for", though nothing had been sent."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        backend = make_backend(fake, tmp_path / "musicgpt", webhook=_webhooks_on(port))

        async def story():
            try:
                return await run_job(backend, make_spec(song, num_outputs=1), tmp_path / "work")
            finally:
                await backend.close()

        _, receipt, rendered = run(story())
    assert len(rendered) == 1 and "webhook_secret" not in receipt
    assert [task.fields.get("webhook_url") for task in fake.tasks.values()] == [None]
    assert [e["state"] for e in backend.spend.entries()] == ["accepted"]


def _wait_for_task(fake, song, tmp_path, receipt_changes: dict, **settings):
    """Submit a job, then wait for its task as a restarted daemon would (a fresh backend, the journaled receipt with
    ``receipt_changes``); the rendered variants and the byId calls made. The hour-long bound only ends a hang."""
    spec = make_spec(song, num_outputs=1)
    workdir = tmp_path / "work"
    workdir.mkdir()

    async def story():
        first = make_backend(fake, tmp_path / "musicgpt")
        try:
            prepared = await first.prepare(spec, workdir)
            receipt = await first.submit(spec, prepared)
        finally:
            await first.close()
        resumed = make_backend(fake, tmp_path / "musicgpt", **settings)
        try:
            return await asyncio.wait_for(resumed.wait(spec, prepared, {**receipt, **receipt_changes}, workdir,
                                                       lambda *_: None), 3600)
        finally:
            await resumed.close()

    return run(story()), sum(fake.by_id_calls.values())


def test_a_clock_set_back_an_hour_since_the_submit_does_not_leave_the_job_silent_for_an_hour(fake, song, tmp_path):
    """The receipt's submitted_at lies in the future after the clock was set back: the first poll was scheduled at
    submitted_at + eta, so the resumed job waited the whole hour without a word to MusicGPT."""
    rendered, polls = _wait_for_task(fake, song, tmp_path, {"submitted_at": time.time() + 3600})
    assert len(rendered) == 1 and polls >= 1


def test_a_clock_jumping_a_day_ahead_mid_wait_does_not_time_the_task_out(fake, song, tmp_path, monkeypatch):
    """The wall clock jumps ahead a day after the first poll (a machine whose clock was wrong meets NTP): the job
    failed at once as generation_timeout, for a wait of a fraction of a second."""
    fake.slow_factor = 10.0  # pending at the first polls
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + (DAY if fake.by_id_calls else 0))
    rendered, polls = _wait_for_task(fake, song, tmp_path, {}, max_wait_s=600)
    assert len(rendered) == 1 and polls >= 2


def test_a_request_sent_again_after_the_journal_was_lost_is_not_paid_for_again(tmp_path, demo_song_path):
    """A paid job in flight, the daemon killed, the journal lost (deleted, or damaged and moved away as the daemon
    says), the DAW sending the same request again: the journal that made a resend the job it already was is gone,
    and a second task was created for it. The ledger knows the request: the new job is refused before sending. And
    the paid job nothing brings in any more is named in the log, where it had vanished without a word."""
    with Stage(tmp_path / "project", demo_song_path) as stage:
        stage.fake.slow_factor = 20.0
        stage.start()
        first = stage.inpaint("take-1")
        stage.wait_event(first, "generating")
        stage.kill()
        for path in stage.project.state.glob("journal.sqlite*"):
            path.unlink()
        stage.start()
        task = stage.task_of(first)
        stage.wait_until("the paid job named", lambda: f"{first} (task {task})" in stage.project.root.joinpath(
            "daemon.log").read_text())
        again = stage.inpaint("take-1")
        record = stage.settle(again)
        assert (record.state.value, record.error_code) == ("failed", "already_submitted"), record.summary()
        assert f"request take-1 was already submitted to MusicGPT as job {first}" in record.error_message
        assert stage.fake.total_submits == 1 and sum(stage.fake.submit_requests.values()) == 1
        fresh = stage.inpaint("take-2")
        assert stage.settle(fresh).state.value == "delivered" and stage.fake.total_submits == 2
