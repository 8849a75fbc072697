"""An outsider's sends from a real headless Ardour 7: sessions as a producer leaves them (takes muted after a choice,
regions layered), and which region's file and times the request then names."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, load, lua_string
from tests.daw_scripts.ardour.test_import_core import manifest

SONG_FRAMES = 20 * RATE
TAKE_FRAMES = 4 * RATE


def song_with_a_muted_take_over_it(ardour, tmp_path):
    """The song at 2 s on track "Song", and over 8 s..12 s a take the producer muted (they chose the original)."""
    song, take = tmp_path / "song.wav", tmp_path / "take.wav"
    sf.write(song, np.zeros((SONG_FRAMES, 2), dtype="float32"), RATE, subtype="FLOAT")
    sf.write(take, np.zeros((TAKE_FRAMES, 2), dtype="float32"), RATE, subtype="FLOAT")
    session, ids = ardour.make_session_with_ids(tmp_path / "layered", song, frames=SONG_FRAMES, position=2 * RATE,
                                                trim=0, length=SONG_FRAMES)
    [placed] = ardour.run(load(session) + f"""
report(place_audio({lua_string(str(session))}, "Song", {lua_string(str(take))}, 2, {TAKE_FRAMES}, {8 * RATE}, 0,
                   {TAKE_FRAMES}, "inpaint v1"))
""")
    ardour.run(load(session) + f"""
local region = Session:route_by_name("Song"):to_track():playlist():region_by_id(PBD.ID("{placed['region_id']}"))
region:set_muted(true)
Session:save_state("")
""")
    return session, ids["region_id"], placed["region_id"]


def test_a_track_picked_by_its_selection_sends_the_region_it_plays_not_a_muted_one_above_it(ardour, tmp_path):
    session, song_id, take_id = song_with_a_muted_take_over_it(ardour, tmp_path)

    [picked] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local under_take = SEND.region_played(track, {9 * RATE})
local beside = SEND.region_played(track, {4 * RATE})
local nothing = SEND.region_played(track, {30 * RATE})
local top = track:playlist():top_region_at(Temporal.timepos_t({9 * RATE}))
report({{ under_take = under_take:to_stateful():id():to_s(), beside = beside:to_stateful():id():to_s(),
          nothing = nothing == nil, top = top:to_stateful():id():to_s(), top_muted = top:muted() }})
""")

    assert (picked["top"], picked["top_muted"]) == (take_id, True)  # the muted take lies above the song
    assert picked["under_take"] == song_id  # what the track plays at 9 s
    assert picked["beside"] == song_id
    assert picked["nothing"] is True


def test_a_region_whose_file_is_at_another_rate_than_the_session_is_refused_with_the_reason(ardour, tmp_path):
    # embedded without conversion, Ardour plays a 48 kHz file in a 44.1 kHz session sample for sample, 9% fast: the
    # timeline's seconds are not the file's, and no source range would be what the producer hears
    frames = 48000 * 10
    ramp = (np.arange(frames) / frames).astype("float32")
    song = tmp_path / "song48.wav"
    sf.write(song, np.stack([ramp, ramp], 1), 48000, subtype="FLOAT")
    session, ids = ardour.make_session_with_ids(tmp_path / "rates", song, frames=frames, position=2 * RATE,
                                                trim=RATE, length=5 * RATE)

    [sent] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local region = track:playlist():region_by_id(PBD.ID("{ids['region_id']}"))
