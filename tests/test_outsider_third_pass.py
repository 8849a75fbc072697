"""An outsider's third pass at the paid path and the credentials: a config mistake in an address that carries a
gateway's or a tunnel's password, and a finished task whose storage addresses expired before they were fetched."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tests.fakes.musicgpt as fake_module
from bridge.backends.musicgpt.spend import SpendGuard
from bridge.client import BridgeClient
from tests.adversarial.support import Daemon, journal_records, musicgpt_table
from tests.fakes.musicgpt import FakeMusicGPT
from tests.test_cli import daw_bridge

GATEWAY_PASSWORD = "gatewayPASS-5e4d3c"
TUNNEL_PASSWORD = "tunnelPASS-9a8b7c"
TOKEN = "tok-SECRET-1f2e3d"


@pytest.mark.parametrize("table", [
    f'[musicgpt]\nbase_url = "https://gw:{GATEWAY_PASSWORD}@api.example.com/api/public?token={TOKEN}"\n',
    f'[musicgpt]\nbase_url = "http://gw:{GATEWAY_PASSWORD}@api.example.com/api/public"\n',
    f'[musicgpt.webhook]\npublic_url = "https://hooks:{TUNNEL_PASSWORD}@tunnel.example.net:99999/daw"\n',
], ids=["query", "plain-http", "bad-port"])
@pytest.mark.parametrize("command", ["doctor", "serve", "jobs"])
def test_a_config_mistake_in_an_address_with_a_password_names_it_without_the_password(project, table, command):
    """The one line naming the mistake showed the address as written, user:password@ and ?query included, on the
    terminal and in the service manager's log, where every log line masks them."""
    project.write_config(table)
    done = daw_bridge(command, "--config", str(project.config), timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    for secret in (GATEWAY_PASSWORD, TUNNEL_PASSWORD, TOKEN):
        assert secret not in said
    [line] = [line for line in said.splitlines() if "url" in line]
    assert line.startswith(f"daw-bridge: {project.config}:") and "url = " in line and "<redacted>@" in line


@pytest.mark.parametrize("outputs", [1, 2])
def test_storage_addresses_that_expired_before_the_download_are_asked_for_again_not_paid_for_again(project, outputs):
    """Storage's signed addresses expire (a variant fetched after another's long download, a slow link): the job
    failed as 'audio file gone or refused (HTTP 403)', though byId hands out fresh addresses for free, and a producer
    told that sends the command again, paying again. The daemon now asks byId once more and delivers the one task."""
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.signed_urls = True
        fake.expired_urls = 1  # the first answer that offers the audio offers it at addresses already expired
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass",
                            num_outputs=outputs)
                last = client.wait_for(lambda reply: reply.name in ("done", "failed", "error"), timeout=120)
        finally:
            daemon.stop()
    assert last.name == "done", last
    assert fake.total_submits == 1 and fake.expired_urls == 0
    [task] = fake.tasks.values()
    delivered = sorted(json.loads(Path(m).read_text(encoding="utf-8"))["notes"]["conversion_id"]
                       for m in project.drop.glob("*.json"))
    assert delivered == sorted(task.conversion_ids)
    assert "asking MusicGPT for the task's audio addresses again" in daemon.log.read_text()


class _SendsOnToNoPort(BaseHTTPRequestHandler):
    """A storage host that sends every download on (302) to an address whose port is past 65535."""

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:99999/v1.wav?X-Amz-Signature={SIGNATURE}")
        self.send_header("Content-Length", "0")
        self.end_headers()


SIGNATURE = "5a" * 32


