"""Stories in a real headless Ardour 7: a session with the song on a track, a range sent to the real daemon on the
embedded engine, its results imported onto the track, and the session checked for them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_packet import OscPacket

import osc_schema
from bridge.client import BridgeClient
from osc_schema import DECISIONS_FOLDER
from tests.conftest import DaemonProcess
from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, load, lua_string, write_decision
from tests.daw_scripts.ardour.test_import_core import manifest as waiting_result

SONG_FRAMES = 40 * RATE
POSITION, TRIM, LENGTH = 2 * RATE, RATE * 3 // 2, 30 * RATE  # the song sits at 2 s, its first 1.5 s trimmed off


def song_region(regions: list) -> dict:
    return next(r for r in regions if r["name"] == "song")


def wait_for_outcome(listener: BridgeClient, request_id: str, daemon: DaemonProcess, timeout: float = 180.0):
    """The daemon's done (or failed, or error) reply to the request, read as Ardour would if it could listen."""
    job = None

    def outcome(reply) -> bool:
        nonlocal job
        if reply.name == "accepted" and reply.args[0] == request_id:
            job = reply.args[1]
        return reply.name == "error" or (reply.name in ("done", "failed") and reply.args[0] == job)

    reply = listener.wait_for(outcome, timeout)
    assert reply is not None, (f"no outcome for {request_id} after {timeout:.0f} s; daemon log:\n"
                               f"{daemon.log.read_text()}")
    assert reply.name == "done", f"{reply.name}: {reply.args}"
    return reply


def test_inpaint_a_range_and_import_the_variants_onto_the_track_it_came_from(ardour, project, daemon, tmp_path):
    session = ardour.make_session(project.root / "ardour" / "song", project.song, frames=SONG_FRAMES,
                                  position=POSITION, trim=TRIM, length=LENGTH)

    # the producer selects 10 s .. 16 s on the timeline over the song and runs the action
    with BridgeClient("127.0.0.1", project.port) as listener:
        sent = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local region = track:playlist():top_region_at(Temporal.timepos_t({10 * RATE}))
local request, message = SEND.send_range(Session, region, track, {10 * RATE}, {16 * RATE}, "inpaint",
    {{ prompt = "soft guitar solo", num_outputs = 2 }},
    {{ host = "127.0.0.1", port = {project.port}, reply_port = {listener.port} }})
