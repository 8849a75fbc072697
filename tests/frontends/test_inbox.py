"""A DAW without sockets (ReaScript) drops JSON request files into the inbox; each is processed exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bridge.audio.region import probe
from bridge.client import BridgeClient
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.frontends.inbox import InboxFrontend
from bridge.models import JobRecord, JobSpec, State
from tests.conftest import ROOT, DaemonProcess, daemon_environment


def drop_request(inbox: Path, name: str, request: dict | str | bytes, suffix: str = ".json") -> Path:
    """Write a request file the way clients must: a temporary name first, then a rename to ``name + suffix``."""
    inbox.mkdir(parents=True, exist_ok=True)
    body = request if isinstance(request, (str, bytes)) else json.dumps(request)
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(body.encode() if isinstance(body, str) else body)
    final = inbox / f"{name}{suffix}"
    os.rename(tmp, final)
    return final


def remove_tree(folder: Path) -> None:
    """A producer's clean-up of a folder the running daemon writes into: rmtree alone failed when the daemon renamed
    a status file's .part into place while the folder was being emptied, so it is done again until it is gone."""
    while os.path.lexists(folder):
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_status(inbox: Path, name: str, states=("delivered", "failed"), timeout: float = 300) -> dict:
    path = inbox / "status" / f"{name}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            status = json.loads(path.read_text())
            if status["state"] in states:
                return status
        time.sleep(0.05)
    raise AssertionError(f"status {name} never reached {states}: "
                         f"{path.read_text() if path.exists() else 'no status file'}")


def test_a_request_file_is_processed_once_and_its_status_followed(project, daemon):
    drop_request(project.inbox, "req-1", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                          "duration": 8.0, "num_outputs": 1, "request_id": "req-1"})
    status = wait_for_status(project.inbox, "req-1")
    assert status["state"] == "delivered", status
    assert status["request_id"] == "req-1" and len(status["manifests"]) == 1
    manifest = json.loads(Path(status["manifests"][0]).read_text())
    assert manifest["operation"] == "extend" and manifest["source"]["start"] == 20.0
    assert (project.inbox / "processed" / "req-1.json").exists()
    assert not (project.inbox / "req-1.json").exists()

    assert daemon.stop() == 0, "SIGTERM must stop the daemon cleanly"
    journal = Journal(project.state / "journal.sqlite")
    assert [r.request_id for r in journal.recent()] == ["req-1"]
    journal.close()


def test_bad_request_files_are_moved_aside_with_their_reason_and_the_inbox_goes_on(project, daemon):
    drop_request(project.inbox, "broken", "{not json")
    drop_request(project.inbox, "empty", "")
    drop_request(project.inbox, "reversed", {"command": "inpaint", "source": str(project.song), "start": 9.0,
                                             "end": 3.0, "prompt": ""})
    drop_request(project.inbox, "good", {"command": "extend", "source": str(project.song), "extend_after": 30.0,
                                         "duration": 4.0, "num_outputs": 1, "request_id": "good"})
    assert wait_for_status(project.inbox, "good")["state"] == "delivered"
    reasons = {}
    for name in ("broken", "empty", "reversed"):
        error_file = project.inbox / "rejected" / f"{name}.error.json"
        deadline = time.monotonic() + 10
        while not error_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        reasons[name] = json.loads(error_file.read_text())
        assert (project.inbox / "rejected" / f"{name}.json").exists()
    assert "not valid JSON" in reasons["broken"]["message"]
    assert "empty" in reasons["empty"]["message"]
    assert reasons["reversed"]["field"] == "end" and "start" in reasons["reversed"]["message"]


def test_requests_dropped_while_the_daemon_was_down_are_taken_at_start(project):
    drop_request(project.inbox, "early", {"command": "extend", "source": str(project.song), "extend_after": 10.0,
                                          "duration": 4.0, "num_outputs": 1, "request_id": "early"})
    process = DaemonProcess(project).start()
    try:
        assert wait_for_status(project.inbox, "early")["state"] == "delivered"
    finally:
        process.stop()


