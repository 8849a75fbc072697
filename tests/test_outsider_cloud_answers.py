"""An outsider's probes of the real daemon against MusicGPT answers nobody planned for: byId telling of another task,
audio addresses httpx cannot even parse. Each runs ``daw-bridge serve`` as its own process against the fake service
on loopback, as a producer's machine would."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

import tests.fakes.musicgpt as fake_module
from bridge.backends.musicgpt.spend import SpendGuard
from bridge.client import BridgeClient
from bridge.exceptions import SpendLimitReached
from tests.adversarial.support import Daemon, journal_records, musicgpt_table, small_tmpfs
from tests.conftest import ROOT, Project, daemon_environment
from tests.fakes.musicgpt import FakeMusicGPT


@pytest.fixture
def fake():
    with FakeMusicGPT(time_scale=0.01, eta=20) as service:
        yield service


def _inpaint(client: BridgeClient, project: Project, start: float, end: float, prompt: str) -> tuple[str, object]:
    """Send one inpaint and wait for its end; its job id and last reply."""
    client.send("inpaint", source=str(project.song), start=start, end=end, prompt=prompt, num_outputs=1)
    job = []

    def ended(reply) -> bool:
        if reply.name == "accepted":
            job.append(reply.args[1])
        return reply.name == "error" or (reply.name in ("done", "failed") and job and reply.args[0] == job[0])

    last = client.wait_for(ended, timeout=120)
    assert last is not None and job, last
    return job[0], last


def _inpaint_on_musicgpt(project: Project, fake: FakeMusicGPT) -> tuple[Daemon, object]:
    """A daemon on the fake MusicGPT inpaints 12-16 s ("brass") and is stopped: (the daemon, for its log; the last
    reply of the job)."""
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            return daemon, _inpaint(client, project, 12.0, 16.0, "brass")[1]
    finally:
        daemon.stop()


def test_a_byid_answer_about_another_task_never_delivers_that_tasks_audio_as_this_jobs(project, fake, monkeypatch):
    """A cache in front of the API that keys on the path alone (or a server mix-up) answers the second job's byId with
    the first job's finished task: the daemon took it, downloaded the first job's audio and spliced it into the second
    job's range (aligned at 'confidence 0.32'), delivered as the second job's paid result."""
    answered = fake_module.FakeMusicGPT.conversion
    first: list = []
    mixed_up = {"left": 3}

    def stale_cache(self, task):
        first[:] = first or [task]
        if task is not first[0] and mixed_up["left"]:
            mixed_up["left"] -= 1
            return answered(self, first[0])
        return answered(self, task)

    monkeypatch.setattr(fake_module.FakeMusicGPT, "conversion", stale_cache)
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            _inpaint(client, project, 2.0, 5.0, "first take")
            job, last = _inpaint(client, project, 25.0, 30.0, "second take")
    finally:
        daemon.stop()
    assert last.name == "done", last
    manifest = json.loads(Path(last.args[1]).read_text(encoding="utf-8"))
    task = fake.tasks[manifest["notes"]["task_id"]]
    assert task.fields["prompt"] == "second take"
    assert manifest["notes"]["conversion_id"] in task.conversion_ids  # its own audio, not the first job's
    assert mixed_up["left"] == 0 and fake.total_submits == 2
    assert f"byId gave the status of another task ({first[0].task_id})" in daemon.log.read_text()


@pytest.mark.parametrize("wav_host", ["storage.example:abc", "127.0.0.1:99999", "☃.example"])
def test_a_wav_address_httpx_cannot_parse_falls_back_to_the_mp3(project, fake, monkeypatch, wav_host):
    """byId offered a WAV address with a port that is no port or a host name IDNA refuses, beside a good MP3: httpx
    raised from inside (InvalidURL, an OverflowError in an ExceptionGroup), the job failed as an 'internal error' with
    a traceback in the log, and every retry failed the same way, so the paid-for MP3 was never fetched."""
    signature = "0f" * 32
    fake_module.offer_wav_at(monkeypatch, f"http://{wav_host}/v1.wav?X-Amz-Signature={signature}")
    daemon, last = _inpaint_on_musicgpt(project, fake)
    log = daemon.log.read_text()
    assert last.name == "done", last
    assert json.loads(Path(last.args[1]).read_text(encoding="utf-8"))["notes"]["downloaded"] == "mp3"
    assert fake.total_submits == 1 and "Traceback" not in log
    assert "variant 1: WAV download failed (MusicGPT gave an audio address that is not a web address" in log
    assert signature not in log


def _daw_bridge(project: Project, command: str, env: dict, extra: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", command, *extra, "--config", str(project.config)],
                          env=daemon_environment(env), cwd=ROOT, capture_output=True, text=True, timeout=120)


def _until(what: str, predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def _fill_the_disk(filler: Path) -> None:
    """Write ``filler`` until the disk it lies on is full."""
    with open(filler, "wb") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * (1 << 16))


def _fill_the_disk_on_accept(monkeypatch, filler: Path) -> Path:
    """The fake accepts each submit (a task made, paid for) and then fills the disk ``filler`` lies on, as a DAW
    rendering to it would, before its answer reaches the daemon; ``filler``, to free the space again."""
    accepted = fake_module._Handler._accepted_answer

    def accept_then_fill_the_disk(self, operation, task):
        _fill_the_disk(filler)
        return accepted(self, operation, task)

    monkeypatch.setattr(fake_module._Handler, "_accepted_answer", accept_then_fill_the_disk)
    return filler


def test_a_task_accepted_while_the_state_folder_is_full_is_named_so_the_producer_can_resolve_it(project, fake,
                                                                                                 monkeypatch):
    """The state folder's disk filled while the paid POST was out (a DAW rendering to the same disk): the ledger could
    not record the answer, and the task id MusicGPT gave was thrown away with a traceback: in no ledger row, no
    journal row, no log line. After a restart the job waited in submission_unknown with only the dashboard to say
    which task it paid for."""
    accepted = fake_module._Handler._accepted_answer
    filler = _fill_the_disk_on_accept(monkeypatch, project.state / "filler")
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    env = {"MUSICGPT_API_KEY": fake.api_key}
    with small_tmpfs(project.state, "24m"):
        daemon = Daemon(project, env=env).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                _until("the task named in the log", lambda: "spend ledger could not write" in daemon.log.read_text())
        finally:
            daemon.stop()
        filler.unlink()
        monkeypatch.setattr(fake_module._Handler, "_accepted_answer", accepted)
        (task_id,) = fake.tasks
        line = next(line for line in daemon.log.read_text().splitlines() if "spend ledger could not write" in line)
        assert f"MusicGPT accepted the inpaint as task {task_id}, but" in line
        job = line.split("job ", 1)[1].split(":", 1)[0]
        assert f"'daw-bridge jobs resolve {job} --task-id {task_id}'" in line

        daemon = Daemon(project, env=env).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("resolve", job_id=job, task_id=task_id)
                _until("the job delivered", lambda: journal_records(project)[0].state.value in ("delivered", "failed"))
        finally:
            daemon.stop()
        assert journal_records(project)[0].state.value == "delivered", daemon.log.read_text()[-3000:]
    assert fake.total_submits == 1 and fake.submit_requests["inpaint"] == 1


@contextlib.contextmanager
def _told_while_the_state_disk_was_full(project: Project, fake: FakeMusicGPT, state: str):
    """A daemon on a 24 MB state disk whose inpaint the producer heard end in (or wait in) ``state`` while the disk was
    full (a fake fills ``project.state / "filler"``): yields (client, that reply) once the space is free again, for
    the producer to resolve or retry; the job must then be delivered, paid once, with no task's exception left
    unretrieved."""
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    with small_tmpfs(project.state, "24m"):
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
                told = client.wait_for(lambda r: r.name == "failed" or r.name == "state" and r.args[1] ==
                                       "submission_unknown", timeout=60)
                assert told is not None and (told.args[1] if told.name == "state" else "failed") == state, told
                (project.state / "filler").unlink()
                yield client, told
                _until("the job delivered", lambda: journal_records(project)[0].state.value in ("delivered", "failed"))
        finally:
            daemon.stop()
        assert journal_records(project)[0].state.value == "delivered", daemon.log.read_text()[-3000:]
    assert fake.submit_requests["inpaint"] == 1
    assert "Task exception was never retrieved" not in daemon.log.read_text()


def test_a_task_the_full_disk_kept_out_of_ledger_and_journal_waits_for_the_producer_without_a_restart(project,
                                                                                                       fake,
                                                                                                       monkeypatch):
    """The same full disk also refused the journal the job's wait for the producer: the job's run died with 'Task
    exception was never retrieved', the journal still said 'submitting', and once the space was freed every 'jobs
    resolve' and 'jobs retry' was refused ('still running (submitting)') until the daemon was restarted. Then it was
    failed with "free some space, then 'daw-bridge jobs retry'", a retry the maybe-paid job refused (an outside
    probe). The producer hears it wait, told the task to resolve it with, and resolving it delivers."""
    _fill_the_disk_on_accept(monkeypatch, project.state / "filler")
    with _told_while_the_state_disk_was_full(project, fake, "submission_unknown") as (client, told):
        (task_id,) = fake.tasks
        job = told.args[0]
        assert f"'daw-bridge jobs resolve {job} --task-id {task_id}'" in told.args[3], told
        client.send("resolve", job_id=job, task_id=task_id)
        answer = client.wait_for(lambda r: r.name in ("error", "state") and job in r.args and r.args[1] not in (
            "submission_unknown",), timeout=60)
        assert answer is not None and answer.name == "state", answer


def test_a_failed_task_whose_failure_the_full_journal_could_not_take_is_retried_without_a_restart(project, fake,
                                                                                                   monkeypatch):
    """The task failed at MusicGPT (a BackendError, not a fault no one foresaw) while the state folder's disk was full:
    the journal could not take the failure either, the run died with 'Task exception was never retrieved', the
    producer never heard 'failed', and 'jobs retry' was refused ('still running') until a restart."""
    fake.outcome = "FAILED"
    answered = fake_module.FakeMusicGPT.conversion
    filled = []

    def fail_on_a_full_disk(self, task):
        conversion = answered(self, task)
        if conversion["status"] == "FAILED" and not filled:
            filled.append(task)
            _fill_the_disk(project.state / "filler")
        return conversion

    monkeypatch.setattr(fake_module.FakeMusicGPT, "conversion", fail_on_a_full_disk)
    with _told_while_the_state_disk_was_full(project, fake, "failed") as (_, told):
        assert told.args[1] == "generation_failed", told
        filled[0].outcome = "COMPLETED"  # MusicGPT's hiccup is over: the task is asked about again
        retried = _daw_bridge(project, "jobs", env={}, extra=("retry", told.args[0]))
        assert retried.returncode == 0, retried.stdout + retried.stderr


def test_a_musicgpt_address_over_plain_http_beyond_this_machine_is_refused_before_the_key_is_sent(project):
    """base_url = "http://api.musicgpt.com/api/public" (an s left out, or MUSICGPT_BASE_URL copied from an old note)
    was taken, and every submit and poll then carried the raw API key in its Authorization header across the network
    as plain text. http:// stays allowed on this machine (a local gateway, the tests' fake service)."""
    env = {"MUSICGPT_API_KEY": "sk-live-0123456789abcdef"}
    project.write_config('[musicgpt]\nbase_url = "http://api.musicgpt.com/api/public"\n')
    refused = _daw_bridge(project, "serve", env=env)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        f'daw-bridge: {project.config}:7: [musicgpt] base_url = "http://api.musicgpt.com/api/public": must be an '
        'https:// address: over http:// the API key would cross the network unencrypted (http:// is for a gateway '
        'on this machine: 127.0.0.1, ::1 or localhost)']
    project.write_config()
    refused = _daw_bridge(project, "serve", env={**env, "MUSICGPT_BASE_URL": "http://gw:sk-gw-0f0f0f@api.wav.com/api/public"})
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines() == [
        "daw-bridge: environment: MUSICGPT_BASE_URL: must be an https:// address: over http:// the API key would "
        "cross the network unencrypted (http:// is for a gateway on this machine: 127.0.0.1, ::1 or localhost)"]
    for local in ("http://127.0.0.1:9/api/public", "http://[::1]:9/api/public", "http://localhost:9/api/public"):
        project.write_config(f'[musicgpt]\nbase_url = "{local}"\n')
        doctor = _daw_bridge(project, "doctor", env=env)
        assert "base_url" not in doctor.stderr and doctor.returncode != 2, doctor.stderr


