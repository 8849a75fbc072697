"""The import action in Ardour's real editor (Ardour 7's GUI under Xvfb, the action run over Ardour's own OSC, no
mouse), whatever track the producer has selected: Ardour 7.3's ``ImportToTrack`` would put the result on the first
selected track, so the action must place it on the track the request came from by itself. Each case saves the
session and reads the saved .ardour file back; the screenshots stay in the module's temporary folder.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, write_decision
from tests.daw_scripts.ardour.gui import (
    is_image,
    regions_in_session_file,
    running_gui,
    wait_for,
    write_result,
)


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    with running_gui(ardour, tmp_path_factory.mktemp("gui-import"),
                     [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text())]) as gui:
        yield gui


# (the case, the tracks selected when the action runs, where the result goes in seconds, its length in samples)
CASES = [("another track selected", ["Other"], 2.0, RATE),
         ("no track selected", [], 5.0, RATE),
         ("the source track selected", ["Song"], 5.5, 2 * RATE),  # over the previous one: it must lie on top
         ("reaching before the session start", ["Other"], -0.25, RATE)]  # its first quarter second is cut


def run_the_action(gui, screenshot: str):
    """Run the import action, take a screenshot while its closing message shows, and close it with the keyboard."""
    gui.run_script(1)
    dialog = wait_for("the import's message", lambda: gui.window("^DAW Bridge$"), 60, 0.2)
    shot = gui.screenshot(gui.shots / screenshot)
    subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"], env=gui.env, check=True)
    wait_for("the message to close", lambda: not gui.window("^DAW Bridge$"), 15, 0.2)
    return shot


@pytest.mark.parametrize("case, selected, seconds_at, frames", CASES, ids=[c[0] for c in CASES])
def test_the_result_lands_on_its_track_whatever_is_selected(gui, case, selected, seconds_at, frames):
    gui.select(selected)
    stem = "case-" + case.replace(" ", "-")
    write_result(gui.session_file.parent / "daw-bridge", stem, gui.ids["Song"], seconds_at, frames, 0.82)

    shot = run_the_action(gui, f"{stem}.png")
    regions = regions_in_session_file(gui.save())

    placed = [r for r in regions if r["name"] == f"inpaint v1 (conf 0.82): {stem}"]
    at, cut = max(0, round(seconds_at * RATE)), max(0, -round(seconds_at * RATE))
    print(f"{case}: {[(r['track'], r['position'], r['length']) for r in placed]} (wanted Song at sample {at})")
    assert [(r["track"], r["position"], r["length"], r["start"]) for r in placed] == [("Song", at, frames - cut, cut)]
    under = [r for r in regions if r["track"] == "Song" and r["position"] < at + frames - cut
             and r["position"] + r["length"] > at and r is not placed[0]]
    assert all(r["layer"] < placed[0]["layer"] for r in under), "the result is not on top of what it overlaps"
    assert not [r for r in regions if r["track"] == "Other"], "something landed on the selected other track"
    assert gui.selection() == sorted(selected), "the producer's selection changed"
    listed = (gui.session_file.parent / "daw-bridge" / ".ardour-imported").read_text().splitlines()
    assert listed[-1].split("\t")[0] == stem + ".json"  # "<manifest>\t<the id of its source>"
    assert is_image(shot)


def test_an_import_is_one_undo_step(gui):
    def saved_names():
        return sorted(r["name"] for r in regions_in_session_file(gui.save()))

    write_result(gui.session_file.parent / "daw-bridge", "undone", gui.ids["Song"], 12.0, RATE, 0.82)
    run_the_action(gui, "undone.png")
    before = saved_names()
    assert "inpaint v1 (conf 0.82): undone" in before

    gui.action("Editor/undo")

    after = wait_for("the undo", lambda: (names := saved_names()) != before and names, 30, 0.5)
    assert after == [name for name in before if name != "inpaint v1 (conf 0.82): undone"]  # that import, nothing else


def test_the_action_applies_a_decision_published_since_it_last_ran(gui):
    drop = gui.session_file.parent / "daw-bridge"
    takes = [f"decided_inpaint_20.00-21.00_v{n}_dddd" for n in (1, 2)]

    def sources() -> list[str]:
        return sorted(r["source"] for r in regions_in_session_file(gui.save()) if r["source"].startswith("decided"))

    for stem in takes:
        write_result(drop, stem, gui.ids["Song"], 20.0, RATE, 0.82)
    run_the_action(gui, "decided-imported.png")
    imported = sources()
    assert imported == [f"{stem}%L.wav" for stem in takes]

    write_decision(drop, "j-dddd", 1, "discard", 0, [f"{stem}.json" for stem in takes])
    run_the_action(gui, "decided-discarded.png")
    assert sources() == []  # both takes off the track: the original sounds again
    assert (drop / ".ardour-decided").read_text().splitlines()[-1] == "j-dddd\t1"

    gui.action("Editor/undo")
    assert wait_for("the undo", lambda: sources() == imported, 30, 0.5)


def test_the_editors_import_keeps_a_variants_handle_off_a_neighbouring_jobs_replaced_range(gui):
    # this bar, then the next (an outsider's probe): 31..38.5 s and 39..46 s, each with 1 s handles
    drop = gui.session_file.parent / "daw-bridge"
    for stem, start, end in (("bar-1", 31.0, 38.5), ("bar-2", 39.0, 46.0)):
        write_result(drop, stem, gui.ids["Song"], start - 1.0, round((end - start + 2.0) * RATE), 0.82)
        manifest = json.loads((drop / f"{stem}.json").read_text())
        manifest["source"] = {"path": "/music/song.wav", "start": start, "end": end, "span_start": start - 1.0,
                              "span_end": end + 1.0, "position": 0.0}
        (drop / f"{stem}.json").write_text(json.dumps(manifest))

    run_the_action(gui, "neighbours.png")

    placed = {r["name"].rsplit(": ", 1)[1]: r for r in regions_in_session_file(gui.save())
              if r["name"].endswith(("bar-1", "bar-2"))}
    # the second (on top) starts at 38.75 s, halfway between the ranges: the first sounds up to there
    assert [(placed[s]["position"], placed[s]["length"], placed[s]["start"]) for s in ("bar-1", "bar-2")] == [
        (30 * RATE, round(9.5 * RATE), 0), (round(38.75 * RATE), round(8.25 * RATE), round(0.75 * RATE))]
    assert placed["bar-2"]["layer"] > placed["bar-1"]["layer"]


def test_the_editors_import_names_a_region_without_the_prompts_control_characters_and_the_session_saves(gui):
    drop = gui.session_file.parent / "daw-bridge"
    write_result(drop, "ctl", gui.ids["Song"], 50.0, RATE, 0.82)
    manifest = json.loads((drop / "ctl.json").read_text())
    manifest["request"]["prompt"] = "warm \x1b[1mbold\x1b[0m\x01 end"  # pasted from a terminal: the daemon takes it
    (drop / "ctl.json").write_text(json.dumps(manifest))

    run_the_action(gui, "control-characters.png")

    assert "inpaint v1 (conf 0.82): warm [1mbold[0m end" in [r["name"] for r in regions_in_session_file(gui.save())]
