"""What real hosts do that tidy tests do not, and what the plugin must keep promising then.

A producer's stories: Inpaint clicked on in the host's generic UI (a toggle there: a press is off going on) and
left on when the project is saved, then the project reopened, in a VST3 host and in Ardour (LV2), in an LV2 host
that runs its first block with the saved values (jalv), and in a CLAP host that reads the project from a slow disk
while the audio goes on (DPF sets the state, and the parameters after it); in Ardour, a loop
over the inpainted range to compare the variant with the original, as producers audition; a CLAP host that
deactivates and activates the plugin mid-variant, or restarts its engine at another rate while rolling; a project
closed while the real daemon worked on its job, opened again before the daemon runs, and a pad's choice on it then;
a reopened job the daemon no longer knows.

pedalboard's tests come after DawDreamer's in the run (see test_outsider_plugin.py): this file uses no DawDreamer.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.client import BridgeClient
from bridge.demo_song import make_song_array
from bridge.frontends.osc_wire import decode, encode
from tests.conftest import DaemonProcess, Project, require_tool
from tests.daw_scripts.ardour.conftest import RATE as ARDOUR_RATE
from tests.daw_scripts.ardour.conftest import load

from .conftest import RATE, URI, Capture, only_capture, wait_for_job
from .hosts.clap import finish_clap_host, run_clap_host, start_clap_host
from .hosts.standin import StandInDaemon
from .test_ardour_plugin import ardour, session  # noqa: F401  (fixtures: Ardour with the bundles, the song's session)
from .test_pedalboard import delivered, reopened

pedalboard = pytest.importorskip("pedalboard")  # in the test extra; absent only outside `pip install -e '.[test]'`

SILENCE = np.zeros((2, 512), np.float32)


@pytest.fixture
def captures(tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(tmp_path / "captures"))
    return tmp_path / "captures"


def test_inpaint_left_on_when_the_project_was_saved_sends_nothing_when_it_is_reopened(bundles, tmp_path, captures,
                                                                                       daemon_port):
    """The generic UI shows Inpaint as a toggle: the producer clicked it on, got variants, and saved with it still on.
    The host saves every parameter and restores each as the project opens: the restored on was taken as a press,
    and every reopening sent the daemon a new job (paid, on MusicGPT). Only a press after letting go is one."""
    saving, answered = delivered(bundles, tmp_path, daemon_port, "j-left-on")
    assert saving.inpaint  # left on: pressed() does not release it
    project_state = saving.raw_state
    del saving
    gc.collect()

    plugin, instance = reopened(bundles, captures, project_state)
    try:
        assert wait_for_job(captures, ("ready",), instance=instance)["job_id"] == "j-left-on"
        assert plugin.inpaint  # the host shows it on, as saved
        plugin.parameters["range_start_s"].raw_value = 3.0 / 36000
        plugin.parameters["range_end_s"].raw_value = 4.0 / 36000
        plugin.inpaint = False  # the producer lets go of it, and presses it again
        plugin.process(SILENCE, 48000)
        plugin.inpaint = True
        plugin.process(SILENCE, 48000)
        [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
        assert (address, args[1:3]) == ("/bridge/inpaint", [pytest.approx(3.0, abs=1e-3), pytest.approx(4.0, abs=1e-3)])
        wait_for_job(captures, ("sent",), instance=instance)  # the index that says so names the requests sent
        index = Capture(captures / instance).index
        assert [r["request_id"] for r in index["requests"]] == [f"{instance}-r1"], index["requests"]
    finally:
        del plugin
        gc.collect()


def test_a_clap_host_loading_the_project_slowly_while_the_audio_runs_sends_nothing_for_inpaint_left_on(
        bundles, tmp_path, daemon_port):
    """The project is read from a slow disk (a network share) as the audio goes on: DPF sets the plugin's state, then
    each parameter, reading as it goes, and audio blocks run between the two. One of them took Inpaint, not yet set
    from the project, as let go of, and the saved on that came next was a press: a job sent as the project opened."""
    require_tool("cc")
    clap, song = bundles / "DawBridge.clap", np.zeros((48000, 2), np.float32)
    env, project, port = {"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")}, tmp_path / "project", \
        daemon_port.getsockname()[1]
    run_clap_host(clap, song, tmp_path / "saving", [
        f"set:Daemon OSC port:{port}", "set:Range start:1", "set:Range end:2", "stop:0:24000",
        "set:Inpaint:1", "stop:0:256", f"save:{project}"], env=env)  # left on
    [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
    assert (address, args[1:3]) == ("/bridge/inpaint", [1.0, 2.0])  # the press before the save

    run_clap_host(clap, song, tmp_path / "reopening", [
        f"set:Daemon OSC port:{port}", "stop:0:24000",
        f"slowload:{project}:24000",  # a saved string at a time, half a second of audio after each
        "sleep:300",  # a job the load sent is on its way before the producer's own press below
        "set:Range start:3", "set:Range end:4", "set:Inpaint:0", "stop:0:256", "set:Inpaint:1", "stop:0:256"],
        env=env)  # the producer lets go of it, and presses it again
    [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
    assert (address, args[1:3]) == ("/bridge/inpaint", [3.0, 4.0]), "the reopened project sent a job by itself"


def test_an_lv2_host_giving_the_saved_inpaint_on_at_the_first_block_sends_nothing_until_it_is_pressed_again(
        jack_server, bundles, tmp_path, daemon_port):
    """An LV2 host may run the first block with the project's control values before it restores the plugin's state
    (or with no state to restore, as jalv given them on its command line here): Inpaint saved on was a press at
    that first block, before anything could tell the plugin a project was being opened."""
    require_tool("jalv")
    from .jackhost import hosted  # needs JACK-Client, as the jack_server fixture does

    port = daemon_port.getsockname()[1]
    with hosted(jack_server, bundles / "DawBridge.lv2", tmp_path,
                controls=("inpaint=1", f"port={port}", "start=1", "end=2")) as (plugin, song):
        time.sleep(0.3)  # connections in place
        song.roll(10 * RATE, 0.5)  # the project plays a while: a job its first block sent is on its way by now
        for line in ("set start 3", "set end 4", "set inpaint 0", "set inpaint 1"):  # let go of it, and press it
            plugin.command(line)
            time.sleep(0.05)  # one command per block or two: the release before the press
        [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
    assert plugin.exit_status == 0, plugin.log.read_text()
    assert (address, args[1:3]) == ("/bridge/inpaint", [3.0, 4.0]), "the saved on was taken for a press"


# --- Ardour (LV2) -------------------------------------------------------------------------------------------------

SUPERCLOCK = 282240000  # Ardour 7's time unit per second (a session's "a<superclock>" positions)


def copied(saved: Path, folder: Path, loop: tuple[int, int] | None = None) -> Path:
    """A copy of the session ``saved`` (the module's is left as it was), with its loop range at frames ``loop``
    (Ardour's Lua cannot set one)."""
    shutil.copytree(saved.parent, folder)
    copy = folder / saved.name
    if loop:
        per_frame = SUPERCLOCK // ARDOUR_RATE
        copy.write_text(copy.read_text().replace("<Locations/>", (
            f'<Locations><Location id="90001" name="Loop" start="a{loop[0] * per_frame}" '
            f'end="a{loop[1] * per_frame}" flags="IsAutoLoop" locked="0" timestamp="1" cue="0"/></Locations>')))
    return copy


def test_ardour_reopening_a_session_saved_with_inpaint_on_sends_nothing(ardour, session, tmp_path,  # noqa: F811
                                                                         daemon_port):
    """The same in Ardour: the LV2's Inpaint clicked on in its generic UI, the session saved and closed, and opened
    again; Ardour restores the control's value from the session at the plugin's first run."""
    ardour.env["DAW_BRIDGE_CAPTURE_DIR"] = str(tmp_path / "captures")
    port = daemon_port.getsockname()[1]
    saved = copied(session, tmp_path / "saved")
    ardour.run(load(saved) + f"""
local track = Session:route_by_name("Song"):to_track()
local plugin = ARDOUR.LuaAPI.new_plugin(Session, "{URI}", ARDOUR.PluginType.LV2, "")
assert(not plugin:isnil(), "LV2 plugin not found")
assert(track:add_processor_by_index(plugin, 0, nil, true) == 0, "the plugin could not be added")
ARDOUR.LuaAPI.set_processor_param(plugin, 7, {port})  -- Daemon OSC port
ARDOUR.LuaAPI.set_processor_param(plugin, 5, 1.0)  -- Range start
ARDOUR.LuaAPI.set_processor_param(plugin, 6, 2.0)  -- Range end
ARDOUR.LuaAPI.usleep(200000)
ARDOUR.LuaAPI.set_processor_param(plugin, 0, 1)  -- Inpaint, left on
ARDOUR.LuaAPI.usleep(500000)
Session:save_state("", false, false, false, false, false)
""")
    [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
    assert (address, args[1:3]) == ("/bridge/inpaint", [1.0, 2.0])  # the press before the save

    [restored] = ardour.run(load(saved) + """
local plugin = Session:route_by_name("Song"):nth_plugin(0)
assert(not plugin:isnil(), "the plugin was not restored")
ARDOUR.LuaAPI.usleep(500000)
local inpaint = ARDOUR.LuaAPI.get_processor_param(plugin, 0)
ARDOUR.LuaAPI.set_processor_param(plugin, 5, 3.0)
ARDOUR.LuaAPI.set_processor_param(plugin, 6, 4.0)
ARDOUR.LuaAPI.set_processor_param(plugin, 0, 0)  -- let go of it, and press it again
ARDOUR.LuaAPI.usleep(200000)
ARDOUR.LuaAPI.set_processor_param(plugin, 0, 1)
ARDOUR.LuaAPI.usleep(500000)
report({ inpaint = inpaint })
""")
    assert restored["inpaint"] == 1  # Ardour restored it on
    [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
    assert (address, args[1:3]) == ("/bridge/inpaint", [3.0, 4.0]), "the reopened session sent a job by itself"


def _capture_or_none(folder: Path) -> Capture | None:
    """The capture in ``folder``, or None while its index is not written whole yet."""
    try:
        return Capture(folder)
    except (OSError, ValueError):
        return None


def test_a_loop_over_a_playing_variant_wraps_without_a_click(ardour, session, tmp_path, daemon_port):  # noqa: F811
    """The producer loops 3.0-4.0 s over a variant playing from 2.5 to 4.5 s (a 437 Hz sine here), to compare it with
    the original. Ardour declicks its own audio at each wrap; the variant, played in its place, jumped from where the
    loop ended to where it starts, a step of 0.9 at every wrap (the sine's own steepest is 0.03). Each wrap is now a
    5 ms crossfade from where the variant was heading to the loop's start, the variant exactly after it. A second
    instance after the first on the track captures what the first plays."""
    rate, first = ARDOUR_RATE, round(2.5 * ARDOUR_RATE)
    loop_start, loop_end = 3 * rate, 4 * rate + 333
    looped = copied(session, tmp_path / "looped", (loop_start, loop_end))
    captures, loaded, looped_twice = tmp_path / "captures", tmp_path / "variants-loaded", tmp_path / "looped-twice"
    ardour.env["DAW_BRIDGE_CAPTURE_DIR"] = str(captures)
    sine = (0.5 * np.sin(2 * np.pi * 437.3 * np.arange(2 * rate) / rate)).astype(np.float32)
    variant = np.stack([sine, sine], axis=1)

    def answer(daemon: StandInDaemon) -> None:  # the daemon's side, while Ardour runs; then Lua may go on
        request = daemon.answer_inpaint(tmp_path / "drop", [variant], first / rate, rate)
        wait_for_job(captures, ("ready",), instance=request[request.index("capture") + 1])
        loaded.touch()
        deadline = time.monotonic() + 60  # then two whole passes and a third begun, whatever the machine's load
        while time.monotonic() < deadline and not any(
                len(capture.spans) >= 3 for capture in map(_capture_or_none, captures.iterdir())
                if capture is not None and not capture.index["requests"]):
            time.sleep(0.05)
        looped_twice.touch()

    with StandInDaemon() as daemon:
        answering = threading.Thread(target=answer, args=(daemon,))
        answering.start()
        try:
            ardour.run(load(looped) + f"""
local track = Session:route_by_name("Song"):to_track()
local played, heard = {{}}, {{}}
for index = 1, 2 do  -- the instance that plays, and one after it that captures what it plays
    local plugin = ARDOUR.LuaAPI.new_plugin(Session, "{URI}", ARDOUR.PluginType.LV2, "")
    assert(not plugin:isnil(), "LV2 plugin not found")
    assert(track:add_processor_by_index(plugin, index - 1, nil, true) == 0, "the plugin could not be added")
    if index == 1 then played = plugin else heard = plugin end
end
ARDOUR.LuaAPI.set_processor_param(played, 7, {daemon.port})  -- Daemon OSC port
ARDOUR.LuaAPI.set_processor_param(played, 5, 3.2)  -- Range start, end
ARDOUR.LuaAPI.set_processor_param(played, 6, 3.8)
ARDOUR.LuaAPI.usleep(100000)
ARDOUR.LuaAPI.set_processor_param(played, 0, 1)  -- Inpaint
for _ = 1, 600 do  -- until the test says the variant is loaded (at most 30 s)
    local done = io.open({str(loaded)!r}, "r")
    if done then done:close() break end
    ARDOUR.LuaAPI.usleep(50000)
end
ARDOUR.LuaAPI.set_processor_param(played, 9, 1)  -- Variant 1
Session:request_locate({loop_start}, false, ARDOUR.LocateTransportDisposition.MustStop,
                       ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(300000)
Session:request_play_loop(true, true)
for _ = 1, 1200 do  -- until the test says the captures hold two whole passes (at most 60 s)
    local done = io.open({str(looped_twice)!r}, "r")
    if done then done:close() break end
    ARDOUR.LuaAPI.usleep(50000)
end
Session:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(300000)
assert(track:remove_processor(heard, nil, true) == 0 and track:remove_processor(played, nil, true) == 0)
""")
        finally:
            answering.join()
    assert loaded.exists()
    [heard] = [c for c in map(Capture, captures.iterdir()) if not c.index["requests"]]
    passes = [heard.audio(span) for span in heard.spans]
    whole_pass = (loop_start, loop_end - loop_start)
    assert [(s["timeline_start_frame"], s["frames"]) for s in heard.spans[:2]] == [whole_pass] * 2
    fade = int(rate * 0.005)
    heading = loop_end - first + np.arange(fade)  # the variant's frames the loop's end was heading for
    starting = loop_start - first + np.arange(fade)
    gain = (np.arange(fade) / fade)[:, None]
    for wrapped in passes[1:]:
        np.testing.assert_allclose(wrapped[:fade], variant[heading] + (variant[starting] - variant[heading]) * gain,
                                   rtol=0, atol=1e-6)
        assert np.array_equal(wrapped[fade:], variant[loop_start - first + fade:][:len(wrapped) - fade])
    played = np.concatenate(passes)
    assert np.abs(np.diff(played, axis=0)).max() < 0.05, "a click where the loop wraps"


def _variant_1_in_clap(bundles: Path, tmp_path: Path, song: np.ndarray, variant: np.ndarray,
                       range_s: tuple[float, float], steps: list[str]):
    """The CLAP host on ``song``: Inpaint over ``range_s`` answered with ``variant`` (placed at 1.0 s) by a stand-in
    daemon, variant 1 chosen, then ``steps``; the host's run."""
    with StandInDaemon() as daemon:
        proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}", f"set:Range start:{range_s[0]}", f"set:Range end:{range_s[1]}",
            "set:Inpaint:1", "stop:0:256", "wait:Variants loaded:1", "set:Variant:1", *steps],
            env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
        try:
            daemon.answer_inpaint(tmp_path / "drop", [variant], 1.0, RATE)
        finally:
            run = finish_clap_host(proc, out_file)
    return run


def test_a_plugin_activated_again_plays_from_its_first_block_as_the_manifest_places_it(bundles, tmp_path):
    """The CLAP host deactivates the plugin mid-variant and activates it again (a bypass, the audio device restarted)
    and rolls on earlier in the span: nothing heard before is faded from, the variant plays exactly."""
    require_tool("cc")
    song = np.zeros((4 * RATE, 2), np.float32)
    variant = (0.5 * np.random.default_rng(9).uniform(-1, 1, (2 * RATE, 2))).astype(np.float32)
    run = _variant_1_in_clap(bundles, tmp_path, song, variant, (1.5, 2.5),
                             ["stop:100000:256", "play:100000:2048", "rate:48000", "play:60000:2048"])
    assert np.array_equal(run.output[512:512 + 2048], variant[100000 - RATE:][:2048])
    assert np.array_equal(run.output[512 + 2048:], variant[60000 - RATE:][:2048])


def test_a_job_saved_while_it_ran_is_followed_to_its_end_when_the_project_reopens(bundles, tmp_path,
                                                                                demo_song_path):
    """The song plays through the CLAP on its track; Inpaint over 8-10 s goes to the real daemon, which accepts it.
    The producer saves the project and closes it before the result comes (a MusicGPT job takes minutes); the daemon
    delivers to nobody, and is stopped (the machine sleeps). Next day the project opens before the daemon runs: the
    job was restored "without results" for good. The plugin now asks the daemon how the job stands until it answers,
    and takes the delivered variants. The producer chooses variant 1 from a pad: the decision went only to the
    instance that sent the job, gone; the reopened one plays variant 1 in place now, sample for sample."""
    require_tool("cc")
    project = Project(tmp_path / "project", demo_song_path)
    captures = project.root / "captures"  # inside the project roots, as the daemon requires
    project.write_config(f'captures_dir = "{captures}"\n')
    env = {"DAW_BRIDGE_CAPTURE_DIR": str(captures)}
    song = make_song_array(seconds=20.0, sample_rate=RATE)[0]
    saved = tmp_path / "project.clapstate"
    daemon = DaemonProcess(project).start()
    try:
        proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day1", [
            f"set:Daemon OSC port:{project.port}", "set:Range start:8", "set:Range end:10", f"play:0:{len(song)}",
            "set:Inpaint:1", f"stop:{len(song)}:256", "wait:State:2", f"save:{saved}"], env=env)
        finish_clap_host(proc, out_file)  # the project saved with the job working, and closed
        day1 = only_capture(captures)
        working = day1.index["job"]
        assert (working["state"], bool(working["job_id"])) == ("working", True), working
        delivered = _wait_for(lambda: sorted(project.drop.rglob("*.json")))  # the daemon delivers to nobody
    finally:
        daemon.stop()

    proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day2", [
        f"load:{saved}", "stop:0:256", "wait:Variants loaded:1", "wait:State:9", "stop:0:256",
        f"play:0:{len(song)}"], env=env)  # State 9: a variant chosen outside the host plays
    try:
        again = _wait_for(lambda: [p.name for p in captures.iterdir() if p.name != day1.folder.name])[0]
        asking = wait_for_job(captures, ("working",), instance=again)  # asked: nobody answers yet
        assert "asking the daemon" in asking["message"], asking
        daemon = DaemonProcess(project).start()
        try:
            wait_for_job(captures, ("ready",), instance=again, timeout=60)
            with BridgeClient("127.0.0.1", project.port) as pad:  # what a pad mapped to "choose 1" sends
                pad.send("decide", job_id=working["job_id"], decision="choose", choice=1)
                assert pad.wait_for(lambda r: r.name in ("decided", "error"), timeout=30).name == "decided"
            run = finish_clap_host(proc, out_file)
        finally:
            daemon.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job = Capture(captures / again).index["job"]
    assert (job["state"], job["job_id"], job["decision"]["choice"]) == ("chosen", working["job_id"], 1), job
    assert sorted(job["manifests"]) == sorted(str(m) for m in delivered if json.loads(m.read_text()).get("audio"))
    manifest = json.loads(Path(job["manifests"][0]).read_text())
    variant, rate = sf.read(str(Path(job["manifests"][0]).parent / manifest["audio"]), dtype="float32",
                            always_2d=True)
    heard, at, fade = run.output[512:], round(manifest["timeline"]["position"] * RATE), round(0.005 * RATE)
    assert rate == RATE and at <= 8 * RATE and at + len(variant) >= 10 * RATE
    assert np.array_equal(heard[at + fade:at + len(variant) - fade], variant[fade:-fade])
    assert np.array_equal(heard[:at], song[:at]) and np.array_equal(heard[at + len(variant):], song[at + len(variant):])