def test_a_wav_sent_on_to_an_address_with_no_port_falls_back_to_the_mp3(project, monkeypatch):
    """The address byId gives is checked before it is fetched, but not where storage sends the download on: a
    redirect to a port past 65535 raised an OverflowError in an ExceptionGroup from inside httpx, and the paid job
    failed as 'internal error: ExceptionGroup: unhandled errors in a TaskGroup' with a traceback in the log, every
    retry the same, the MP3 beside it never fetched."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SendsOnToNoPort)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    fake_module.offer_wav_at(monkeypatch, f"http://127.0.0.1:{server.server_address[1]}/v1.wav")
    try:
        with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
            project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
            daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
            try:
                with BridgeClient("127.0.0.1", project.port) as client:
                    client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass",
                                num_outputs=1)
                    last = client.wait_for(lambda reply: reply.name in ("done", "failed", "error"), timeout=120)
            finally:
                daemon.stop()
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
    log = daemon.log.read_text()
    assert last.name == "done", last
    assert json.loads(Path(last.args[1]).read_text(encoding="utf-8"))["notes"]["downloaded"] == "mp3"
    assert fake.total_submits == 1 and "Traceback" not in log and SIGNATURE not in log
    assert "variant 1: WAV download failed (MusicGPT's storage sent the download on to an address that is not " \
           "a web address: http://127.0.0.1:99999/v1.wav)" in log


def test_a_429_with_retry_after_holds_the_submit_back_that_long_and_one_task_is_made(project):
    """MusicGPT documents no Retry-After, but a gateway in front of it sends one with its 429: the daemon asked
    again after its own short backoff, earning 429 after 429 (each refused, so unpaid, but counted against the
    account's rate). It now waits at least as long as asked, and the job is made once."""
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("submit", "429", retry_after=2)
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                last = client.wait_for(lambda reply: reply.name in ("done", "failed", "error"), timeout=120)
        finally:
            daemon.stop()
    assert last.name == "done", last
    assert fake.total_submits == 1 and sum(fake.submit_requests.values()) == 2
    first, second = fake.submit_times
    assert second - first >= 2.0  # a lower bound the daemon's own wait guarantees, not a race
    assert "MusicGPT answered 429 to inpaint: queueing for 2.0 s" in daemon.log.read_text()


API_KEY = "sk-LEAKME-0a1b2c3d4e"


@pytest.mark.parametrize("written", [
    f'api_key: "{API_KEY}"',  # YAML's habit
    f'api_key "{API_KEY}"',
    f'[musicgpt] api_key = "{API_KEY}" # the table and the key on one line',
    f'api_key = """\n{API_KEY}',  # a multi-line string never closed: the error is on the key's own line
    f"api_key = [\n'{API_KEY}',\n]]",
    f'[musicgpt.webhook]\npublic_url = "https://hooks:{TUNNEL_PASSWORD}@tunnel.example.net/daw" then',
], ids=["yaml-colon", "no-equals", "table-and-key", "open-string", "open-list", "tunnel-password"])
def test_a_config_file_that_is_no_toml_is_told_without_the_key_written_in_it(project, written):
    """A syntax error quotes the line it is on, hiding an api_key's value only when written 'api_key = …': the key
    written as YAML has it ('api_key: "sk-…"'), the line of a multi-line value, a table header before the key or a
    tunnel's password in an address were printed whole, on the terminal and in the service manager's log."""
    project.config.write_text(f'[musicgpt]\n{written}\n' if not written.startswith("[") else written + "\n",
                              encoding="utf-8")
    project.config.chmod(0o600)
    done = daw_bridge("doctor", "--config", str(project.config), timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert API_KEY not in said and TUNNEL_PASSWORD not in said and "LEAKME" not in said
    [line] = said.splitlines()
    assert line.startswith(f"daw-bridge: {project.config}:") and "not valid TOML" in line


def _ledger_rows(ledger: Path, job: str) -> list[str]:
    return [row["state"] for row in SpendGuard(ledger).entries(job)]


@pytest.mark.parametrize("how", ["cancel", "stop"])
def test_a_job_stopped_while_the_ledger_was_busy_is_not_taken_for_one_that_may_have_paid(project, how):
    """The spend ledger is shared (a one-shot command, 'doctor' and the retention write it too), so writing a job's
    intent may wait for it. A job cancelled, or a daemon stopped, meanwhile left the intent written after the job had
    gone: a submit never sent stood in the ledger as one that may have been paid for, so 'jobs retry' was refused
    ('may have been paid for already') and a restart asked the producer to look on the dashboard for a task that
    never was, while it counted against the hourly and daily limits. The intent is now settled as not sent."""
    ledger = project.state / "musicgpt" / "musicgpt-spend.sqlite"
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        env = {"MUSICGPT_API_KEY": fake.api_key}
        daemon = Daemon(project, env=env).start()
        busy = sqlite3.connect(ledger, isolation_level=None)  # made by the daemon's start
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                busy.execute("BEGIN IMMEDIATE")  # another process writing the ledger
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                submitting = client.wait_for(lambda r: r.name == "state" and r.args[1] == "submitting", timeout=60)
                assert submitting is not None
                job = submitting.args[0]
                time.sleep(0.5)  # the job is now waiting for the ledger (the test holds it: no race on the outcome)
                if how == "cancel":
                    client.send("cancel", job_id=job)
                    assert client.wait_for(lambda r: r.name == "failed" and r.args[0] == job, timeout=30)
                else:
                    daemon.proc.send_signal(signal.SIGTERM)
                    time.sleep(0.5)  # it is stopping, the job's intent still waiting for the ledger
                busy.execute("COMMIT")
                if how == "stop":
                    assert daemon.proc.wait(timeout=60) == 0
                deadline = time.monotonic() + 30
                while (rows := _ledger_rows(ledger, job)) in ([], ["intent"]) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert rows == ["refused"], rows  # written down as not sent
                if how == "stop":
                    daemon = Daemon(project, env=env).start()
                else:
                    retried = daw_bridge("jobs", "retry", job, "--config", str(project.config), timeout=60)
                    assert retried.returncode == 0, retried.stdout + retried.stderr
                last = client.wait_for(lambda r: r.name in ("done", "failed") and r.args[0] == job, timeout=120)
        finally:
            busy.close()
            daemon.stop()
    assert last is not None and last.name == "done", last
    assert fake.total_submits == 1


def test_a_task_id_byid_answers_with_success_false_fails_the_job_at_once_not_after_the_longest_wait(project,
                                                                                                   monkeypatch):
    """byId answering HTTP 200 with {"success": false, "message": "Conversion not found"} (a task id typed wrong when
    resolving; the contract says nothing of how an unknown task is answered) was taken for an unreadable answer and
    polled again until max_wait_s (15 minutes), then told as 'had not finished; retry the job to wait again'. It is
    MusicGPT's own refusal: the job fails at once with its words, and the right task id still brings it in."""
    answered = fake_module._Handler._by_id

    def not_found_as_success_false(self, query):
        asked = query.get("task_id", [""])[0]
        if asked and asked not in self.fake.tasks:
            return self._json(200, {"success": False, "message": "Conversion not found"})
        return answered(self, query)

    monkeypatch.setattr(fake_module._Handler, "_by_id", not_found_as_success_false)
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("submit", "drop_after_accept")  # a task made and paid for, its answer lost
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url, max_wait_s=600))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                unknown = client.wait_for(lambda r: r.name == "state" and r.args[1] == "submission_unknown", 60)
                assert unknown is not None
                job, [task_id] = unknown.args[0], list(fake.tasks)
                client.send("resolve", job_id=job, task_id=task_id[:-1] + "x")  # typed wrong
                failed = client.wait_for(lambda r: r.name in ("failed", "done") and r.args[0] == job, timeout=60)
                assert failed is not None and failed.name == "failed", failed
                assert "Conversion not found" in failed.args[2] and "jobs resolve" in failed.args[2]
                client.send("resolve", job_id=job, task_id=task_id)
                done = client.wait_for(lambda r: r.name in ("failed", "done") and r.args[0] == job, timeout=120)
        finally:
            daemon.stop()
    assert done is not None and done.name == "done", done
    assert fake.total_submits == 1


