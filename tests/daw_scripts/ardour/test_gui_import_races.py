"""The import action and the background hook in Ardour's real editor (Ardour 7's GUI under Xvfb), both installed as
the README says. Ardour's import runs the GUI's main loop, where the other one's turn comes (the hook's second, the
action pressed): an outside probe had six results imported by the action while the hook ran, and a take that played
another job's audio and a result that came in twice. Each import takes the copy of its own file, and while one
import runs the other one waits its turn and says so.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, SCRIPTS
from tests.daw_scripts.ardour.gui import LUA_TIMER_S, regions_in_session_file, running_gui, wait_for, write_result
from tests.daw_scripts.ardour.test_gui_import import run_the_action

HOOK = SCRIPTS / "daw_bridge_background_import.lua"

# An action-script helper: the import core's DB.import_with_editor of one file onto the track Song, with the other
# script's imports (what the hook, or the action, imports while Ardour's import runs the main loop) made inside
# Ardour's import. $HOME/race.txt: this plan's file, "import" or "cancel" (Ardour's import of it makes nothing, as when
# the producer cancels it), then the other script's files. $HOME/race-report.txt: the source the placed region plays
# and the source listed with it ("none": nothing placed, nothing listed).
RACE = """
function factory () return function ()
	local home = os.getenv("HOME")
	DAW_BRIDGE_HEADLESS = true
	assert(loadfile(ARDOUR.user_config_directory(-1) .. "/scripts/daw_bridge_import.lua"))()
	DAW_BRIDGE_HEADLESS = nil
	local DB, lines = DAW_BRIDGE, {}
	for line in io.lines(home .. "/race.txt") do lines[#lines + 1] = line end
	local editor = Editor
	local function import(path)
		local files = C.StringVector()
		files:push_back(path)
		editor:do_import(files, Editing.ImportDistinctFiles, Editing.ImportAsRegion, ARDOUR.SrcQuality.SrcBest,
			ARDOUR.MidiTrackNameSource.SMFTrackName, ARDOUR.MidiTempoMapDisposition.SMFTempoIgnore,
			Temporal.timepos_t(0), ARDOUR.PluginInfo(), ARDOUR.Track(), false)
	end
	Editor = { do_import = function ()
		if lines[2] == "import" then import(lines[1]) end
		for n = 3, #lines do import(lines[n]) end  -- the other script's turn, inside Ardour's import
	end }
	local listed = "none"
	local ok, region = pcall(DB.import_with_editor, { audio = lines[1], name = "race", trim = 0, length = RATE,
		position = 40 * RATE }, Session:route_by_name("Song"):to_track(), function (source_id)
			listed = Session:source_by_id(PBD.ID(source_id)):name()
		end)
	Editor = editor
	local file = io.open(home .. "/race-report.txt.part", "w")
	file:write(ok and (region and region:source(0):name() or "none") .. "\\n" .. listed or "error " .. tostring(region))
	file:close()
	os.rename(home .. "/race-report.txt.part", home .. "/race-report.txt")
end end""".replace("RATE", str(RATE))


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    hook = ("DAW Bridge: Import results as they arrive", HOOK.read_text(), LUA_TIMER_S)
    actions = [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text()), ("import beside another", RACE)]
    with running_gui(ardour, tmp_path_factory.mktemp("gui-races"), actions, [hook]) as gui:
        yield gui


def race(gui, ours: str, *others: str, cancelled: bool = False) -> list[str]:
    """DB.import_with_editor of the file ``ours`` with the files ``others`` imported inside Ardour's import of it
    (stereo WAVs made here, without manifests: nothing else imports them): the source its region plays and the
    source listed with it."""
    drop = gui.session_file.parent / "daw-bridge"
    for n, stem in enumerate((ours, *others)):
        sf.write(drop / f"{stem}.wav", np.full((RATE // 2 + 100 * n, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    (gui.home / "race.txt").write_text("\n".join([str(drop / f"{ours}.wav"), "cancel" if cancelled else "import",
                                                  *(str(drop / f"{stem}.wav") for stem in others)]) + "\n")
    report = gui.home / "race-report.txt"
    report.unlink(missing_ok=True)
    gui.run_script(2)
    return wait_for("the import beside another", lambda: report.exists() and report.read_text(), 60, 0.2).split("\n")


def test_an_import_takes_the_copy_of_its_own_file_when_the_other_script_imports_meanwhile(gui):
    # three files of other jobs come in while Ardour imports this one: before, each call took whichever whole-file
    # region was new, one of four (the probe saw a take named after r0_0 playing r0_5%L.wav)
    assert race(gui, "ours", "theirs-1", "theirs-2", "theirs-3") == ["ours%L.wav", "ours%L.wav"]
    # again, with the session holding a file of that name already: Ardour names the copy "ours-2"
    assert race(gui, "ours", "ours-x", "theirs-4") == ["ours-2%L.wav", "ours-2%L.wav"]


def test_an_import_ardour_made_nothing_of_is_not_given_the_other_scripts_file(gui):
    # the producer cancels Ardour's import of this result while the other script's import lands: before, its region
    # (another job's audio) was placed and listed as this result's
    assert race(gui, "cancelled", "theirs-5", cancelled=True) == ["none", "none"]


def imported(drop) -> list[str]:
    listed = drop / ".ardour-imported"
    return [line.split("\t")[0] for line in listed.read_text().splitlines()] if listed.exists() else []


def test_while_an_import_runs_the_action_and_the_hook_import_nothing(gui):
    # what each says then is the core's DB.running_import (test_import_core): Lua's print reaches no output here
    drop = gui.session_file.parent / "daw-bridge"
    # an import running in this Ardour (its claim in the list, as written right before Ardour's import starts, with
    # the id of the process: the Ardour that wrote it)
    (drop / ".ardour-imported").write_text(f"~busy.json\t{int(time.time())}\t{gui.ardour.pid}\n")
    try:
        write_result(drop, "waiting", gui.ids["Song"], 60.0, RATE, 0.5)

        run_the_action(gui, "while-importing.png")  # its message says an import is running
        time.sleep(3)  # and the hook's seconds pass

        assert imported(drop) == ["~busy.json"]
        assert not [r for r in regions_in_session_file(gui.save()) if r["name"].endswith("waiting")]
    finally:
        (drop / ".ardour-imported").write_text("busy.json\n")  # that import done: the hook's next second imports
    wait_for("the hook to import it", lambda: "waiting.json" in imported(drop), 30, 0.2)
    placed = [(r["track"], r["position"]) for r in regions_in_session_file(gui.save()) if r["name"].endswith("waiting")]
    assert placed == [("Song", 60 * RATE)]


def test_six_results_imported_by_the_action_while_the_hook_runs_each_come_in_once_playing_their_own_audio(gui):
    # the probe's story: six results of six jobs written at once, and the action run at once, the hook installed
    drop = gui.session_file.parent / "daw-bridge"
    stems = [f"r0_{n}" for n in range(6)]
    for n, stem in enumerate(stems):
        write_result(drop, stem, gui.ids["Song"], 70.0 + 4 * n, 2 * RATE, 0.5)

    run_the_action(gui, "six-results.png")
    wait_for("all six imported", lambda: set(imported(drop)) >= {f"{stem}.json" for stem in stems}, 60, 0.2)

    regions = [r for r in regions_in_session_file(gui.save()) if r["name"].split(": ")[-1] in stems]
    assert sorted((r["name"], r["source"], r["track"], r["position"]) for r in regions) == [
        (f"inpaint v1 (conf 0.50): {stem}", f"{stem}%L.wav", "Song", round((70.0 + 4 * n) * RATE))
        for n, stem in enumerate(stems)]
    assert sorted(imported(drop)) == sorted(set(imported(drop))), "a result was listed twice"