def test_a_request_claimed_before_a_crash_is_run_once_even_without_a_request_id(project):
    """Killed after journaling the job but before moving the file on: the restart must not run it again."""
    request = {"command": "extend", "source": str(project.song), "extend_after": 12.0, "duration": 4.0,
               "num_outputs": 1}
    drop_request(project.inbox, "no-id", request)
    first = DaemonProcess(project).start()
    assert wait_for_status(project.inbox, "no-id")["state"] == "delivered"
    first.stop()
    # Put the file back where a crash would have left it: claimed, its job already in the journal.
    os.rename(project.inbox / "processed" / "no-id.json", project.inbox / "processing" / "no-id.json")
    # And a request claimed just before the crash that never became a job: that one is still to do.
    (project.inbox / "processing" / "other.json").write_text(json.dumps({**request, "extend_after": 14.0}))

    second = DaemonProcess(project).start()
    try:
        assert wait_for_status(project.inbox, "other")["state"] == "delivered"
    finally:
        second.stop()
    journal = Journal(project.state / "journal.sqlite")
    starts = sorted(r.spec.extend_after for r in journal.recent())
    journal.close()
    assert starts == [12.0, 14.0]
    assert sorted(p.name for p in (project.inbox / "processed").iterdir()) == ["no-id.json", "other.json"]


def test_a_request_written_in_place_is_taken_once_its_writer_is_done(project, daemon):
    """A client that writes the .json itself (no .part and rename), flushing as it goes: the file is taken when it
    holds a whole request (it was rejected as empty at its creation), and one closed half-written is rejected."""
    body = json.dumps({"command": "extend", "source": str(project.song), "extend_after": 20.0, "duration": 4.0,
                       "num_outputs": 1, "request_id": "in-place"})
    with open(project.inbox / "in-place.json", "w") as writer:
        for part in (body[:40], body[40:]):
            writer.write(part)
            writer.flush()
            time.sleep(1.0)  # the daemon sees the file created, then growing, before it is whole
            assert not (project.inbox / "rejected" / "in-place.error.json").exists()
    assert wait_for_status(project.inbox, "in-place")["state"] == "delivered"

    with open(project.inbox / "cut.json", "w") as writer:
        writer.write(body[:40])
    error_file = project.inbox / "rejected" / "cut.error.json"
    deadline = time.monotonic() + 30  # a closed file is taken at once; a loaded machine may take a while
    while not error_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "not valid JSON" in json.loads(error_file.read_text())["message"]
    assert (project.inbox / "rejected" / "cut.json").read_text() == body[:40]


def test_an_inbox_removed_while_the_daemon_runs_is_made_again_and_watched(project, daemon):
    """A producer's clean-up deletes the inbox (or moves it away): its watch died with it, so requests dropped in
    the inbox made again were never answered."""
    for story, remove in (("deleted", remove_tree), ("moved away", lambda f: f.rename(f.with_name("old-inbox")))):
        remove(project.inbox)
        project.inbox.mkdir()
        name = story.replace(" ", "-")
        drop_request(project.inbox, name, {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                           "duration": 4.0, "num_outputs": 1, "request_id": name})
        assert wait_for_status(project.inbox, name, timeout=60)["state"] == "delivered", story
        assert (project.inbox / "processed" / f"{name}.json").exists()
    # Its answer folders alone removed: the next requests are moved on and answered as usual, also when they come
    # before the daemon's look at its folders (every 2 s) made them again (they stayed in processing/ for good)
    for folder in ("processed", "rejected", "status"):
        remove_tree(project.inbox / folder)
    drop_request(project.inbox, "broken", "{not json")
    drop_request(project.inbox, "after", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                          "duration": 4.0, "num_outputs": 1, "request_id": "after"})
    assert wait_for_status(project.inbox, "after", timeout=60)["state"] == "delivered"
    assert wait_for_status(project.inbox, "broken", timeout=60)["state"] == "failed"
    assert (project.inbox / "processed" / "after.json").exists()  # moved there once its job was journaled
    assert (project.inbox / "rejected" / "broken.json").exists()
    assert list((project.inbox / "processing").iterdir()) == []


def test_a_request_dropped_just_after_processing_was_removed_is_answered(project, daemon):
    """A clean-up removes processing/ and a request comes before the daemon's look at its folders: the claim's
    rename found no folder, read that as the file taken already, and the request waited unanswered for the next
    start (the look made the folder again, but the inbox itself had not changed, so nothing looked at it again)."""
    remove_tree(project.inbox / "processing")
    drop_request(project.inbox, "after-clean-up", {"command": "extend", "source": str(project.song),
                                                   "extend_after": 20.0, "duration": 4.0, "num_outputs": 1,
                                                   "request_id": "after-clean-up"})
    assert wait_for_status(project.inbox, "after-clean-up", timeout=60)["state"] == "delivered"
    assert (project.inbox / "processed" / "after-clean-up.json").exists()
    assert not (project.inbox / "after-clean-up.json").exists()


