"""Ardour's editor import, in Ardour 7's real GUI under Xvfb: where each result lands, whatever track is selected.

The same harness as tests/daw_scripts/ardour/test_gui_import.py (Xvfb, Ardour's OSC, no mouse): for each case a
result is written for the track "Song", the producer's selection is set, the import action runs, the session is
saved and the saved .ardour file read back. Prints the wanted and the found track, position and length (samples at
44.1 kHz) and the action's time from start to its closing message. Needs ardour, ardour7-lua, Xvfb and xdotool.

    python3 bench/ardour_import.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repository on sys.path)

from tests.conftest import require_tool
from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE, Ardour
from tests.daw_scripts.ardour.gui import regions_in_session_file, running_gui, wait_for, write_result

# (the case, the tracks selected when the action runs, where the result goes in seconds, its length in samples)
CASES = [("another track selected", ["Other"], 2.0, RATE),
         ("no track selected", [], 5.0, RATE),
         ("the source track selected", ["Song"], 8.0, 2 * RATE)]


def import_once(gui) -> float:
    """Run the import action and close its message; the seconds until the message showed."""
    began = time.perf_counter()
    gui.run_script(1)
    dialog = wait_for("the import's message", lambda: gui.window("^DAW Bridge$"), 60, 0.05)
    took = time.perf_counter() - began
    subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"], env=gui.env, check=True)
    wait_for("the message to close", lambda: not gui.window("^DAW Bridge$"), 15, 0.1)
    return took


def _show(regions: list[tuple[str, int, int]]) -> str:
    return ", ".join(f"{track} @ {position}, {length}" for track, position, length in regions) or "nowhere"


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="daw-bridge-ardour-import-"))
    ardour = Ardour(require_tool("ardour7-lua"), folder / "lua-home")
    (folder / "lua-home").mkdir()
    try:
        times, right = [], 0
        print(f"{'case':28} {'wanted (track @ sample, length)':34} {'found':34} {'import s':>8}")
        with running_gui(ardour, folder, [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text())]) as gui:
            for case, selected, seconds_at, frames in CASES:
                gui.select(selected)
                stem = "case-" + case.replace(" ", "-")
                write_result(gui.session_file.parent / "daw-bridge", stem, gui.ids["Song"], seconds_at, frames, 0.82)
                times.append(import_once(gui))
                placed = [(r["track"], r["position"], r["length"]) for r in regions_in_session_file(gui.save())
                          if r["name"].endswith(f": {stem}")]
                wanted = [("Song", round(seconds_at * RATE), frames)]
                right += placed == wanted
                print(f"{case:28} {_show(wanted):34} {_show(placed):34} {times[-1]:8.2f}")
        print(f"{right} of {len(CASES)} on the right track at the right sample; import action median "
              f"{statistics.median(times):.2f} s (action start to its closing message, Ardour under Xvfb)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
