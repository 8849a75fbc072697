"""The command line as a producer uses it: one-shot jobs, talking to a running daemon, the demo."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.core.journal import Journal
from bridge.frontends.osc_wire import encode
from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import ROOT, daemon_environment
from tests.fakes.musicgpt import FakeMusicGPT


def daw_bridge(*args: str, timeout: float = 600, env: dict | None = None,
               cwd: Path | str = ROOT) -> subprocess.CompletedProcess:
    """The ``daw-bridge`` command as a producer runs it (``env`` on top of the tests' daemon environment)."""
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          timeout=timeout, env=daemon_environment(env), cwd=cwd, preexec_fn=ask_to_die_with_parent)


def test_one_shot_extend_prints_the_manifest_and_shows_progress(project):
    out = project.root / "results"
    result = daw_bridge("extend", str(project.song), "--after", "20", "--duration", "6", "--num-outputs", "1",
                        "--out", str(out), "--config", str(project.config))
    assert result.returncode == 0, result.stderr
    manifests = [Path(line) for line in result.stdout.split()]
    assert len(manifests) == 1 and manifests[0].parent == out
    manifest = json.loads(manifests[0].read_text())
    assert manifest["operation"] == "extend" and manifest["source"]["start"] == 20.0
    assert "generating" in result.stderr and "delivered" in result.stderr
    # no daemon ever held the job, yet 'daw-bridge jobs' lists it and shows it like the daemon's own
    config = ("--config", str(project.config))
    [listed] = json.loads(daw_bridge("jobs", "--json", *config, timeout=60).stdout)
    assert listed["one_shot"] and listed["state"] == "delivered" and listed["manifests"] == [str(manifests[0])]
    assert "(one-shot)" in daw_bridge("jobs", *config, timeout=60).stdout
    shown = json.loads(daw_bridge("jobs", "show", listed["job_id"], *config, timeout=60).stdout)
    assert shown["spec"]["operation"] == "extend" and shown["manifests"] == listed["manifests"]
    for action in (("cancel",), ("choose", "1"), ("keep",)):  # no daemon holds it: said so, not "no daemon"
        refused = daw_bridge("jobs", action[0], listed["job_id"], *action[1:], *config, timeout=60)
        assert refused.returncode == 2 and "is a one-shot command's" in refused.stdout, refused.stdout


def test_one_shot_refuses_a_reversed_range_with_the_field_named(project):
    result = daw_bridge("inpaint", str(project.song), "--start", "9", "--end", "3",
                        "--config", str(project.config))
    assert result.returncode == 2
    assert "end: 3.0 must be greater than start" in result.stderr
    assert not project.drop.exists()


def test_a_one_shot_job_that_fails_says_why_in_one_line(project):
    short = project.root / "sketch.wav"
    sf.write(short, np.zeros((3 * 44100, 2), np.float32) + 0.1, 44100)
    result = daw_bridge("inpaint", str(short), "--start", "1", "--end", "2", "--config", str(project.config))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if "too short" in line]  # not the log's line, then the bar's
    assert len(said) == 1 and said[0].startswith("failed (j-") and "no_material" in said[0], result.stderr
    assert not project.drop.exists() or not list(project.drop.iterdir())


