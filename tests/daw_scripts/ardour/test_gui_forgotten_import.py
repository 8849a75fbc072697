"""A producer imports a result in Ardour's real editor (Ardour 7's GUI under Xvfb) and then closes the session without
saving, or Ardour dies before a save: the region is gone from the session while `.ardour-imported` still names it.
The next import brings it back, once; a result saved with the session, or deleted from the timeline and saved, is
not imported again. Each story reopens the session in a new Ardour and reads the saved .ardour file back.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE
from tests.daw_scripts.ardour.gui import ArdourGUI, regions_in_session_file, running_gui, wait_for, write_result
from tests.daw_scripts.ardour.test_gui_import import run_the_action

# An action-script helper: takes every region named after the result "lost" off its track, as the producer's Delete.
DELETE_RESULT = """
function factory () return function ()
	for route in Session:get_tracks():iter() do
		local playlist = route:to_track():playlist()
		for region in playlist:region_list():iter() do
			if region:name():find("lost", 1, true) then playlist:remove_region(region) end
		end
	end
end end"""

ACTIONS = [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text()), ("delete the result", DELETE_RESULT)]
NAME = "inpaint v1 (conf 0.82): lost"


def placed(session_file) -> list[tuple[str, int]]:
    return [(r["track"], r["position"]) for r in regions_in_session_file(session_file) if r["name"] == NAME]


def close_without_saving(gui):
    """Session > Close, and "Just close" in Ardour's question about the unsaved session (its default button is
    "Save and close"; Shift+Tab moves to the one before it)."""
    saved = gui.session_file.stat().st_mtime_ns
    gui.action("Main/Close")
    question = wait_for("the question about the unsaved session", lambda: gui.window("^Unsaved Session$"), 30, 0.2)
    subprocess.run(["xdotool", "windowfocus", "--sync", question, "key", "shift+Tab", "Return"], env=gui.env,
                   check=True)
    wait_for("the session to close", lambda: not gui.window(f"^{gui.session_file.stem} - "), 30, 0.2)
    assert gui.session_file.stat().st_mtime_ns == saved, "the session was saved"


def reopened(gui, folder) -> ArdourGUI:
    """A new Ardour on the same session, after the last one ended without a save."""
    again = ArdourGUI(folder / "home", gui.session_file, ACTIONS)
    again.ids, again.shots = gui.ids, folder
    try:
        again.start()
    except BaseException:  # the caller's finally stops only what it got back
        again.stop(folder / "reopened-failed.png")
        raise
    return again


def story(ardour, folder, before_close):
    """Import the result "lost" in the editor, do `before_close(gui)`, end Ardour without saving, reopen the session
    and run the import twice: the regions named after the result in the saved session file, and the imported list."""
    with running_gui(ardour, folder, ACTIONS) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        write_result(drop, "lost", gui.ids["Song"], 3.0, RATE, 0.82)
        run_the_action(gui, "first.png")
        before_close(gui)
    again = reopened(gui, folder)
    try:
        run_the_action(again, "reopened.png")
        run_the_action(again, "reopened-twice.png")
        listed = (drop / ".ardour-imported").read_text().splitlines()
        return placed(again.save()), [line.split("\t")[0] for line in listed]  # "<manifest>\t<source id>"
    finally:
        again.stop(folder / "reopened-last.png")


@pytest.mark.parametrize("end", [close_without_saving, lambda gui: None], ids=["closed without saving", "a crash"])
def test_a_result_imported_and_lost_unsaved_comes_back_once(ardour, tmp_path, end):
    regions, listed = story(ardour, tmp_path, end)  # a crash: Ardour ends (a signal) with the session unsaved
    assert regions == [("Song", 3 * RATE)]
    assert listed == ["lost.json"]


def test_a_result_imported_and_saved_is_not_imported_again(ardour, tmp_path):
    regions, listed = story(ardour, tmp_path, lambda gui: gui.save())
    assert regions == [("Song", 3 * RATE)]
    assert listed == ["lost.json"]


def test_a_result_deleted_from_the_timeline_and_saved_is_not_imported_again(ardour, tmp_path):
    def delete_and_save(gui):
        gui.run_script(2)
        assert placed(gui.save()) == []  # the Delete reached the saved session

    regions, listed = story(ardour, tmp_path, delete_and_save)
    assert regions == []
    assert listed == ["lost.json"]


def answer(gui, title: str, *keys: str):
    """Press ``keys`` in Ardour's question window ``title``, and wait for it to close."""
    question = wait_for(f"the question {title!r}", lambda: gui.window(f"^{title}$"), 30, 0.2)
    subprocess.run(["xdotool", "windowfocus", "--sync", question, "key", *keys], env=gui.env, check=True)
    wait_for(f"the question {title!r} to close", lambda: not gui.window(f"^{title}$"), 30, 0.2)


