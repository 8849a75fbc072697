"""The VST3 in pedalboard (a host without transport): parameters, and pass-through bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

pedalboard = pytest.importorskip("pedalboard")  # in the test extra; absent only outside `pip install -e '.[test]'`


@pytest.fixture
def plugin(bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(tmp_path / "captures"))
    return pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))


def test_the_host_lists_the_trigger_mark_range_port_preset_variant_ab_and_job_parameters(plugin):
    assert list(plugin.parameters) == ["inpaint", "extend", "cancel", "mark_in", "mark_out", "range_start_s",
                                       "range_end_s", "daemon_osc_port", "preset", "variant", "a_b", "match_loudness",
                                       "progress", "state", "variants_loaded", "marked_start_s", "marked_end_s"]
    assert plugin.variant == 0
    assert plugin.daemon_osc_port == 9010
    # pedalboard guesses 1001 steps for a wide range and snaps values set by name; the normalized value is exact
    plugin.parameters["range_end_s"].raw_value = 20.0 / 36000.0
    assert plugin.range_end_s == pytest.approx(20.0, abs=1e-3)


@pytest.mark.parametrize("buffer_size", [1, 128, 1000, 8192])
@pytest.mark.parametrize("variant", [0, 1])
def test_random_audio_passes_through_bit_for_bit_with_no_latency(plugin, buffer_size, variant):
    plugin.variant = variant  # with nothing delivered, every variant is the input
    audio = np.random.default_rng(buffer_size).uniform(-1.5, 1.5, (2, 48000 + 17)).astype(np.float32)
    audio[:, 100] = [np.finfo(np.float32).tiny / 4, -0.0]  # a denormal and a negative zero survive too
    assert np.array_equal(plugin.process(audio, 48000, buffer_size=buffer_size), audio)


def test_nothing_is_captured_while_the_host_is_not_playing(plugin, tmp_path):
    plugin.process(np.ones((2, 48000), np.float32), 48000)
    assert not (tmp_path / "captures").exists()
