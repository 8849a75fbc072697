"""A producer keeps or discards a delivered job's takes: the daemon publishes each decision as a file the DAW scripts
apply, links a kept take where Ableton Live's browser shows it, tells the plugin instance that made the job, and
refuses a decision it cannot take in one line naming the field. Real daemon processes, real UDP, the real CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

from bridge.client import BridgeClient, Reply
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.decisions import Decisions
from bridge.frontends.osc import OscFrontend
from bridge.frontends.osc_wire import encode
from osc_schema import DECISION_FORMAT
from tests.conftest import DaemonProcess, Project, free_udp_port
from tests.frontends.test_midi import HeldBackend, until
from tests.test_cli import daw_bridge


def decide(client: BridgeClient, job: str, decision: str, *options) -> Reply:
    """Send /bridge/decide JOB DECISION [choice N], unchecked, and return the answer (decided or error)."""
    client.send_raw(encode("/bridge/decide", [job, decision, *options]))
    reply = client.wait_for(lambda r: r.name in ("decided", "error"), timeout=30)
    assert reply is not None, f"no answer to decide {job} {decision} {options}"
    return reply


def refusal(client: BridgeClient, job: str, decision: str, *options) -> tuple[str, str]:
    """(field, reason) of the /bridge/error a decision is refused with."""
    reply = decide(client, job, decision, *options)
    assert reply.name == "error" and reply.args[0] == "/bridge/decide", reply
    field, reason = reply.args[2:]
    assert "\n" not in reason and reason.startswith(f"{field}: "), reason
    return field, reason


def decision_file(project: Project, job: str) -> dict:
    return json.loads((project.drop / ".daw-bridge-decisions" / f"{job}.json").read_text(encoding="utf-8"))


def audio_digests(project: Project) -> dict[str, str]:
    """Every visible file of the drop folder, by name, with its content's digest."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in project.visible_drop_files() if p.is_file()}


def test_a_plugins_job_is_chosen_kept_and_discarded_in_files_the_daw_scripts_read(project):
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as plugin, BridgeClient("127.0.0.1", project.port) as pads:
            # the plugin instance makes the job; the producer decides from elsewhere (a controller, the CLI)
            outcome, _ = plugin.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="",
                                        num_outputs=2, timeout=300)
            assert outcome.name == "done", outcome
            job, manifests = outcome.args[0], [Path(m) for m in outcome.args[1:]]
            project.pictured_drop_files()
            delivered = audio_digests(project)

            assert decide(pads, job, "choose", "choice", 2).args == [job, "choose", 2, 1]
            told = plugin.wait_for(lambda r: r.name == "decided", timeout=10)
            assert told is not None and told.args == [job, "choose", 2, 1], "the plugin hears which take to play"
            published = decision_file(project, job)
            assert published == {"format": DECISION_FORMAT, "job_id": job, "seq": 1, "decision": "choose",
                                 "choice": 2, "manifests": [m.name for m in manifests],
                                 "decided_at": published["decided_at"]}
            time.strptime(published["decided_at"], "%Y-%m-%dT%H:%M:%SZ")
            assert [p.name for p in (project.drop / ".daw-bridge-decisions").iterdir()] == [f"{job}.json"]

            # keep without a choice keeps the chosen take, and links it into Kept for Live's browser
            assert decide(pads, job, "keep").args == [job, "keep", 2, 2]
            assert plugin.wait_for(lambda r: r.name == "decided", timeout=10).args == [job, "keep", 2, 2]
            audio = manifests[1].with_name(json.loads(manifests[1].read_text())["audio"])
            kept = project.drop / "Kept" / audio.name
            assert [p.name for p in kept.parent.iterdir()] == [audio.name] and kept.samefile(audio)

            daemon.stop()
            daemon = DaemonProcess(project).start()  # the numbering goes on, and "last" is still this job
            assert decide(pads, "last", "choose", "choice", 2).args == [job, "choose", 2, 3]
            assert plugin.wait_for(lambda r: r.name == "decided", timeout=10).args == [job, "choose", 2, 3]

            # the plugin decides itself: it is answered once, not once as sender and again as the job's maker (the
            # answer comes once the drop folder took the decision, in a thread: the fence is sent after it)
            plugin.send_raw(encode("/bridge/decide", [job, "discard"]))
            answers = [plugin.wait_for(lambda r: True, timeout=10)]
            plugin.send("ping")
            answers.append(plugin.wait_for(lambda r: True, timeout=10))
            assert [(r.name, r.args) for r in answers] == [("decided", [job, "discard", 0, 4]),
                                                           ("pong", answers[1].args)]
            assert decision_file(project, job)["choice"] == 0

            assert refusal(pads, job, "choose", "choice", 2) == (
                "job_id", (f"job_id: {job!r} was discarded (decision 4): its takes are gone, so nothing more can "
                           "be decided"))
            assert decision_file(project, job)["seq"] == 4
            # nothing of the job's audio was moved or deleted: the DAW scripts take the takes out of the project
            assert audio_digests(project) == delivered and kept.samefile(audio)
    finally:
        daemon.stop()


