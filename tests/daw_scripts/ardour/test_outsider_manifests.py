"""An outsider's manifests in Ardour's drop folder: a bad one is named once, never reaches outside the folder and
never stops the others."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.daw_scripts.ardour.conftest import lua_string
from tests.daw_scripts.ardour.test_import_core import manifest


def pending(lua, drop):
    [result] = lua(f"""
local ready, notes = IMPORT.pending({lua_string(str(drop))})
local names = {{}}
for _, entry in ipairs(ready) do names[#names + 1] = entry.name end
report({{ ready = names, notes = notes }})
""")
    return result


@pytest.mark.parametrize("audio", ["../outside.wav", "sub/inner.wav", ".", "..", "", 5, {"a": 1}])
def test_audio_that_is_no_file_name_in_the_drop_folder_is_named_and_the_others_stay_ready(lua, tmp_path, audio):
    drop = tmp_path / "daw-bridge"
    (drop / "sub").mkdir(parents=True)
    manifest(drop, "good")
    manifest(drop, "bad", audio=audio)
    (tmp_path / "outside.wav").write_bytes((drop / "bad.wav").read_bytes())
    (drop / "sub" / "inner.wav").write_bytes((drop / "bad.wav").read_bytes())

    result = pending(lua, drop)

    assert result["ready"] == ["good.json"]
    [note] = result["notes"]
    shown = "table" if isinstance(audio, dict) else audio  # Lua shows a table as "table: 0x..."
    assert note.startswith(f"bad.json names audio {shown}")
    assert note.endswith(", which is not a file name in its folder")


@pytest.mark.parametrize("content", [b"", b"RIFF", b"not audio at all, just text"])
def test_audio_that_is_empty_or_no_wav_is_named_and_left_as_it_is(lua, tmp_path, content):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "good")
    manifest(drop, "bad")
    (drop / "bad.wav").write_bytes(content)

    result = pending(lua, drop)

    assert result == {"ready": ["good.json"], "notes": ["bad.json names bad.wav, which is empty or not a WAV file"]}
    assert (drop / "bad.wav").read_bytes() == content


@pytest.mark.parametrize(("key", "value"), [("sample_rate", "44100"), ("channels", 0), ("frames", -5),
                                             ("sample_rate", 44100.5), ("channels", [2])])
def test_counts_of_the_wrong_type_are_named_before_they_reach_the_session_file(lua, tmp_path, key, value):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "good")
    manifest(drop, "bad", **{key: value})

    result = pending(lua, drop)

    assert result["ready"] == ["good.json"]
    [note] = result["notes"]
    assert note.startswith(f"bad.json has {key} ") and note.endswith(", not a count")


@pytest.mark.parametrize("raw", ["1e999", "-1e999", '"9"'])
def test_a_position_that_is_no_finite_number_is_named(lua, tmp_path, raw):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "good")
    manifest(drop, "bad", timeline={"position": "@position@", "length": 1.0})
    text = (drop / "bad.json").read_text(encoding="utf-8")
    (drop / "bad.json").write_text(text.replace('"@position@"', raw), encoding="utf-8")  # 1e999 reads as infinity

    result = pending(lua, drop)

    assert result == {"ready": ["good.json"],
                      "notes": ["bad.json has no timeline.position (a finite number of seconds)"]}


@pytest.mark.parametrize("prompt", [5, {"a": 1}, [1], True])
def test_a_prompt_that_is_no_text_leaves_the_region_named_by_operation_and_variant(lua, tmp_path, prompt):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    data = manifest(drop, "r")
    data["request"]["prompt"] = prompt
    (drop / "r.json").write_text(json.dumps(data), encoding="utf-8")

    [name] = lua(f"report(IMPORT.region_name(IMPORT.read_manifest({lua_string(str(drop / 'r.json'))})))")

    assert name == "inpaint v1"


def test_audio_the_listing_names_in_another_form_is_still_found(lua, tmp_path):
    """macOS HFS+ keeps names decomposed ("e" and a combining accent) and opens either form, so a folder listing there
    need not name the audio as the manifest does: audio the listing does not name is looked for before it is called
    missing."""
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "r", audio="café_v1.wav")
    (drop / "r.wav").rename(drop / "café_v1.wav")  # as the manifest names it, composed
    manifest(drop, "gone", audio="gone_v1.wav")  # and one whose audio is missing indeed

    [result] = lua(f"""
local popen = io.popen
io.popen = function(command, ...)  -- the drop folder listed as HFS+ lists it: "é" decomposed
    local pipe = popen(command, ...)
    local text = pipe:read("a"):gsub("\\xC3\\xA9", "e\\xCC\\x81")
    pipe:close()
    return {{ lines = function () return text:gmatch("([^\\n]*)\\n") end, close = function () return true end }}
end
local ready, notes = IMPORT.pending({lua_string(str(drop))})
local names = {{}}
for _, entry in ipairs(ready) do names[#names + 1] = entry.name end
report({{ ready = names, notes = notes }})
""")

    assert result == {"ready": ["r.json"], "notes": ["gone.json names gone_v1.wav, which is missing"]}


@pytest.mark.parametrize("channels, rate", [(1, 44100), (2, 48000)])
def test_audio_of_other_channels_or_rate_than_its_manifest_says_is_named_and_left(lua, tmp_path, channels, rate):
    drop = tmp_path / "daw-bridge"
    drop.mkdir()
    manifest(drop, "r")
    sf.write(drop / "r.wav", np.zeros((2 * 44100, channels), dtype="float32"), rate, subtype="FLOAT")  # replaced

    assert pending(lua, drop) == {"ready": [], "notes": [
        f"r.json names r.wav, which holds {channels} channel(s) at {rate} Hz where its manifest says 2 at 44100 Hz"]}