def test_a_signed_address_quoted_with_escaped_slashes_or_another_scheme_is_masked_everywhere(project, fake):
    """A failed task's message quoting its storage address as an error encoded twice does (https:\\/\\/...), or as
    s3:// or in capitals: the mask knew only 'http(s)://' written plainly, so the address's signature and access key
    went whole into the failure reply, the journal, 'daw-bridge jobs' and the log."""
    fake.signed_urls = True
    fake.outcome = "FAILED"
    signed = fake.file_url("v1.wav")
    fake.failure_message = (f'storage said {{"url":"{signed.replace("/", chr(92) + "/")}"}}; also '
                            f'{signed.replace("http://", "s3://")} and {signed.replace("http://", "HTTP://")}')
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            _, failed = _inpaint(client, project, 12.0, 16.0, "brass")
        listed = _daw_bridge(project, "jobs", env={})
    finally:
        daemon.stop()
    assert failed.name == "failed" and failed.args[1] == "generation_failed", failed
    said = [" ".join(map(str, failed.args)), listed.stdout, daemon.log.read_text()]
    assert all("storage said" in text for text in said), said
    for text in said:
        assert fake.url_signature("v1.wav") not in text and fake.url_credential not in text, text


def _resolve(project: Project, job: str, task_id: str) -> None:
    """The producer names the job's task (`daw-bridge jobs resolve JOB --task-id ID`); the job then ends."""
    resolved = _daw_bridge(project, "jobs", env={}, extra=("resolve", job, "--task-id", task_id))
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    _until("the job delivered", lambda: journal_records(project)[-1].state.value in ("delivered", "failed"))


