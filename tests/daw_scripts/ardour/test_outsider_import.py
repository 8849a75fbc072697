"""An outsider's imports into a real headless Ardour 7: several jobs on neighbouring ranges of one region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, load
from tests.daw_scripts.ardour.test_import_core import manifest
from tests.daw_scripts.ardour.test_outsider_manifests import pending

SONG_FRAMES = 40 * RATE
POSITION, TRIM, LENGTH = 2 * RATE, RATE * 3 // 2, 30 * RATE  # the song's time 0 sits at 0.5 s on the timeline
ORIGIN = POSITION - TRIM


def deliver(drop: Path, stem: str, job_id: str, start: float, end: float, ids: dict) -> None:
    """One variant of a job replacing source seconds start..end with 1 s handles, as the daemon drops it."""
    span_start, span_end = start - 1.0, end + 1.0
    frames = round((span_end - span_start) * RATE)
    sf.write(drop / f"{stem}.wav", np.full((frames, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    (drop / f"{stem}.json").write_text(json.dumps({
        "format": "daw-bridge.manifest/1", "job_id": job_id, "operation": "inpaint", "variant": 1, "variants": 1,
        "delivery": "patch", "audio": f"{stem}.wav", "sample_rate": RATE, "channels": 2, "frames": frames,
        "timeline": {"position": 0.5 + span_start, "length": span_end - span_start},
        "ids": {"item": ids["region_id"], "track": ids["track_id"]},
        "source": {"path": "/music/song.wav", "start": start, "end": end, "span_start": span_start,
                   "span_end": span_end, "position": 0.5},
        "request": {"prompt": stem}, "splice": {"handle": 1.0, "joins": []}}))


def session_with_result(ardour, folder: Path, demo_song_path, stem: str) -> tuple[Path, Path]:
    """The song's session in ``folder`` and its drop folder holding one result, ``stem``, of source 12..19.5 s (timeline
    12.5..20 s): (session, drop)."""
    session, ids = ardour.make_session_with_ids(folder, demo_song_path, frames=SONG_FRAMES, position=POSITION,
                                                trim=TRIM, length=LENGTH)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, stem, "j-1111", 12.0, 19.5, ids)
    return session, drop


def sounding(regions: list) -> list[tuple[str, float, float]]:
    """Which region sounds where on the track, top layer first: (name, from, to) in seconds, in timeline order."""
    edges = sorted({r["position"] for r in regions} | {r["position"] + r["length"] for r in regions})
    out = []
    for lo, hi in zip(edges, edges[1:]):
        over = [r for r in regions if r["position"] <= lo and r["position"] + r["length"] >= hi and not r["muted"]]
        if over:
            top = max(over, key=lambda r: r["layer"])["name"]
            if out and out[-1][0] == top and out[-1][2] == lo / RATE:
                out[-1][2] = hi / RATE
            else:
                out.append([top, lo / RATE, hi / RATE])
    return [tuple(x) for x in out]


@pytest.mark.parametrize("order", ["in time order", "later range first"])
def test_handles_never_cut_off_a_neighbouring_jobs_replaced_range(ardour, tmp_path, demo_song_path, order):
    session, ids = ardour.make_session_with_ids(tmp_path / "next", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    # this bar, then the next: timeline 12.5..20 s and 20.5..30 s; the terminal imports in name order
    first, second = ("a", "b") if order == "in time order" else ("b", "a")
    deliver(drop, first, "j-1111", 12.0, 19.5, ids)
    deliver(drop, second, "j-2222", 20.0, 29.5, ids)

    ardour.script(IMPORT_SCRIPT, str(session))

    regions = [r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0] if r["track"] == "Song"]
    # each variant sounds up to halfway between the ranges (20.25 s), where both files play the source
    assert sounding(regions) == [("song", 2.0, 11.5), (f"inpaint v1: {first}", 11.5, 20.25),
                                 (f"inpaint v1: {second}", 20.25, 31.0), ("song", 31.0, 32.0)]


@pytest.mark.parametrize("subtype, kept", [("FLOAT", 0.5), ("PCM_24", 0.9), ("PCM_16", 0.02)])
def test_audio_still_being_copied_in_waits_until_it_is_whole(lua, tmp_path, subtype, kept):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "r")
    sf.write(drop / "r.wav", np.full((RATE, 2), 0.1, dtype="float32"), RATE, subtype=subtype)
    whole = (drop / "r.wav").read_bytes()
    (drop / "r.wav").write_bytes(whole[:int(len(whole) * kept)])  # a sync tool or a copy half way

    first = pending(lua, drop)
    (drop / "r.wav").write_bytes(whole)
    later = pending(lua, drop)

    [note] = first["notes"]
    assert first["ready"] == [] and note.startswith("r.json names r.wav, which holds ")
    assert note.endswith(f" of its {RATE} frames (still being written or copied); it is imported once whole")
    assert later == {"ready": ["r.json"], "notes": []}


def test_a_region_the_producer_split_and_turned_down_while_the_job_ran_still_gives_its_gain_and_extent(
        ardour, tmp_path, demo_song_path):
    session, ids = ardour.make_session_with_ids(tmp_path / "split", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    ardour.run(load(session) + f"""