-- what the track plays 1 s into the region: file sample {RATE} + {RATE}, not the file's second 2.0
local buffer = ARDOUR.DSP.DspShm(1)
region:to_audioregion():to_readable():read(buffer:to_float(0), {RATE}, 1, 0)
local request, message = SEND.send_range(Session, region, track, {3 * RATE}, {4 * RATE}, "inpaint",
    {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
report({{ played = buffer:to_float(0):array()[1] * {frames}, request = request or false, message = message }})
""")

    assert round(sent["played"]) == 2 * RATE  # Ardour really plays the file's samples at the session's rate
    assert sent["request"] is False
    assert sent["message"] == (
        "The region 'song' plays song48.wav, a file at 48000 Hz, in this 44100 Hz session: Ardour plays it at the "
        "wrong speed, so its times are not the file's. Import the file again with conversion (Session > Import) "
        "and use that region.")


def test_a_variant_imported_over_a_region_turned_down_plays_at_that_regions_gain(ardour, tmp_path):
    # the producer turned the song's region down 6 dB (region gain); a variant at 0 dB over it would jump in level at
    # both joins, which the handles are there to hide
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((SONG_FRAMES, 2), dtype="float32"), RATE, subtype="FLOAT")
    session, ids = ardour.make_session_with_ids(tmp_path / "gain", song, frames=SONG_FRAMES, position=2 * RATE,
                                                trim=0, length=SONG_FRAMES)
    ardour.run(load(session) + f"""
local region = Session:route_by_name("Song"):to_track():playlist():region_by_id(PBD.ID("{ids['region_id']}"))
region:to_audioregion():set_scale_amplitude(0.5)
Session:save_state("")
""")
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    manifest(drop, "variant", ids={"item": ids["region_id"], "track": ids["track_id"]},
             timeline={"position": 10.5, "length": 1.0},
             source={"path": str(song), "start": 9.0, "end": 9.5, "span_start": 8.5, "span_end": 9.5,
                     "position": 2.0})

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert "imported variant.json" in printed
    [regions] = ardour.run(load(session) + """
local found = {}
for region in Session:route_by_name("Song"):to_track():playlist():region_list():iter() do
  found[#found + 1] = { name = region:name(), position = region:position():samples(),
                        gain = region:to_audioregion():scale_amplitude() }
end
report(found)
""")
    by_name = {r["name"]: r for r in regions}
    assert by_name["song"]["gain"] == 0.5
    [variant] = [r for r in regions if r["name"].startswith("inpaint v1")]
    assert variant["position"] == int(10.5 * RATE)
    assert variant["gain"] == 0.5


def test_a_range_partly_under_a_region_that_sounds_over_the_selected_one_is_refused_by_name(ardour, tmp_path):
    # the producer chose a take over 8 s..12 s and now selects the song underneath with a range reaching into it:
    # what plays there is the take, not the song's file
    session, song_id, take_id = song_with_a_muted_take_over_it(ardour, tmp_path)

    [sent] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local song = track:playlist():region_by_id(PBD.ID("{song_id}"))
local take = track:playlist():region_by_id(PBD.ID("{take_id}"))
local function send(first, last)
  local request, message = SEND.send_range(Session, song, track, first, last, "inpaint",
      {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
  return {{ start = request and request.start or false, message = (not request) and message or false }}
end
local out = {{ muted = send({10 * RATE}, {14 * RATE}) }}
take:set_muted(false)
out.sounding = send({10 * RATE}, {14 * RATE})
out.beside = send({13 * RATE}, {15 * RATE})
take:set_opaque(false)  -- the take now lets the song through: what plays over it is both
local request, message = SEND.send_range(Session, take, track, {9 * RATE}, {11 * RATE}, "inpaint",
    {{ prompt = "x", num_outputs = 1 }}, {{ host = "127.0.0.1", port = 9 }})
out.transparent = (not request) and message or false
out.extend_inside = SEND.send_range(Session, song, track, {9 * RATE}, nil, "extend",
    {{ prompt = "x", num_outputs = 1, duration = 10.0 }}, {{ host = "127.0.0.1", port = 9 }}) or false
report(out)
""")

    assert sent["muted"]["start"] == 8.0  # a muted take over the range changes nothing that plays
    assert sent["beside"]["start"] == 11.0
    assert sent["sounding"] == {"start": False, "message": (
        "The region 'inpaint v1' sounds over 'song' from 10.00 s to 12.00 s, inside the range, so what plays there "
        "is not the file of 'song'. Choose a range outside it, or select 'inpaint v1' and a range within it.")}
    assert sent["extend_inside"] is False
    assert sent["transparent"] == (
        "The region 'inpaint v1' is transparent (not opaque) and 'song' sounds beneath it from 9.00 s to 11.00 s, so "
        "what plays there is not one file. Make 'inpaint v1' opaque, or bounce the range first.")


def test_extend_with_the_playhead_at_the_songs_end_finds_the_song_on_the_selected_track(ardour, tmp_path):
    # "go to end" puts the playhead at the session's end, where the song's region stops: nothing plays at that sample
    session, song_id, _ = song_with_a_muted_take_over_it(ardour, tmp_path)
    song_end = 2 * RATE + SONG_FRAMES

    [found] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local function id(region) return region and region:to_stateful():id():to_s() or false end
local at_end = SEND.region_extended(track, {song_end})
local request = SEND.send_range(Session, at_end, track, {song_end}, nil, "extend",
    {{ prompt = "x", num_outputs = 1, duration = 10.0 }}, {{ host = "127.0.0.1", port = 9 }})
report({{ at_end = id(at_end), at_start = id(SEND.region_extended(track, {2 * RATE})),
          past = id(SEND.region_extended(track, {song_end + 1})), extend_after = request.extend_after }})
""")

    assert found == {"at_end": song_id, "at_start": song_id, "past": False, "extend_after": 20.0}


def outro_after_a_trimmed_song(ardour, tmp_path):
    """The song at 2 s with its first 1.5 s trimmed off, 10 s long, and an outro region right after it at 12 s."""
    song, outro = tmp_path / "song.wav", tmp_path / "outro.wav"
    sf.write(song, np.zeros((SONG_FRAMES * 2, 2), dtype="float32"), RATE, subtype="FLOAT")
    sf.write(outro, np.zeros((TAKE_FRAMES, 2), dtype="float32"), RATE, subtype="FLOAT")
    session, ids = ardour.make_session_with_ids(tmp_path / "outro", song, frames=SONG_FRAMES * 2, position=2 * RATE,
                                                trim=RATE * 3 // 2, length=10 * RATE)
    ardour.run(load(session) + f"""
report(place_audio({lua_string(str(session))}, "Song", {lua_string(str(outro))}, 2, {TAKE_FRAMES}, {12 * RATE}, 0,
                   {TAKE_FRAMES}, "outro"))
""")
    return session, ids


def regions_on_song(ardour, session):
    [regions] = ardour.run(load(session) + """
local found = {}
for region in Session:route_by_name("Song"):to_track():playlist():region_list():iter() do
  found[#found + 1] = { name = region:name(), position = region:position():samples(),
                        length = region:length():samples(), start = region:start():samples() }
end
report(found)
""")
    return regions


def test_a_variant_stays_within_its_region_and_never_covers_the_next_one(ardour, tmp_path):
    # full delivery is the whole 40 s song; patch handles reach a second past the range: neither may lie over the
    # outro that follows the song region (it would silence it) or start before the song region does
    session, ids = outro_after_a_trimmed_song(ardour, tmp_path)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    song_seconds = SONG_FRAMES * 2 / RATE
    manifest(drop, "full", delivery="full", frames=SONG_FRAMES * 2, ids={"item": ids["region_id"],
             "track": ids["track_id"]}, timeline={"position": 0.5, "length": song_seconds},
             source={"path": "/music/song.wav", "start": 4.0, "end": 6.0, "span_start": 0.0,
                     "span_end": song_seconds, "position": 0.5}, request={"prompt": "full"})
    manifest(drop, "patch", frames=3 * RATE, ids={"item": ids["region_id"], "track": ids["track_id"]},
             timeline={"position": 10.5, "length": 3.0},
             source={"path": "/music/song.wav", "start": 10.5, "end": 11.5, "span_start": 10.0, "span_end": 13.0,
                     "position": 0.5}, request={"prompt": "patch"})
    for stem, frames in (("full", SONG_FRAMES * 2), ("patch", 3 * RATE)):  # the audio as long as its manifest says
        sf.write(drop / f"{stem}.wav", np.zeros((frames, 2), dtype="float32"), RATE, subtype="FLOAT")

    printed = ardour.script(IMPORT_SCRIPT, str(session))

    assert "imported full.json" in printed and "imported patch.json" in printed
    regions = {r["name"].split(": ")[-1]: r for r in regions_on_song(ardour, session)}
    full, patch = regions["full"], regions["patch"]
    assert regions["outro"]["position"] == 12 * RATE
    # the song region plays 2 s .. 12 s (file 1.5 s .. 11.5 s): the full variant exactly there, lined up
    assert (full["position"], full["length"], full["start"]) == (2 * RATE, 10 * RATE, RATE * 3 // 2)
    # the patch's file covers 10.5 s .. 13.5 s on the timeline: its last 1.5 s would lie over the outro
    assert (patch["position"], patch["length"], patch["start"]) == (RATE * 21 // 2, RATE * 3 // 2, 0)


def test_the_editors_import_cuts_a_variant_to_its_plan_as_the_session_file_does(ardour, tmp_path):
    session, _ = outro_after_a_trimmed_song(ardour, tmp_path)

    [shaped] = ardour.run(load(session) + """
local whole
for _, region in ARDOUR.RegionFactory.regions():iter() do
  if region:whole_file() and region:length():samples() > 20 * 44100 then whole = region end
end
local region = IMPORT.shape_region(ARDOUR.RegionFactory.clone_region(whole, true, false),
                                   { trim = 66150, length = 441000 })
report({ start = region:start():samples(), length = region:length():samples() })
""")

    assert shaped == {"start": RATE * 3 // 2, "length": 10 * RATE}
