"""What real hosts do that tidy tests do not, and what the plugin must keep promising then.

A producer's stories: Inpaint clicked on in the host's generic UI (a toggle there: a press is off going on) and
left on when the project is saved, then the project reopened, in a VST3 host and in Ardour (LV2).

pedalboard's tests come after DawDreamer's in the run (see test_outsider_plugin.py): this file uses no DawDreamer.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from bridge.frontends.osc_wire import decode
from tests.daw_scripts.ardour.conftest import load

from .conftest import URI, Capture, wait_for_job
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


# --- Ardour (LV2) -------------------------------------------------------------------------------------------------

def test_ardour_reopening_a_session_saved_with_inpaint_on_sends_nothing(ardour, session, tmp_path,  # noqa: F811
                                                                         daemon_port):
    """The same in Ardour: the LV2's Inpaint clicked on in its generic UI, the session saved and closed, and opened
    again; Ardour restores the control's value from the session at the plugin's first run."""
    ardour.env["DAW_BRIDGE_CAPTURE_DIR"] = str(tmp_path / "captures")
    port = daemon_port.getsockname()[1]
    ardour.run(load(session) + f"""
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

    [restored] = ardour.run(load(session) + """
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
