"""Save As before the result arrives, in a real headless Ardour 7: the producer sends a range from the session
"song", saves it as "song_v2" in another folder, and the result the daemon delivers into the old session's drop
folder (the request named it) is imported into song_v2, with its decisions, while that folder's other results stay
out. Ardour's Lua cannot run Save As, so the test does what it does to the files: the session folder copied (the
drop folder with it), the session file and its interchange folder named after the new session."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, SCRIPTS, load, lua_string, write_decision
from tests.daw_scripts.ardour.gui import LUA_TIMER_S, regions_in_session_file, running_gui, wait_for, write_result
from tests.daw_scripts.ardour.test_import_core import manifest

POSITION, TRIM, LENGTH = 2 * RATE, RATE * 3 // 2, 30 * RATE  # the song sits at 2 s, its first 1.5 s trimmed off
AT = 9 * RATE  # where the range's span lands on the timeline: 2 s - 1.5 s + the span's 8.5 s
HOOK = SCRIPTS / "daw_bridge_background_import.lua"
OURS, THEIRS = "song_inpaint_9.50-15.50_v1_aaaa", "song_inpaint_20.00-22.00_v1_bbbb"


def save_as(session: Path, folder: Path) -> Path:
    """File > Save As into `folder` (named after it): the session's files copied there, renamed as Ardour does."""
    name = folder.name
    shutil.copytree(session.parent, folder)
    (folder / session.name).rename(folder / f"{name}.ardour")
    (folder / "interchange" / session.stem).rename(folder / "interchange" / name)
    text = (folder / f"{name}.ardour").read_text(encoding="utf-8")
    (folder / f"{name}.ardour").write_text(text.replace(f'name="{session.stem}"', f'name="{name}"', 1),
                                           encoding="utf-8")
    return folder / f"{name}.ardour"