local playlist = Session:route_by_name("Song"):to_track():playlist()
local song = playlist:region_by_id(PBD.ID("{ids['region_id']}"))
song:to_audioregion():set_scale_amplitude(0.5)
playlist:split_region(song, Temporal.timepos_t({16 * RATE}))  -- inside the patch's range: both pieces get new ids
Session:save_state("")
""")
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, "patch", "j-1111", 12.0, 19.5, ids)  # timeline 12.5..20 s
    whole = SONG_FRAMES  # a full delivery: the whole song (its file from 0 s), the range 22.5..25 s replaced
    sf.write(drop / "full.wav", np.full((whole, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    (drop / "full.json").write_text(json.dumps({
        "format": "daw-bridge.manifest/1", "job_id": "j-2222", "operation": "inpaint", "variant": 1, "variants": 1,
        "delivery": "full", "audio": "full.wav", "sample_rate": RATE, "channels": 2, "frames": whole,
        "timeline": {"position": 0.5, "length": 40.0}, "ids": {"item": ids["region_id"], "track": ids["track_id"]},
        "source": {"path": "/music/song.wav", "start": 22.0, "end": 24.5, "span_start": 0.0, "span_end": 40.0,
                   "position": 0.5}, "request": {"prompt": "full"}, "splice": {"handle": 1.0, "joins": []}}))

    ardour.script(IMPORT_SCRIPT, str(session))

    [placed] = ardour.run(load(session) + """
local found = {}
for region in Session:route_by_name("Song"):to_track():playlist():region_list():iter() do
    if region:name():find("^inpaint") then
        found[region:name()] = { position = region:position():samples(), length = region:length():samples(),
                                 start = region:start():samples(), gain = region:to_audioregion():scale_amplitude() }
    end
end
report(found)
""")
    # at the turned-down song's level, and the full song within the song region's two pieces (2..32 s)
    assert placed["inpaint v1: patch"] == {"position": round(11.5 * RATE), "length": round(9.5 * RATE), "start": 0,
                                           "gain": 0.5}
    assert placed["inpaint v1: full"] == {"position": POSITION, "length": LENGTH, "start": TRIM, "gain": 0.5}


def test_a_prompt_with_control_characters_names_the_region_without_them_and_the_session_still_loads(
        ardour, tmp_path, demo_song_path):
    session, drop = session_with_result(ardour, tmp_path / "ctl", demo_song_path, "r")
    data = json.loads((drop / "r.json").read_text())
    data["request"]["prompt"] = "warm \x1b[1mbold\x1b[0m\x01 \x7fend"  # pasted from a terminal: the daemon takes it
    (drop / "r.json").write_text(json.dumps(data))

    ardour.script(IMPORT_SCRIPT, str(session))

    names = [r["name"] for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]]
    assert sorted(names) == ["inpaint v1: warm [1mbold[0m end", "song"]


@pytest.mark.parametrize("audio", ["r\x1b.wav", "r\n.wav"])
def test_audio_named_with_control_characters_is_no_file_name(lua, tmp_path, audio):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "r", audio=audio)

    result = pending(lua, drop)

    assert result["ready"] == [] and result["notes"][0].endswith(", which is not a file name in its folder")


@pytest.mark.parametrize("source, lands_on", [("/music/song.wav", "Other"), ("/music/loop.wav", "Song")])
def test_a_region_the_producer_moved_to_another_track_while_the_job_ran_gets_its_result_there(
        ardour, tmp_path, demo_song_path, source, lands_on):
    # a region playing another file from the same origin (a loop, a stem) is no piece of the request's region: the
    # result stays on the request's track
    session, ids = ardour.make_session_with_ids(tmp_path / "moved", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    ardour.run(load(session) + f"""