def _delivered_manifest(project: Project, job: str, daemon: Daemon) -> dict:
    """The manifest of ``job``, the last in the journal, which must have been delivered."""
    record = journal_records(project)[-1]
    assert record.job_id == job and record.state.value == "delivered", daemon.log.read_text()[-2000:]
    return json.loads(Path(record.manifests[0]).read_text(encoding="utf-8"))


def test_resolving_a_job_with_another_jobs_task_is_refused_and_the_right_one_still_delivers(project, fake):
    """The dashboard lists every task; the producer copies the line above: job 2 resolved with job 1's task id was
    'submitted', then delivered job 1's audio spliced into its own range (aligned at 'confidence 0.32'), and the task
    job 2 had paid for could no longer be named: the job was delivered."""
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            first, _ = _inpaint(client, project, 2.0, 5.0, "first take")
            fake.inject("submit", "drop_after_accept")
            client.send("inpaint", source=str(project.song), start=25.0, end=30.0, prompt="second take",
                        num_outputs=1)
            unknown = client.wait_for(lambda r: r.name == "state" and r.args[1] == "submission_unknown", timeout=60)
            assert unknown is not None
            job = unknown.args[0]
            theirs, ours = list(fake.tasks)
            refused = _daw_bridge(project, "jobs", env={}, extra=("resolve", job, "--task-id", theirs))
            assert refused.stdout.splitlines() == [
                f"daw-bridge jobs resolve: task_id: '{theirs}' is the task of job {first}, not of job {job}: copy "
                "this job's own task id from the MusicGPT dashboard"], refused.stdout + refused.stderr
            assert refused.returncode != 0
            _resolve(project, job, ours)
    finally:
        daemon.stop()
    manifest = _delivered_manifest(project, job, daemon)
    assert manifest["notes"]["task_id"] == ours
    assert manifest["notes"]["conversion_id"] in fake.tasks[ours].conversion_ids
    assert fake.total_submits == 2


