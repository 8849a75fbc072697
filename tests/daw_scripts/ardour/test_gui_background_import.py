"""The background import hook in Ardour's real editor (Ardour 7's GUI under Xvfb): results dropped while the
producer works arrive on the track they came from by themselves, with no action run and no message in the way,
whatever track is selected. The session is saved and its file read back; the screenshots stay in the module's
temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daw_scripts.ardour.conftest import RATE, SCRIPTS
from tests.daw_scripts.ardour.gui import (
    LUA_TIMER_S,
    is_image,
    regions_in_session_file,
    running_gui,
    wait_for,
    write_result,
)

HOOK = SCRIPTS / "daw_bridge_background_import.lua"


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    hook = ("DAW Bridge: Import results as they arrive", HOOK.read_text(), LUA_TIMER_S)
    with running_gui(ardour, tmp_path_factory.mktemp("gui-background"), [], [hook]) as gui:
        yield gui


def imported(drop: Path) -> list[str]:
    listed = drop / ".ardour-imported"
    return [line.split("\t")[0] for line in listed.read_text().splitlines()] if listed.exists() else []


# (the case, the tracks selected, the results: (seconds on the timeline, length in samples) each)
CASES = [("another track selected", ["Other"], [(3.0, RATE)]),
         ("two variants at once, none selected", [], [(7.0, RATE), (7.5, RATE // 2)])]


@pytest.mark.parametrize("case, selected, results", CASES, ids=[c[0] for c in CASES])
def test_results_arrive_on_their_track_by_themselves(gui, case, selected, results):
    gui.select(selected)
    drop = gui.session_file.parent / "daw-bridge"
    stems = [f"bg-{case.split()[0]}-{n}" for n in range(len(results))]
    for stem, (seconds_at, frames) in zip(stems, results):
        write_result(drop, stem, gui.ids["Song"], seconds_at, frames, 0.5)

    wait_for("the hook to import them", lambda: set(imported(drop)) >= {s + ".json" for s in stems}, 30, 0.2)
    shot = gui.screenshot(gui.shots / f"{stems[0]}.png")
    regions = regions_in_session_file(gui.save())

    for stem, (seconds_at, frames) in zip(stems, results):
        placed = [(r["track"], r["position"], r["length"]) for r in regions if r["name"].endswith(stem)]
        print(f"{case}: {stem} -> {placed} (wanted Song at sample {round(seconds_at * RATE)})")
        assert placed == [("Song", round(seconds_at * RATE), frames)]
        assert [r["name"] for r in regions if r["name"].endswith(stem)] == [f"inpaint v1 (conf 0.50): {stem}"]
    assert not [r for r in regions if r["track"] == "Other"]
    assert not gui.window("^DAW Bridge$"), "the background import opened a message"
    assert gui.selection() == sorted(selected), "the producer's selection changed"
    assert sorted(imported(drop)) == sorted(set(imported(drop))), "a result was imported twice"
    assert is_image(shot)