Session:new_audio_track(2, 2, nil, 1, "Other", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
local from = Session:route_by_name("Song"):to_track():playlist()
local to = Session:route_by_name("Other"):to_track():playlist()
local song = from:region_by_id(PBD.ID("{ids['region_id']}"))
-- as the editor's drag to another track does: a copy (a new id) on that track, the region off this one
to:add_region(ARDOUR.RegionFactory.clone_region(song, true, false), song:position(), 1, false)
from:remove_region(song)
Session:save_state("")
""")
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, "r", "j-1111", 12.0, 19.5, ids)  # timeline 12.5..20 s
    (drop / "r.json").write_text((drop / "r.json").read_text().replace("/music/song.wav", source))

    ardour.script(IMPORT_SCRIPT, str(session))

    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    assert sorted((r["track"], r["name"].split(".")[0], r["position"]) for r in regions) == sorted([  # "song.1"
        (lands_on, "inpaint v1: r", round(11.5 * RATE)), ("Other", "song", POSITION)])  # the song left Song


def drag(session, ids, *places: tuple[str, float]) -> str:
    """Lua that drags the song's region to each (track, seconds later) in `places` (new tracks, made here), as the
    editor's drag to another track does: a copy (a new id) there, and the region off its own track."""
    steps = ['local from = Session:route_by_name("Song"):to_track():playlist()',
             f'local song = from:region_by_id(PBD.ID("{ids["region_id"]}"))']
    for track, later in places:
        steps += [f'Session:new_audio_track(2, 2, nil, 1, "{track}", ARDOUR.PresentationInfo.max_order, '
                  'ARDOUR.TrackMode.Normal, true)',
                  f'Session:route_by_name("{track}"):to_track():playlist():add_region('
                  f'ARDOUR.RegionFactory.clone_region(song, true, false), '
                  f'Temporal.timepos_t(song:position():samples() + {round(later * RATE)}), 1, false)']
    return load(session) + "\n".join(steps + ["from:remove_region(song)", 'Session:save_state("")', ""])


def test_a_region_moved_in_time_and_to_another_track_gets_its_result_there(ardour, tmp_path, demo_song_path):
    session, ids = ardour.make_session_with_ids(tmp_path / "far", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    ardour.run(drag(session, ids, ("Other", 4.0)))
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, "r", "j-1111", 12.0, 19.5, ids)  # timeline 12.5..20 s when sent, 16.5..24 s now

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert "imported r.json" in printed.splitlines()
    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    assert sorted((r["track"], r["name"].split(".")[0], r["position"]) for r in regions) == [
        ("Other", "inpaint v1: r", round(15.5 * RATE)), ("Other", "song", POSITION + 4 * RATE)]


def test_a_result_whose_region_is_gone_while_two_regions_play_its_part_is_not_placed_and_says_so(ardour, tmp_path,
                                                                                                 demo_song_path):
    session, ids = ardour.make_session_with_ids(tmp_path / "twice", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    # dragged, and a copy of it dragged elsewhere; or copied to two tracks and then deleted: the same to the session
    ardour.run(drag(session, ids, ("Other", 4.0), ("Third", 6.0)))
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, "r", "j-1111", 12.0, 19.5, ids)

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert [line for line in printed.splitlines() if "imported" in line] == [
        "not imported: r.json came from a region that was moved or deleted, and 2 regions play that part of "
        "song.wav now (on 'Other' at 6.00 s, on 'Third' at 8.00 s): remove all but one and "
        "import again"]
    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    assert not [r for r in regions if r["name"].startswith("inpaint")]
    assert not (drop / ".ardour-imported").exists() or "r.json" not in (drop / ".ardour-imported").read_text()


def test_the_terminal_import_takes_the_session_file_named_from_inside_its_folder(ardour, tmp_path, demo_song_path):
    session, drop = session_with_result(ardour, tmp_path / "here", demo_song_path, "a")

    # cd into the session, then `ardour7-lua .../daw_bridge_import.lua here.ardour`
    output = ardour.script(IMPORT_SCRIPT, session.name, cwd=session.parent)

    assert "imported a.json" in output.splitlines()
    regions = [r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0] if r["track"] == "Song"]
    assert sounding(regions) == [("song", 2.0, 11.5), ("inpaint v1: a", 11.5, 21.0), ("song", 21.0, 32.0)]
    assert (session.parent / "interchange" / "here" / "audiofiles" / "a.wav").is_file()


