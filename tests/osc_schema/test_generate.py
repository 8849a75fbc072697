"""The generated reference and Lua constants follow the spec, and the DAW scripts can load what was generated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from osc_schema import generate
from osc_schema.generate import BEGIN, DOCS, END, LUA_MODULE, GenerateError, lua_constants
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]

# Prints a Lua value as JSON (keys sorted) so the test compares values, not layout.
LUA_DUMP = r"""
local function dump(v)
  if type(v) == "table" then
    local parts = {}
    if #v > 0 then
      for _, x in ipairs(v) do parts[#parts + 1] = dump(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q", k) .. ":" .. dump(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then return string.format("%q", v)
  elseif math.type(v) == "float" then return string.format("%.17g", v)
  else return tostring(v) end
end
print(dump(dofile(arg[1])))
"""


def lua_value(path: Path):
    """What a DAW script gets from dofile(path), as Python data."""
    lua = require_tool("lua5.4")
    done = subprocess.run([lua, "-e", LUA_DUMP.replace("arg[1]", json.dumps(str(path)))], capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_generated_files_in_the_repository_are_fresh():
    stale = generate.stale_files(ROOT)
    assert stale == [], f"stale: {[p.as_posix() for p in stale]}; run python -m osc_schema.generate"


def test_the_check_command_passes_on_the_repository():
    done = subprocess.run([sys.executable, "-m", "osc_schema.generate", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")


def test_check_names_a_stale_file_and_writing_fixes_it(tmp_path, capsys):
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    assert sorted(capsys.readouterr().err.splitlines()) == [
        "stale: daw_scripts/common/bridge_constants.lua (run python -m osc_schema.generate)",
        "stale: daw_scripts/reaper/DAW Bridge/bridge_constants.lua (run python -m osc_schema.generate)",
        "stale: docs/osc.md (run python -m osc_schema.generate)"]
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0
    docs = tmp_path / DOCS
    docs.write_text(docs.read_text().replace("≤ 3000 characters", "≤ 2000 characters"))
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "stale: docs/osc.md (run python -m osc_schema.generate)\n"
    assert generate.write(tmp_path) == [DOCS]
    assert generate.stale_files(tmp_path) == []
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "a temporary file was left behind"


def test_the_lua_module_loads_and_carries_the_values_the_scripts_rely_on(tmp_path):
    constants = lua_value(ROOT / LUA_MODULE)
    assert constants == json.loads(json.dumps(lua_constants()))
    assert constants["VERSION"] == generate.VERSION
    assert constants["DEFAULT_OSC_PORT"] == 9010
    assert constants["MANIFEST_FORMAT"] == "daw-bridge.manifest/1"
    assert constants["ADDRESS"] == {name: f"/bridge/{name}" for name in (
        "inpaint", "extend", "cancel", "retry", "resolve", "status", "plugins", "ping", "context", "ableton",
        "accepted", "state", "done", "failed", "error", "plugin", "plugins_listed", "status_listed", "context_set",
        "pong", "audition", "auditioning", "plugin_prompt", "plugin_prompt_set", "bars", "selected", "decide",
        "decided", "heard")}
    assert (constants["DECISION_FORMAT"], constants["DECISIONS_FOLDER"], constants["KEPT_FOLDER"]) == (
        "daw-bridge.decision/1", ".daw-bridge-decisions", "Kept")
    assert constants["LIMITS"]["prompt"] == {"max_length": 1000}
    assert constants["LIMITS"]["lyrics"] == {"max_length": 3000}
    assert constants["LIMITS"]["num_outputs"] == {"min": 1, "max": 2}
    assert constants["LIMITS"]["end"] == {"min": 0, "greater_than": "start"}  # `end` is a Lua keyword
    assert constants["ENUMS"] == {"gender": ["male", "female", "neutral"], "backend": ["local", "musicgpt"],
                                  "delivery": ["patch", "full"], "operation": ["inpaint", "extend", "context"],
                                  "what": ["original", "variant", "next", "previous", "ab", "stop"],
                                  "decision": ["choose", "keep", "discard"], "anchor": ["last", "this", "next"]}
    assert constants["DEFAULTS"]["num_outputs"] == 2 and constants["DEFAULTS"]["duration"] == 30
    assert constants["STATES"][0] == "accepted" and constants["STATES"][-1] == "submission_unknown"


ARDOUR_SCRIPT = """ardour_meta = { name = "DAW Bridge: inpaint selection" }
local function selection() return nil end
  BEGIN
  local BRIDGE = { VERSION = "0.0.1" } -- an old copy, to be replaced
  END
return BRIDGE
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_script_that_cannot_require_gets_the_table_inline(tmp_path, newline):
    script = tmp_path / "daw_scripts" / "ardour" / "bridge_inpaint.lua"
    script.parent.mkdir(parents=True)
    original = ARDOUR_SCRIPT.replace("BEGIN", BEGIN).replace("END", END).replace("\n", newline)
    script.write_bytes(original.encode())
    assert Path("daw_scripts/ardour/bridge_inpaint.lua") in generate.stale_files(tmp_path)
    generate.write(tmp_path)
    assert generate.stale_files(tmp_path) == []
    text = script.read_bytes().decode()
    lines = text.split(newline)
    assert lines[:3] == original.split(newline)[:3] and lines[-3:] == original.split(newline)[-3:]
    assert "\n" not in text.replace("\r\n", "") if newline == "\r\n" else "\r" not in text
    assert f"  local BRIDGE = {{{newline}" in text  # indented like the marker line
    assert lua_value(script) == json.loads(json.dumps(lua_constants()))


@pytest.mark.parametrize("text, message", [
    (f"{BEGIN}\nlocal BRIDGE = {{}}\n", f"daw_scripts/x.lua:1: '{BEGIN}' without a '{END}' after it"),
    (f"local a = 1\n{END}\n", f"daw_scripts/x.lua:2: '{END}' without a '{BEGIN}' before it"),
    (f"{BEGIN}\n{BEGIN}\n{END}\n", f"daw_scripts/x.lua:2: a second '{BEGIN}' before '{END}'"),
])
def test_markers_that_do_not_pair_up_stop_the_generator_naming_the_line(tmp_path, capsys, text, message):
    (tmp_path / "daw_scripts").mkdir()
    (tmp_path / "daw_scripts" / "x.lua").write_text(text)
    with pytest.raises(GenerateError) as caught:
        generate.expected_files(tmp_path)
    assert str(caught.value) == message
    assert generate.main(["--check", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert (tmp_path / "daw_scripts" / "x.lua").read_text() == text


def test_the_reference_documents_every_command_reply_argument_and_state():
    docs = generate.render_docs()
    assert docs.splitlines()[0].startswith("_Generated by `python -m osc_schema.generate`")
    for spec in [*generate.COMMANDS.values(), *generate.REPLIES.values()]:
        assert f"### `{spec.address}`" in docs
    for name in generate.ARGUMENTS:
        assert f"| `{name}` |" in docs
    for state in generate.STATES:
        assert f"| `{state}` |" in docs
    assert '"command": "inpaint"' in docs and "oscsend 127.0.0.1 9010 /bridge/inpaint " in docs
    assert "| \"end\" | \"reaper-7\" | end: 10.0 must be greater than start (12.5) |" in docs


TAB_SCRIPT = """local M = {}
if true then
\t-- BEGIN daw-bridge wav_frames
\t-- END daw-bridge wav_frames
\tM.frames = wav_frames
end
return M.frames(arg[1])
"""


def test_a_shared_function_is_carried_into_each_script_indented_as_the_script_is(tmp_path):
    """The WAV frame counter is written once (daw_scripts/common/wav_frames.lua): the Ardour import script (tabs)
    and REAPER's companion (spaces) each carry it, and an edit of the one file makes both stale until generated."""
    import numpy as np
    import soundfile as sf

    common = tmp_path / "daw_scripts" / "common"
    common.mkdir(parents=True)
    source = (ROOT / generate.SHARED_FUNCTIONS["wav_frames"]).read_text()
    (common / "wav_frames.lua").write_text(source)
    tabbed = tmp_path / "daw_scripts" / "ardour" / "x.lua"
    tabbed.parent.mkdir()
    tabbed.write_text(TAB_SCRIPT)
    spaced = tmp_path / "daw_scripts" / "reaper" / "y.lua"
    spaced.parent.mkdir()
    spaced.write_text(TAB_SCRIPT.replace("\t", "  "))
    generate.write(tmp_path)
    assert generate.stale_files(tmp_path) == []
    assert "\n\t\tlocal f = io.open(path, \"rb\")\n" in tabbed.read_text()  # the block's own indent, as tabs
    assert "\n    local f = io.open(path, \"rb\")\n" in spaced.read_text()
    assert "\t" not in spaced.read_text()

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros((12345, 2), np.float32), 44100, subtype="FLOAT")
    lua = require_tool("lua5.4")
    for script in (tabbed, spaced):
        done = subprocess.run([lua, "-e", f"print((dofile({json.dumps(str(script))})))", "-", str(wav)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        assert (done.returncode, done.stdout.strip()) == (0, "12345"), done.stderr

    (common / "wav_frames.lua").write_text(source.replace("return 0\nend", "return -1\nend"))
    assert sorted(generate.stale_files(tmp_path)) == [Path("daw_scripts/ardour/x.lua"),
                                                      Path("daw_scripts/reaper/y.lua")]


def test_a_block_of_no_known_name_stops_the_generator(tmp_path):
    (tmp_path / "daw_scripts").mkdir()
    (tmp_path / "daw_scripts" / "x.lua").write_text("-- BEGIN daw-bridge wav_frame\n-- END daw-bridge wav_frame\n")
    with pytest.raises(GenerateError) as caught:
        generate.expected_files(tmp_path)
    assert str(caught.value) == "daw_scripts/x.lua:1: no block named 'wav_frame' (known: constants, wav_frames)"
