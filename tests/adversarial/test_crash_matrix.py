"""SIGKILL at every job state, then a restart: each job ends once, no paid submit is repeated, no partial file shows.

The daemon announces each state over OSC as it journals it; the test kills the process the moment the state it
targets arrives (the kill lands a little later, as a real crash would). The same OSC socket stays open across the
restart, so the resumed job's replies reach it too and "exactly once" can be counted on the wire as well as in the
journal and the drop folder.

For MusicGPT (the fake service on loopback) a kill while submitting must end in ``submission_unknown`` rather than
in a second, paid submit; the test then does what the producer would (resolve it with the task id the dashboard
shows, or as not submitted when the dashboard shows none) and the job is delivered without paying twice. The extra
case "paid" kills only once the fake has taken (and charged for) the task while its answer is still on the way:
the one window where a resubmit would cost money.
"""

from __future__ import annotations

import json
import time

import pytest
import soundfile as sf

from bridge.client import BridgeClient
from tests.adversarial.support import (
    Daemon,
    files_under,
    journal_records,
    musicgpt_table,
)
from tests.conftest import Project
from tests.core.test_crash import DropFolderWatcher
from tests.fakes.musicgpt import FakeMusicGPT

STATES = ["accepted", "exporting", "submitting", "submitting, paid", "submitted", "generating", "delivering"]
OUTPUTS = 2


def _wait_until_settled(project: Project, timeout: float = 120.0):
    """The job's record once it is finished or waiting for the producer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = journal_records(project)
        if records and (records[0].state.finished or records[0].state.waiting_for_producer):
            return records[0]
        time.sleep(0.1)
    raise AssertionError(f"job never settled: {journal_records(project)}")


def _delivered_files_are_whole(project: Project) -> list[str]:
    problems = []
    for manifest_path in project.drop.glob("*.json"):
        manifest = json.loads(manifest_path.read_text())
        audio = project.drop / manifest["audio"]
        if not audio.exists() or sf.info(str(audio)).frames != manifest["frames"]:
            problems.append(f"{manifest_path.name} does not match its audio")
        if manifest["picture"] and not (project.drop / manifest["picture"]).read_bytes().startswith(b"\x89PNG"):
            problems.append(f"{manifest_path.name} names a picture that is not a PNG")
    return problems


@pytest.mark.parametrize("backend,state", [("local", s) for s in STATES if "paid" not in s]
                         + [("musicgpt", s) for s in STATES])
def test_sigkill_at_each_state_then_restart_ends_the_job_exactly_once(backend, state, tmp_path, demo_song_path,
                                                                      figures):
    project = Project(tmp_path / "project", demo_song_path)
    fake = FakeMusicGPT(time_scale=0.01, eta=20).start() if backend == "musicgpt" else None
    env = {}
    if fake is not None:
        fake.slow_factor = 5.0  # a second of generating: the kill lands inside it
        if state.startswith("submitting"):  # MusicGPT takes (and charges for) the task, then its answer hangs
            fake.inject("submit", "timeout_after_accept", seconds=30)
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        env = {"MUSICGPT_API_KEY": fake.api_key}
    watcher = DropFolderWatcher(project.drop)
    watcher.start()
    replies = []
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            first = Daemon(project, env=env).start()
            try:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass stabs",
                            num_outputs=OUTPUTS, request_id=f"crash-{state}")

                announced = state.split(",")[0]

                def target(reply) -> bool:
                    replies.append(reply)
                    if reply.name in ("failed", "error"):
                        raise AssertionError(f"the job ended before {state}: {reply.args}")
                    return reply.name == announced if announced == "accepted" else \
                        reply.name == "state" and reply.args[1] == announced

                assert client.wait_for(target, timeout=60) is not None, f"never saw {state}"
                if state == "submitting, paid":
                    deadline = time.monotonic() + 10
                    while not fake.total_submits and time.monotonic() < deadline:
                        time.sleep(0.002)
            finally:
                first.kill()
            landed = journal_records(project)[0].state.value
            paid_before_restart = fake.total_submits if fake else 0
            if fake is not None and not paid_before_restart:
                # the kill came before the POST left (a loaded machine): its hanging answer is not the resubmit's
                fake.clear_faults("submit")

            second = Daemon(project, env=env).start()
            try:
                record = _wait_until_settled(project)
                resolved = 0
                while record.state.waiting_for_producer and resolved < 3:
                    # What the producer does: look on the dashboard, resolve with the task found there, if any.
                    assert fake is not None and "resolve" in record.message, record
                    client.send("resolve", job_id=record.job_id, task_id=next(iter(fake.tasks), ""))
                    resolved += 1
                    client.wait_for(lambda r: r.name == "state" and r.args[1] != "submission_unknown", timeout=10)
                    record = _wait_until_settled(project)
                settle = time.monotonic() + 1.0
                while time.monotonic() < settle:  # any late or repeated reply arrives now
                    reply = client.receive(timeout=max(settle - time.monotonic(), 0.01))
                    if reply is not None:
                        replies.append(reply)
            finally:
                second.stop()
    finally:
        watcher.stop()
        if fake is not None:
            fake.stop()

    records = journal_records(project)
    assert [r.request_id for r in records] == [f"crash-{state}"], "the job was duplicated or lost"
    job = records[0]
    outcome = [r.name for r in replies if r.name in ("done", "failed") and r.args[0] == job.job_id]
    assert len(outcome) <= 1, f"the job's outcome was announced {len(outcome)} times: {outcome}"
    assert job.state.value == "delivered" or (job.state.value == "failed" and job.error_message), job.summary()
    # A submit whose fate is unknown must wait for the producer, not fail: a failed job can be retried, and a retry
    # would pay again.
    assert job.error_code != "submission_unknown", job.summary()
    visible = project.visible_drop_files()
    if job.state.value == "delivered":
        # A picture beside each variant whose manifest names one (they are drawn after "done": a stop can come first).
        pictures = sum(bool(json.loads(p.read_text())["picture"]) for p in visible if p.suffix == ".json")
        expected = [".json"] * OUTPUTS + [".png"] * pictures + [".wav"] * OUTPUTS
        assert sorted(p.suffix for p in visible) == expected, visible
        assert _delivered_files_are_whole(project) == []
    else:
        assert visible == [], visible
    assert files_under(project.drop) == visible, "a hidden temporary file was left in the drop folder"
    assert watcher.problems == [] and watcher.looks > 5, watcher.problems
    if fake is not None:
        # Tasks created is what MusicGPT charges for (a POST cut off by the kill before its body arrived is not).
        assert fake.total_submits == 1, f"{fake.total_submits} paid tasks for one job"
    figures.setdefault("crash matrix", {})[f"{backend} killed on {state}"] = (
        f"journal at kill: {landed}; ended {job.state.value}"
        + (f" ({job.error_code}: {job.error_message})" if job.error_code else "")
        + (f" after {resolved} resolve(s)" if resolved else "")
        + (f"; paid submits {paid_before_restart}->{fake.total_submits}" if fake else ""))