def test_a_file_standing_where_processed_goes_costs_no_traceback_and_is_named_once(project, daemon):
    """A file named ``processed`` in the inbox (a script's log, a sync tool's leftover): the request's job ran, but
    moving the request on ended in asyncio's 'Exception in callback' traceback in the daemon's log, and the look at
    the folders said it could not make processed/ every 2 s for as long as the file stayed."""
    (project.inbox / "processed").rmdir()
    (project.inbox / "processed").write_text("not a folder\n")
    drop_request(project.inbox, "blocked", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                            "duration": 4.0, "num_outputs": 1, "request_id": "blocked"})
    assert wait_for_status(project.inbox, "blocked", timeout=60)["state"] == "delivered"
    assert (project.inbox / "processing" / "blocked.json").exists()  # taken up again at the next start
    log = daemon.log.read_text()
    assert "Traceback" not in log
    assert "request file blocked.json was taken, but cannot be moved into" in log
    assert log.count("cannot be made again") <= 1
    (project.inbox / "processed").unlink()


def test_a_request_named_json_in_capitals_is_taken_and_one_saved_as_json_txt_is_refused_with_why(project, daemon):
    request = {"command": "extend", "source": str(project.song), "extend_after": 20.0, "duration": 4.0,
               "num_outputs": 1}
    # straight to these names (a request first named tmp.json was sometimes taken as tmp.json before its rename)
    drop_request(project.inbox, "caps", {**request, "request_id": "caps"}, suffix=".JSON")
    drop_request(project.inbox, "edited", {**request, "request_id": "edited"}, suffix=".json.txt")
    assert wait_for_status(project.inbox, "caps")["state"] == "delivered"
    refusal = wait_for_status(project.inbox, "edited.json", states=("failed",))["error"]["message"]
    assert refusal.endswith("ends in .json.txt (the text editor added .txt): save it as plain text named ....json")
    assert (project.inbox / "rejected" / "edited.json.txt").exists()
    assert sorted(p.name for p in project.inbox.iterdir() if p.is_file()) == []


def test_a_request_nested_thousands_deep_written_in_place_is_rejected_without_a_traceback(project, daemon):
    """Written in place, a file of 100000 nested arrays: each event while it was written ended in a RecursionError
    traceback in the daemon's log (the check for a whole JSON document let it through), before the close rejected
    it."""
    with open(project.inbox / "deep.json", "w") as writer:
        for part in ("[" * 100_000, "]" * 100_000):
            writer.write(part)
            writer.flush()
            time.sleep(1.0)  # the daemon sees the file created, then growing, before it is whole
    error_file = project.inbox / "rejected" / "deep.error.json"
    deadline = time.monotonic() + 30  # a closed file is taken at once; a loaded machine may take a while
    while not error_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(error_file.read_text())["message"] == "request: not valid JSON (nested too deeply)"
    assert "Traceback" not in daemon.log.read_text()


def test_an_inbox_moved_away_and_back_is_watched_again_and_a_file_at_its_name_is_said_once(project, daemon):
    """The inbox moved away, a file standing at its name for a while, then the folder moved back: the daemon took
    its own lock on that folder for another daemon's ('another daw-bridge daemon already watches the inbox') and
    never watched it again, saying so every 2 s; while the file stood there it said two lines every 2 s."""
    away = project.inbox.with_name("inbox-away")
    project.inbox.rename(away)
    project.inbox.write_text("a note, not a folder\n")
    deadline = time.monotonic() + 60
    while "cannot be watched" not in daemon.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    project.inbox.unlink()
    away.rename(project.inbox)
    drop_request(project.inbox, "back", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                         "duration": 4.0, "num_outputs": 1, "request_id": "back"})
    assert wait_for_status(project.inbox, "back", timeout=60)["state"] == "delivered"
    log = daemon.log.read_text()
    assert "another daw-bridge daemon" not in log
    assert log.count("cannot be watched") == 1 and log.count("was removed or replaced") == 1


