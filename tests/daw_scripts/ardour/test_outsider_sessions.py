"""An outsider's producer sessions in a real headless Ardour 7: not the tidy ones the other tests make."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from bridge.client import BridgeClient
from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, load, lua_string
from tests.daw_scripts.ardour.gui import regions_in_session_file, running_gui, wait_for, write_result
from tests.daw_scripts.ardour.test_ardour_session import wait_for_outcome
from tests.daw_scripts.ardour.test_outsider_import import sounding

SONG_FRAMES = 40 * RATE


def whole_song_session(ardour, folder: Path, song: Path) -> Path:
    """A session in ``folder`` holding ``song`` whole on its Song track, from its first frame."""
    return ardour.make_session(folder, song, frames=SONG_FRAMES, position=0, trim=0, length=SONG_FRAMES)


def recording_on(track: str, name: str, at: int) -> str:
    """Lua that sets ``track`` and ``region``: the Song track bounced into a recording called ``name``, kept one file
    per channel as Ardour records, placed at frame ``at`` on a new track called ``track``."""
    return f"""local bounced = Session:route_by_name("Song"):to_track():bounce_range(0, {SONG_FRAMES},
    ARDOUR.InterThreadInfo(), ARDOUR.LuaAPI.nil_proc(), false, {lua_string(name)})
local track = Session:new_audio_track(2, 2, nil, 1, {lua_string(track)}, ARDOUR.PresentationInfo.max_order,
    ARDOUR.TrackMode.Normal, true):front():to_track()
track:playlist():add_region(bounced, Temporal.timepos_t({at}), 1, false, 0, 0, false)
local region = track:playlist():top_region_at(Temporal.timepos_t({at + RATE}))"""


def deliver_for(drop: Path, stem: str, request: dict, ids: dict, handle: float = 1.0) -> dict:
    """One variant for ``request`` with ``handle`` seconds either side of its range, as the daemon drops it."""
    span_start, span_end = request["start"] - handle, request["end"] + handle
    frames = round((span_end - span_start) * RATE)
    sf.write(drop / f"{stem}.wav", np.full((frames, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    manifest = {
        "format": "daw-bridge.manifest/1", "job_id": f"j-{stem}", "request_id": request["request_id"],
        "operation": "inpaint", "variant": 1, "variants": 1, "delivery": "patch", "audio": f"{stem}.wav",
        "sample_rate": RATE, "channels": 2, "frames": frames,
        "timeline": {"position": request["position"] + span_start, "length": span_end - span_start},
        "ids": {"item": ids["item"], "track": ids["track"]},
        "source": {"path": request["source"], "start": request["start"], "end": request["end"],
                   "span_start": span_start, "span_end": span_end, "position": request["position"]},
        "request": {"prompt": stem}, "splice": {"handle": handle, "joins": []}}
    (drop / f"{stem}.json").write_text(json.dumps(manifest))
    return manifest


def test_a_long_recording_kept_one_file_per_channel_is_sent_as_a_window_and_its_result_lands_sample_exact(
        ardour, tmp_path, demo_song_path):
    # A set recorded for hours on a stereo track (one mono file per channel): copying its whole length for the daemon
    # held the editor for minutes (a second a minute) and wrote gigabytes. Scaled down here: "long" is over 30 s and
    # the window's grid 3 s, so a 40 s recording stands in for hours.
    song = tmp_path / "song.wav"
    shutil.copy(demo_song_path, song)
    session = whole_song_session(ardour, tmp_path / "set", song)
    [sent] = ardour.run(load(session) + f"""
