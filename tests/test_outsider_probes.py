"""What an outsider tries first against a real daemon, where an earlier version broke a promise: a float WAV with
NaN samples, a state folder on a full disk, a drop folder the project roots refuse, a command the daemon refuses
sent from a script. Each is said in one line naming the fault, the daemon keeps answering, the drop folder stays
empty and the source is untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import soundfile as sf

import osc_schema
from bridge.client import BridgeClient
from bridge.lifeline import ask_to_die_with_parent
from tests.adversarial.support import Daemon, files_under, free_tcp_port, small_tmpfs
from tests.conftest import ROOT, daemon_environment


def _daw_bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120,
                          env=daemon_environment(), cwd=ROOT, preexec_fn=ask_to_die_with_parent)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_float_wav_with_nan_samples_is_refused_naming_where_they_start(project, daemon):
    audio, rate = sf.read(project.song, dtype="float32")
    audio[25 * rate:25 * rate + 100] = np.nan  # a glitch a plugin left in a render
    glitched = project.audio / "glitched.wav"
    sf.write(glitched, audio, rate, subtype="FLOAT")
    before = _digest(glitched)
    with BridgeClient("127.0.0.1", project.port) as client:
        outcome, _ = client.run_job("inpaint", source=str(glitched), start=5.0, end=8.0, prompt="", num_outputs=1,
                                    timeout=120)
        assert outcome.name == "failed", outcome.args
        code, message = outcome.args[1], outcome.args[2]
        # not "the song is too short": the NaN spread through the analysis and left nothing to compare
        assert code == "source_unreadable" and "\n" not in message, outcome.args
        assert message == f"source audio holds invalid samples (NaN or infinity), the first at 25.000 s: {glitched}"
        assert client.ping(timeout=5)
    assert project.visible_drop_files() == [] and _digest(glitched) == before


def test_a_full_state_folder_fails_the_job_as_disk_full_not_as_an_internal_error(project):
    daemon = Daemon(project)
    with small_tmpfs(project.state / "work", "1m"):  # the rendered variants (1.6 MB each) do not fit
        daemon.start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                outcome, _ = client.run_job("inpaint", source=str(project.song), start=5.0, end=10.0, prompt="",
                                            timeout=120)
                assert outcome.name == "failed", outcome.args
                job_id, code, message = outcome.args[:3]
                assert code == "disk_full", outcome.args
                assert message == (f"the disk holding the state folder {project.state} is full: free some space, "
                                   f"then 'daw-bridge jobs retry {job_id}'")
                assert client.ping(timeout=5)
        finally:
            daemon.stop()
    assert "Traceback" not in daemon.log.read_text()
    assert files_under(project.drop) == []


def test_doctor_says_what_the_project_roots_will_refuse(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    project.config.write_text(f'state_dir = "{project.state}"\ninbox = "{project.inbox}"\n'
                              f'drop_folder = "{elsewhere}"\nproject_roots = ["{project.root}"]\n')
    outside = _daw_bridge("doctor", "--config", str(project.config))
    assert outside.returncode == 1, outside.stdout
    assert f"BAD  drop_folder {elsewhere} lies outside project_roots ({project.root}), so every job that uses it " \
           f"is refused" in outside.stdout.splitlines()

    project.config.write_text(f'state_dir = "{project.state}"\ninbox = "{project.inbox}"\nproject_roots = []\n')
    empty = _daw_bridge("doctor", "--config", str(project.config))
    assert empty.returncode == 1 and "BAD  project_roots is empty, so every job is refused" in empty.stdout


def test_send_exits_non_zero_when_the_daemon_refuses_the_command(project, daemon):
    missing = project.audio / "not there.wav"
    refused = _daw_bridge("send", "inpaint", f"source={missing}", "start=1", "end=2", "prompt=",
                          "--config", str(project.config))
    assert refused.returncode == 1, refused.stdout
    assert refused.stdout.splitlines() == [f"/bridge/error /bridge/inpaint  source 'source audio not found: "
                                           f"{missing}'"]
    pong = _daw_bridge("send", "ping", "--config", str(project.config))
    assert pong.returncode == 0 and pong.stdout.startswith("/bridge/pong")


def test_an_extension_after_the_first_moment_of_the_song_is_refused_to_its_sender(project, daemon):
    """Extend after 0 s: nothing before the point to continue, yet the engine delivered a guess sure at 1.0."""
    refused = _daw_bridge("send", "extend", f"source={project.song}", "extend_after=0", "duration=10", "prompt=",
                          "--config", str(project.config))
    assert refused.returncode == 1, refused.stdout
    assert refused.stdout.splitlines() == ["/bridge/error /bridge/extend  extend_after 'extend_after: 0.0 leaves less "
                                           "than 1.5 s of music before the point: the embedded engine continues the "
                                           "music it hears there'"]
    assert project.visible_drop_files() == []


def test_request_ids_that_differ_only_in_unsafe_characters_keep_their_own_status_files(project, daemon):
    project.inbox.mkdir(parents=True, exist_ok=True)
    for name, request_id in (("first", "take a"), ("second", "take_a")):
        request = {"command": "inpaint", "source": str(project.song), "start": 9.0, "end": 3.0, "prompt": "",
                   "request_id": request_id}
        part = project.inbox / f".{name}.part"
        part.write_text(json.dumps(request), encoding="utf-8")
        part.rename(project.inbox / f"{name}.json")
    spaced = project.inbox / "status" / f"take_a-{hashlib.sha256(b'take a').hexdigest()[:8]}.json"
    plain = project.inbox / "status" / "take_a.json"
    deadline = time.monotonic() + 30  # a bound for a loaded machine
    while not (spaced.exists() and plain.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for path, request_id in ((spaced, "take a"), (plain, "take_a")):
        status = json.loads(path.read_text(encoding="utf-8"))
        assert status["request_id"] == request_id and status["state"] == "failed", status
        assert status["error"]["message"] == "end: 3.0 must be greater than start (9.0)"


def test_a_token_in_an_unreachable_base_url_is_kept_in_no_file(project):
    token = "sk-gateway-token-5a4b3c2d1e"
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": "sk-outsider-key-0000",
                                  "MUSICGPT_BASE_URL": f"http://me:{token}@127.0.0.1:{free_tcp_port()}/api"}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=5.0, end=8.0, prompt="brass",
                                        num_outputs=1, backend="musicgpt", timeout=120)
    finally:
        daemon.stop()
    assert outcome.name == "failed" and outcome.args[1] == "backend_unreachable", outcome.args
    # the spend ledger kept the refusal's reason, address and all
    assert [p.name for p in files_under(project.root) if token.encode() in p.read_bytes()] == []


def test_doctor_reports_an_osc_host_no_name_service_knows_instead_of_a_traceback(project):
    project.write_config('osc_host = "no-such-host.invalid"\nallowed_senders = ["127.0.0.1"]\n')
    doctor = _daw_bridge("doctor", "--config", str(project.config))
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    [said] = [line for line in doctor.stdout.splitlines() if line.startswith("BAD  OSC no-such-host.invalid:")]
    # the resolver's words vary ("Name or service not known")
    assert f"{project.port}: cannot be reached (" in said, said


def test_a_newline_in_a_file_name_forges_no_log_line_and_no_second_line_of_an_error(project, daemon):
    """A request file named with a newline, and a source path with one: the log keeps one line per record and the
    sender's error is one line, the newline shown as \\n."""
    project.inbox.mkdir(parents=True, exist_ok=True)
    part = project.inbox / ".forged.part"
    part.write_text("{not json", encoding="utf-8")
    forged = project.inbox / "evil\n2026-01-01 00:00:00,000 INFO bridge: FORGED.json"
    part.rename(forged)
    missing = project.audio / "take\none.wav"
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", source=str(missing), start=1.0, end=2.0, prompt="")
        reply = client.receive(10)
        assert reply is not None and reply.name == "error", reply
        said = osc_schema.parse_reply(reply.address, reply.args)[1]
        assert said["reason"] == f"source audio not found: {project.audio}/take\\none.wav", said
    deadline = time.monotonic() + 30  # a bound for a loaded machine
    while "rejected" not in daemon.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = daemon.log.read_text().splitlines()
    assert [line for line in lines if "rejected" in line and "evil\\n2026-01-01" in line], lines[-5:]
    assert not [line for line in lines if line.startswith("2026-01-01")], "a file name forged a line of the log"
    assert project.visible_drop_files() == []


def test_the_cli_reaches_a_daemon_listening_on_another_address_of_this_machine(project):
    """osc_host names where the daemon listens; send, jobs and plugin asked 127.0.0.1 whatever it said."""
    project.write_config('osc_host = "127.0.0.2"\n')
    daemon = Daemon(project, host="127.0.0.2").start()
    try:
        pong = _daw_bridge("send", "ping", "--config", str(project.config))
        keep = _daw_bridge("jobs", "keep", "last", "--config", str(project.config))
    finally:
        daemon.stop()
    assert pong.returncode == 0 and pong.stdout.startswith("/bridge/pong"), pong.stdout
    # the daemon's own refusal (exit 2), not "no daemon answered" (exit 1)
    assert keep.returncode == 2 and keep.stdout.startswith("daw-bridge jobs keep: "), keep.stdout
