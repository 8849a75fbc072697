"""A preset of the pads' mapping said by name: "bridge inpaint the last two bars with warm strings" runs the command
with [presets.warm_strings]; a name the recogniser cannot know is left out of the grammar and named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bridge.voice.grammar import jsgf, sentences, spoken, to_command
from tests.conftest import ROOT, require_tool

PRESETS = ("warm_strings", "Dark-Piano", "zqxjv")


def test_a_preset_is_said_as_its_name_and_maps_back_to_it():
    assert spoken("Dark-Piano") == "dark piano" and spoken("warm_strings") == "warm strings"
    assert to_command("bridge inpaint the last two bars with dark piano", PRESETS) == {
        "command": "inpaint", "bars": 2, "anchor": "last", "preset": "Dark-Piano"}
    assert to_command("bridge extend this bar with warm strings", PRESETS) == {
        "command": "extend", "bars": 1, "anchor": "this", "preset": "warm_strings"}
    for text in ("bridge inpaint the last two bars with cello",  # not a preset
                 "bridge inpaint the last two bars with",  # no name
                 "bridge keep with warm strings",  # only jobs take a preset
                 "bridge inpaint with warm strings"):  # no range
        assert to_command(text, PRESETS) is None, text
    said = sentences(PRESETS)
    assert len(said) == len({json.dumps(to_command(s, PRESETS), sort_keys=True) for s in said})
    assert "<preset> = dark piano | warm strings | zqxjv;" in jsgf(PRESETS)
    assert "<preset>" not in jsgf() and "with" not in jsgf()  # no preset: the grammar is as before


def test_the_decoder_hears_a_preset_and_leaves_out_one_it_cannot_know(tmp_path):
    pytest.importorskip("pocketsphinx")
    from bridge.voice import VoiceDecoder

    decoder = VoiceDecoder(presets=PRESETS)
    assert decoder.unspeakable == {"zqxjv": ["zqxjv"]} and decoder.presets == ("warm_strings", "Dark-Piano")
    wav = tmp_path / "say.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", "en-us", "-s", "160", "-w", str(wav),
                    "bridge inpaint the last two bars with warm strings"], check=True)
    result = decoder.decode_file(wav)
    assert result.command == {"command": "inpaint", "bars": 2, "anchor": "last", "preset": "warm_strings"}, result


def test_the_cli_decodes_with_the_daemons_presets_and_names_one_it_cannot_know(tmp_path):
    pytest.importorskip("pocketsphinx")
    (tmp_path / "pads.toml").write_text('[presets.warm_strings]\nprompt = "warm strings"\n\n'
                                        '[presets.zqxjv]\nprompt = "?"\n', encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[midi]\nport = "pads"\nmapping = "pads.toml"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "bridge", "voice", "grammar", "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "bridge extend the next sixteen bars with warm strings" in done.stdout.splitlines()
    assert "zqxjv" not in done.stdout
    assert done.stderr.splitlines() == [
        "daw-bridge voice: preset 'zqxjv' cannot be said: the recogniser does not know 'zqxjv'"]