report({{ request = request, message = message, regions = regions_of_session() }})
""")[0]
        done = wait_for_outcome(listener, sent["request"]["request_id"], daemon)
    request, song = sent["request"], song_region(sent["regions"])
    assert (request["start"], request["end"], request["position"]) == (9.5, 15.5, 0.5)  # 10 s - 2 s + 1.5 s
    assert request["source"] == song["sources"][0]["path"]
    assert (request["item_id"], request["track_id"]) == (song["id"], song["track_id"])

    drop = session.parent / "daw-bridge"
    manifests = [json.loads(Path(p).read_text()) for p in done.args[1:]]
    assert {Path(p).parent for p in done.args[1:]} == {drop}  # the session's drop folder, as the request said
    assert [m["variant"] for m in manifests] == list(range(1, manifests[0]["variants"] + 1))  # the engine may make 1
    assert {m["request_id"] for m in manifests} == {request["request_id"]}
    assert {m["ids"]["track"] for m in manifests} == {song["track_id"]}

    printed = ardour.script(IMPORT_SCRIPT, str(session))  # as a producer runs it on a closed session
    assert sorted(line for line in printed.splitlines() if line.startswith("imported ")) == sorted(
        f"imported {p.name}" for p in drop.glob("*.json"))

    regions = ardour.run(load(session) + "report(regions_of_session())\n")[0]
    results = sorted((r for r in regions if r["name"].startswith("inpaint v")), key=lambda r: r["name"])
    assert [r["name"] for r in results] == [  # with the engine's confidence in each variant
        f"inpaint v{m['variant']} (conf {m['splice']['confidence']:.2f}): soft guitar solo" for m in manifests]
    for region, manifest in zip(results, sorted(manifests, key=lambda m: m["variant"])):
        assert region["track"] == "Song" and region["track_id"] == song["track_id"]
        assert region["position"] == round(manifest["timeline"]["position"] * RATE)
        assert region["position"] == POSITION - TRIM + round(manifest["source"]["span_start"] * RATE)
        assert region["length"] == manifest["frames"] and region["start"] == 0
        assert region["layer"] > song_region(regions)["layer"]  # on top: the result plays, the song is underneath
        copied = sf.read(region["sources"][0]["path"], dtype="float32")[0]
        delivered = sf.read(drop / manifest["audio"], dtype="float32")[0]
        assert np.array_equal(copied, delivered)  # the session's copy is the delivered audio, untouched
    assert song_region(regions) == {**song, "layer": song_region(regions)["layer"]}  # the song region is as it was

    again = ardour.script(IMPORT_SCRIPT, str(session))
    assert "imported " not in again  # the import list in the drop folder stops a second import


def test_a_region_stored_as_one_file_per_channel_goes_as_one_interleaved_file(ardour, tmp_path, demo_song_path):
    """Ardour keeps each channel in its own file (here made by a bounce); the daemon reads one file."""
    song = tmp_path / "song.wav"
    shutil.copy(demo_song_path, song)
    session = ardour.make_session(tmp_path / "split", song, frames=SONG_FRAMES, position=0, trim=0,
                                  length=SONG_FRAMES)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon_stand_in:
        daemon_stand_in.bind(("127.0.0.1", 0))
        daemon_stand_in.settimeout(10)
        sent = ardour.run(load(session) + f"""
local song = Session:route_by_name("Song"):to_track()
local bounced = song:bounce_range({RATE}, {9 * RATE}, ARDOUR.InterThreadInfo(), ARDOUR.LuaAPI.nil_proc(), false,
    "bounced")
local made = Session:new_audio_track(2, 2, nil, 1, "Bounced", ARDOUR.PresentationInfo.max_order,
    ARDOUR.TrackMode.Normal, true):front():to_track()
made:playlist():add_region(bounced, Temporal.timepos_t({20 * RATE}), 1, false, 0, 0, false)
local region = made:playlist():top_region_at(Temporal.timepos_t({21 * RATE}))
local request, message = SEND.send_range(Session, region, made, {22 * RATE}, {25 * RATE}, "inpaint",
    {{ prompt = "", num_outputs = 1 }}, {{ port = {daemon_stand_in.getsockname()[1]} }})
report({{ region = SEND.describe_region(region), request = request }})
""")[0]
        datagram, _ = daemon_stand_in.recvfrom(65536)
    region, request = sent["region"], sent["request"]
    assert len({s["path"] for s in region["sources"]}) == 2  # two mono files

    message = OscPacket(datagram).messages[0].message
    command = osc_schema.parse_osc(message.address, list(message.params))
    assert command.args["source"] == request["source"] and command.args["source"].endswith(".wav")
    assert (command.args["start"], command.args["end"], command.args["position"]) == (2.0, 5.0, 20.0)
    interleaved, rate = sf.read(request["source"], dtype="float32")
    original, _ = sf.read(song, dtype="float32")
    assert rate == RATE and interleaved.shape == (8 * RATE, 2)
    assert np.array_equal(interleaved, original[RATE:9 * RATE])  # both channels, sample for sample, same time base


def test_ranges_reaching_past_the_region_are_refused_and_nothing_is_sent(ardour, tmp_path, demo_song_path):
    session = ardour.make_session(tmp_path / "edges", demo_song_path, frames=SONG_FRAMES, position=POSITION,
                                  trim=TRIM, length=LENGTH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon_stand_in:
        daemon_stand_in.bind(("127.0.0.1", 0))
        daemon_stand_in.settimeout(0.5)
        outcomes = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local region = track:playlist():top_region_at(Temporal.timepos_t({POSITION}))
for _, range in ipairs({{ {{ {1 * RATE}, {5 * RATE}, "inpaint" }}, {{ {30 * RATE}, {33 * RATE}, "inpaint" }},
                         {{ {20 * RATE}, {33 * RATE}, "extend" }} }}) do
    local request, refusal = SEND.send_range(Session, region, track, range[1], range[2], range[3],
        {{ prompt = "" }}, {{ port = {daemon_stand_in.getsockname()[1]} }})
    report({{ sent = request ~= nil, refusal = refusal }})
end
""")
        with pytest.raises(socket.timeout):
            daemon_stand_in.recvfrom(65536)
    assert [o["sent"] for o in outcomes] == [False, False, False]
    assert outcomes[0]["refusal"].startswith(
        "The range 1.00 s to 5.00 s is not inside the region 'song' (2.00 s to 32.00 s). Make it lie within one")
    assert outcomes[1]["refusal"].startswith("The range 30.00 s to 33.00 s is not inside the region 'song'")
    assert outcomes[2]["refusal"].startswith("The point 33.00 s is not inside the region 'song'")  # extend: the end