def test_a_daemon_killed_while_it_waits_out_a_429_resumes_the_job_as_not_sent(project):
    """Between a 429 and the next try (a Retry-After may ask for minutes, and a producer restarts a daemon that seems
    stuck) the ledger still held the submit's intent, so a kill -9 there left a job that had only ever been refused in
    submission_unknown, the producer sent to the dashboard for a task that never was. The ledger now says 'refused,
    to be tried again' while it waits: the restart sends the job once."""
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("submit", "429", retry_after=600)
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        env = {"MUSICGPT_API_KEY": fake.api_key}
        daemon = Daemon(project, env=env).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                deadline = time.monotonic() + 60
                while "queueing for 600.0 s" not in daemon.log.read_text():  # said once the wait is written down
                    assert time.monotonic() < deadline, daemon.log.read_text()[-2000:]
                    time.sleep(0.05)
                daemon.kill()
                daemon = Daemon(project, env=env).start()
                while not ((job := journal_records(project)[0]).state.finished or job.state.waiting_for_producer):
                    assert time.monotonic() < deadline + 120, job.summary()
                    time.sleep(0.1)
        finally:
            daemon.stop()
    assert job.state.value == "delivered", job.summary()
    assert fake.total_submits == 1 and sum(fake.submit_requests.values()) == 2


