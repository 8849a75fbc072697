"""The plugin in Ardour 7 headless (``ardour7-lua``, dummy audio backend): the LV2 and the VST3 on one track.

A producer's story: the song sits on a track as a region, with instances of the plugin in a row, so each hears what
the one before passed on. The session rolls from 6 s for a while, then from 2 s. The captures hold the song's
samples at the positions that played, taken from the host's transport (exactly, after the fade-in Ardour applies
when the transport starts), and all hold the same samples, so the plugin passes audio through untouched. As two
LV2s, as two VST3s, and as LV2, VST3, LV2 in one process (each instance keeps a capture folder of its own) Played
backwards (Ardour's reverse play), the song is not captured.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import require_tool
from tests.daw_scripts.ardour.conftest import RATE, Ardour, load

from .conftest import URI, Capture, only_capture

SONG = np.random.default_rng(31).uniform(-1, 1, (14 * RATE, 2)).astype(np.float32)
POSITION = RATE  # the region starts at 1 s: what plays at timeline frame F is SONG[F - POSITION]
SCANNER = Path("/usr/lib/ardour7/ardour-vst3-scanner")  # Debian's ardour: VST3s are scanned before they can load


@pytest.fixture(scope="module")
def ardour(tmp_path_factory, bundles) -> Ardour:
    home = tmp_path_factory.mktemp("ardour-plugin-home")
    ardour = Ardour(require_tool("ardour7-lua"), home)
    (home / "lv2").mkdir()
    (home / "lv2" / "DawBridge.lv2").symlink_to(bundles / "DawBridge.lv2")
    (home / ".vst3").mkdir()
    (home / ".vst3" / "DawBridge.vst3").symlink_to(bundles / "DawBridge.vst3")
    ardour.env["LV2_PATH"] = str(home / "lv2")
    scanned = subprocess.run([str(SCANNER), "-q", str(home / ".vst3" / "DawBridge.vst3")], check=False,
                             capture_output=True, text=True, timeout=60,
                             env={**ardour.env, "LD_LIBRARY_PATH": str(SCANNER.parent)})
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    return ardour


@pytest.fixture(scope="module")
def session(ardour, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ardour-plugin-session")
    sf.write(str(folder / "song.wav"), SONG, RATE, subtype="FLOAT")
    return ardour.make_session(folder / "plugged", folder / "song.wav", frames=len(SONG), position=POSITION, trim=0,
                               length=len(SONG))


def roll_through(ardour: Ardour, session: Path, chain: tuple[str, ...], captures: Path) -> list[dict]:
    """Load the session, put ``chain`` (plugin formats, in order) on the song's track, roll from 6 s, then from 2 s.
    Returns each roll's start and where the transport stopped."""
    ardour.env["DAW_BRIDGE_CAPTURE_DIR"] = str(captures)
    formats = ", ".join(f'"{kind}"' for kind in chain)
    [added, *rolls] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local added, plugins = {{}}, {{}}
for index, kind in ipairs({{ {formats} }}) do
    local plugin = kind == "LV2"
        and ARDOUR.LuaAPI.new_plugin(Session, "{URI}", ARDOUR.PluginType.LV2, "")
        or ARDOUR.LuaAPI.new_plugin(Session, "daw-bridge", ARDOUR.PluginType.VST3, "")
    assert(not plugin:isnil(), kind .. " plugin not found")
    added[index] = track:add_processor_by_index(plugin, index - 1, nil, true) == 0 and kind or "refused"
    plugins[index] = plugin
end
report(added)
local function roll(from, microseconds)
    Session:request_locate(from, false, ARDOUR.LocateTransportDisposition.MustStop, ARDOUR.TransportRequestSource.TRS_UI)
    ARDOUR.LuaAPI.usleep(300000)
    Session:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
    ARDOUR.LuaAPI.usleep(microseconds)
    Session:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
    ARDOUR.LuaAPI.usleep(300000)  -- stopped, and the plugins' capture threads have published what they heard
    report({{ from = from, stopped_at = Session:transport_sample() }})
end
roll({6 * RATE}, 1500000)
roll({2 * RATE}, 1000000)
-- taken off the track again, as a producer would: each instance's capture thread is joined before Ardour exits
for _, plugin in ipairs(plugins) do
    assert(track:remove_processor(plugin, nil, true) == 0, "a plugin could not be removed")
