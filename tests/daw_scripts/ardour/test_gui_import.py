"""The import action in Ardour's real editor (Ardour 7's GUI under Xvfb, the action run over Ardour's own OSC, no
mouse), whatever track the producer has selected: Ardour 7.3's ``ImportToTrack`` would put the result on the first
selected track, so the action must place it on the track the request came from by itself. Each case saves the
session and reads the saved .ardour file back; the screenshots stay in the module's temporary folder.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.daw_scripts.ardour.conftest import IMPORT_SCRIPT, RATE
from tests.daw_scripts.ardour.gui import ArdourGUI, is_image, make_session, regions_in_session_file, wait_for

TRACKS = ["Song", "Other"]  # in the session's order: OSC strip 1 and 2


def write_result(drop: Path, stem: str, track_id: str, seconds_at: float, frames: int, confidence: float):
    """A delivered result the way the daemon writes it: a stereo WAV and its manifest, for the track ``track_id``."""
    audio = drop / f"{stem}.wav"
    sf.write(audio, np.full((frames, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    manifest = {
        "format": "daw-bridge.manifest/1", "job_id": stem, "request_id": "ardour-1-1", "operation": "inpaint",
        "variant": 1, "variants": 1, "backend": "local", "delivery": "patch", "audio": audio.name,
        "sample_rate": RATE, "channels": 2, "frames": frames, "timeline": {"position": seconds_at, "length": 1.0},
        "source": {}, "ids": {"track": track_id}, "request": {"prompt": stem}, "splice": {"confidence": confidence},
    }
    part = drop / f"{stem}.json.part"
    part.write_text(json.dumps(manifest), encoding="utf-8")
    part.rename(drop / f"{stem}.json")


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gui-import")
    session_file, ids = make_session(ardour, folder / "Sess", TRACKS)
    (session_file.parent / "daw-bridge").mkdir()
    gui = ArdourGUI(folder / "home", session_file, [("DAW Bridge: Import results", IMPORT_SCRIPT.read_text())])
    gui.ids, gui.shots = ids, folder
    try:
        gui.start()
        yield gui
    finally:
        gui.stop(folder / "last.png")


# (the case, the tracks selected when the action runs, where the result goes in seconds, its length in samples)
CASES = [("another track selected", ["Other"], 2.0, RATE),
         ("no track selected", [], 5.0, RATE),
         ("the source track selected", ["Song"], 5.5, 2 * RATE),  # over the previous one: it must lie on top
         ("reaching before the session start", ["Other"], -0.25, RATE)]  # its first quarter second is cut


@pytest.mark.parametrize("case, selected, seconds_at, frames", CASES, ids=[c[0] for c in CASES])
def test_the_result_lands_on_its_track_whatever_is_selected(gui, case, selected, seconds_at, frames):
    gui.select(selected, TRACKS)
    stem = "case-" + case.replace(" ", "-")
    write_result(gui.session_file.parent / "daw-bridge", stem, gui.ids["Song"], seconds_at, frames, 0.82)

    gui.run_script(1)
    dialog = wait_for("the import's message", lambda: gui.window("^DAW Bridge$"), 60, 0.2)
    shot = gui.screenshot(gui.shots / f"{stem}.png")
    subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"], env=gui.env, check=True)
    wait_for("the message to close", lambda: not gui.window("^DAW Bridge$"), 15, 0.2)
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
    assert (gui.session_file.parent / "daw-bridge" / ".ardour-imported").read_text().splitlines()[-1] == stem + ".json"
    assert is_image(shot)