def sent_then_saved_as(ardour, tmp_path: Path, song: Path):
    """song sends 10..16 s of its song region, then is saved as song_v2; the result arrives in song's drop folder,
    beside a result of another request song sent later. Returns song_v2's file, the old drop folder, the request."""
    session, ids = ardour.make_session_with_ids(tmp_path / "song", song, frames=40 * RATE, position=POSITION,
                                                trim=TRIM, length=LENGTH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon_stand_in:
        daemon_stand_in.bind(("127.0.0.1", 0))
        [request] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local region = track:playlist():top_region_at(Temporal.timepos_t({10 * RATE}))
local request = SEND.send_range(Session, region, track, {10 * RATE}, {16 * RATE}, "inpaint",
    {{ prompt = "soft guitar solo", num_outputs = 1 }}, {{ port = {daemon_stand_in.getsockname()[1]} }})
Session:save_state("")
close_session()
report(request)
""")
    earlier = session.parent / "daw-bridge"
    assert request["drop_folder"] == str(earlier)
    copy = save_as(session, tmp_path / "song_v2")
    manifest(earlier, OURS, job_id="j-aaaa", request_id=request["request_id"], variants=1,
             ids={"item": ids["region_id"], "track": ids["track_id"]})
    manifest(earlier, THEIRS, job_id="j-bbbb", request_id="ardour-1764630000-9", variants=1,
             ids={"item": ids["region_id"], "track": ids["track_id"]})
    return copy, earlier, request


def on_song(session_file: Path) -> list[tuple]:
    return sorted((r["source"], r["position"], r["muted"]) for r in regions_in_session_file(session_file)
                  if r["track"] == "Song")


def test_a_result_sent_before_save_as_is_imported_into_the_copy_and_only_that(ardour, tmp_path, demo_song_path):
    copy, earlier, request = sent_then_saved_as(ardour, tmp_path, demo_song_path)

    printed = ardour.script(IMPORT_SCRIPT, str(copy))  # as a producer runs it on the closed session

    assert [line for line in printed.splitlines() if "imported" in line] == [
        f"imported {OURS}.json from {earlier}, where it was sent before the session was saved here"]
    assert THEIRS not in printed
    ardour.run(load(copy) + 'Session:save_state("")\n')  # as Ardour saves it (the import wrote a terse file)
    assert on_song(copy) == [("song.wav", POSITION, False), (f"{OURS}.wav", AT, False)]
    # the copy lists what it imported in its own drop folder; the old session's list is as it was
    assert re.fullmatch(rf"{OURS}\.json\t\d+\n", (copy.parent / "daw-bridge" / ".ardour-imported").read_text())
    assert not (earlier / ".ardour-imported").exists()
    assert "imported" not in ardour.script(IMPORT_SCRIPT, str(copy))  # once

    # the producer discards the job (a pad, the voice): the daemon publishes it beside the job's results, and
    # decides on song's other job too, whose result song_v2 never had
    write_decision(earlier, "j-aaaa", 1, "discard", 0, [f"{OURS}.json"])
    write_decision(earlier, "j-bbbb", 1, "keep", 1, [f"{THEIRS}.json"])
    printed = ardour.script(IMPORT_SCRIPT, str(copy))

    assert "applied j-aaaa: discard the original (decision 1)" in printed.splitlines()
    assert "j-bbbb" not in printed
    assert on_song(copy) == [("song.wav", POSITION, False)]
    assert (earlier / ".ardour-decided").read_text().splitlines()[1:] == ["j-aaaa\t1"]  # for the daemon


def test_the_background_hook_in_the_editor_imports_the_copys_result_from_the_earlier_folder(ardour, tmp_path):
    # song_v2 open in the editor, saved from a session whose request went to `earlier`: the hook brings its result
    # in, lists it in song_v2's own drop folder (made for it: song_v2 has sent nothing yet), and leaves the rest
    earlier = tmp_path / "song" / "daw-bridge"
    earlier.mkdir(parents=True)
    sent = (f'Session:master_out():set_comment("daw-bridge sent ardour-1764630000-1 " .. {lua_string(str(earlier))},'
            ' nil)')
    hook = ("DAW Bridge: Import results as they arrive", HOOK.read_text(), LUA_TIMER_S)
    with running_gui(ardour, tmp_path / "v2", [], [hook], setup=sent) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        drop.rmdir()
        write_result(earlier, "theirs", gui.ids["Song"], 2.0, RATE, 0.5)  # another request's (its id ardour-1-1)
        staged = tmp_path / "staged"
        staged.mkdir()
        write_result(staged, "ours", gui.ids["Song"], 3.0, RATE, 0.5)
        (staged / "ours.json").write_text((staged / "ours.json").read_text().replace('"ardour-1-1"',
                                                                                      '"ardour-1764630000-1"'))
        (staged / "ours.wav").rename(earlier / "ours.wav")  # the audio first, then the manifest, as the daemon does
        (staged / "ours.json").rename(earlier / "ours.json")

        wait_for("the hook to import it", lambda: (drop / ".ardour-imported").exists()
                 and (drop / ".ardour-imported").read_text().startswith("ours.json\t"), 30, 0.2)
        regions = regions_in_session_file(gui.save())

    assert [(r["track"], r["position"]) for r in regions if r["name"].startswith("inpaint")] == [("Song", 3 * RATE)]
    assert [line.split("\t")[0] for line in (drop / ".ardour-imported").read_text().splitlines()] == ["ours.json"]
    assert not (earlier / ".ardour-imported").exists()


def send_many(ardour, session: Path, count: int) -> tuple[list[str], str]:
    """`count` requests sent from the session's song region (10..16 s), then saved: their ids in the order sent, and
    the master bus's comment after."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon_stand_in:
        daemon_stand_in.bind(("127.0.0.1", 0))
        [sent] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local region = track:playlist():top_region_at(Temporal.timepos_t({10 * RATE}))
local ids = {{}}
for n = 1, {count} do
	ids[n] = SEND.send_range(Session, region, track, {10 * RATE}, {16 * RATE}, "inpaint",
		{{ prompt = "soft guitar solo", num_outputs = 1 }}, {{ port = {daemon_stand_in.getsockname()[1]} }}).request_id
end
Session:save_state("")
local comment = Session:master_out():comment()
close_session()
report({{ ids = ids, comment = comment }})
""")
    return sent["ids"], sent["comment"]


def master_comment(ardour, session: Path) -> list[str]:
    [comment] = ardour.run(load(session) + "report(Session:master_out():comment())\nclose_session()\n")
    return comment.splitlines()


def test_the_sent_record_stays_bounded_and_a_copy_still_finds_every_result_not_imported(ardour, tmp_path,
                                                                                         demo_song_path):
    # 60 requests: the results of 20 come and are imported, those of 40 (sent between them) have not come when the
    # session is saved elsewhere, nor has the second variant of the first. The master bus's comment grew by one line
    # per request for good.
    session, ids = ardour.make_session_with_ids(tmp_path / "song", demo_song_path, frames=40 * RATE,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    request_ids, _ = send_many(ardour, session, 60)
    earlier = session.parent / "daw-bridge"
    late = [request_id for n, request_id in enumerate(request_ids) if n % 3]

    def deliver(folder: Path, request_id: str, n: int, variant: int = 1, variants: int = 1):
        manifest(folder, f"song_inpaint_9.50-15.50_v{variant}_{n:04d}", job_id=f"j-{n:04d}", request_id=request_id,
                 variant=variant, variants=variants, ids={"item": ids["region_id"], "track": ids["track_id"]})

    for n, request_id in enumerate(request_ids):
        if request_id not in late:
            deliver(earlier, request_id, n, variants=2 if n == 0 else 1)
    assert ardour.script(IMPORT_SCRIPT, str(session)).count("imported ") == 20
    # the wholly imported ones' lines are gone (a session looks only in the folders it had before); the others wait
    assert master_comment(ardour, session) == [f"daw-bridge imported {request_ids[0]} {earlier}"] + [
        f"daw-bridge sent {request_id} {earlier}" for request_id in late]

    copy = save_as(session, tmp_path / "song_v2")
    deliver(earlier, request_ids[0], 0, variant=2, variants=2)
    for n, request_id in enumerate(late):
        deliver(earlier, request_id, 100 + n)
    printed = ardour.script(IMPORT_SCRIPT, str(copy), timeout=300)

    assert printed.count(f"from {earlier}, where it was sent before the session was saved here") == 41
    assert f"imported song_inpaint_9.50-15.50_v2_0000.json from {earlier}" in printed
    # the newest 32 stay, marked: decisions on their results are read from that folder
    assert master_comment(ardour, copy) == [f"daw-bridge imported {request_id} {earlier}" for request_id in late[8:]]


def test_the_sent_record_keeps_the_newest_requests_whose_results_never_came(ardour, tmp_path, demo_song_path):
    # failed jobs deliver nothing: their lines wait, but no more than 256 of them, and the comment's other lines stay
    session = ardour.make_session(tmp_path / "song", demo_song_path, frames=40 * RATE, position=POSITION, trim=TRIM,
                                  length=LENGTH)
    ardour.run(load(session) + 'Session:master_out():set_comment("the producer\'s own note", nil)\n'
               'Session:save_state("")\nclose_session()\n')

    request_ids, comment = send_many(ardour, session, 270)

    earlier = session.parent / "daw-bridge"
    assert comment.splitlines() == ["the producer's own note"] + [f"daw-bridge sent {request_id} {earlier}"
                                                                  for request_id in request_ids[-256:]]


@pytest.mark.parametrize("step", ["Ardour's save", "the import list", "the session file"])
def test_a_full_disk_at_any_step_of_the_terminal_import_leaves_the_copy_and_its_record_as_saved(
        ardour, tmp_path, demo_song_path, step):
    # The record of what song sent (the master bus comment's "daw-bridge sent" line) is how song_v2 finds its result
    # in song's drop folder. It was changed and saved before the regions were written: a session file not written
    # then left the result out and its record gone, and an import list not written left the result in but unlisted,
    # placed again by the next run.
    copy, earlier, request = sent_then_saved_as(ardour, tmp_path, demo_song_path)
    sent = f"daw-bridge sent {request['request_id']} {earlier}"
    assert master_comment(ardour, copy) == [sent]
    saved = copy.read_bytes()
    drop = copy.parent / "daw-bridge"
    drop.mkdir(exist_ok=True)
    blocked = {"Ardour's save": copy.with_name(f"{copy.stem}.daw-bridge-draft.tmp"),
               "the import list": drop / ".ardour-imported.part",
               "the session file": copy.with_name(copy.name + ".part")}[step]
    blocked.symlink_to("/dev/full")  # the disk fills up as that file is written

    done = subprocess.run([ardour.executable, str(IMPORT_SCRIPT), str(copy)], capture_output=True, text=True,
                          timeout=90, env=ardour.env, cwd=ardour.home)

    why = {"Ardour's save": "Ardour could not save the session (see its messages above)",
           "the import list": f"could not write {drop / '.ardour-imported'} (No space left on device)",
           "the session file": f"could not write {copy} (No space left on device)"}[step]
    told = [line for line in done.stdout.splitlines() if "imported" in line or "applied" in line]
    assert done.returncode == 1 and told == [
        f"not imported: {why}: nothing was imported, and the session is as it was saved"]
    assert copy.read_bytes() == saved and not os.path.lexists(blocked)
    assert not list(copy.parent.glob("*daw-bridge-draft*"))
    assert master_comment(ardour, copy) == [sent]

    # room again: the next run imports the result, once, and only then marks its record
    printed = ardour.script(IMPORT_SCRIPT, str(copy)).splitlines()
    assert [line for line in printed if "imported" in line] == [
        f"imported {OURS}.json from {earlier}, where it was sent before the session was saved here"]
    assert copy.with_name(copy.name + ".bak").read_bytes() == saved  # as Ardour's own save keeps the one before
    assert "imported" not in ardour.script(IMPORT_SCRIPT, str(copy))
    ardour.run(load(copy) + 'Session:save_state("")\n')
    assert on_song(copy) == [("song.wav", POSITION, False), (f"{OURS}.wav", AT, False)]
    assert master_comment(ardour, copy) == [f"daw-bridge imported {request['request_id']} {earlier}"]