end
""")
    assert added == list(chain)
    return rolls


def check_captures(captures: Path, chain: tuple[str, ...], rolls: list[dict]) -> None:
    """Every instance of ``chain`` captured the song as the session rolled over it, each the same samples bit for bit
    (so every instance before another passed the audio through untouched)."""
    found = [Capture(folder) for folder in sorted(captures.iterdir())]
    assert sorted(c.index["plugin_format"] for c in found) == sorted(chain), [c.folder.name for c in found]
    first = found[0]
    starts = [s["timeline_start_frame"] for s in first.spans]
    # each roll starts where the session was located (an overrun of the dummy backend may split a roll)
    assert starts[0] == 6 * RATE and 2 * RATE in starts, starts
    ends = [s["timeline_start_frame"] + s["frames"] for s in first.spans]
    for roll in rolls:  # ... and ends where the transport stopped, give or take the block it stopped in
        assert any(0 <= roll["stopped_at"] - end < 2048 for end in ends), (roll, ends)
    for span in first.spans:
        heard = first.audio(span)
        song = SONG[span["timeline_start_frame"] - POSITION:][:span["frames"]]
        exact = np.all(heard == song, axis=1)
        # Ardour fades the disk's audio in when the transport starts (declick): the song exactly after that
        ramp = len(exact) - np.argmin(exact[::-1]) if not exact.all() else 0
        assert ramp < 0.1 * RATE and exact[ramp:].all(), f"span at {span['timeline_start_frame']}: not the song"
        assert np.all(np.abs(heard[:ramp]) <= np.abs(song[:ramp]))
    for other in found[1:]:
        assert other.index["dropped_blocks"] == 0 and other.spans == first.spans
        for span in other.spans:
            assert np.array_equal(other.audio(span), first.audio(span)), "an instance changed the audio"


@pytest.mark.parametrize("chain", [("LV2", "LV2"), ("VST3", "VST3")])
def test_each_format_captures_what_the_session_rolls_over_and_passes_it_through(ardour, session, tmp_path, chain):
    rolls = roll_through(ardour, session, chain, tmp_path / "captures")
    check_captures(tmp_path / "captures", chain, rolls)


def test_the_lv2_and_the_vst3_on_one_track_keep_a_capture_each(ardour, session, tmp_path):
    chain = ("LV2", "VST3", "LV2")
    rolls = roll_through(ardour, session, chain, tmp_path / "captures")
    check_captures(tmp_path / "captures", chain, rolls)


def test_what_plays_backwards_is_not_captured(ardour, session, tmp_path):
    """The producer rolls from 8 s, then plays backwards for a second (Ardour's reverse play, which the LV2 hears as
    rolling, its position going back a block at a time). Each backward block was captured as a span of its own, a
    newer take of its frames holding them reversed, so the daemon read that passage backwards: only the forward roll
    is captured, and no span is a take of frames played before it."""
    ardour.env["DAW_BRIDGE_CAPTURE_DIR"] = str(tmp_path / "captures")
    [reversed_at] = ardour.run(load(session) + f"""
local track = Session:route_by_name("Song"):to_track()
local plugin = ARDOUR.LuaAPI.new_plugin(Session, "{URI}", ARDOUR.PluginType.LV2, "")
assert(not plugin:isnil(), "LV2 plugin not found")
assert(track:add_processor_by_index(plugin, 0, nil, true) == 0, "the plugin could not be added")
Session:request_locate({8 * RATE}, false, ARDOUR.LocateTransportDisposition.MustStop,
                       ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(300000)
Session:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(500000)
Session:request_transport_speed(-1.0, ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(1000000)
report({{ speed = Session:transport_speed(), at = Session:transport_sample() }})
Session:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(300000)
assert(track:remove_processor(plugin, nil, true) == 0, "the plugin could not be removed")
""")
    assert reversed_at["speed"] < 0 and reversed_at["at"] < 8 * RATE, reversed_at  # it did play backwards
    spans = [(s["timeline_start_frame"], s["frames"]) for s in only_capture(tmp_path / "captures").spans]
    assert spans and spans[0][0] == 8 * RATE, spans
    for (start, frames), (after, _) in zip(spans, spans[1:]):  # (an overrun of the dummy backend may split a roll)
        assert after >= start + frames, f"a span is a take of frames played before it: {spans}"