def test_results_are_never_dropped_into_the_inbox_own_folders_which_it_moves_and_deletes(project, daemon):
    """A request naming the inbox's processed/ (or status/, rejected/, processing/) as its drop folder was delivered
    there: those folders' files are deleted after [retention] files_days, results and all, and a manifest in
    processing/ is taken up as a request at the next start. Such a drop folder is refused in one line."""
    request = {"command": "extend", "source": str(project.song), "extend_after": 20.0, "duration": 4.0,
               "num_outputs": 1}
    for folder in ("processed", "status", "rejected", "processing"):
        drop_request(project.inbox, f"into-{folder}", {**request, "request_id": f"into-{folder}",
                                                       "drop_folder": str(project.inbox / folder)})
        error = wait_for_status(project.inbox, f"into-{folder}", timeout=60)["error"]
        assert error is not None, f"a result was delivered into {folder}/"
        assert error["message"].startswith("drop_folder: '") and error["message"].endswith(
            f" is the inbox's {folder} folder, whose files the daemon moves and deletes as its own (the results "
            "would be lost)"), error
        assert not list((project.inbox / folder).glob("*.wav"))
    assert "Traceback" not in daemon.log.read_text()


def test_a_request_whose_file_name_is_not_utf8_is_run_and_answered(project, daemon):
    """A request named in Latin-1 ("démo.json" as an old tool or a share writes it: byte 0xE9) failed as 'internal
    error' with two tracebacks in the daemon's log, and no status file was written: the name, holding a surrogate in
    Python, reached the journal's query and the status file's name."""
    body = json.dumps({"command": "extend", "source": str(project.song), "extend_after": 20.0, "duration": 4.0,
                       "num_outputs": 1}).encode()
    os.makedirs(project.inbox, exist_ok=True)
    with open(os.path.join(os.fsencode(project.inbox), b".latin.part"), "wb") as file:
        file.write(body)
    os.rename(os.path.join(os.fsencode(project.inbox), b".latin.part"),
              os.path.join(os.fsencode(project.inbox), b"d\xe9mo.json"))
    deadline = time.monotonic() + 60
    while not list((project.inbox / "status").glob("d_mo-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [status_file] = (project.inbox / "status").glob("d_mo-*.json")
    assert wait_for_status(project.inbox, status_file.stem)["state"] == "delivered"
    assert os.listdir(os.fsencode(project.inbox / "processed")) == [b"d\xe9mo.json"]
    assert "Traceback" not in daemon.log.read_text()


def test_a_state_folder_that_is_the_inbox_is_refused_at_start_and_by_doctor(project):
    """state_dir and inbox set to one folder ("~/daw-bridge" for both): the daemon ran, and the inbox took its own
    context.json (the selection pads act on) as a request file, moved it to rejected/ at every change of the
    context, and said 'command: missing' each time."""
    for state in (project.inbox, project.inbox / "status"):
        project.config.write_text(project.config.read_text(encoding="utf-8").replace(
            f'state_dir = "{project.state}"', f'state_dir = "{state}"'), encoding="utf-8")
        project.state = state
        run = [sys.executable, "-m", "bridge", "--config", str(project.config)]
        serve = subprocess.run([*run[:3], "serve", *run[3:]], capture_output=True, text=True, timeout=120,
                               env=daemon_environment(), cwd=ROOT)
        doctor = subprocess.run([*run[:3], "doctor", *run[3:]], capture_output=True, text=True, timeout=120,
                                env=daemon_environment(), cwd=ROOT)
        where = f"the inbox {project.inbox}" if state == project.inbox else "the inbox's status folder"
        reason = (f"state_dir {state} is {where}, which would take the daemon's own files there (context.json) as "
                  "request files: give each a folder of its own")
        assert serve.returncode == 2 and serve.stderr.strip().endswith(f"ERROR bridge.daemon: {reason}"), serve.stderr
        assert "Traceback" not in serve.stderr
        assert f"BAD  {reason}" in doctor.stdout.splitlines(), doctor.stdout


def test_a_long_request_id_in_cjk_gets_its_status_file(project, daemon):
    """A request_id of 100 CJK characters (within the 128 characters allowed) made a status file name of 300 bytes:
    it could not be written, and a client waiting on status/ never heard of its delivered job."""
    request_id = "曲" * 100
    drop_request(project.inbox, "cjk", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                        "duration": 4.0, "num_outputs": 1, "request_id": request_id})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [json.loads(p.read_text()) for p in (project.inbox / "status").glob("曲*.json")]
        if statuses and statuses[0]["state"] == "delivered":
            break
        time.sleep(0.05)
    assert [s["request_id"] for s in statuses] == [request_id] and statuses[0]["state"] == "delivered", statuses
    assert "could not write status file" not in daemon.log.read_text()


def test_a_request_file_naming_a_job_sent_over_osc_follows_that_job_to_its_end(project, daemon):
    """A script sends over OSC, then drops the same request as a file to wait on status/: the file is that job, and
    its status file was written once, as the job stood then ("generating"), and never again."""
    request = {"source": str(project.song), "extend_after": 20.0, "duration": 300.0, "num_outputs": 1,
               "request_id": "from-osc"}  # a long extension: still running when the file is taken
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("extend", **request)
        accepted = client.wait_for(lambda reply: reply.name == "accepted", timeout=30)
        assert accepted is not None
        drop_request(project.inbox, "from-file", {"command": "extend", **request})
        running = wait_for_status(project.inbox, "from-osc", states=("accepted", "exporting", "generating",
                                                                      "delivering", "delivered"), timeout=60)
        status = wait_for_status(project.inbox, "from-osc", timeout=120)
    assert status["job_id"] == running["job_id"] == accepted.args[1] and status["state"] == "delivered", status


def test_a_request_dropped_again_after_its_status_was_pruned_is_answered_with_its_job(project, daemon):
    """The same request file dropped again (to check on it, or by a sync tool) after retention removed its status
    file: it is rightly no new job, but nothing wrote its status again, and the client waited on status/ for good.
    The same goes for a request whose request_id names a job sent before."""
    request = {"command": "extend", "source": str(project.song), "extend_after": 20.0, "duration": 4.0,
               "num_outputs": 1}
    drop_request(project.inbox, "again", request)
    drop_request(project.inbox, "named", {**request, "request_id": "named"})
    first = {name: wait_for_status(project.inbox, name) for name in ("again", "named")}
    assert all(status["state"] == "delivered" for status in first.values()), first
    for name in ("again", "named"):
        (project.inbox / "status" / f"{name}.json").unlink()  # as [retention] files_days does
        (project.inbox / "processed" / f"{name}.json").unlink()
    drop_request(project.inbox, "again", request)
    drop_request(project.inbox, "renamed", {**request, "request_id": "named"})  # the same request under a new name
    for name in ("again", "named"):
        status = wait_for_status(project.inbox, name, timeout=60)
        assert (status["job_id"], status["state"]) == (first[name]["job_id"], "delivered"), status
    journal = Journal(project.state / "journal.sqlite")
    assert len(journal.recent()) == 2  # nothing ran twice
    journal.close()


def test_a_folder_named_like_a_request_is_answered_once_and_left_where_it_is_at_start_and_while_running(project):
    """A folder named ``take.json`` (a tool's, or a producer's mistake): found at the daemon's start it was moved into
    rejected/, contents and all, and stayed there for good; made while the daemon ran it was ignored, and a sender
    waiting on status/ waited for good. Both are now answered in status/, once, and left as they are."""
    project.inbox.mkdir(parents=True)
    (project.inbox / "early.json").mkdir()
    (project.inbox / "early.json" / "notes.txt").write_text("kept\n")
    daemon = DaemonProcess(project).start()
    try:
        early = wait_for_status(project.inbox, "early", timeout=60)
        (project.inbox / "late.json").mkdir()
        (project.inbox / "late.json" / "notes.txt").write_text("kept\n")  # a tool filling the folder it made
        (project.inbox / ".incoming").mkdir()
        (project.inbox / ".incoming" / "notes.txt").write_text("kept\n")
        (project.inbox / ".incoming").rename(project.inbox / "moved.json")
        late = wait_for_status(project.inbox, "late", timeout=60)
        moved = wait_for_status(project.inbox, "moved", timeout=60)
        os.chmod(project.inbox / "late.json", 0o750)  # more events on the folder: no second answer
        drop_request(project.inbox, "after", {"command": "extend", "source": str(project.song),
                                              "extend_after": 20.0, "duration": 4.0, "num_outputs": 1,
                                              "request_id": "after"})
        assert wait_for_status(project.inbox, "after", timeout=60)["state"] == "delivered"
    finally:
        daemon.stop()
    for name, status in (("early", early), ("late", late), ("moved", moved)):
        assert status["state"] == "failed" and status["job_id"] is None, status
        assert status["error"]["message"] == (f"request: '{name}.json' is a folder, not a request file: it is left "
                                              "where it is; write the request into a file of that name"), status
        assert (project.inbox / f"{name}.json" / "notes.txt").read_text() == "kept\n", f"{name}.json was touched"
        assert not os.path.lexists(project.inbox / "rejected" / f"{name}.json")
        assert json.loads((project.inbox / "rejected" / f"{name}.error.json").read_text()) == status["error"]
    assert list((project.inbox / "processing").iterdir()) == []
    log = daemon.log.read_text()
    assert "Traceback" not in log
    assert [log.count(f"request file {name}.json rejected") for name in ("early", "late", "moved")] == [1, 1, 1]


def test_requests_past_the_daemons_room_wait_in_turn_and_none_is_rejected(project):
    # A batch larger than max_jobs + max_queued was refused as busy, request by request, into rejected/: a script
    # dropping a night's work lost what did not fit. Request files are a queue that costs nothing: the ones past
    # the room wait in processing/, say so in their status files, and are taken in the order they came.
    project.write_config("max_jobs = 1\nmax_queued = 0\n")
    names = [f"batch-{n}" for n in range(4)]
    for n, name in enumerate(names):
        drop_request(project.inbox, name, {"command": "extend", "source": str(project.song),
                                           "extend_after": 10.0 + n, "duration": 4.0, "num_outputs": 1,
                                           "request_id": name})
    process = DaemonProcess(project).start()
    try:
        waiting = wait_for_status(project.inbox, names[-1], states=("waiting",))
        assert waiting["job_id"] is None and "max_jobs 1 + max_queued 0" in waiting["message"], waiting
        assert all(wait_for_status(project.inbox, name)["state"] == "delivered" for name in names)
    finally:
        process.stop()
    assert not (project.inbox / "rejected").exists() or not any((project.inbox / "rejected").iterdir())
    journal = Journal(project.state / "journal.sqlite")
    started = [r.spec.extend_after for r in reversed(journal.recent())]  # newest first
    journal.close()
    assert started == [10.0, 11.0, 12.0, 13.0], "taken in the order they came"


def test_what_a_restart_changes_before_the_inbox_starts_is_in_its_status_files(tmp_path, demo_song_path):
    """The daemon takes up the journal's jobs before the inbox starts (a share may hold its start up): a job changed
    then (here cancelled) was told to no status file, and one waiting for the producer, whose status file a kill left
    saying "submitting", was never written again: REAPER's script, which reads only status/, never learned of it."""
    config = Config(state_dir=tmp_path / "state", inbox=tmp_path / "inbox")
    status = config.inbox / "status"
    status.mkdir(parents=True)
    journal = Journal(config.journal_path)
    advice = "the daemon stopped while submitting: check your MusicGPT dashboard, then run 'daw-bridge jobs resolve'"
    for name in ("waits", "cancelled"):
        spec = JobSpec(job_id=f"j-{name}", operation="inpaint", source=demo_song_path,
                       source_info=probe(demo_song_path), backend="musicgpt", start=10.0, end=14.0, num_outputs=1)
        origin = {"kind": "file", "file": f"{name}.json", "digest": name, "status": str(status / f"{name}.json")}
        record = JobRecord(job_id=spec.job_id, request_id="", origin=origin, spec=spec, state=State.ACCEPTED)
        journal.insert(record)
        journal.update(record, state=State.SUBMISSION_UNKNOWN, message=advice)
        (status / f"{name}.json").write_text(json.dumps({"job_id": spec.job_id, "state": "submitting"}))  # stale

    async def restart() -> None:
        service = JobService(config, journal, {"musicgpt": object()})  # held, never started: it waits for the producer
        inbox = InboxFrontend(service, config.inbox)  # as the daemon does: it listens before the jobs are taken up
        try:
            await service.resume()
            service.cancel("j-cancelled")  # the producer's cancel, heard before the inbox has started
            await inbox.start()
        finally:
            inbox.close()  # the status files posted are written first
            await service.close()

    try:
        asyncio.run(restart())
    finally:
        journal.close()
    waits = json.loads((status / "waits.json").read_text())
    assert (waits["state"], waits.get("message")) == ("submission_unknown", advice), waits
    cancelled = json.loads((status / "cancelled.json").read_text())
    said = (cancelled["state"], (cancelled.get("error") or {}).get("message"))
    assert said == ("cancelled", "cancelled by the producer"), cancelled