SEND.WHOLE_COPY_SECONDS, SEND.WINDOW_SECONDS = 30, 3
{recording_on("Live set", "set", 100 * RATE)}
local request, message = SEND.send_range(Session, region, track, {122 * RATE}, {125 * RATE}, "inpaint",
    {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
Session:save_state("")
report({{ request = request or message, sources = SEND.describe_region(region).sources }})
""")
    request = sent["request"]
    assert len({s["path"] for s in sent["sources"]}) == 2  # two mono files: the daemon is sent a copy

    # the copy is the recording from 3 to 6 s before the range (source 22..25 s) to 3 to 6 s after it, on a 3 s grid,
    # and the times are its own
    copied, rate = sf.read(request["source"], dtype="float32")
    original, _ = sf.read(song, dtype="float32")
    assert rate == RATE and copied.shape == (12 * RATE, 2)
    assert np.array_equal(copied, original[18 * RATE:30 * RATE])
    assert (request["start"], request["end"], request["position"]) == (4.0, 7.0, 118.0)

    # another try at nearly the same bars uses the same copy, as it was
    made = Path(request["source"]).stat()
    [again] = ardour.run(load(session) + f"""
SEND.WHOLE_COPY_SECONDS, SEND.WINDOW_SECONDS = 30, 3
local track = Session:route_by_name("Live set"):to_track()
report(SEND.send_range(Session, track:playlist():region_by_id(PBD.ID("{request['item_id']}")), track, {123 * RATE},
    {round(124.5 * RATE)}, "inpaint", {{ prompt = "y", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }}))
""")
    assert again["source"] == request["source"] and (again["start"], again["end"]) == (5.0, 6.5)
    assert (Path(request["source"]).stat().st_ino, Path(request["source"]).stat().st_mtime_ns) == (
        made.st_ino, made.st_mtime_ns)

    # while it generates, the producer splits the recording inside the range and drags both pieces 4 s later
    ardour.run(load(session) + f"""
local playlist = Session:route_by_name("Live set"):to_track():playlist()
playlist:split_region(playlist:region_by_id(PBD.ID("{request['item_id']}")), Temporal.timepos_t({123 * RATE}))
for region in playlist:region_list():iter() do
    region:set_position(Temporal.timepos_t(region:position():samples() + {4 * RATE}))
end
Session:save_state("")
""")
    drop = session.parent / "daw-bridge"
    deliver_for(drop, "r", request, {"item": request["item_id"], "track": request["track_id"]})

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert "imported r.json" in printed.splitlines()
    [placed] = [r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]
                if r["name"] == "inpaint v1: r"]
    # the range and its handles (121..126 s when sent) follow the pieces: 125..130 s, sample for sample
    assert (placed["track"], placed["position"], placed["length"], placed["start"]) == (
        "Live set", 125 * RATE, 5 * RATE, 0)


def test_two_windows_of_one_long_recording_are_neighbours_of_the_same_source(ardour, tmp_path, demo_song_path):
    # this bar, then the next, on a long recording: each request gets its own window, and the later import's handles
    # still stop halfway between the two replaced ranges instead of cutting the first one short
    song = tmp_path / "song.wav"
    shutil.copy(demo_song_path, song)
    session = whole_song_session(ardour, tmp_path / "bars", song)
    [requests] = ardour.run(load(session) + f"""
SEND.WHOLE_COPY_SECONDS, SEND.WINDOW_SECONDS = 30, 3
{recording_on("Live set", "set", 0)}
local sent = {{}}
for _, range in ipairs({{ {{ 10, 15 }}, {{ 16, 22 }} }}) do
    sent[#sent + 1] = SEND.send_range(Session, region, track, range[1] * {RATE}, range[2] * {RATE}, "inpaint",
        {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
end
Session:save_state("")
report(sent)
""")
    assert requests[0]["source"] != requests[1]["source"]  # two windows
    drop = session.parent / "daw-bridge"
    for stem, request in zip(("a", "b"), requests):
        deliver_for(drop, stem, request, {"item": request["item_id"], "track": request["track_id"]})

    ardour.script(IMPORT_SCRIPT, str(session))

    placed = {r["name"]: r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]
              if r["name"].startswith("inpaint")}
    # a: 9..16 s, b from 15.5 s (halfway between 15 and 16 s) to 23 s, its first half second cut
    assert (placed["inpaint v1: a"]["position"], placed["inpaint v1: a"]["length"]) == (9 * RATE, 7 * RATE)
    assert (placed["inpaint v1: b"]["position"], placed["inpaint v1: b"]["length"],
            placed["inpaint v1: b"]["start"]) == (round(15.5 * RATE), round(7.5 * RATE), RATE // 2)


def test_a_short_recording_kept_one_file_per_channel_is_still_copied_whole(ardour, tmp_path, demo_song_path):
    song = tmp_path / "song.wav"
    shutil.copy(demo_song_path, song)
    session = whole_song_session(ardour, tmp_path / "song", song)
    [request] = ardour.run(load(session) + f"""
{recording_on("Take", "song take", 2 * RATE)}
report(SEND.send_range(Session, region, track, {22 * RATE}, {25 * RATE}, "inpaint",
    {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }}))
""")
    # the whole song (the engine looks for material across it), its time as the file's
    assert sf.info(request["source"]).frames == SONG_FRAMES and "@" not in Path(request["source"]).name
    assert (request["start"], request["end"], request["position"]) == (20.0, 23.0, 2.0)


def test_a_48_khz_session_with_tempo_and_meter_changes_gets_the_daemons_result_sample_exact(
        ardour, project, daemon):
    # the producer's 44.1 kHz song imported with conversion into a 48 kHz session (Ardour's import writes it at 48 kHz),
    # 90 BPM from 4 s and 3/4 from 6 s, before the range; the song region trimmed and not on a whole second
    rate = 48000
    song, song_rate = sf.read(project.song, dtype="float32")
    converted = project.audio / "song 48k.wav"
    sf.write(converted, soxr.resample(song, song_rate, rate).astype("float32"), rate, subtype="FLOAT")
    before = hashlib.sha256(converted.read_bytes()).hexdigest()
    folder = project.root / "ardour" / "Song \"48k\" 100%"
    position, trim = 2 * rate + 7, rate * 3 // 2
    [ids] = ardour.run(f"""
create_session({lua_string(str(folder))}, {lua_string(folder.name)}, {rate})
local map = Temporal.TempoMap.write_copy()
map:set_tempo(Temporal.Tempo(90, 90, 4), Temporal.timepos_t({4 * rate}))
map:set_meter(Temporal.Meter(3, 4), Temporal.timepos_t({6 * rate}))
Temporal.TempoMap.update(map)
Session:new_audio_track(2, 2, nil, 1, "Song", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
report(place_audio({lua_string(str(folder / (folder.name + '.ardour')))}, "Song", {lua_string(str(converted))}, 2,
                   {sf.info(converted).frames}, {position}, {trim}, {30 * rate}, "song"))
""")
    session = folder / f"{folder.name}.ardour"
    with BridgeClient("127.0.0.1", project.port) as listener:
        [request] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
report(SEND.send_range(Session, track:playlist():region_by_id(PBD.ID("{ids['region_id']}")), track, {10 * rate + 3},
    {16 * rate}, "inpaint", {{ prompt = "soft guitar solo", num_outputs = 1 }},
    {{ host = "127.0.0.1", port = {project.port}, reply_port = {listener.port} }}))
""")
        done = wait_for_outcome(listener, request["request_id"], daemon)
    [manifest] = [json.loads(Path(p).read_text()) for p in done.args[1:]]

    ardour.script(IMPORT_SCRIPT, str(session))

    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    [placed] = [r for r in regions if r["name"].startswith("inpaint v1")]
    assert manifest["sample_rate"] == rate
    assert placed["track"] == "Song" and placed["track_id"] == ids["track_id"]
    assert placed["position"] == position - trim + round(manifest["source"]["span_start"] * rate)
    assert placed["position"] == round(manifest["timeline"]["position"] * rate)
    assert (placed["length"], placed["start"]) == (manifest["frames"], 0)
    assert [(r["position"], r["start"], r["length"]) for r in regions if r["name"] == "song"] == [
        (position, trim, 30 * rate)]
    assert np.array_equal(sf.read(placed["sources"][0]["path"], dtype="float32")[0],
                          sf.read(Path(done.args[1]).with_name(manifest["audio"]), dtype="float32")[0])
    assert hashlib.sha256(converted.read_bytes()).hexdigest() == before  # the producer's audio is untouched


def test_a_full_disk_while_the_terminal_import_writes_the_session_leaves_the_session_as_it_was(
        ardour, tmp_path, demo_song_path):
    session = whole_song_session(ardour, tmp_path / "full", demo_song_path)
    [request] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
report(SEND.send_range(Session, track:playlist():top_region_at(Temporal.timepos_t({RATE})), track, {10 * RATE},
    {12 * RATE}, "inpaint", {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }}))
""")
    drop = session.parent / "daw-bridge"
    deliver_for(drop, "r", request, {"item": request["item_id"], "track": request["track_id"]})
    # the disk fills up as the session file is written: its temporary name leads to a device that is always full
    blocked = session.with_name(session.name + ".part")
    blocked.symlink_to("/dev/full")

    done = subprocess.run([ardour.executable, str(IMPORT_SCRIPT), str(session)], capture_output=True, text=True,
                          timeout=90, env=ardour.env, cwd=ardour.home)

    told = [line for line in done.stdout.splitlines() if "imported" in line]
    assert done.returncode == 1 and told == [
        f"not imported: could not write {session} (No space left on device): nothing was imported, and the session "
        "is as it was saved"]
    assert session.is_file() and not session.is_symlink() and not os.path.lexists(blocked)
    assert [r["name"] for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]] == ["song"]
    # listed before the session file is written: the next run finds it forgotten (its copy is in the session's audio
    # folder, its source is not in the session) and imports it again
    assert (drop / ".ardour-imported").read_text().startswith("r.json\t")

    # room again: the next import brings the result in, once
    assert "imported r.json" in ardour.script(IMPORT_SCRIPT, str(session)).splitlines()
    assert not [line for line in ardour.script(IMPORT_SCRIPT, str(session)).splitlines() if "imported" in line]
    assert sorted(r["name"] for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]) == [
        "inpaint v1: r", "song"]


def test_a_full_disk_while_the_terminal_import_copies_a_result_in_leaves_that_result_for_later(
        ardour, tmp_path, demo_song_path):
    session = whole_song_session(ardour, tmp_path / "audio", demo_song_path)
    ids = {"item": "1", "track": "1"}  # no longer in the session: the results land at their timeline position
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    for stem, start in (("a", 10.0), ("b", 20.0)):
        deliver_for(drop, stem, {"request_id": "ardour-1-1", "start": start, "end": start + 2, "position": 0.0,
                                 "source": "/music/song.wav"}, ids)
    blocked = session.parent / "interchange" / "audio" / "audiofiles" / "a.wav.part"
    blocked.symlink_to("/dev/full")  # the disk fills up as a's audio is copied into the session

    told = ardour.script(IMPORT_SCRIPT, str(session)).splitlines()

    copy = blocked.with_name("a.wav")
    assert f"not imported: a.json: could not write {copy} (No space left on device)" in told
    assert "imported b.json" in told and "imported a.json" not in told
    assert not os.path.lexists(copy) and not os.path.lexists(blocked)
    names = sorted(r["name"] for r in ardour.run(load(session) + "report(regions_of_session())\n")[0])
    assert names == ["inpaint v1: b", "song"]

    assert "imported a.json" in ardour.script(IMPORT_SCRIPT, str(session)).splitlines()  # room again


def test_a_full_disk_as_the_terminal_import_lists_a_result_gone_is_told_in_one_line(ardour, tmp_path,
                                                                                     demo_song_path):
    # r was imported and then cleaned up (its copy gone from the session's audio folder): the import lists it as gone
    # before it looks at anything else, and that write failing stopped the run with a Lua traceback
    session = whole_song_session(ardour, tmp_path / "gone", demo_song_path)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver_for(drop, "r", {"request_id": "ardour-1-1", "start": 10.0, "end": 12.0, "position": 0.0,
                            "source": "/music/song.wav"}, {"item": "1", "track": "1"})
    (drop / ".ardour-imported").write_text("r.json\t999\n")
    saved = session.read_bytes()
    blocked = drop / ".ardour-imported.part"
    blocked.symlink_to("/dev/full")  # the disk fills up as the list is written again

    done = subprocess.run([ardour.executable, str(IMPORT_SCRIPT), str(session)], capture_output=True, text=True,
                          timeout=90, env=ardour.env, cwd=ardour.home)

    assert done.returncode == 1 and [line for line in done.stdout.splitlines() if "imported" in line] == [
        f"not imported: could not write {drop / '.ardour-imported'} (No space left on device): nothing was imported, "
        "and the session is as it was saved"]
    assert "traceback" not in (done.stdout + done.stderr).lower()
    assert session.read_bytes() == saved and (drop / ".ardour-imported").read_text() == "r.json\t999\n"

    assert "imported" not in ardour.script(IMPORT_SCRIPT, str(session))  # room again: listed as gone, not imported
    assert (drop / ".ardour-imported").read_text() == "r.json\t999\tgone\n"


def test_a_full_disk_while_a_region_is_copied_for_the_daemon_is_told_in_one_line_and_nothing_is_sent(
        ardour, tmp_path, demo_song_path):
    session = whole_song_session(ardour, tmp_path / "copy", demo_song_path)
    [copy] = ardour.run(load(session) + f"""
{recording_on("Take", "take", 0)}
Session:save_state("")
report(SEND.interleaved_path(SEND.describe_region(region), {lua_string(str(session.parent / "daw-bridge"))}))
""")
    copy = Path(copy)
    copy.parent.mkdir(parents=True)
    blocked = copy.with_name(copy.name + ".part")
    blocked.symlink_to("/dev/full")  # the disk fills up as the copy is written

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon_stand_in:
        daemon_stand_in.bind(("127.0.0.1", 0))
        [sent] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Take"):to_track()
local request, message = SEND.send_range(Session, track:playlist():top_region_at(Temporal.timepos_t({RATE})), track,
    {10 * RATE}, {12 * RATE}, "inpaint", {{ prompt = "x", num_outputs = 1 }},
    {{ host = "127.0.0.1", port = {daemon_stand_in.getsockname()[1]} }})
report({{ request = request or false, message = message }})
""")
        daemon_stand_in.setblocking(False)
        with pytest.raises(BlockingIOError):
            daemon_stand_in.recvfrom(65536)  # nothing was sent (the run above has ended)

    assert sent == {"request": False, "message": (
        f"Could not write the copy of the region 'take' that daw-bridge reads into {copy.parent} (No space left on "
        "device): nothing was sent. Make room there and run the action again.")}
    assert not copy.exists() and not os.path.lexists(blocked)


def test_a_result_for_a_region_the_producer_muted_meanwhile_comes_in_muted(ardour, tmp_path, demo_song_path):
    # as a take added to a muted item in REAPER: on top of the muted song it would sound where the producer wanted
    # silence (the vocal they muted, say)
    session, ids = ardour.make_session_with_ids(tmp_path / "muted", demo_song_path, frames=SONG_FRAMES, position=0,
                                                trim=0, length=SONG_FRAMES)
    [request] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local song = track:playlist():region_by_id(PBD.ID("{ids['region_id']}"))
local request = SEND.send_range(Session, song, track, {10 * RATE}, {12 * RATE}, "inpaint",
    {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
song:set_muted(true)
Session:save_state("")
report(request)
""")
    drop = session.parent / "daw-bridge"
    deliver_for(drop, "r", request, {"item": ids["region_id"], "track": ids["track_id"]})

    told = ardour.script(IMPORT_SCRIPT, str(session)).splitlines()

    assert "imported r.json (muted: the region it stands in for is muted)" in told
    regions = {r["name"]: r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]}
    assert (regions["inpaint v1: r"]["position"], regions["inpaint v1: r"]["muted"]) == (9 * RATE, True)
    assert regions["song"]["muted"] is True


def test_the_editors_import_mutes_a_result_whose_region_is_muted(ardour, tmp_path):
    # a quiet take (a bounce of nothing) stands in for the producer's vocal, muted while its job ran
    setup = f"""
local quiet = Session:route_by_name("Other"):to_track():bounce_range(0, {20 * RATE}, ARDOUR.InterThreadInfo(),
    ARDOUR.LuaAPI.nil_proc(), false, "vocal")
local song = Session:route_by_name("Song"):to_track():playlist()
song:add_region(quiet, Temporal.timepos_t(0), 1, false, 0, 0, false)
local vocal = song:top_region_at(Temporal.timepos_t({RATE}))
vocal:set_muted(true)
ids.vocal = vocal:to_stateful():id():to_s()
"""
    with running_gui(ardour, tmp_path, [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text())],
                     setup=setup) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        request = {"request_id": "ardour-1-1", "start": 10.0, "end": 12.0, "position": 0.0, "source": "/music/v.wav"}
        deliver_for(drop, "r", request, {"item": gui.ids["vocal"], "track": gui.ids["Song"]})

        gui.run_script(1)
        dialog = wait_for("the import's message", lambda: gui.window("^DAW Bridge$"), 60, 0.2)
        gui.screenshot(tmp_path / "muted.png")
        subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"], env=gui.env, check=True)
        wait_for("the message to close", lambda: not gui.window("^DAW Bridge$"), 15, 0.2)
        regions = {r["name"]: r for r in regions_in_session_file(gui.save())}

    assert (regions["inpaint v1: r"]["track"], regions["inpaint v1: r"]["position"],
            regions["inpaint v1: r"]["muted"]) == ("Song", 9 * RATE, True)
    assert regions["vocal"]["muted"] is True


@pytest.mark.parametrize("order", ["earlier range first", "later range first"])
def test_a_job_on_an_overlapping_range_keeps_its_handles_off_the_other_jobs_new_material(
        ardour, tmp_path, demo_song_path, order):
    # bars 12..19.5 s, then 18..25 s of the song (timeline 12.5..20 s and 18.5..25.5 s), imported in turn: the later
    # import, on top, sounds where both replace, and its 1 s handle no longer puts the original back over the rest of
    # the other's range
    session, ids = ardour.make_session_with_ids(tmp_path / "overlap", demo_song_path, frames=SONG_FRAMES,
                                                position=RATE // 2, trim=0, length=30 * RATE)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    ranges = {"a": (12.0, 19.5), "b": (18.0, 25.0)}
    for stem in (("a", "b") if order == "earlier range first" else ("b", "a")):
        start, end = ranges[stem]
        request = {"request_id": f"ardour-1-{stem}", "start": start, "end": end, "position": 0.5,
                   "source": "/music/song.wav"}
        deliver_for(drop, stem, request, {"item": ids["region_id"], "track": ids["track_id"]})
        assert f"imported {stem}.json" in ardour.script(IMPORT_SCRIPT, str(session)).splitlines()

    regions = [r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0] if r["track"] == "Song"]

    if order == "earlier range first":  # b on top from its range's start on
        assert sounding(regions) == [("song", 0.5, 11.5), ("inpaint v1: a", 11.5, 18.5), ("inpaint v1: b", 18.5, 26.5),
                                     ("song", 26.5, 30.5)]
    else:  # a on top up to its range's end
        assert sounding(regions) == [("song", 0.5, 11.5), ("inpaint v1: a", 11.5, 20.0), ("inpaint v1: b", 20.0, 26.5),
                                     ("song", 26.5, 30.5)]


def test_the_import_action_says_in_one_line_when_the_disk_fills_up_and_imports_nothing_twice(ardour, tmp_path):
    with running_gui(ardour, tmp_path, [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text())]) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        write_result(drop, "r", gui.ids["Song"], 2.0, RATE, 0.8)
        blocked = drop / ".ardour-imported.part"
        blocked.symlink_to("/dev/full")  # the disk fills up as the import list is written again

        def run_the_action(shot: str):
            gui.run_script(1)
            dialog = wait_for("the import's message", lambda: gui.window("^DAW Bridge$"), 60, 0.2)
            gui.screenshot(tmp_path / shot)
            subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"], env=gui.env, check=True)
            wait_for("the message to close", lambda: not gui.window("^DAW Bridge$"), 15, 0.2)
            return [r["name"] for r in regions_in_session_file(gui.save())]

        # the list that records the result could not be written, and the message says so (before, the error went to
        # Ardour's log window only, and the action seemed to do nothing). The list is written before the region is
        # placed, so nothing is placed: placed first, the result stayed on the timeline unlisted, and was placed
        # again once its claim ran out. The claim, written whole as the list is, is the first write to fail.
        assert run_the_action("full.png") == []
        assert not os.path.lexists(blocked)  # no half-written list, nor its temporary
        assert not (drop / ".ardour-imported").exists()  # nor a claim

        assert run_the_action("again.png") == ["inpaint v1 (conf 0.80): r"]  # room again: placed, once
        assert (drop / ".ardour-imported").read_text().startswith("r.json\t")
        assert run_the_action("once.png") == ["inpaint v1 (conf 0.80): r"]
