"""The import script's core under lua5.4: manifests read as the daemon writes them, placed where their audio
belongs, and written into a session file the way Ardour's own import leaves it."""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import soundfile as sf

from osc_schema import DECISIONS_FOLDER
from tests.adversarial.support import fill_up, small_tmpfs
from tests.daw_scripts.ardour.conftest import lua_string

RATE = 44100


def manifest(drop: Path, stem: str, **changes) -> dict:
    """A manifest as docs/formats.md describes it, with its audio beside it."""
    audio = drop / f"{stem}.wav"
    sf.write(audio, np.zeros((RATE, 2), dtype="float32"), RATE, subtype="FLOAT")
    data = {
        "format": "daw-bridge.manifest/1", "job_id": "j-1", "request_id": "ardour-1-1", "operation": "inpaint",
        "variant": 1, "variants": 2, "backend": "local", "delivery": "patch", "audio": audio.name,
        "sample_rate": RATE, "channels": 2, "frames": RATE,
        "timeline": {"position": 9.0, "length": 1.0},
        "source": {"path": "/music/song.wav", "start": 9.5, "end": 15.5, "span_start": 8.5, "span_end": 16.5,
                   "position": 0.5},
        "ids": {"item": "192", "track": "121"},
        "request": {"prompt": "soft guitar solo", "lyrics": "", "lyrics_section": "", "gender": None,
                    "num_outputs": 2},
        "splice": {"handle": 1.0, "joins": []}, "notes": {}, "created": "2026-11-21T19:05:20Z",
    }
    data.update(changes)
    (drop / f"{stem}.json").write_text(json.dumps(data), encoding="utf-8")
    return data


def test_the_json_reader_reads_what_python_writes(lua, tmp_path):
    value = {"prompt": "café ♪ \U0001f3b8 \"quoted\" back\\slash\nnew line\ttab", "n": [1, -2.5, 3e-07, 1e21],
             "nested": {"empty": {}, "list": [], "flags": [True, False, None]}}
    for ascii_only in (True, False):
        path = tmp_path / f"value-{ascii_only}.json"
        path.write_text(json.dumps(value, ensure_ascii=ascii_only), encoding="utf-8")
        [decoded] = lua(f"report(IMPORT.json_decode(IMPORT.read_file({lua_string(str(path))})))")
        assert decoded["prompt"] == value["prompt"] and decoded["n"] == value["n"]
        assert decoded["nested"]["flags"] == [True, False]  # a Lua list ends at its first nil


def test_only_new_importable_manifests_are_pending_and_the_rest_are_named(lua, tmp_path):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "song_inpaint_9.50-15.50_v1_aaaa")
    manifest(drop, "song_inpaint_9.50-15.50_v2_aaaa", variant=2)
    manifest(drop, "song_inpaint_1.00-2.00_v1_bbbb")
    manifest(drop, "song_inpaint_3.00-4.00_v1_cccc", format="daw-bridge.manifest/2")
    manifest(drop, "song_inpaint_5.00-6.00_v1_dddd")
    (drop / "song_inpaint_5.00-6.00_v1_dddd.wav").unlink()
    (drop / ".song_inpaint_7.00-8.00_v1_eeee.json.part").write_text("{")
    (drop / ".ardour-imported").write_text("song_inpaint_1.00-2.00_v1_bbbb.json\n")
    [pending] = lua(f"""
local ready, notes = IMPORT.pending({lua_string(str(drop))})
local names = {{}}
for _, entry in ipairs(ready) do names[#names + 1] = entry.name end
report({{ ready = names, notes = notes }})
""")
    assert pending["ready"] == ["song_inpaint_9.50-15.50_v1_aaaa.json", "song_inpaint_9.50-15.50_v2_aaaa.json"]
    assert pending["notes"] == [
        "song_inpaint_3.00-4.00_v1_cccc.json is format daw-bridge.manifest/2; this script reads "
        "daw-bridge.manifest/1 (update the scripts)",
        "song_inpaint_5.00-6.00_v1_dddd.json names song_inpaint_5.00-6.00_v1_dddd.wav, which is missing"]


