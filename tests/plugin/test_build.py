"""make -C daw_scripts/plugin: one source, three bundles (LV2 with its generated TTL, VST3, CLAP)."""

from __future__ import annotations

import ctypes
import os
import subprocess

from tests.conftest import require_tool

from .conftest import PLUGIN_DIR, URI


def test_the_build_makes_lv2_vst3_and_clap_bundles_with_their_entry_points(bundles):
    entry_points = {
        bundles / "DawBridge.lv2" / "DawBridge_dsp.so": "lv2_descriptor",
        bundles / "DawBridge.vst3" / "Contents" / "x86_64-linux" / "DawBridge.so": "GetPluginFactory",
        bundles / "DawBridge.clap": "clap_entry",
    }
    for library, symbol in entry_points.items():
        assert hasattr(ctypes.CDLL(str(library)), symbol), f"{library.name} does not export {symbol}"


def test_the_lv2_description_names_the_plugin_its_ports_and_parameters(bundles, tmp_path):
    lv2info = require_tool("lv2info")
    (tmp_path / "DawBridge.lv2").symlink_to(bundles / "DawBridge.lv2")  # a folder holding only this bundle
    shown = subprocess.run([lv2info, URI], capture_output=True, text=True,
                           env={**os.environ, "LV2_PATH": str(tmp_path)})
    assert shown.returncode == 0, shown.stderr
    for symbol in ("lv2_audio_in_1", "lv2_audio_out_2", "inpaint", "extend", "cancel", "start", "end", "port"):
        assert f"Symbol:      {symbol}\n" in shown.stdout
    assert "Latency" not in shown.stdout  # no latency port: the plugin adds none


def test_a_second_make_does_nothing(bundles):
    again = subprocess.run(["make", "-C", str(PLUGIN_DIR)], capture_output=True, text=True)
    assert "Nothing to be done" in again.stdout, again.stdout
