"""'DAW Bridge - Show result picture': the active take's picture, found through its manifest, shown with gfx."""

from __future__ import annotations

import json

import numpy as np

from bridge.audio import picture


def _result(project, name: str, picture_name: str | None):
    """A delivered result in the drop folder: WAV (content unread here), manifest, and the picture it names."""
    drop = project.drop_folder
    drop.mkdir(parents=True, exist_ok=True)
    (drop / f"{name}.wav").write_bytes(b"RIFF")
    (drop / f"{name}.json").write_text(json.dumps({"audio": f"{name}.wav", "picture": picture_name}))
    if picture_name:
        audio = np.random.default_rng(0).uniform(-0.3, 0.3, (44100 * 3, 2)).astype(np.float32)
        png = picture.render_png(picture.PictureInput(audio, audio * 0.5, 44100, 10.0, 11.0, 12.0,
                                                      [{"at": 11.0, "confidence": 0.8}], name))
        (drop / picture_name).write_bytes(png)
    track = project.add_track()
    project.add_item(track, position=10.0, length=3.0, file=str(drop / f"{name}.wav"), source_length=3.0)
    return drop


def test_the_active_takes_picture_is_shown_scaled_to_its_window_until_closed(project):
    drop = _result(project, "mix_inpaint_11.00-12.00_v1_ab12", "mix_inpaint_11.00-12.00_v1_ab12.png")
    result = project.run("picture", ticks=6, gfx_frames=3)
    assert result.errors == [] and result.messages == []
    assert result.gfx["loaded"] == str(drop / "mix_inpaint_11.00-12.00_v1_ab12.png")
    width, height = int(picture.WIDTH_IN * picture.DPI), int(picture.HEIGHT_IN * picture.DPI)
    assert result.gfx["window"] == {"title": "DAW Bridge - mix_inpaint_11.00-12.00_v1_ab12.png",
                                    "w": width, "h": height}
    assert result.gfx["blits"] == 3 and result.gfx["scale"] == 1.0
    assert result.gfx["closed"] is True and result.still_deferred == 0  # closing the window ends the script


def test_a_result_without_a_picture_and_a_take_that_is_no_result_are_told_not_shown(project):
    _result(project, "mix_inpaint_11.00-12.00_v1_cd34", None)
    result = project.run("picture", ticks=2)
    assert result.errors == [] and "loaded" not in result.gfx and "window" not in result.gfx
    assert result.message_texts == ["This result has no picture yet (it is drawn a moment after the result lands), or the daemon could not draw it (its log says why)."]

    project.state["tracks"] = []
    track = project.add_track()
    project.add_item(track, position=0.0, length=5.0, file=str(project.tmp / "vocals.wav"))
    result = project.run("picture", ticks=2)
    assert result.errors == [] and "window" not in result.gfx
    assert len(result.message_texts) == 1 and "not a DAW Bridge result" in result.message_texts[0]