def _session_with_drop(ardour, folder: Path, song: Path) -> tuple[Path, dict, Path]:
    """A session whose track plays the song (trimmed, at POSITION), its ids, and its empty drop folder."""
    session, ids = ardour.make_session_with_ids(folder, song, frames=SONG_FRAMES, position=POSITION, trim=TRIM,
                                                length=LENGTH)
    drop = session.parent / "daw-bridge"
    drop.mkdir()
    return session, ids, drop


def _deliver_one_second(drop: Path, stem: str, position: float, ids: dict, **manifest) -> None:
    """A one-second inpaint variant named ``stem`` in ``drop``, for ``position`` seconds on the timeline."""
    audio = np.linspace(-0.5, 0.5, 2 * RATE, dtype="float32").reshape(RATE, 2)
    sf.write(drop / f"{stem}.wav", audio, RATE, subtype="FLOAT")
    (drop / f"{stem}.json").write_text(json.dumps({
        "format": "daw-bridge.manifest/1", "operation": "inpaint", "variant": 1, "variants": 1,
        "audio": f"{stem}.wav", "sample_rate": RATE, "channels": 2, "frames": RATE,
        "timeline": {"position": position, "length": 1.0}, "ids": ids, "request": {"prompt": stem}, **manifest}))


def _lose_in_an_unsaved_close(session: Path, drop: Path, stem: str, track_id: str) -> Path:
    """``stem`` delivered, imported by the editor, then lost with Ardour closed without saving: listed in the import
    list, its copies left in the session's audio folder (returned), no source in the session."""
    _deliver_one_second(drop, stem, 3.0, {"track": track_id})
    copies = session.parent / "interchange" / session.stem / "audiofiles"
    for side in "LR":
        shutil.copy(drop / f"{stem}.wav", copies / f"{stem}%{side}.wav")
    with (drop / ".ardour-imported").open("a") as listed:
        listed.write(f"{stem}.json\t999\n")
    return copies