def test_a_result_whose_audio_has_fewer_channels_than_its_manifest_says_leaves_the_session_loadable(
        ardour, tmp_path, demo_song_path):
    session, drop = session_with_result(ardour, tmp_path / "mono", demo_song_path, "a")
    frames = json.loads((drop / "a.json").read_text())["frames"]
    sf.write(drop / "a.wav", np.full((2 * frames, 1), 0.1, dtype="float32"), RATE, subtype="FLOAT")  # made mono

    output = ardour.script(IMPORT_SCRIPT, str(session))

    assert ("not imported: a.json names a.wav, which holds 1 channel(s) at 44100 Hz where its manifest says 2 at "
            "44100 Hz") in output.splitlines()
    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]  # Ardour still loads the session
    assert [r["name"] for r in regions] == ["song"]


@pytest.mark.parametrize("prompt", ["warm\ufeff\ufffe pad", "tape\uffff hiss"])  # a BOM pasted byte-swapped
def test_a_prompt_holding_a_character_xml_cannot_hold_leaves_the_session_loadable(ardour, tmp_path, demo_song_path,
                                                                                   prompt):
    session, drop = session_with_result(ardour, tmp_path / "bom", demo_song_path, "a")
    manifest = json.loads((drop / "a.json").read_text())
    manifest["request"]["prompt"] = prompt  # the daemon takes it: it is valid text
    (drop / "a.json").write_text(json.dumps(manifest))

    ardour.script(IMPORT_SCRIPT, str(session))

    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]  # Ardour still loads the session
    kept = prompt.replace("\ufffe", "").replace("\uffff", "")
    assert sorted(r["name"] for r in regions) == sorted(["song", "inpaint v1: " + kept])


def test_a_region_dragged_to_another_track_beside_a_muted_backup_of_its_track_is_not_placed_on_the_backup(
        ardour, tmp_path, demo_song_path):
    # Track > Duplicate made "Song backup" (muted), holding a copy of the song: its source, its origin. Then the song
    # was dragged from Song to Other, at the same time, while the job ran: two tracks play it from its origin now,
    # and the first in track order, the muted backup, took the result without a word
    session, ids = ardour.make_session_with_ids(tmp_path / "backup", demo_song_path, frames=SONG_FRAMES,
                                                position=POSITION, trim=TRIM, length=LENGTH)
    ardour.run(load(session) + f"""
local from = Session:route_by_name("Song"):to_track():playlist()
local song = from:region_by_id(PBD.ID("{ids['region_id']}"))
for _, name in ipairs({{ "Song backup", "Other" }}) do
    Session:new_audio_track(2, 2, nil, 1, name, ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
    Session:route_by_name(name):to_track():playlist():add_region(ARDOUR.RegionFactory.clone_region(song, true, false),
        song:position(), 1, false)
end
Session:route_by_name("Song backup"):mute_control():set_value(1, PBD.GroupControlDisposition.NoGroup)
from:remove_region(song)
Session:save_state("")
""")
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    deliver(drop, "a", "j-1111", 12.0, 19.5, ids)

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert [line for line in printed.splitlines() if "imported" in line] == [
        "not imported: a.json came from a region that was moved or deleted, and 2 regions play that part of "
        "song.wav now (on 'Song backup' at 2.00 s, on 'Other' at 2.00 s): remove all but one and import again"]
    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    assert sorted((r["track"], r["name"].split(".")[0]) for r in regions) == [("Other", "song"),
                                                                              ("Song backup", "song")]


def test_a_result_whose_region_is_gone_lands_at_its_timeline_position_and_says_so(ardour, tmp_path, demo_song_path):
    session, _ = session_with_result(ardour, tmp_path / "gone", demo_song_path, "r")  # timeline 11.5..21 s
    ardour.run(load(session) + """
local playlist = Session:route_by_name("Song"):to_track():playlist()
for region in playlist:region_list():iter() do playlist:remove_region(region) end
Session:save_state("")
""")

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert [line for line in printed.splitlines() if "imported" in line] == [
        "imported r.json at its timeline position: its region is gone"]
    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    assert [(r["track"], r["name"], r["position"]) for r in regions] == [("Song", "inpaint v1: r", round(11.5 * RATE))]