def _wait_for(found, timeout: float = 180.0):
    """What ``found()`` returns once it is not empty (fails the test after ``timeout`` s: a loaded CI machine)."""
    deadline = time.monotonic() + timeout
    while not (got := found()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got, "never came"
    return got


def test_a_reopened_job_the_daemon_no_longer_knows_fails_with_why(bundles, tmp_path, daemon_port):
    """The daemon's journal was moved away since the project was saved with its job running: asked how the job
    stands, it answers that it knows no such job. The plugin stops asking and says so in one line."""
    require_tool("cc")
    captures, saved = tmp_path / "captures", tmp_path / "project.clapstate"
    env, port = {"DAW_BRIDGE_CAPTURE_DIR": str(captures)}, daemon_port.getsockname()[1]
    song = np.zeros((RATE, 2), np.float32)
    proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day1", [
        f"set:Daemon OSC port:{port}", "set:Range end:0.5", "set:Inpaint:1", "stop:0:256", "wait:State:2",
        f"save:{saved}"], env=env)
    try:
        request, reply_to = daemon_port.recvfrom(65536)
        [(_, args)] = decode(request)
        daemon_port.sendto(encode("/bridge/accepted", [args[args.index("request_id") + 1], "j-gone"]), reply_to)
    finally:
        finish_clap_host(proc, out_file)
    proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day2", [
        f"load:{saved}", "stop:0:256", "wait:State:4"], env=env)
    try:
        asked, reply_to = daemon_port.recvfrom(65536)
        assert decode(asked) == [("/bridge/status", ["job_id", "j-gone", "reply_port", reply_to[1]])]
        daemon_port.sendto(encode("/bridge/error", ["/bridge/status", "", "job_id",
                                                    "job_id: 'j-gone' is not a known job"]), reply_to)
    finally:
        finish_clap_host(proc, out_file)
    [job] = [Capture(folder).index["job"] for folder in captures.iterdir() if folder.name != args[5]]
    assert (job["state"], job["message"]) == ("failed", "the daemon does not know the job any more: job_id: "
                                                        "'j-gone' is not a known job")