def test_a_result_follows_its_moved_region_and_one_without_its_track_lands_on_the_results_track(ardour, tmp_path,
                                                                                                demo_song_path):
    session, ids, drop = _session_with_drop(ardour, tmp_path / "later", demo_song_path)
    source = {"source": {"span_start": 8.5, "span_end": 9.5}}

    # computed when the region sat elsewhere: now the song's time 0 sits at 0.5 s, so this belongs at 9.0 s
    _deliver_one_second(drop, "moved", 3.0, {"item": ids["region_id"], "track": ids["track_id"]}, **source)
    _deliver_one_second(drop, "orphan", 12.0, {"item": "999999", "track": "999998"}, **source)  # its track is gone
    printed = ardour.script(IMPORT_SCRIPT, str(session))
    assert sorted(line for line in printed.splitlines() if line.startswith("imported")) == [
        "imported moved.json",
        "imported orphan.json on 'DAW Bridge results' at its timeline position: its track is gone"]

    regions = {r["name"]: r for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]}
    assert (regions["inpaint v1: moved"]["track_id"], regions["inpaint v1: moved"]["position"]) == (
        ids["track_id"], POSITION - TRIM + round(8.5 * RATE))
    assert (regions["inpaint v1: orphan"]["track"], regions["inpaint v1: orphan"]["position"]) == (
        "DAW Bridge results", 12 * RATE)
    assert regions["inpaint v1: orphan"]["length"] == RATE


def test_the_terminal_imports_again_a_result_an_unsaved_editor_session_forgot_and_nothing_twice(ardour, tmp_path,
                                                                                                demo_song_path):
    session, ids, drop = _session_with_drop(ardour, tmp_path / "forgot", demo_song_path)

    _deliver_one_second(drop, "kept", 3.0, {"track": ids["track_id"]})
    assert ardour.script(IMPORT_SCRIPT, str(session)).count("imported kept.json") == 1
    _lose_in_an_unsaved_close(session, drop, "lost", ids["track_id"])

    printed = ardour.script(IMPORT_SCRIPT, str(session))
    again = ardour.script(IMPORT_SCRIPT, str(session))

    assert [line for line in printed.splitlines() if line.startswith("imported")] == ["imported lost.json"]
    assert not [line for line in again.splitlines() if line.startswith("imported")]
    names = [r["name"] for r in ardour.run(load(session) + "report(regions_of_session())\n")[0]]
    assert (names.count("inpaint v1: lost"), names.count("inpaint v1: kept")) == (1, 1)
    listed = (drop / ".ardour-imported").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in listed) == ["kept.json", "lost.json"]


# Counts what each tick of the background hook (DB.pending with the session's view) opens of one result: its manifest
# (io.open) and listings of the session's audio folder (io.popen), for `ticks` ticks.
COUNT_TOUCHES = """
local touched = {{}}
local open, popen = io.open, io.popen
io.open = function(path, ...)
    if path:find({manifest}, 1, true) then touched[#touched] = touched[#touched] + 1 end
    return open(path, ...)
end
io.popen = function(command, ...)
    if command:find("audiofiles", 1, true) then touched[#touched] = touched[#touched] + 1 end
    return popen(command, ...)
end
for _ = 1, {ticks} do
    touched[#touched + 1] = 0
    IMPORT.pending({drop}, IMPORT.session_view(Session))
end
report(touched)
"""


def test_a_result_deleted_and_cleaned_up_is_looked_at_once_and_then_left_alone(ardour, tmp_path, demo_song_path):
    session, ids, drop = _session_with_drop(ardour, tmp_path / "cleaned", demo_song_path)
    # imported in the editor, deleted, and both Clean-ups run: listed, while the session holds neither a region nor a
    # source of it, and its copy has left the audio folder
    _deliver_one_second(drop, "cleaned", 3.0, {"track": ids["track_id"]})
    (drop / ".ardour-imported").write_text("cleaned.json\t999\n")
    count = COUNT_TOUCHES.format(manifest=lua_string(str(drop / "cleaned.json")), drop=lua_string(str(drop)), ticks=3)

    [touched] = ardour.run(load(session) + count)
    [reopened] = ardour.run(load(session) + count)

    assert touched == [2, 0, 0]  # its manifest read and the audio folder listed once, then nothing, tick after tick
    assert reopened == [0, 0, 0]  # and so after the session is opened again
    assert (drop / ".ardour-imported").read_text() == "cleaned.json\t999\tgone\n"
    assert "imported" not in ardour.script(IMPORT_SCRIPT, str(session))