def test_a_result_lands_at_its_timeline_position_or_follows_its_region_when_that_moved(lua, tmp_path):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "r")
    plans = lua(f"""
local m = IMPORT.read_manifest({lua_string(str(drop / "r.json"))})
report(IMPORT.plan(m, {RATE}, function() return nil end))                  -- the region is gone
report(IMPORT.plan(m, {RATE}, function(item, track) return 3 * {RATE} end)) -- moved: source 0 now sits at 3 s
m.timeline.position = -0.25                                                -- the handle reaches before 0
report(IMPORT.plan(m, {RATE}, nil))
""")
    gone, moved, early = plans
    assert (gone["position"], gone["length"], gone["trim"]) == (9 * RATE, RATE, 0)
    assert (gone["name"], gone["track_id"], gone["item_id"]) == ("inpaint v1: soft guitar solo", "121", "192")
    assert moved["position"] == 3 * RATE + round(8.5 * RATE)
    assert (early["position"], early["trim"], early["length"]) == (0, RATE // 4, RATE - RATE // 4)


def test_a_result_is_named_by_operation_variant_confidence_and_prompt(lua):
    names = lua("""
report(IMPORT.region_name({ operation = "inpaint", variant = 2, splice = { confidence = 0.8249 },
                            request = { prompt = "soft  guitar\\nsolo" } }))
report(IMPORT.region_name({ operation = "extend", variant = 1, splice = {}, request = { prompt = "" } }))
report(IMPORT.region_name({ operation = "inpaint", variant = 1, request = { prompt = "x" },  -- as MusicGPT's
                            splice = { joins = { { confidence = 0.61 }, { confidence = 0.4 }, { at = 3 } } } }))
report(IMPORT.region_name({ operation = "inpaint", variant = 1, splice = { confidence = 1 },
                            request = { prompt = string.rep("é", 50) } }))
report(IMPORT.region_name({ operation = "extend", variant = 1, splice = { confidence = 1, plays_on = true },
                            request = { prompt = "" } }))
report(IMPORT.region_name({ operation = "extend", variant = 1, splice = { plays_on = true }, request = {} }))
""")
    assert names[:2] == ["inpaint v2 (conf 0.82): soft guitar solo", "extend v1"]  # no confidence, none shown
    assert names[2] == "inpaint v1 (conf 0.40): x"  # only the joins' confidences: the weakest is the variant's
    assert names[3] == "inpaint v1 (conf 1.00): " + "é" * 39 + "..."  # long prompts are cut: names stay short
    # the song's own continuation, delivered when nothing else fitted: the producer has that music already
    assert names[4:] == ["extend v1 (conf 1.00, the song as it goes on)", "extend v1 (the song as it goes on)"]


SESSION_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Session version="7002" name="s" sample-rate="44100" id-counter="213" name-counter="1">
  <Sources/>
  <Regions>
    <Region name="song" id="192" type="audio"/>
  </Regions>
  <Playlists>
    <Playlist id="183" name="Song" type="audio" orig-track-id="121" frozen="0" combine-ops="0">
      <Region name="song" id="193" type="audio"/>
    </Playlist>
    <Playlist id="200" name="DAW Bridge results" type="audio" orig-track-id="199" frozen="0" combine-ops="0"/>
  </Playlists>
</Session>
"""


def test_placements_are_written_as_sources_a_whole_file_region_and_a_playlist_region(lua, tmp_path):
    session = tmp_path / "s.ardour"
    session.write_text(SESSION_XML)
    [written] = lua(f"""
local xml = IMPORT.read_file({lua_string(str(session))})
local placements = {{
  {{ file = "v1 & co.wav", channels = 2, frames = 100, name = "inpaint v1: \\"x\\" <y>", playlist_id = "183",
     position = 396900, trim = 0, length = 100 }},
  {{ file = "v2.wav", channels = 1, frames = 100, name = "inpaint v2", playlist_id = "200", position = 0, trim = 25,
     length = 75 }},
}}
report(IMPORT.add_regions(xml, placements, 6400))
""")
    root = ET.fromstring(written.encode())
    assert root.get("id-counter") == str(213 + 3 + 2 + 2)  # 3 sources, 2 whole-file regions, 2 placed regions
    sources = [(s.get("name"), s.get("channel"), s.get("id")) for s in root.find("Sources")]
    assert sources == [("v1 & co.wav", "0", "213"), ("v1 & co.wav", "1", "214"), ("v2.wav", "0", "217")]
    wholes = root.find("Regions").findall("Region")[1:]
    assert [(r.get("whole-file"), r.get("length"), r.get("source-1")) for r in wholes] == [
        ("1", "a640000@a0", "214"), ("1", "a640000@a0", None)]
    song, first = root.find("Playlists/Playlist[@id='183']").findall("Region")
    assert song.get("id") == "193"  # the region already there stays
    assert (first.get("name"), first.get("start"), first.get("length")) == (
        'inpaint v1: "x" <y>', "a0", f"a{100 * 6400}@a{396900 * 6400}")
    [second] = root.find("Playlists/Playlist[@id='200']").findall("Region")
    assert (second.get("start"), second.get("length"), second.get("channels")) == (
        f"a{25 * 6400}", f"a{75 * 6400}@a0", "1")


def test_a_take_is_found_by_the_file_it_plays_whichever_import_made_it(lua):
    sources = ["v1_aaaa.wav", "v2_aaaa%L.wav", "v2_aaaa%R.wav", "v1_aaaa-2.wav", "v1_aaaa-1%L.wav",  # its takes
               "v1_aaaab.wav", "v1_bbbb.wav", "song.wav", "v1_aaaa-x.wav", "v1_aaa.wav"]  # other files
    found = lua(f"""
local function region(name)  -- what IMPORT.take_of asks of an Ardour region
	return {{ source = function () return {{ isnil = function () return false end, name = function () return name end }} end }}
end
for _, name in ipairs({{ {", ".join(lua_string("song_inpaint_9.50-15.50_" + s) for s in sources)} }}) do
	report(IMPORT.take_of(region(name), {{ "song_inpaint_9.50-15.50_v1_aaaa", "song_inpaint_9.50-15.50_v2_aaaa" }}) or 0)
end
""")
    assert found == [1, 2, 2, 1, 1, 0, 0, 0, 0, 0]


DECISION = {"format": "daw-bridge.decision/1", "job_id": "j-1", "seq": 2, "decision": "keep", "choice": 2,
            "manifests": ["a_v1.json", "a_v2.json"], "decided_at": "2026-11-30T07:00:00Z"}
BAD_DECISIONS = [
    ({"format": "daw-bridge.decision/2"},
     "is format daw-bridge.decision/2; this script reads daw-bridge.decision/1 (update the scripts)"),
    ({"job_id": ""}, "has no job_id"),
    ({"seq": 0}, "has no seq (1, 2, ...)"),
    ({"seq": 1.5}, "has no seq (1, 2, ...)"),
    ({"manifests": []}, "names no manifests"),
    ({"manifests": ["../a_v1.json"]}, "names a manifest badly"),
    ({"decision": "maybe"}, "has decision maybe"),
    ({"choice": 3}, "has choice 3; the job has 2 variant(s)"),
]


def test_decision_files_are_checked_against_the_contract(lua, tmp_path):
    files = [tmp_path / "good.json"]
    files[0].write_text(json.dumps(DECISION))
    for n, (change, _) in enumerate(BAD_DECISIONS):
        files.append(tmp_path / f"bad-{n}.json")
        files[-1].write_text(json.dumps({**DECISION, **change}))
    read = lua("".join(f"""
local decision, why = IMPORT.read_decision({lua_string(str(path))})
report(decision and IMPORT.describe_decision(decision) or why)
""" for path in files))
    assert read == ["j-1: keep variant 2 (decision 2)"] + [why for _, why in BAD_DECISIONS]


def test_a_result_claimed_by_an_import_still_running_is_neither_imported_again_nor_decided_on(lua, tmp_path):
    """The editor action and the background hook run inside each other: while one imports a result (claimed, not yet
    on the timeline), the other must not import it too, nor apply its job's decision without its region. A claim
    left by an Ardour that stopped mid-import is void after CLAIM_SECONDS."""
    drop = tmp_path / "daw-bridge"
    (drop / DECISIONS_FOLDER).mkdir(parents=True)
    for n in (1, 2, 3):
        manifest(drop, f"a_v{n}", variant=n)
    (drop / DECISIONS_FOLDER / "j-1.json").write_text(json.dumps(DECISION))
    stale = int(time.time()) - 3600
    (drop / ".ardour-imported").write_text(f"a_v2.json\n~a_v3.json\t{stale}\n")
    folder = lua_string(str(drop))
    state = f"""
local ready = IMPORT.pending({folder})
local names = {{}}
for _, entry in ipairs(ready) do names[#names + 1] = entry.name end
local decisions, notes = IMPORT.pending_decisions({folder})
report({{ pending = table.concat(names, " "), decisions = #decisions, notes = table.concat(notes, "; ") }})
"""
    before, claimed, during, claimed_again, settled = lua(f"""
{state}
report(IMPORT.claim({folder}, "a_v1.json"))
{state}
report(IMPORT.claim({folder}, "a_v1.json"))  -- the other script, while the first one imports
IMPORT.settle({folder}, "a_v1.json", "1234")  -- imported: its source's id
{state}
""")
    waits = "j-1: keep variant 2 (decision 2) waits for 1 of its results to be imported"
    assert before == {"pending": "a_v1.json a_v3.json", "decisions": 0, "notes": waits}  # a_v3's claim is stale
    assert (claimed, claimed_again) == (True, False)
    assert during == {"pending": "a_v3.json", "decisions": 0, "notes": waits}  # claimed: not pending, still waits
    assert settled == {"pending": "a_v3.json", "decisions": 1, "notes": ""}  # imported: the decision can be applied
    assert "a_v1.json\t1234" in (drop / ".ardour-imported").read_text().splitlines()

    [failed] = lua(f"""
report(IMPORT.claim({folder}, "a_v3.json"))
IMPORT.settle({folder}, "a_v3.json", nil)  -- Ardour did not import it: given back
{state}
""")[1:]
    assert failed["pending"] == "a_v3.json"


def test_an_import_running_in_the_other_script_is_told_in_one_line_until_its_claim_is_settled_or_void(lua, tmp_path):
    """The action and the hook each run in a Lua state of their own, and Ardour's import runs the main loop, where the
    other one's turn comes: what both see of an import running is its claim, and the other one imports nothing then
    (the GUI test test_gui_import_races has both in Ardour's editor)."""
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    folder = lua_string(str(drop))
    session = f"{{ path = function () return {lua_string(str(tmp_path))} end }}"
    # a claim from before 10 minutes, and one of an Ardour that stopped mid-import a minute ago (another process):
    # both void, the second at once, else it held every import back for ten minutes in the next Ardour
    (drop / ".ardour-imported").write_text(f"old.json\t12\n~stale.json\t{int(time.time()) - 3600}\n"
                                           f"~crashed.json\t{int(time.time()) - 60}\t{2 ** 31 + 7}\n")

    idle, running, listed, settled = lua(f"""
local session = {session}
report(IMPORT.running_import(session) or "none")
IMPORT.claim({folder}, "a.json")
report(IMPORT.running_import(session) or "none")
report(IMPORT.read_file({lua_string(str(drop / ".ardour-imported"))}))
IMPORT.settle({folder}, "a.json", "1234")
report(IMPORT.running_import(session) or "none")
""")

    assert (idle, settled) == ("none", "none")
    assert running == ("an import is already running (of a.json): nothing else was imported; the results waiting "
                       "come in when it is done")
    [claim] = [line for line in listed.splitlines() if line.startswith("~a.json")]
    assert re.fullmatch(r"~a\.json\t\d+\t\d+", claim)  # its time, and the process that claims it


def test_a_claim_the_full_disk_cannot_take_stops_the_import_and_leaves_the_list_as_it_was(lua, tmp_path):
    """A claim was appended to the import list unchecked: on a full disk it was lost (or half written) and the import
    went on as if claimed, so the other script could import the same result. It is written whole now, and a claim
    that cannot be written is an error, which the import tells in one line."""
    drop = tmp_path / "daw-bridge"
    with small_tmpfs(drop, "1m"):
        manifest(drop, "a_v1", variant=1)
        listed = "a_v2.json\t77\n" * 80  # 1040 bytes: its last page has room for another line
        (drop / ".ardour-imported").write_text(listed)
        fill_up(drop / "fill")
        [outcome] = lua(f"""
local claimed, why = pcall(IMPORT.claim, {lua_string(str(drop))}, "a_v1.json")
report({{ claimed = claimed, why = tostring(why) }})
""")
        assert outcome == {"claimed": False, "why": f"could not write {drop / '.ardour-imported'} (No space left on "
                                                    "device)"}
        assert (drop / ".ardour-imported").read_text() == listed
        assert sorted(p.name for p in drop.iterdir()) == [".ardour-imported", "a_v1.json", "a_v1.wav", "fill"]


def test_a_file_is_read_again_while_the_minute_its_listing_shows_lasts_and_then_only_when_its_listing_changes(
        lua, tmp_path):
    folder = tmp_path / "decisions"
    folder.mkdir()
    for name in ("old.json", "new.json", "later.part"):
        (folder / name).write_text('{"format": "f", "n": 1}')
    an_hour_ago = time.time() - 3600
    (folder / "later.part").write_text('{"format": "f", "n": 3}')  # the same size
    for name in ("old.json", "later.part"):
        os.utime(folder / name, (an_hour_ago, an_hour_ago))

    [looks] = lua(f"""
local folder, looks, opened = {lua_string(str(folder))}, {{}}, 0
local open = io.open
io.open = function(...) opened = opened + 1; return open(...) end
local function look()  -- as a tick does: list the folder, then read each file by its line
    opened = 0
    local names, lines = IMPORT.list_folder(folder)
    local seen = {{}}
    for _, name in ipairs(names) do
        if name:match("%.json$") then seen[name] = IMPORT.read_json(folder .. "/" .. name, "f", lines[name]).n end
    end
    looks[#looks + 1] = {{ opened = opened, seen = seen }}
end
look()
look()
local file = open(folder .. "/new.json", "r+")  -- rewritten in place within the same minute, at the same size
file:write('{{"format": "f", "n": 2}}')
file:close()
look()
os.rename(folder .. "/later.part", folder .. "/old.json")  -- renamed into place, its time as old as the one before
look()
report(looks)
""")

    assert looks == [
        {"opened": 2, "seen": {"old.json": 1, "new.json": 1}},  # both read
        {"opened": 1, "seen": {"old.json": 1, "new.json": 1}},  # new.json again: the minute it shows is not over
        {"opened": 1, "seen": {"old.json": 1, "new.json": 2}},  # and so its change is seen though its line holds
        {"opened": 2, "seen": {"old.json": 3, "new.json": 2}}]  # old.json's line changed (another inode)


def test_a_file_dated_in_the_future_is_read_again_until_its_listing_shows_a_time_gone_by(lua, tmp_path):
    """A file written on a machine whose clock is ahead (a shared or synced folder) is dated in the future: GNU `ls`
    shows a year for it in place of the time, BSD `ls` a minute yet to come. Neither tells a second change at the
    same size, so such a file counts as changing until its date has gone by."""
    folder = tmp_path / "decisions"
    folder.mkdir()
    ahead = time.time() + 3600
    (folder / "ahead.json").write_text('{"format": "f", "n": 1}')
    os.utime(folder / "ahead.json", (ahead, ahead))

    [seen] = lua(f"""
local folder, seen = {lua_string(str(folder))}, {{}}
local function look()
    local names, lines = IMPORT.list_folder(folder)
    seen[#seen + 1] = IMPORT.read_json(folder .. "/ahead.json", "f", lines["ahead.json"]).n
end
look()
local file = io.open(folder .. "/ahead.json", "r+")  -- written again there, at the same size, a little later
file:write('{{"format": "f", "n": 2}}')
file:close()
os.execute("touch -d @{int(ahead) + 30} '" .. folder .. "/ahead.json'")
look()
report(seen)
""")
    assert seen == [1, 2]

    # the lines as other listings show dates, passed as they are: how many of two looks read the file
    reads = lua("""
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local function line(date) return "2195569 -rw-r--r-- 1 0 0 23 " .. date .. " a.json" end
local function minute(time)  -- as BSD ls shows a date within six months, past or future
    local t = os.date("*t", time)
    return string.format("%s %2d %02d:%02d", MONTHS[t.month], t.day, t.hour, t.min)
end
local function year(time)
    local t = os.date("*t", time)
    return string.format("%s %2d %5d", MONTHS[t.month], t.day, t.year)
end
local now = os.time()
for n, date in ipairs({ minute(now + 120), year(now + 86400), minute(now - 3600), year(now - 400 * 86400) }) do
    local reads = 0
    for _ = 1, 2 do IMPORT.remember("/drop/" .. n .. "/a.json", line(date), function () reads = reads + 1 end) end
    report(reads)
end
""")
    assert reads == [2, 2, 1, 1]  # in the future: read each time; gone by: read once