def test_a_rate_change_while_rolling_plays_nothing_of_the_variants_at_the_old_rate(bundles, tmp_path):
    """Variant 1 (made at 48 kHz for 1.0-1.5 s) plays; the host restarts its engine at 96 kHz and rolls on without
    a stopped block between. The first 5 ms at 96 kHz faded the 48 kHz variant out, read at 96 kHz frame numbers: a
    piece of it (an octave up) where it does not belong. The input plays from the first frame at 96 kHz."""
    require_tool("cc")
    song = np.random.default_rng(4).uniform(-0.25, 0.25, (200_000, 2)).astype(np.float32)
    variant = np.full((RATE // 2, 2), 0.5, np.float32)
    run = _variant_1_in_clap(bundles, tmp_path, song, variant, (1.1, 1.4),
                             ["stop:50000:256", "play:50000:2048", "rate:96000", "play:52048:4096"])
    assert np.array_equal(run.output[512:512 + 2048], variant[50000 - RATE:][:2048])  # 48 kHz: the variant
    assert np.array_equal(run.output[512 + 2048:], song[52048:52048 + 4096])  # 96 kHz: the input from its first frame


def test_the_prompt_set_for_a_tracks_plugin_holds_after_the_project_is_reopened(bundles, tmp_path, demo_song_path):
    """The producer gives the guitar track's plugin its prompt from the command line (it has no GUI), saves the
    project, and opens it the next day: the plugin has a new instance name (one per process), and the daemon keeps
    prompts by name, so the next Inpaint went without the prompt. The reopened plugin tells the daemon the names it
    had in the project before, and its request gets the prompt."""
    require_tool("cc")
    project = Project(tmp_path / "project", demo_song_path)
    captures = project.root / "captures"
    project.write_config(f'captures_dir = "{captures}"\n')
    env = {"DAW_BRIDGE_CAPTURE_DIR": str(captures)}
    song = make_song_array(seconds=20.0, sample_rate=RATE)[0]
    saved = tmp_path / "project.clapstate"
    run_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day1", [f"play:0:{len(song)}", f"save:{saved}"],
                  env=env)
    day1 = only_capture(captures).folder.name
    daemon = DaemonProcess(project).start()
    try:
        prompted = subprocess.run([sys.executable, "-m", "bridge", "plugin", "prompt", day1, "dusty drum break",
                                   "--config", str(project.config)], capture_output=True, text=True, timeout=60)
        assert prompted.returncode == 0, prompted.stdout + prompted.stderr
        run_clap_host(bundles / "DawBridge.clap", song, tmp_path / "day2", [
            f"load:{saved}", f"set:Daemon OSC port:{project.port}", "set:Range start:8", "set:Range end:10",
            f"play:0:{len(song)}", "set:Inpaint:1", f"stop:{len(song)}:256", "wait:State:3"], env=env)
    finally:
        daemon.stop()
    [day2] = [folder for folder in captures.iterdir() if folder.name != day1]
    job = Capture(day2).index["job"]
    assert job["state"] == "ready", job
    assert json.loads(Path(job["manifests"][0]).read_text())["request"]["prompt"] == "dusty drum break"