def test_a_result_is_not_taken_for_gone_in_a_tick_that_could_not_list_the_sessions_audio_folder(ardour, tmp_path,
                                                                                                  demo_song_path):
    session, ids, drop = _session_with_drop(ardour, tmp_path / "away", demo_song_path)
    copies = _lose_in_an_unsaved_close(session, drop, "lost", ids["track_id"])

    # one tick while the audio folder cannot be listed (a sync tool or a backup has it away a moment), one after
    [ticks] = ardour.run(load(session) + f"""
local drop, copies, ticks = {lua_string(str(drop))}, {lua_string(str(copies))}, {{}}
local popen = io.popen
local function tick()
    local listings = {{}}
    io.popen = function(command, ...)
        if command:find("audiofiles", 1, true) then listings[#listings + 1] = command end
        return popen(command, ...)
    end
    local ready, names = IMPORT.pending(drop, IMPORT.session_view(Session)), {{}}
    io.popen = popen
    for _, entry in ipairs(ready) do names[#names + 1] = entry.name end
    local ledger = io.open(drop .. "/.ardour-imported"):read("a")
    ticks[#ticks + 1] = {{ ready = names, ledger = ledger, listings = listings }}
end
os.rename(copies, copies .. ".away")
tick()
os.rename(copies .. ".away", copies)
tick()
report(ticks)
""")

    assert [(tick["ready"], tick["ledger"]) for tick in ticks] == [
        ([], "lost.json\t999\n"),  # not known: left as it was, not listed as gone
        (["lost.json"], "lost.json\t999\n")]  # its copy is there again: imported again
    # the audio folder is listed by name only: nothing there reads a long listing's lines
    listings = [command for tick in ticks for command in tick["listings"]]
    assert len(listings) == 2 and not [command for command in listings if "ls -l" in command]


# A tick of the background hook in a loaded session (what its callback runs while nothing is ready to import: the
# pending results, then the decisions), `ticks` times. Per tick: the files opened (io.open) other than the two
# ledgers, how many times the ledgers were opened (or written anew), the folder listings (io.popen), what was ready
# to import and what was applied. At tick `change` (a daemon publishing while Ardour runs), every ".<name>.part"
# staged in the drop folder and its decisions folder is renamed into place; at tick `revert`, the session loses its
# hold of j-003's decision, as a close without saving does.
TICKS = """
local drop, counts = {drop}, {{}}
local open, popen = io.open, io.popen
io.open = function(path, ...)
    local tick = counts[#counts]
    if path:find("/%.ardour%-[a-z]+$") or path:find("/%.ardour%-[a-z]+%.part$") then  -- a ledger, or its rewrite
        tick.ledgers = tick.ledgers + 1
    else
        tick.opened = tick.opened + 1
    end
    return open(path, ...)
end
io.popen = function(command, ...)
    counts[#counts].listed = counts[#counts].listed + 1
    return popen(command, ...)
end
local function stage_in(folder)
    local pipe = popen("ls -A -- '" .. folder .. "'")
    for name in pipe:lines() do
        local final = name:match("^%.(.+)%.part$")
        if final then os.rename(folder .. "/" .. name, folder .. "/" .. final) end
    end
    pipe:close()
end
for tick = 1, {ticks} do
    if tick == {change} then stage_in(drop); stage_in(drop .. "/.daw-bridge-decisions") end
    if tick == {revert} then
        local master = Session:master_out()
        master:set_comment((master:comment():gsub("daw%-bridge decided j%-003 1\\n", "")), nil)
    end
    counts[#counts + 1] = {{ opened = 0, ledgers = 0, listed = 0 }}
    local ready = IMPORT.pending(drop, IMPORT.session_view(Session))
    local applied = IMPORT.apply_decisions(Session, drop)
    local tick = counts[#counts]
    tick.ready, tick.applied = {{}}, {{}}
    for _, entry in ipairs(ready) do tick.ready[#tick.ready + 1] = entry.name end
    for _, entry in ipairs(applied) do tick.applied[#tick.applied + 1] = entry.text end
end
report(counts)
"""


