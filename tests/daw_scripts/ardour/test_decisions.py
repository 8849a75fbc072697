"""Keep or discard in a real headless Ardour 7: a job's two variants imported over the song, then the producer's
decisions as the daemon publishes them (osc_schema's decision file) applied to the session, each one undo step, each
once. The saved session file is read back for which regions remain on the track, their layers, mutes and positions.

Ardour's Lua has no session-wide undo outside the editor, so a step is undone here the way Ardour's undo does it:
the step's recorded diff commands reverted, last first (test_gui_decisions.py uses the editor's own undo).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from osc_schema import DECISIONS_FOLDER
from tests.adversarial.support import fill_up, small_tmpfs
from tests.daw_scripts.ardour.conftest import (
    IMPORT_SCRIPT,
    RATE,
    Ardour,
    load,
    lua_string,
    write_decision,
)
from tests.daw_scripts.ardour.gui import regions_in_session_file
from tests.daw_scripts.ardour.test_import_core import manifest

POSITION, TRIM, LENGTH = 2 * RATE, RATE * 3 // 2, 30 * RATE  # the song sits at 2 s, its first 1.5 s trimmed off
AT = 9 * RATE  # where the job's range lands on the timeline: 2 s - 1.5 s + the span's 8.5 s
JOB, LATER_JOB = "j-aaaa", "j-bbbb"
TAKES = [f"song_inpaint_9.50-15.50_v{n}_aaaa" for n in (1, 2)]
LATER_TAKE = "song_inpaint_9.50-15.50_v1_bbbb"  # another job over the same range, imported after the first
MANIFESTS = [f"{stem}.json" for stem in TAKES]


def deliver(drop: Path, stem: str, job_id: str, variant: int, ids: dict) -> None:
    """A variant as the daemon delivers it, for the song's region on the track "Song"."""
    manifest(drop, stem, job_id=job_id, variant=variant, ids={"item": ids["region_id"], "track": ids["track_id"]})


def decide(drop: Path, seq: int, decision: str, choice: int, job_id: str = JOB, manifests: list = MANIFESTS) -> None:
    write_decision(drop, job_id, seq, decision, choice, manifests)


def apply_and_undo(ardour: Ardour, session: Path) -> dict:
    """Apply the pending decisions in the loaded session and save it; then undo each step and save that as the
    snapshot "undone". What was applied and the notes."""
    drop = session.parent / "daw-bridge"
    return ardour.run(load(session) + f"""
local applied, notes = IMPORT.apply_decisions(Session, {lua_string(str(drop))})
Session:save_state("")
local texts = {{}}
for i = #applied, 1, -1 do
	texts[i] = applied[i].text
	local commands = applied[i].step and applied[i].step.commands or {{}}
	for c = #commands, 1, -1 do commands[c]:undo() end
end
Session:save_state("undone")
report({{ applied = texts, notes = notes }})
""")[0]


def takes(session_file: Path) -> dict:
    """The regions on the track Song by what they play: "song", "v1", "v2", "later" -> (layer, muted, position,
    length) each; the layer as the rank among the track's regions, 0 lowest."""
    regions = [r for r in regions_in_session_file(session_file) if r["track"] == "Song"]
    names = {"song.wav": "song", LATER_TAKE + ".wav": "later"}
    names.update({f"{stem}.wav": f"v{n}" for n, stem in enumerate(TAKES, start=1)})
    ranked = sorted(regions, key=lambda r: r["layer"])
    return {names[r["source"]]: (ranked.index(r), r["muted"], r["position"], r["length"]) for r in regions}


