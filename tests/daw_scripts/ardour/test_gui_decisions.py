"""Keep or discard in Ardour's real editor (Ardour 7's GUI under Xvfb): with the background hook registered, a job's
two variants arrive by themselves, and each decision the daemon publishes while Ardour runs is applied by itself,
once, as one step of the editor's own undo. The session is saved and its file read back.
"""

from __future__ import annotations

import pytest

from tests.daw_scripts.ardour.conftest import RATE, SCRIPTS, write_decision
from tests.daw_scripts.ardour.gui import (
    LUA_TIMER_S,
    regions_in_session_file,
    running_gui,
    wait_for,
    write_result,
)
from tests.daw_scripts.ardour.test_gui_forgotten_import import ACTIONS, close_without_saving, reopened
from tests.daw_scripts.ardour.test_gui_import import run_the_action

HOOK = SCRIPTS / "daw_bridge_background_import.lua"
JOB = "j-cccc"
TAKES = [f"gui_inpaint_4.00-5.00_v{n}_cccc" for n in (1, 2)]


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    hook = ("DAW Bridge: Import results as they arrive", HOOK.read_text(), LUA_TIMER_S)
    with running_gui(ardour, tmp_path_factory.mktemp("gui-decisions"), [], [hook]) as gui:
        yield gui


def track(gui) -> dict:
    """The saved session's takes on the track Song: "v1", "v2" -> (muted, the layer's rank among them)."""
    takes = {f"{stem}%L.wav": f"v{n}" for n, stem in enumerate(TAKES, start=1)}  # the editor's import: a file a side
    regions = sorted((r for r in regions_in_session_file(gui.save()) if r["track"] == "Song"), key=lambda r: r["layer"])
    assert all(r["source"] in takes and r["position"] == 4 * RATE for r in regions), regions
    return {takes[r["source"]]: (r["muted"], rank) for rank, r in enumerate(regions)}


def applied(gui) -> list[str]:
    """The ledger's decisions (its "#" line says how they count)."""
    ledger = gui.session_file.parent / "daw-bridge" / ".ardour-decided"
    return [line for line in ledger.read_text().splitlines() if not line.startswith("#")] if ledger.exists() else []


def test_decisions_made_while_ardour_runs_are_applied_by_themselves_and_undone_by_the_editor(gui):
    drop = gui.session_file.parent / "daw-bridge"
    manifests = [f"{stem}.json" for stem in TAKES]
    for stem in TAKES:
        write_result(drop, stem, gui.ids["Song"], 4.0, RATE, 0.5)
    wait_for("the hook to import both takes", lambda: len(track(gui)) == 2, 30, 0.5)
    imported = track(gui)
    assert imported == {"v1": (False, 0), "v2": (False, 1)}  # the later one on top

    write_decision(drop, JOB, 1, "choose", 1, manifests)
    chosen = wait_for("choose 1", lambda: (now := track(gui)) != imported and now, 30, 0.5)
    assert chosen == {"v2": (True, 0), "v1": (False, 1)}  # variant 1 sounds, on top; variant 2 muted under it

    write_decision(drop, JOB, 2, "keep", 1, manifests)
    kept = wait_for("keep 1", lambda: (now := track(gui)) != chosen and now, 30, 0.5)
    assert kept == {"v1": (False, 0)}
    assert applied(gui) == [f"{JOB}\t1", f"{JOB}\t2"]

    gui.action("Editor/undo")  # the keep, in one step: variant 2 is back, still muted under variant 1
    assert wait_for("the undo of keep", lambda: (now := track(gui)) != kept and now, 30, 0.5) == chosen
    gui.action("Editor/undo")  # the choose: both sound again, as imported
    assert wait_for("the undo of choose", lambda: (now := track(gui)) != chosen and now, 30, 0.5) == imported
    assert track(gui) == imported and applied(gui) == [f"{JOB}\t1", f"{JOB}\t2"]  # the hook applied nothing again


def test_a_decision_lost_with_a_session_closed_without_saving_is_applied_again_on_reopen(ardour, tmp_path):
    manifests = [f"{stem}.json" for stem in TAKES]
    with running_gui(ardour, tmp_path, ACTIONS) as gui:
        drop = gui.session_file.parent / "daw-bridge"
        for stem in TAKES:
            write_result(drop, stem, gui.ids["Song"], 4.0, RATE, 0.5)
        run_the_action(gui, "imported.png")
        imported = track(gui)  # saved with both takes
        write_decision(drop, JOB, 1, "choose", 1, manifests)
        run_the_action(gui, "chosen.png")
        close_without_saving(gui)  # the choose is lost with the session, while the ledger lists it
    assert applied(gui) == [f"{JOB}\t1"]
    again = reopened(gui, tmp_path)
    try:
        assert track(again) == imported == {"v1": (False, 0), "v2": (False, 1)}  # as saved: the choose is gone
        run_the_action(again, "reopened.png")
        chosen = track(again)
        run_the_action(again, "reopened-twice.png")
        assert chosen == track(again) == {"v2": (True, 0), "v1": (False, 1)}  # back by itself, once
    finally:
        again.stop(tmp_path / "reopened-last.png")
