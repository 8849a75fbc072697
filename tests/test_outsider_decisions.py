"""An outsider's probes of decisions: what a producer does first when the decision folder is damaged, moved away or
cleaned, and what the DAW scripts then see. Real daemon, real UDP; the DAW scripts' ledgers are written as they
write them (``<drop folder>/.reaper-decided``: "<job_id> <seq>", ``.ardour-decided``: "<job_id>\\t<seq>")."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import soundfile as sf

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.audition.conftest import auditioning_daemon
from tests.audition.conftest import jack as jack  # the audition stories' private JACK server, a fixture
from tests.captures.test_capture_source import write_capture
from tests.conftest import DaemonProcess, Project
from tests.frontends.test_decide import decide, decision_file


def test_a_decision_made_after_the_decision_file_was_moved_away_is_still_new_to_the_daw(project, daemon, client):
    outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", num_outputs=2,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 1]
    assert decide(client, job, "choose", "choice", 2).args == [job, "choose", 2, 2]
    # both DAW scripts applied decision 2 (each records the seq it applied beside the results)
    (project.drop / ".reaper-decided").write_text(f"{job} 1\n{job} 2\n", encoding="utf-8")
    (project.drop / ".ardour-decided").write_text(f"{job}\t2\n", encoding="utf-8")

    # the decision file is damaged: the daemon says to move it away and decide again
    path = project.drop / ".daw-bridge-decisions" / f"{job}.json"
    path.write_text("{not json", encoding="utf-8")
    refused = decide(client, job, "choose", "choice", 1)
    assert refused.name == "error" and "\n" not in refused.args[-1] and "move it away" in refused.args[-1], refused
    path.rename(project.drop / f"{job}.json.damaged")
    # the next decision must be numbered past what the DAW applied, else the scripts skip it as already applied
    assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 3]
    assert decision_file(project, job)["seq"] == 3

    # REAPER applied decision 3; then the producer cleans the hidden folder away, the ledgers staying beside the results
    with (project.drop / ".reaper-decided").open("a", encoding="utf-8") as ledger:
        ledger.write(f"{job} 3\n")
    shutil.rmtree(project.drop / ".daw-bridge-decisions")
    assert decide(client, job, "keep", "choice", 2).args == [job, "keep", 2, 4]
    assert client.ping(timeout=5)


def test_after_a_keep_another_take_is_refused_not_announced_as_decided(project, daemon, client):
    """keep takes the job's other takes out of the project on both DAW sides; a later choose or keep of another take
    was published and answered /bridge/decided (the plugin switched to it, Kept got a second take) though no script
    could apply it."""
    outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", num_outputs=2,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    assert decide(client, job, "keep", "choice", 2).args == [job, "keep", 2, 1]
    kept = sorted(p.name for p in (project.drop / "Kept").iterdir())
    for decision, choice in (("choose", 1), ("keep", 1), ("choose", 0)):
        refused = decide(client, job, decision, "choice", choice)
        assert refused.name == "error" and refused.args[2:] == [
            "choice", f"choice: {choice} cannot be taken: {job} kept variant 2 (decision 1), so its other takes are "
                      "gone"], refused
    assert decision_file(project, job)["seq"] == 1 and sorted(p.name for p in (project.drop / "Kept").iterdir()) == kept
    assert decide(client, job, "choose", "choice", 2).args == [job, "choose", 2, 2]
    assert decide(client, job, "discard").args == [job, "discard", 0, 3]  # as keep 0 would


# -- audition ---------------------------------------------------------------------------------------------------------


def test_a_damaged_job_is_refused_in_one_line_and_the_last_press_wins_over_one_still_reading(
        jack, tmp_path):  # noqa: F811  (the fixture imported above)
    """A manifest edited by hand is refused naming it (it was "internal error (KeyError)"); and a press that arrives
    while an earlier one still reads its job's audio wins: the earlier one does not start playing over it once
    ready (it did, and both were answered as playing)."""
    with auditioning_daemon(jack, tmp_path) as (project, _), BridgeClient("127.0.0.1", project.port) as client:
        jobs = []
        for start in (4.0, 12.0, 20.0, 28.0):
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=start, end=start + 4,
                                        prompt="", backend="local", num_outputs=1, timeout=120)
            assert outcome.name == "done", outcome
            jobs.append((outcome.args[0], Path(outcome.args[1])))

        def answers(*requests: list) -> list:
            for request in requests:
                client.send_raw(encode("/bridge/audition", request))
            replies = [client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=60)
                       for _ in requests]
            assert None not in replies, replies
            return [reply.args for reply in replies]

        damaged, manifest = jobs[0]
        record = json.loads(manifest.read_text(encoding="utf-8"))
        del record["audio"]
        manifest.write_text(json.dumps(record), encoding="utf-8")
        assert answers([damaged, "variant", "variant", 1]) == [[
            "/bridge/audition", "", "", f"job {damaged}: the manifest {manifest.name} is damaged (KeyError: "
                                        "'audio')"]]
        not_audio, manifest = jobs[1]
        manifest.with_name(json.loads(manifest.read_text())["audio"]).write_text("not audio", encoding="utf-8")
        (refused,) = answers([not_audio, "variant", "variant", 1])
        assert refused[0] == "/bridge/audition" and "cannot be read" in refused[3] and "\n" not in refused[3]

        prepared, unprepared = jobs[2][0], jobs[3][0]
        assert answers([prepared, "variant", "variant", 1])[0][:3] == [prepared, "variant", 1]
        assert len(answers(*[[prepared, "ab"]] * 200)) == 200  # A/B as fast as UDP goes: every press answered
        # the unprepared job's audio is still being read when the prepared job's original is asked for
        replies = answers([unprepared, "variant", "variant", 1], [prepared, "original"])
        (last,) = [reply for reply in replies if reply[0] == prepared]  # the answers come in either order
        (late,) = [reply for reply in replies if reply[0] != prepared]
        assert last[:3] == [prepared, "original", 0], last
        assert late == ["/bridge/audition", "", "", f"job {unprepared}: not played, a later audition request came "
                                                    "while its audio was being read"], late
        # and it plays when asked again, from the audio it read
        assert answers([unprepared, "variant", "variant", 1])[0][:3] == [unprepared, "variant", 1]
        assert client.ping(timeout=5)


def test_a_decision_number_past_what_osc_carries_is_refused_in_one_line_and_nothing_is_published(
        project, daemon, client):
    """A damaged ledger line (a seq of 5000 digits, or one past OSC's int32) ended the decision in 'internal error'
    with a traceback; a decision file numbered 1e308 was published as decision 1e308 + 1, which /bridge/decided
    cannot carry, so the sender heard 'internal error' of a decision that was in fact published."""
    outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", num_outputs=1,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    path = project.drop / ".daw-bridge-decisions" / f"{job}.json"
    ledger = project.drop / ".reaper-decided"
    for damaged in (f"{job} {'9' * 5000}\n", f"{job} 2147483647\n"):
        ledger.write_text(damaged, encoding="utf-8")
        refused = decide(client, job, "choose", "choice", 1)
        assert refused.name == "error" and "\n" not in refused.args[-1], refused
        assert f"the ledger {ledger} records decision " in refused.args[-1] and "internal" not in refused.args[-1]
        assert not path.exists()
    ledger.write_text(f"{job} ²\n{job} 0002\n", encoding="utf-8")  # not ASCII digits: no seq; leading zeros: one
    assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 3]

    published = path.read_text(encoding="utf-8")
    for seq in ("1e308", "2147483647", str(10 ** 30)):
        path.write_text(published.replace('"seq": 3', f'"seq": {seq}'), encoding="utf-8")
        refused = decide(client, job, "choose", "choice", 0)
        assert refused.name == "error" and "move it away" in refused.args[-1], refused
        assert "internal" not in refused.args[-1] and json.loads(path.read_text())["choice"] == 1
    path.write_text(published.replace('"seq": 3', '"seq": 2147483645'), encoding="utf-8")
    assert decide(client, job, "choose", "choice", 0).args == [job, "choose", 0, 2147483646]
    refused = decide(client, job, "choose", "choice", 1)  # 2147483647 would be read back as damaged: not published
    assert refused.name == "error" and "no decision can follow decision 2147483646" in refused.args[-1], refused
    assert "\n" not in refused.args[-1] and json.loads(path.read_text())["seq"] == 2147483646
    assert client.ping(timeout=5)
    log = daemon.log.read_text(encoding="utf-8")
    assert "Traceback" not in log and "ERROR" not in log


def test_a_plugins_job_decided_after_the_decision_file_was_moved_away_is_still_new_to_the_plugin(tmp_path,
                                                                                                  demo_song_path):
    """The plugin keeps no ledger beside the results: it records the decision it applied in its capture index (and
    the host's project) and ignores one numbered no higher. After the decision file was moved away (as the daemon
    says to do with an unreadable one) the numbering began again at 1, and the plugin ignored the next decisions."""
    instance = f"{os.getpid()}-7"
    project = Project(tmp_path / "project", demo_song_path)
    song, _ = sf.read(str(project.song), dtype="float32", always_2d=True)
    write_capture(project.root / "captures" / instance, song)
    project.write_config(f'captures_dir = "{project.root / "captures"}"\n')
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", capture=instance, start=12.0, end=16.0, prompt="", num_outputs=2,
                                        timeout=300)
            assert outcome.name == "done", outcome
            job = outcome.args[0]
            assert decide(client, job, "choose", "choice", 2).args == [job, "choose", 2, 1]
            assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 2]
            # the instance applied decision 2 and says so in its index, as its background thread writes it
            index_path = project.root / "captures" / instance / "index.json"
            index = json.loads(index_path.read_text(encoding="utf-8"))
            index["job"] = {"request_id": "", "operation": "inpaint", "job_id": job, "state": "ready", "progress": 1,
                            "message": "", "manifests": outcome.args[1:], "gains": [1, 1], "variant": 0,
                            "decision": {"decision": "choose", "choice": 1, "seq": 2}}
            index_path.write_text(json.dumps(index), encoding="utf-8")

            (project.drop / ".daw-bridge-decisions" / f"{job}.json").rename(project.drop / f"{job}.json.moved")
            assert decide(client, job, "choose", "choice", 2).args == [job, "choose", 2, 3]
            assert decision_file(project, job)["seq"] == 3
            assert client.ping(timeout=5)
    finally:
        daemon.stop()