def test_every_refusal_is_answered_in_one_line_naming_the_field_and_nothing_is_written(project, daemon, client):
    assert refusal(client, "last", "keep") == ("job_id", "job_id: 'last' found no delivered job yet")
    outcome, _ = client.run_job("extend", source=str(project.song), extend_after=20.0, duration=4.0, num_outputs=1,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]

    assert refusal(client, "j-nope", "keep") == ("job_id", "job_id: 'j-nope' is not a known job")
    assert refusal(client, job, "choose") == ("choice", ("choice: missing: choose needs the take, 0 for the "
                                                         "original or 1..1 for a variant"))
    assert refusal(client, job, "choose", "choice", 2) == ("choice",
                                                           "choice: 2 is not among this job's 1 variant(s)")
    assert refusal(client, job, "discard", "choice", 1) == (
        "choice", "choice: 1 is not taken by discard (it always goes back to the original)")
    assert refusal(client, job, "maybe") == ("decision", "decision: 'maybe' must be one of choose, keep, discard")
    assert refusal(client, job, "choose", "choice", 3) == ("choice", "choice: 3 must be in range 0..2")
    assert not (project.drop / ".daw-bridge-decisions").exists() and not (project.drop / "Kept").exists()
    assert client.ping(timeout=5)


def test_a_job_still_running_cannot_be_decided_until_it_is_delivered(tmp_path, demo_song_path):
    async def story():
        project = Project(tmp_path / "project", demo_song_path)
        config = Config(state_dir=project.state, project_roots=(project.root,), drop_folder=project.drop,
                        inbox=project.inbox, backend="local", osc_port=free_udp_port())
        journal = Journal(config.journal_path)
        held = HeldBackend("local")
        held.gate = asyncio.Event()
        service = JobService(config, journal, {"local": held})
        osc = OscFrontend(service, config, Decisions(service))
        try:
            await osc.start()
            with BridgeClient("127.0.0.1", config.osc_port) as client:
                client.send("inpaint", source=str(project.song), start=5.0, end=8.0, prompt="", num_outputs=1)
                accepted = await asyncio.to_thread(client.wait_for, lambda r: r.name == "accepted", 10)
                job = accepted.args[1]
                await until(lambda: service.get(job).state.value == "generating", what="the job to be generating")
                early = await asyncio.to_thread(refusal, client, job, "keep")
                held.gate.set()
                await service.drain()
                kept = await asyncio.to_thread(decide, client, job, "keep")
                original = await asyncio.to_thread(decide, client, job, "keep", "choice", 0)
                late = await asyncio.to_thread(refusal, client, job, "choose", "choice", 1)
            return job, early, [kept.args, original.args], late
        finally:
            osc.close()
            await service.close()
            await held.close()
            journal.close()

    job, early, kept, late = asyncio.run(story())
    assert early == ("job_id", f"job_id: {job!r} is generating: only a delivered job's takes can be decided")
    assert kept == [[job, "keep", 1, 1], [job, "keep", 0, 2]]
    # keeping the original takes the job's takes out, as a discard does (every DAW side treats it so): final too
    assert late == ("job_id", f"job_id: {job!r} kept the original (decision 2): its takes are gone, so nothing more "
                              "can be decided")


def test_the_cli_chooses_keeps_and_discards_through_the_running_daemon(project, daemon, client):
    outcome, _ = client.run_job("extend", source=str(project.song), extend_after=20.0, duration=4.0, num_outputs=1,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    config = ("--config", str(project.config))

    def jobs(*args: str) -> tuple[int, str]:
        done = daw_bridge("jobs", *args, *config, timeout=60)
        assert len(done.stdout.splitlines()) == 1, done.stdout + done.stderr  # one line, whatever the outcome
        return done.returncode, done.stdout.strip()

    assert jobs("choose", job, "1") == (0, f"{job}: choose variant 1 (decision 1)")
    assert jobs("keep", "last") == (0, f"{job}: keep variant 1 (decision 2)")
    shown = json.loads(daw_bridge("jobs", "show", job, *config, timeout=60).stdout)
    assert shown["decision"] == decision_file(project, job) and shown["decision"]["decision"] == "keep"
    assert jobs("choose", job) == (2, ("daw-bridge jobs choose: choice: missing: choose needs the take, 0 for "
                                       "the original or 1..1 for a variant"))
    assert jobs("choose", job, "7") == (2, "daw-bridge jobs choose: choice: 7 must be in range 0..2")
    assert jobs("discard", job, "1")[0] == 2
    assert jobs("discard", job) == (0, f"{job}: discard the variants (decision 3)")  # the original is what stays
    code, line = jobs("keep", job)
    assert code == 2 and line.startswith(f"daw-bridge jobs keep: job_id: {job!r} was discarded (decision 3)")
    assert jobs("show", job, "2") == (2, "daw-bridge jobs show: takes no take number (2); only choose and keep do")
