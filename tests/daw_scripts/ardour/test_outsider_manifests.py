"""An outsider's manifests in Ardour's drop folder: a bad one is named once, never reaches outside the folder and
never stops the others."""

from __future__ import annotations

import pytest

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