def _answer_with(kind: str):
    """A replacement for the fake's JSON writer whose submit answers (a task created, paid for) cannot be read."""
    write_json = fake_module._Handler._json

    def unreadable(self, status, body):
        if status != 200 or "task_id" not in body:
            return write_json(self, status, body)
        if kind == "gzip":  # a proxy that marks the answer compressed when it is not
            _answer_raw(self, json.dumps(body).encode(), encoding="gzip")
        else:
            _answer_raw(self, _TOO_DEEP)

    return unreadable


_TOO_DEEP = b"[" * 200_000 + b"]" * 200_000  # JSON nested deeper than any parser's stack


def _answer_raw(handler, data: bytes, encoding: str | None = None) -> None:
    """Answer 200 with ``data`` as the JSON body, whatever it holds."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if encoding:
        handler.send_header("Content-Encoding", encoding)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@pytest.mark.parametrize("kind", ["gzip", "nested"])
def test_a_submit_answer_that_cannot_be_read_leaves_the_job_unknown_and_a_retry_never_pays_again(project, fake,
                                                                                                 monkeypatch, kind):
    """MusicGPT created the task (and charged for it), but its 200 answer could not be read: marked gzip by a proxy
    when it was not (httpx's DecodingError, no TransportError), or nested past the parser's stack (RecursionError,
    no ValueError). The spend ledger wrote the submit down as refused, the job failed as an 'internal error', and
    'daw-bridge jobs retry' sent it again: a second task, paid twice."""
    monkeypatch.setattr(fake_module._Handler, "_json", _answer_with(kind))
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1)
            ended = client.wait_for(lambda r: r.name == "failed" or r.name == "state" and
                                    r.args[1] == "submission_unknown", timeout=60)
        assert ended is not None and ended.name == "state", ended
        job = ended.args[0]
        assert "could not be read" in ended.args[3] or "unreadable body" in ended.args[3], ended.args
        retried = _daw_bridge(project, "jobs", env={}, extra=("retry", job))
        assert retried.returncode != 0 and "may have been paid for already" in retried.stdout, retried.stdout
    finally:
        daemon.stop()
    assert fake.total_submits == 1 and fake.submit_requests["inpaint"] == 1
    assert "Traceback" not in daemon.log.read_text()


def test_byid_json_nested_past_the_parsers_stack_does_not_cost_the_paid_result(project, fake, monkeypatch):
    """byId's lyrics_timestamped is a JSON string the client parses; one nested 100 000 deep raised RecursionError
    (only ValueError was expected), the job failed as an 'internal error' with a traceback, and every retry read the
    same answer and failed the same way: the paid audio beside it was never delivered. A whole byId answer nested so
    deep (twice, then a good one) failed the job the same way instead of being asked again."""
    answered = fake_module.FakeMusicGPT.conversion
    write_json = fake_module._Handler._json
    deep_answers = {"left": 2}

    def deep_body(self, status, body):
        if status == 200 and "conversion" in body and deep_answers["left"]:
            deep_answers["left"] -= 1
            return _answer_raw(self, _TOO_DEEP)
        return write_json(self, status, body)

    def deep_lyrics(self, task):
        conversion = answered(self, task)
        if "lyrics_timestamped_1" in conversion:
            conversion["lyrics_timestamped_1"] = "[" * 100_000 + "]" * 100_000
        return conversion

    monkeypatch.setattr(fake_module.FakeMusicGPT, "conversion", deep_lyrics)
    monkeypatch.setattr(fake_module._Handler, "_json", deep_body)
    daemon, last = _inpaint_on_musicgpt(project, fake)
    assert last.name == "done", last
    assert deep_answers["left"] == 0 and fake.total_submits == 1
    assert "Traceback" not in daemon.log.read_text()


def test_a_flagged_submits_reason_is_shown_by_jobs_show_without_the_key_or_a_signature(project, monkeypatch):
    """Newer servers answer a flagged request with is_flagged and a reason in their own words; the reason went into
    the receipt as it came, and 'daw-bridge jobs show JOB' printed it whole: the API key or a signed storage address
    quoted in it included."""
    key = "sk-FLAGGED-0123456789abcdef"
    with FakeMusicGPT(time_scale=0.01, eta=20, api_key=key) as fake:
        fake.signed_urls = True
        accepted = fake_module._Handler._accepted_answer

        def flagged(self, operation, task):
            return dict(accepted(self, operation, task), is_flagged=True,
                        reason=f"lyrics flagged for account {key}, see {fake.file_url('report.txt')}")

        monkeypatch.setattr(fake_module._Handler, "_accepted_answer", flagged)
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                job, last = _inpaint(client, project, 12.0, 16.0, "brass")
        finally:
            daemon.stop()
        shown = _daw_bridge(project, "jobs", env={}, extra=("show", job))
        signature = fake.url_signature("report.txt")
    assert last.name == "done", last
    receipt = json.loads(shown.stdout)["receipt"]
    assert receipt["flagged"].startswith("lyrics flagged for account <redacted>, see http://"), receipt
    assert key not in shown.stdout and signature not in shown.stdout and "X-Amz-Credential" not in shown.stdout


def test_doctor_shows_a_webhook_tunnels_address_without_its_password(project):
    """A webhook public_url through a tunnel with basic auth (https://user:password@host/...): 'daw-bridge doctor'
    printed it whole, password included, where the same kind of base_url is shown masked."""
    project.write_config('backend = "musicgpt"\n[musicgpt]\nbase_url = "http://127.0.0.1:9/api/public"\n'
                         '[musicgpt.webhook]\npublic_url = "https://hooks:tunnelPASS-0f0f@tunnel.example.net/daw"\n')
    doctor = _daw_bridge(project, "doctor", env={"MUSICGPT_API_KEY": "sk-doctor-0123456789"})
    line = next(line for line in doctor.stdout.splitlines() if "backend musicgpt:" in line)
    assert "'public_url': 'https://<redacted>@tunnel.example.net/daw'" in line, line
    assert "tunnelPASS" not in doctor.stdout + doctor.stderr


def _task_made_elsewhere(fake: FakeMusicGPT, song: Path, crop: tuple[float, float],
                         replace: tuple[float, float]) -> str:
    """A task made on the MusicGPT website (or another machine): the same song's crop, two outputs; its id."""
    audio, rate = sf.read(str(song), dtype="float32", always_2d=True)
    upload = io.BytesIO()
    sf.write(upload, audio[int(crop[0] * rate):int(crop[1] * rate)], rate, format="WAV", subtype="PCM_16")
    answer = httpx.post(f"{fake.url}/v1/inpaint", headers={"Authorization": fake.api_key}, timeout=30,
                        data={"prompt": "elsewhere", "replace_start_at": str(replace[0]),
                              "replace_end_at": str(replace[1]), "num_outputs": "2"},
                        files={"audio_file": ("crop.wav", upload.getvalue(), "audio/wav")})
    answer.raise_for_status()
    return answer.json()["task_id"]


def test_a_variant_fetched_for_a_wrong_task_is_not_reused_once_the_right_task_is_named(project, fake, monkeypatch):
    """A job resolved with a real task id copied wrong (one made on the website, so no ledger knows it) fetched that
    task's first variant, then failed on its second; resolved again with its own task, it took the wrong task's
    variant left in the work folder as its own (the same length: re-used), and delivered it."""
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            fake.inject("submit", "drop_after_accept")
            client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=2)
            unknown = client.wait_for(lambda r: r.name == "state" and r.args[1] == "submission_unknown", timeout=60)
            assert unknown is not None
            job = unknown.args[0]
            (ours,) = fake.tasks
            fake.shift_s = 0.25  # the wrong task's audio comes 0.25 s late: the manifest's offset tells them apart
            theirs = _task_made_elsewhere(fake, project.song, (4.0, 24.0), (8.0, 12.0))
            gone = fake.tasks[theirs].conversion_ids[1]
            served = fake_module.FakeMusicGPT.file_bytes
            monkeypatch.setattr(fake_module.FakeMusicGPT, "file_bytes",
                                lambda self, name: None if name.startswith(gone) else served(self, name))
            assert _daw_bridge(project, "jobs", env={}, extra=("resolve", job, "--task-id", theirs)).returncode == 0
            _until("the wrong task's variant failing",
                   lambda: journal_records(project)[-1].state.value in ("failed", "delivered"))
            assert journal_records(project)[-1].state.value == "failed"
            fake.shift_s = 0.0
            assert _daw_bridge(project, "jobs", env={}, extra=("resolve", job, "--task-id", ours)).returncode == 0
            _until("the job delivered", lambda: journal_records(project)[-1].state.value == "delivered")
    finally:
        daemon.stop()
    first = json.loads(Path(journal_records(project)[-1].manifests[0]).read_text(encoding="utf-8"))
    assert first["variant"] == 1 and first["notes"]["task_id"] == ours
    assert first["splice"]["alignment"]["offset_s"] == 0.0, first["splice"]["alignment"]


def test_paid_submits_stamped_by_a_clock_set_a_year_ahead_hold_the_limits_shut_for_one_window_not_a_year(tmp_path):
    """The machine's clock was a year ahead (a date typed wrong) while three jobs were paid for, then put right: the
    spend ledger's rows lay a year in the future, so 'in the last hour' counted them until the clock reached them,
    and with hourly_limit = 3 every job was refused for a year. (The ledger's own clock stands in for the machine's:
    a daemon's cannot be set back in a test.)"""
    now = [time.time() + 365 * 86400]
    guard = SpendGuard(tmp_path / "spend.sqlite", hourly_limit=3, daily_limit=10, clock=lambda: now[0])
    for job in ("j1", "j2", "j3"):
        guard.record_accepted(guard.record_intent(job, "inpaint"), f"task-{job}", 0.1)
    now[0] -= 365 * 86400  # the clock put right
    with pytest.raises(SpendLimitReached, match="3 paid MusicGPT requests in the last hour"):
        guard.record_intent("j4", "inpaint")  # they may have been made just now: they count, for this hour
    now[0] += 3601
    guard.record_accepted(guard.record_intent("j4", "inpaint"), "task-j4", 0.1)
    assert guard.totals()["requests_last_hour"] == 1


def test_doctor_counts_paid_submits_stamped_by_a_clock_set_ahead_for_one_window_not_until_the_clock_reaches_them(
        tmp_path):
    """The same clock a day ahead, put right, and no job sent since: ``daw-bridge doctor``'s totals counted the three
    rows in 'the last hour' for a day and an hour, though the limits count them for one hour from when they are
    first seen again."""
    now = [time.time() + 86400]
    guard = SpendGuard(tmp_path / "spend.sqlite", hourly_limit=5, clock=lambda: now[0])
    for job in ("j1", "j2", "j3"):
        guard.record_accepted(guard.record_intent(job, "inpaint"), f"task-{job}", 0.1)
    now[0] -= 86400
    assert guard.totals()["requests_last_hour"] == 3  # they may have been made just now
    now[0] += 3601
    totals = guard.totals()
    assert (totals["requests_last_hour"], totals["requests_last_day"]) == (0, 3)


def test_a_submit_answered_with_another_jobs_task_id_waits_for_the_producer_instead_of_taking_that_task(project, fake,
                                                                                                       monkeypatch):
    """The second job's POST made a task (paid for), but the answer named the first job's task (a server, or a proxy
    in front of it, handing out an answer twice): the job polled that task and delivered the first job's audio into
    its own range, and the task it had paid for was never named anywhere."""
    accepted = fake_module._Handler._accepted_answer
    answers: list = []

    def the_first_answer_again(self, operation, task):
        answers.append(accepted(self, operation, task))
        return dict(answers[-1], task_id=answers[0]["task_id"])

    monkeypatch.setattr(fake_module._Handler, "_accepted_answer", the_first_answer_again)
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            first, _ = _inpaint(client, project, 2.0, 5.0, "first take")
            client.send("inpaint", source=str(project.song), start=25.0, end=30.0, prompt="second take",
                        num_outputs=1)
            ended = client.wait_for(lambda r: r.name in ("done", "failed") or r.name == "state" and
                                    r.args[1] == "submission_unknown", timeout=60)
            assert ended is not None and ended.name == "state", ended
            job = ended.args[0]
            theirs, ours = list(fake.tasks)
            assert f"with task {theirs}, which is job {first}'s" in ended.args[3], ended.args
            _resolve(project, job, ours)
    finally:
        daemon.stop()
    manifest = _delivered_manifest(project, job, daemon)
    assert manifest["notes"]["conversion_id"] in fake.tasks[ours].conversion_ids
    assert fake.total_submits == 2