def test_each_tick_opens_only_what_changed_not_every_decision_and_waiting_result_ever_published(ardour, tmp_path,
                                                                                               demo_song_path):
    session, ids, drop = _session_with_drop(ardour, tmp_path / "months", demo_song_path)
    # months of work: 50 jobs imported and decided, each decision applied (the ledger and the session hold it), their
    # results since moved out of the drop folder
    jobs = [f"j-{n:03d}" for n in range(50)]
    for job_id in jobs:
        write_decision(drop, job_id, 1, "choose", 1, [f"{job_id}_v1.json", f"{job_id}_v2.json"])
    (drop / ".ardour-imported").write_text("".join(f"{job_id}_v{n}.json\n" for job_id in jobs for n in (1, 2)))
    (drop / ".ardour-decided").write_text("# the lines below count where the session holds them too\n"
                                          + "".join(f"{job_id}\t1\n" for job_id in jobs))
    held = "\\n".join(f"daw-bridge decided {job_id} 1" for job_id in jobs)
    # and five results that cannot be imported yet: from a newer daemon, their audio not there yet, still being
    # copied in (a synced folder), an empty placeholder, and a manifest cut short
    waiting_result(drop, "newer_v1", format="daw-bridge.manifest/2")
    waiting_result(drop, "missing_v1")
    (drop / "missing_v1.wav").rename(drop / ".missing_v1.wav.part")  # arrives at tick 4
    waiting_result(drop, "copying_v1", frames=4 * RATE)
    waiting_result(drop, "empty_v1")
    (drop / "empty_v1.wav").write_bytes(b"")
    waiting_result(drop, "cut_v1")
    (drop / "cut_v1.json").write_text((drop / "cut_v1.json").read_text()[:200])
    # the producer decides on j-007 again while Ardour runs: published at tick 4
    write_decision(drop, "j-007", 2, "choose", 2, ["j-007_v1.json", "j-007_v2.json"])
    (drop / DECISIONS_FOLDER / "j-007.json").rename(tmp_path / "j-007 decision 2")
    write_decision(drop, "j-007", 1, "choose", 1, ["j-007_v1.json", "j-007_v2.json"])  # as applied
    (tmp_path / "j-007 decision 2").rename(drop / DECISIONS_FOLDER / ".j-007.json.part")  # the same size
    an_hour_ago = time.time() - 3600  # all of it written long before this Ardour started
    for path in [*drop.iterdir(), *(drop / DECISIONS_FOLDER).iterdir()]:
        os.utime(path, (an_hour_ago, an_hour_ago))

    [ticks] = ardour.run(load(session) + f'Session:master_out():set_comment("{held}\\n", nil)\n'
                         + TICKS.format(drop=lua_string(str(drop)), ticks=6, change=4, revert=5))

    waiting = 1 + 2 + 3 + 2 + 1  # their manifests, and their audio (header, frames), or a look for it where missing
    assert [tick["opened"] for tick in ticks] == [
        50 + waiting,  # the first tick of this Ardour reads everything once
        1, 1,  # then only a look for the audio the listing does not name (59 at every tick before)
        1 + 2 + 2,  # j-007's new decision, missing_v1's audio (now there), and j-007's manifests for its takes
        2,  # j-003's decision again (its file not read), and its manifests for its takes
        0]
    assert {(tick["ledgers"], tick["listed"]) for tick in ticks[:3] + ticks[5:]} == {(3, 2)}
    assert [tick["ready"] for tick in ticks] == [[]] * 3 + [["missing_v1.json"]] * 3
    assert [tick["applied"] for tick in ticks] == [
        [], [], [],
        ["j-007: choose variant 2 (decision 2): none of its takes is on a track any more"],
        ["j-003: choose variant 1 (decision 1): none of its takes is on a track any more"],
        []]