def test_a_one_shot_with_a_state_folder_it_cannot_make_says_so_in_one_line(project, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'project_roots = ["{project.root}"]\nstate_dir = "{project.song}/state"\n')  # under a file
    result = daw_bridge("inpaint", str(project.song), "--start", "3", "--end", "6", "--config", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == f"daw-bridge inpaint: the state folder {project.song}/state cannot be used " \
                                    "(Not a directory)"
    assert not project.drop.exists()


def test_send_and_jobs_talk_to_the_running_daemon(project, daemon):
    config = ("--config", str(project.config))
    pong = daw_bridge("send", "ping", *config, timeout=30)
    assert pong.returncode == 0 and pong.stdout.startswith("/bridge/pong")
    # options before the KEY=VALUE arguments, as a producer types them too
    done = daw_bridge("send", "extend", "--wait", f"source={project.song}", "extend_after=30", "duration=4",
                      "num_outputs=1", "request_id=cli-1", *config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/bridge/accepted cli-1" in done.stdout and "/bridge/done" in done.stdout
    bad = daw_bridge("send", "inpaint", "start=ten", *config, timeout=30)
    assert bad.returncode == 2 and "start" in bad.stdout

    listing = daw_bridge("jobs", *config, timeout=30)
    assert listing.returncode == 0 and "extend" in listing.stdout and "delivered" in listing.stdout
    job_id = listing.stdout.split()[0]
    shown = json.loads(daw_bridge("jobs", "show", job_id, *config, timeout=30).stdout)
    assert shown["request_id"] == "cli-1" and shown["state"] == "delivered"
    deadline = time.monotonic() + 60  # the picture is drawn after "done"; a bound for a loaded machine
    while shown["pictures"] == [None] and time.monotonic() < deadline:
        time.sleep(0.2)
        shown = json.loads(daw_bridge("jobs", "show", job_id, *config, timeout=30).stdout)
    [picture] = shown["pictures"]  # one variant, one picture, named by its manifest
    assert Path(picture).name == json.loads(Path(shown["manifests"][0]).read_text())["picture"]
    assert Path(picture).read_bytes().startswith(b"\x89PNG")


def test_doctor_reports_each_check(project):
    result = daw_bridge("doctor", "--config", str(project.config), timeout=120)
    assert "OSC 127.0.0.1" in result.stdout and "backend local" in result.stdout
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_the_demo_runs_through_the_real_daemon_and_prints_manifests(tmp_path):
    result = daw_bridge("demo", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    manifests = [Path(line.strip()) for line in result.stdout.splitlines() if line.strip().endswith(".json")]
    assert len(manifests) == 4  # two variants each of the inpaint and the extend
    assert all(m.exists() and m.parent == tmp_path / "demo" / "daw-bridge" for m in manifests)
    assert "summary:" in result.stdout


@pytest.mark.parametrize("flags", [("send", "ping", "--port", "70000"), ("send", "ping", "--timeout", "nan"),
                                   ("send", "ping", "--timeout", "inf"), ("plugin", "list", "--port", "0")])
def test_a_port_or_wait_the_socket_cannot_take_is_a_usage_error(project, flags):
    # 70000 reached sendto() and a timeout of nan or inf settimeout()/time: each a traceback, exit 1
    result = daw_bridge(*flags, "--config", str(project.config), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and f"argument {flags[2]}: {flags[3]}" in result.stderr


def test_an_unknown_option_is_still_a_usage_error_wherever_it_stands(project):
    for argv in (("send", "ping", "--bogus"), ("send", "ping", "--timeout", "1", "x=1", "--bogus"),
                 ("jobs", "list", "--bogus")):
        result = daw_bridge(*argv, "--config", str(project.config), timeout=30)
        assert result.returncode == 2 and "unrecognized arguments" in result.stderr, (argv, result.stderr)


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(project):
    # 'daw-bridge send ... | head -1': the next print met a closed pipe and ended in a BrokenPipeError traceback
    process = subprocess.Popen([sys.executable, "-m", "bridge", "send", "ping", "--timeout", "0.5", "--config",
                                str(project.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=daemon_environment(), cwd=ROOT, preexec_fn=ask_to_die_with_parent)
    process.stdout.close()  # nobody reads what it prints: no daemon answers, and it says so on stdout
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 141 and "Traceback" not in stderr, stderr


def _paid_one_shot_of_unknown_fate(project, fake: FakeMusicGPT, env: dict) -> tuple[subprocess.CompletedProcess, str]:
    """A one-shot inpaint on MusicGPT answered with a 500 after its task was created (and paid for); its job id."""
    fake.inject("submit", "status_after_accept")
    result = daw_bridge("inpaint", str(project.song), "--start", "12", "--end", "16", "--prompt", "brass",
                        "--backend", "musicgpt", "--num-outputs", "1", "--config", str(project.config), env=env)
    return result, result.stderr.split("submission_unknown (")[1].split(")")[0]


def test_a_one_shot_paid_job_of_unknown_fate_is_settled_later_without_paying_again(project):
    # A 500 after MusicGPT created the task: the one-shot printed "failed (None): None", and the paid task's results
    # could not be brought in afterwards ('jobs resolve' asked the daemon, which never saw the job)
    env = {"MUSICGPT_API_KEY": "sk-test-one-shot"}
    with FakeMusicGPT(api_key=env["MUSICGPT_API_KEY"]) as fake:
        env["MUSICGPT_BASE_URL"] = fake.url
        result, job_id = _paid_one_shot_of_unknown_fate(project, fake, env)
        assert result.returncode == 1 and "None" not in result.stderr, result.stderr
        assert "submission_unknown (j-" in result.stderr and "HTTP 500" in result.stderr
        assert f"daw-bridge jobs resolve {job_id} --task-id" in result.stderr

        [task_id] = fake.tasks  # what the producer finds in their MusicGPT account
        resolved = daw_bridge("jobs", "resolve", job_id, "--task-id", task_id, "--config", str(project.config),
                              env=env)
        assert resolved.returncode == 0, resolved.stdout + resolved.stderr
        [manifest] = [Path(line) for line in resolved.stdout.split()]
        assert json.loads(manifest.read_text())["backend"] == "musicgpt" and manifest.parent == project.drop
        again = daw_bridge("jobs", "resolve", job_id, "--task-id", task_id, "--config", str(project.config), env=env)
        assert again.returncode == 2 and "has no unknown submission to resolve (delivered)" in again.stderr
        assert sum(fake.submits.values()) == 1  # paid once, whatever was asked
    output = result.stdout + result.stderr + resolved.stdout + resolved.stderr + again.stdout + again.stderr
    assert "sk-test-one-shot" not in output


def test_a_one_shot_job_whose_resolve_was_interrupted_is_retried_from_its_task(project):
    # Ctrl-C while a resolve waited for the task: the job ended cancelled, 'jobs resolve' refused it and 'jobs retry'
    # asked the daemon's journal ("no jobs yet", exit 0), so the paid task's results could not be brought in
    env = {"MUSICGPT_API_KEY": "sk-test-one-shot"}
    config = ("--config", str(project.config))
    with FakeMusicGPT(api_key=env["MUSICGPT_API_KEY"], time_scale=100.0) as fake:  # the task runs until finished
        env["MUSICGPT_BASE_URL"] = fake.url
        _, job_id = _paid_one_shot_of_unknown_fate(project, fake, env)
        [task_id] = fake.tasks
        for argv, said in ((("--task-id", task_id, "j-nope"), "no job j-nope"),  # the job after its option too
                           ((job_id,), "give either --task-id ID or --not-submitted")):
            refused = daw_bridge("jobs", "resolve", *argv, *config, env=env, timeout=30)
            assert refused.returncode == 2 and refused.stdout.strip().endswith(said), refused.stdout
        with subprocess.Popen([sys.executable, "-m", "bridge", "jobs", "resolve", job_id, "--task-id", task_id,
                               *config], stderr=subprocess.PIPE, text=True, env=daemon_environment(env), cwd=ROOT,
                              preexec_fn=ask_to_die_with_parent) as resolving:
            for line in resolving.stderr:
                if "generating" in line:
                    break
            resolving.send_signal(signal.SIGINT)
            stderr = resolving.stderr.read()
        assert resolving.wait(timeout=60) == 1 and "Traceback" not in stderr, stderr
        assert f"'daw-bridge jobs retry {job_id}' takes it up again from MusicGPT task {task_id}" in stderr
        assert not project.drop.exists() or not list(project.drop.iterdir())

        fake.finish(task_id)
        retried = daw_bridge("jobs", "retry", job_id, *config, env=env)
        assert retried.returncode == 0, retried.stdout + retried.stderr
        [manifest] = [Path(line) for line in retried.stdout.split()]
        assert json.loads(manifest.read_text())["job_id"] == job_id and manifest.parent == project.drop
        assert sum(fake.submits.values()) == 1  # paid once

    # A damaged one-shot journal stood in the way of every resolve and retry, the daemon's jobs' too
    shutil.copy(project.state / "one-shot-journal.sqlite", project.state / "journal.sqlite")  # the daemon's job
    (project.state / "one-shot-journal.sqlite").write_bytes(b"not a database" * 100)
    to_daemon = daw_bridge("jobs", "retry", job_id, *config, timeout=30)
    assert to_daemon.returncode == 1 and "no daemon answered" in to_daemon.stdout, to_daemon.stdout + to_daemon.stderr
    # a job the readable journal lacks may be in the damaged one: the answer does not say it is gone
    unknown = daw_bridge("jobs", "show", "j-elsewhere", *config, timeout=30)
    assert unknown.returncode == 2 and "one-shot-journal.sqlite" in unknown.stderr and "damaged" in unknown.stderr
    assert unknown.stdout.strip() == "daw-bridge jobs: no job j-elsewhere in the journal that can be read"


def test_a_paid_one_shot_killed_outright_is_taken_up_from_its_task(project):
    # SIGKILL (or a power cut) while the one-shot waited for its paid task: the job stayed 'generating' in the
    # one-shot journal for good ('retry': still running; 'resolve': nothing to resolve), its results never fetched
    env = {"MUSICGPT_API_KEY": "sk-test-one-shot"}
    config = ("--config", str(project.config))
    with FakeMusicGPT(api_key=env["MUSICGPT_API_KEY"], time_scale=100.0) as fake:  # the task runs until finished
        env["MUSICGPT_BASE_URL"] = fake.url
        with subprocess.Popen([sys.executable, "-m", "bridge", "inpaint", str(project.song), "--start", "12", "--end",
                               "16", "--prompt", "brass", "--backend", "musicgpt", "--num-outputs", "1", *config],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=daemon_environment(env), cwd=ROOT, preexec_fn=ask_to_die_with_parent) as one_shot:
            for line in one_shot.stderr:
                if "generating" in line:
                    break
            [task_id] = fake.tasks
            journal = Journal(project.state / "one-shot-journal.sqlite")
            [job] = journal.recent()
            journal.close()
            busy = daw_bridge("jobs", "retry", job.job_id, *config, env=env, timeout=30)
            assert busy.returncode == 2 and "a one-shot command is still running" in busy.stderr, busy.stderr
            one_shot.kill()
            one_shot.communicate(timeout=30)

        fake.finish(task_id)
        taken_up = daw_bridge("jobs", "retry", job.job_id, *config, env=env)
        assert taken_up.returncode == 0, taken_up.stdout + taken_up.stderr
        [manifest] = [Path(line) for line in taken_up.stdout.split()]
        assert json.loads(manifest.read_text())["job_id"] == job.job_id and manifest.parent == project.drop
        assert sum(fake.submits.values()) == 1  # paid once
    assert "sk-test-one-shot" not in busy.stderr + taken_up.stdout + taken_up.stderr


def test_settling_a_one_shot_job_later_grants_no_more_folders_than_the_command_did(project, tmp_path):
    # 'jobs resolve' made the configured drop folder a project root of its own, so a drop folder turned into a
    # symlink out of the project since was followed (the daemon, and the one-shot itself, refuse it)
    env = {"MUSICGPT_API_KEY": "sk-test-one-shot"}
    with FakeMusicGPT(api_key=env["MUSICGPT_API_KEY"]) as fake:
        env["MUSICGPT_BASE_URL"] = fake.url
        _, job_id = _paid_one_shot_of_unknown_fate(project, fake, env)
        outside = tmp_path / "outside"
        outside.mkdir()
        shutil.rmtree(project.drop, ignore_errors=True)
        project.drop.symlink_to(outside)
        [task_id] = fake.tasks
        resolved = daw_bridge("jobs", "resolve", job_id, "--task-id", task_id, "--config", str(project.config),
                              env=env)
        assert sum(fake.submits.values()) == 1
    assert resolved.returncode == 1 and "Traceback" not in resolved.stderr, resolved.stderr
    assert "drop_folder_outside_roots" in resolved.stderr and not list(outside.iterdir())


@contextlib.contextmanager
def sent_to_a_stand_in(project, *args: str):
    """``daw-bridge send ARGS`` aimed at a UDP socket that stands for the daemon (it reads what is sent, and answers
    as the test says): yields (that socket, with a 30 s timeout; the command's process, its output piped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stand_in:
        stand_in.bind(("127.0.0.1", 0))
        process = subprocess.Popen([sys.executable, "-m", "bridge", "send", *args,
                                    "--port", str(stand_in.getsockname()[1]), "--config", str(project.config)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=daemon_environment(), cwd=ROOT, preexec_fn=ask_to_die_with_parent)
        stand_in.settimeout(30)
        try:
            yield stand_in, process
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_send_wait_on_a_daemon_that_stops_answering_mid_job_ends_in_one_line(project):
    # A daemon killed after accepting: --wait ended in a TimeoutError traceback, after 600 s whatever --timeout said
    with sent_to_a_stand_in(project, "extend", f"source={project.song}", "extend_after=10", "--wait", "--timeout",
                            "2") as (stand_in, process):
        _, sender = stand_in.recvfrom(65536)
        stand_in.sendto(encode("/bridge/accepted", ["", "j-20261130-120000-abcdef"]), sender)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and stderr == "", stderr
    assert stdout.splitlines()[-1].startswith("daw-bridge send: no outcome for extend within 2 s"), stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "Ctrl-C", "terminal closed"])
def test_a_one_shot_stopped_while_delivering_cancels_and_leaves_nothing(project, signum):
    # A kill mid-delivery left a hidden half-written WAV in the drop folder for good (no daemon resumes the job)
    out = project.root / "results"
    process = subprocess.Popen([sys.executable, "-m", "bridge", "extend", str(project.song), "--after", "30",
                                "--duration", "600", "--out", str(out), "--config", str(project.config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon_environment(),
                               cwd=ROOT, preexec_fn=ask_to_die_with_parent)
    for line in process.stderr:  # not a terminal: one progress line per state
        if "delivering" in line:
            break
    deadline = time.monotonic() + 60  # a bound for a loaded machine: 600 s of audio takes a while to write
    while not list(out.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(out.glob(".*.part")), "the delivery never started writing"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "cancelled (j-" in stderr and stdout == "", stderr
    assert list(out.iterdir()) == [], "something was left in the drop folder"


def test_the_help_says_what_it_does_and_where_to_start():
    result = daw_bridge("--help", timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    about = result.stdout.split("\n\n")[1]  # after the usage line
    assert about.startswith("Rework a range of a song from your DAW") and "daw-bridge demo" in about
    assert "``" not in result.stdout  # no docstring markup
    for command in ("serve", "send", "inpaint", "extend", "jobs", "doctor", "demo", "install"):
        assert f"\n    {command} " in result.stdout