def test_a_result_deleted_and_its_unused_region_cleaned_up_is_not_imported_again(ardour, tmp_path):
    with running_gui(ardour, tmp_path, ACTIONS) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        write_result(drop, "lost", gui.ids["Song"], 3.0, RATE, 0.82)
        run_the_action(gui, "first.png")
        gui.run_script(2)
        gui.action("Main/CleanupUnusedRegions")  # takes the whole-file region out of the region list
        answer(gui, "Remove unused regions", "Tab", "Return")  # "Yes, remove." is the second button
        run_the_action(gui, "after-cleanup.png")
        assert placed(gui.save()) == []


def test_a_result_deleted_and_its_unused_source_cleaned_up_is_not_imported_again(ardour, tmp_path):
    with running_gui(ardour, tmp_path, ACTIONS) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        copies = gui.session_file.parent / "interchange" / "Sess" / "audiofiles"
        write_result(drop, "lost", gui.ids["Song"], 3.0, RATE, 0.82)
        run_the_action(gui, "first.png")
        gui.run_script(2)
        gui.save()
        gui.action("Main/CleanupUnusedSources")  # moves the unused files to the session's dead/ folder
        confirm = wait_for("the clean-up's question", lambda: gui.window("^Clean-up$"), 30, 0.2)
        subprocess.run(["xdotool", "windowfocus", "--sync", confirm, "key", "Tab", "Return"], env=gui.env, check=True)
        wait_for("the clean-up", lambda: not list(copies.glob("lost*")), 30, 0.2)
        report = wait_for("the clean-up's report", lambda: (w := gui.window("^Clean-up$")) != confirm and w, 30, 0.2)
        gui.screenshot(tmp_path / "cleaned-up.png")
        subprocess.run(["xdotool", "windowfocus", "--sync", report, "key", "Escape"], env=gui.env, check=True)
        wait_for("the report to close", lambda: not gui.window("^Clean-up$"), 30, 0.2)
        run_the_action(gui, "after-cleanup.png")
        assert placed(gui.save()) == []


def test_a_new_ardour_that_does_not_come_up_is_ended_with_its_display(tmp_path, monkeypatch):
    """reopened's Ardour dying while it loads the session (as _alive reports it, here at once) fails the story, and
    leaves neither that Ardour nor its Xvfb running for the rest of the test run."""
    started = []
    start = ArdourGUI.start

    def recorded(gui):
        started.append(gui)
        start(gui)

    def dead(gui):
        raise AssertionError("Ardour exited (1)")

    monkeypatch.setattr(ArdourGUI, "start", recorded)
    monkeypatch.setattr(ArdourGUI, "_alive", dead)
    before = SimpleNamespace(session_file=tmp_path / "Sess" / "Sess.ardour", ids={})
    with pytest.raises(AssertionError, match="Ardour exited"):
        reopened(before, tmp_path)
    [again] = started
    try:
        assert None not in (again.xvfb.poll(), again.ardour.poll()), "left running"
    finally:
        again.stop()
