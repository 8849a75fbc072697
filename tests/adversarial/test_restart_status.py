"""After a restart, whoever sent a job hears of the state the restart left it in, without asking.

A request file's sender (REAPER's script) reads only its status file, and a DAW that sent a job over OSC hears only
the replies sent to its port. The daemon took up the journal's unfinished jobs before its frontends listened: a paid
submit cut off by a kill became submission_unknown at the restart, and the status file kept "submitting" (its old
``updated`` time) until the producer ran 'jobs resolve' on a state never shown to them. A status file left stale by
a daemon killed between the journal's write and the status file's was never written again either.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.client import BridgeClient
from tests.adversarial.support import Daemon, journal_records, musicgpt_table
from tests.conftest import Project
from tests.fakes.musicgpt import FakeMusicGPT
from tests.frontends.test_inbox import drop_request


def _musicgpt_project(tmp_path: Path, song: Path) -> tuple[Project, FakeMusicGPT, dict]:
    project = Project(tmp_path / "project", song)
    fake = FakeMusicGPT(time_scale=0.01, eta=20).start()
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    return project, fake, {"MUSICGPT_API_KEY": fake.api_key}


def _request(project: Project) -> dict:
    # no request_id: the status file is named after the request file
    return {"command": "inpaint", "source": str(project.song), "start": 12.0, "end": 16.0, "prompt": "brass stabs",
            "num_outputs": 1}


def _until(what: str, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def _status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet
        return None


def _status_saying(path: Path, state: str, timeout: float = 15.0) -> dict:
    try:
        return _until(f"the status file says {state}",
                      lambda: (status := _status(path)) is not None and status["state"] == state and status, timeout)
    except AssertionError:
        raise AssertionError(f"{path.name} never said {state!r}: it says {_status(path)}") from None


def _settled(project: Project, timeout: float = 60.0):
    """The job's journaled record once it is finished or waits for the producer."""
    return _until("the job settles", lambda: (records := journal_records(project)) and (
        records[0].state.finished or records[0].state.waiting_for_producer) and records[0], timeout)


def test_a_request_files_status_says_submission_unknown_after_a_kill_while_submitting(tmp_path, demo_song_path):
    project, fake, env = _musicgpt_project(tmp_path, demo_song_path)
    fake.inject("submit", "slow_accept", seconds=10)  # the task is made (and paid for); its answer comes 10 s later
    status_file = project.inbox / "status" / "rq1.json"
    try:
        first = Daemon(project, env=env).start()
        try:
            drop_request(project.inbox, "rq1", _request(project))
            _until("MusicGPT takes the task", lambda: fake.total_submits == 1, 60)
            assert _status_saying(status_file, "submitting")
        finally:
            first.kill()  # its answer still on the way
        stale = status_file.read_text()
        assert [r.state.value for r in journal_records(project)] == ["submitting"]

        second = Daemon(project, env=env).start()
        try:
            record = _settled(project)
            assert record.state.value == "submission_unknown", record.summary()
            # what the journal says, and what the producer must do (it kept "submitting" for good)
            status = _status_saying(status_file, "submission_unknown")
            assert status["job_id"] == record.job_id and "jobs resolve" in status["message"], status
        finally:
            second.stop()

        # A status file left stale (a daemon killed after the journal's write, before the status file's; or one
        # older than this fix): the next start writes what the journal says, though the job does not change.
        status_file.write_text(stale)
        third = Daemon(project, env=env).start()
        try:
            status = _status_saying(status_file, "submission_unknown")
            assert "jobs resolve" in status["message"] and status["updated"] > json.loads(stale)["updated"], status
        finally:
            third.stop()
        assert fake.total_submits == 1
    finally:
        fake.stop()


def test_a_job_the_restart_fails_says_so_in_its_status_file_and_to_its_osc_sender(tmp_path, demo_song_path):
    """Killed while generating; the song is cut while the daemon is down, so the restart's check of the source fails
    both jobs at once: the request file's status says failed with the reason, and the DAW that sent the other over
    OSC hears "failed" on the port it sent from, without asking."""
    project, fake, env = _musicgpt_project(tmp_path, demo_song_path)
    fake.slow_factor = 50.0  # 10 s of generating: the kill lands inside it
    status_file = project.inbox / "status" / "rq1.json"
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            first = Daemon(project, env=env).start()
            try:
                drop_request(project.inbox, "rq1", _request(project))
                client.send("inpaint", source=str(project.song), start=20.0, end=24.0, prompt="strings",
                            num_outputs=1, request_id="by-osc")
                _status_saying(status_file, "generating", timeout=60)
                _until("both jobs generate", lambda: [r.state.value for r in journal_records(project)]
                       == ["generating"] * 2, 60)
            finally:
                first.kill()
            audio, rate = sf.read(project.song)
            sf.write(project.song, np.ascontiguousarray(audio[: len(audio) // 2]), rate)  # a shorter song

            second = Daemon(project, env=env).start()
            try:
                _until("both jobs fail", lambda: [r.state.value for r in journal_records(project)]
                       == ["failed"] * 2, 60)
                by_file, by_osc = sorted(journal_records(project), key=lambda r: r.request_id != "")
                status = _status_saying(status_file, "failed")
                assert status["job_id"] == by_file.job_id, status
                assert status["error"]["message"] == by_file.error_message and status["error"]["code"], status
                heard = client.wait_for(lambda r: r.name == "failed" and r.args[0] == by_osc.job_id, timeout=10)
                assert heard is not None, "the OSC sender never heard its job failed at the restart"
            finally:
                second.stop()
    finally:
        fake.stop()