def test_a_spend_ledger_deleted_while_the_daemon_runs_is_started_anew_not_failed_on_for_every_job(project):
    """A producer deleting musicgpt-spend.sqlite to 'reset' the hourly limit while the daemon ran: every MusicGPT job
    then failed as 'internal error: OperationalError: no such table: submits' (a traceback in the log each time) until
    a restart. The daemon now does what a restart does: a new ledger, said once in the log, and the job is paid once."""
    ledger = project.state / "musicgpt" / "musicgpt-spend.sqlite"
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            for made in ledger.parent.glob(ledger.name + "*"):  # with its -wal and -shm
                made.unlink()
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                last = client.wait_for(lambda r: r.name in ("done", "failed", "error"), timeout=120)
        finally:
            daemon.stop()
    log = daemon.log.read_text()
    assert last is not None and last.name == "done", last
    assert fake.total_submits == 1 and "Traceback" not in log
    assert log.count(f"the MusicGPT spend ledger {ledger} was deleted or replaced") == 1
    assert [row["state"] for row in SpendGuard(ledger).entries()] == ["accepted"]


def test_a_paid_answer_coming_after_the_ledger_was_made_anew_is_never_written_into_another_jobs_row(project):
    """The ledger deleted while a submit's answer was on its way, and another job's intent written in the new one:
    numbered from 1 again, it had the number of the first job's intent, so the first job's answer went into the second
    job's row: there as a 'late answer' beside the second's task (the first's paid task known to no ledger, the log
    saying the producer had resolved it), or, had it come first, naming the first job's task as the second's, which a
    resume would fetch as its audio. The answer is now written as a row of its own."""
    ledger = project.state / "musicgpt" / "musicgpt-spend.sqlite"
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("submit", "slow_accept", seconds=4)  # the first job's task is made; its answer comes late
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url, concurrency=2))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="first", num_outputs=1)
                deadline = time.monotonic() + 60
                while not fake.total_submits:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                for made in ledger.parent.glob(ledger.name + "*"):
                    made.unlink()
                client.send("inpaint", source=str(project.song), start=24.0, end=28.0, prompt="second", num_outputs=1)
                while sum(r.state.finished or r.state.waiting_for_producer for r in journal_records(project)) < 2:
                    assert time.monotonic() < deadline + 120
                    time.sleep(0.1)
        finally:
            daemon.stop()
    first, second = journal_records(project)
    tasks = {task.fields["prompt"]: task_id for task_id, task in fake.tasks.items()}
    assert [first.state.value, second.state.value] == ["delivered", "delivered"]
    assert (first.receipt["task_id"], second.receipt["task_id"]) == (tasks["first"], tasks["second"])
    rows = SpendGuard(ledger).entries()
    assert sorted((row["job_id"], row["state"], row["task_id"]) for row in rows) == sorted([
        (first.job_id, "accepted", tasks["first"]), (second.job_id, "accepted", tasks["second"])])
    assert "came after the producer resolved the job" not in daemon.log.read_text()