@pytest.fixture
def job(ardour, tmp_path, demo_song_path) -> Path:
    """A session with the song on the track Song and, imported over it from the terminal, the job's two variants
    and then another job's variant over the same range; the session file."""
    session, ids = ardour.make_session_with_ids(tmp_path / "song", demo_song_path, frames=40 * RATE,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    for variant, stem in enumerate(TAKES, start=1):
        deliver(drop, stem, JOB, variant, ids)
    assert ardour.script(IMPORT_SCRIPT, str(session)).count("imported ") == 2
    deliver(drop, LATER_TAKE, LATER_JOB, 1, ids)
    assert ardour.script(IMPORT_SCRIPT, str(session)).count("imported ") == 1
    ardour.run(load(session) + 'Session:save_state("")\n')  # as Ardour saves it (the import wrote a terse file)
    assert takes(session) == {"song": (0, False, POSITION, LENGTH), "v1": (1, False, AT, RATE),
                              "v2": (2, False, AT, RATE), "later": (3, False, AT, RATE)}
    return session


# (decision, choice) -> the track afterwards: which takes remain, in which layer order, muted or not
STORIES = [
    (("choose", 1), {"song": (0, False), "v2": (1, True), "v1": (2, False), "later": (3, False)}),
    (("choose", 2), {"song": (0, False), "v1": (1, True), "v2": (2, False), "later": (3, False)}),
    (("choose", 0), {"song": (0, False), "v1": (1, True), "v2": (2, True), "later": (3, False)}),
    (("keep", 1), {"song": (0, False), "v1": (1, False), "later": (2, False)}),
    (("keep", 2), {"song": (0, False), "v2": (1, False), "later": (2, False)}),
    (("discard", 0), {"song": (0, False), "later": (1, False)}),
]


@pytest.mark.parametrize("decision, track", STORIES, ids=[f"{d}-{c}" for (d, c), _ in STORIES])
def test_a_decision_changes_only_the_jobs_takes_as_one_undo_step(ardour, job, decision, track):
    before = takes(job)
    decide(job.parent / "daw-bridge", 1, *decision)
    outcome = apply_and_undo(ardour, job)

    take = f"variant {decision[1]}" if decision[1] else "the original"
    assert outcome == {"applied": [f"{JOB}: {decision[0]} {take} (decision 1)"], "notes": []}
    after = takes(job)
    assert {name: (layer, muted) for name, (layer, muted, _, _) in after.items()} == track
    # nothing moved: the song, the other job's take (still over this job's) and the takes that stay, as they were
    assert {name: placed[2:] for name, placed in after.items()} == {name: before[name][2:] for name in track}
    assert takes(job.parent / "undone.ardour") == before  # undone: every region back, in its layer, unmuted


def test_decisions_are_applied_in_turn_each_once_even_after_a_restart(ardour, job):
    drop = job.parent / "daw-bridge"
    decide(drop, 1, "choose", 1)
    printed = ardour.script(IMPORT_SCRIPT, str(job))  # as a producer runs it on the closed session
    assert "applied j-aaaa: choose variant 1 (decision 1)" in printed.splitlines()
    assert takes(job)["v1"][:2] == (2, False) and takes(job)["v2"][:2] == (1, True)

    decide(drop, 2, "choose", 2)  # the producer changes their mind: variant 2 sounds again
    assert "applied j-aaaa: choose variant 2 (decision 2)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()
    assert takes(job)["v2"][:2] == (2, False) and takes(job)["v1"][:2] == (1, True)

    again = ardour.script(IMPORT_SCRIPT, str(job))  # a restart: the ledger says decision 2 is applied
    assert "applied" not in again and "not applied" not in again
    (drop / DECISIONS_FOLDER / f"{JOB}.json").write_text((drop / DECISIONS_FOLDER / f"{JOB}.json").read_text()
                                                         .replace('"choice": 2', '"choice": 1'))
    assert "applied" not in ardour.script(IMPORT_SCRIPT, str(job))  # the same seq again is not a new decision
    assert (drop / ".ardour-decided").read_text() == (  # for the daemon; the session holds them too
        f"# the lines below count where the session holds them too\n{JOB}\t1\n{JOB}\t2\n")

    decide(drop, 4, "keep", 2)  # decision 3 (choose 0) was made while Ardour was closed: only the latest counts
    assert "applied j-aaaa: keep variant 2 (decision 4)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()
    assert {name: placed[:2] for name, placed in takes(job).items()} == {
        "song": (0, False), "v2": (1, False), "later": (2, False)}

    decide(drop, 5, "choose", 1)  # variant 1 was removed by the keep: said, and nothing else changes
    assert ("applied j-aaaa: choose variant 1 (decision 5): variant 1 is no longer on a track"
            in ardour.script(IMPORT_SCRIPT, str(job)).splitlines())
    assert {name: placed[:2] for name, placed in takes(job).items()} == {
        "song": (0, False), "v2": (1, True), "later": (2, False)}


def test_a_decision_waits_for_its_import_and_a_malformed_one_is_named_and_skipped(ardour, tmp_path,
                                                                                   demo_song_path):
    session, ids = ardour.make_session_with_ids(tmp_path / "early", demo_song_path, frames=40 * RATE,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, TAKES[0], JOB, 1, ids)  # variant 2 is still being written
    decide(drop, 1, "keep", 2)
    decide(drop, 1, "keep", 1, job_id="j-bad1", manifests=[])
    (drop / DECISIONS_FOLDER / "j-bad2.json").write_text('{"format": "daw-bridge.decision/1", "job_id": ')
    decide(drop, 1, "choose", 3, job_id="j-bad3")

    first = ardour.script(IMPORT_SCRIPT, str(session)).splitlines()
    assert sorted(line for line in first if line.startswith(("applied", "not applied", "imported"))) == [
        f"imported {TAKES[0]}.json",
        "not applied: decision j-bad1.json names no manifests; skipped",
        "not applied: decision j-bad2.json not valid JSON at byte 47: unexpected character; skipped",
        "not applied: decision j-bad3.json has choice 3; the job has 2 variant(s); skipped",
        "not applied: j-aaaa: keep variant 2 (decision 1) waits for 2 of its results to be imported"]

    deliver(drop, TAKES[1], JOB, 2, ids)
    second = ardour.script(IMPORT_SCRIPT, str(session)).splitlines()
    assert f"imported {TAKES[1]}.json" in second
    assert "not applied: j-aaaa: keep variant 2 (decision 1) waits for 1 of its results to be imported" in second

    third = ardour.script(IMPORT_SCRIPT, str(session)).splitlines()
    assert "applied j-aaaa: keep variant 2 (decision 1)" in third
    assert {name: placed[:2] for name, placed in takes(session).items()} == {"song": (0, False), "v2": (1, False)}


def test_a_decision_lost_with_a_session_closed_unsaved_comes_back_and_one_taken_back_and_saved_does_not(ardour, job):
    drop = job.parent / "daw-bridge"
    ardour.run(load(job) + 'Session:master_out():set_comment("mix notes: vocals up", nil)\nSession:save_state("")\n')
    saved = {path: path.read_bytes() for path in job.parent.glob("song.*") if path.suffix in (".ardour", ".history")}
    decide(drop, 1, "choose", 1)
    assert "applied j-aaaa: choose variant 1 (decision 1)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()
    for path, content in saved.items():  # Ardour closed without saving: the session's files as they were
        path.write_bytes(content)
    assert takes(job)["v1"][:2] == (1, False) and takes(job)["v2"][:2] == (2, False)

    reopened = ardour.script(IMPORT_SCRIPT, str(job)).splitlines()

    assert "applied j-aaaa: choose variant 1 (decision 1)" in reopened
    assert takes(job)["v1"][:2] == (2, False) and takes(job)["v2"][:2] == (1, True)
    [comment] = ardour.run(load(job) + "report(Session:master_out():comment())\n")
    assert comment == "mix notes: vocals up\ndaw-bridge decided j-aaaa 1"  # the producer's note stays
    # the producer takes the decision back (both takes sound again) and saves: it stays taken back
    ardour.run(load(job) + """
for region in Session:route_by_name("Song"):to_track():playlist():region_list():iter() do region:set_muted(false) end
Session:save_state("")
""")
    assert not [line for line in ardour.script(IMPORT_SCRIPT, str(job)).splitlines() if "applied" in line]
    assert takes(job)["v2"][:2] == (1, False)


def test_a_decision_an_older_version_listed_as_applied_is_not_applied_again(ardour, job):
    """The version before kept nothing in the session: its ledger lines count as they are."""
    drop = job.parent / "daw-bridge"
    decide(drop, 1, "choose", 1)
    (drop / ".ardour-decided").write_text(f"{JOB}\t1\n")

    assert not [line for line in ardour.script(IMPORT_SCRIPT, str(job)).splitlines() if "applied" in line]
    assert takes(job)["v2"][:2] == (2, False)  # as imported


def test_the_producers_note_in_the_master_bus_comment_stays_as_written_blank_lines_and_all(ardour, job):
    drop = job.parent / "daw-bridge"
    note = "mix notes:\n\n  vocals up\n\nbass -2 dB\n"
    ardour.run(load(job) + f'Session:master_out():set_comment({lua_string(note)}, nil)\nSession:save_state("")\n')
    decide(drop, 1, "choose", 1)
    assert "applied j-aaaa: choose variant 1 (decision 1)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()
    decide(drop, 2, "keep", 1)
    assert "applied j-aaaa: keep variant 1 (decision 2)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()

    [comment] = ardour.run(load(job) + "report(Session:master_out():comment())\n")

    assert comment == note + "\ndaw-bridge decided j-aaaa 2"  # the note as written, then the line


def test_a_decision_applied_on_a_full_disk_is_told_in_one_line_and_applied_when_there_is_room(ardour, job, tmp_path):
    # The list of the decisions applied (for the daemon, and all a session without a master bus keeps) was appended
    # to unchecked: on a full disk the terminal import said "applied" and saved the session, and the list lost the
    # line without a word.
    drop = job.parent / "daw-bridge"
    decide(drop, 1, "choose", 1)
    aside = Path(shutil.move(drop, tmp_path / "drop-aside"))
    saved = job.read_bytes()
    with small_tmpfs(drop, "8m"):
        shutil.copytree(aside, drop, dirs_exist_ok=True)
        results = sorted(path.name for path in drop.iterdir())
        fill_up(drop / "fill")  # the disk is full as the list is written

        done = subprocess.run([ardour.executable, str(IMPORT_SCRIPT), str(job)], capture_output=True, text=True,
                              timeout=90, env=ardour.env, cwd=ardour.home)

        told = [line for line in done.stdout.splitlines() if "imported" in line or "applied" in line]
        assert done.returncode == 1 and told == [
            f"not imported: could not write {drop / '.ardour-decided'} (No space left on device): nothing was "
            "imported, and the session is as it was saved"], done.stdout + done.stderr
        assert "traceback" not in (done.stdout + done.stderr).lower()
        assert job.read_bytes() == saved
        assert sorted(path.name for path in drop.iterdir()) == sorted(results + ["fill"])  # no list, half or whole

        (drop / "fill").unlink()  # room again: applied, once, and listed
        assert "applied j-aaaa: choose variant 1 (decision 1)" in ardour.script(IMPORT_SCRIPT, str(job)).splitlines()
        assert (drop / ".ardour-decided").read_text() == (
            f"# the lines below count where the session holds them too\n{JOB}\t1\n")
        assert "applied" not in ardour.script(IMPORT_SCRIPT, str(job))
    assert takes(job)["v1"][:2] == (2, False) and takes(job)["v2"][:2] == (1, True)
