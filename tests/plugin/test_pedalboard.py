"""The VST3 in pedalboard (a host without transport): parameters, and pass-through bit for bit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.frontends.osc_wire import decode, encode

from .conftest import deliver, wait_for_job

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


def test_the_job_and_the_chosen_variant_are_saved_with_the_project_and_reloaded(bundles, tmp_path, monkeypatch,
                                                                              daemon_port):
    """A producer's story: variants came back and they chose variant 2; they save the project (the host asks for
    the plugin's state) and reopen it later: the new instance has the job, variant 2 and its variants loaded."""
    captures = tmp_path / "captures"
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(captures))
    daemon = daemon_port
    silence = np.zeros((2, 512), np.float32)
    saving = pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))
    # set by normalized value: pedalboard snaps values set by name to 1001 steps of the range
    saving.parameters["daemon_osc_port"].raw_value = (daemon.getsockname()[1] - 1) / 65534
    saving.inpaint = True
    saving.process(silence, 48000)  # the host hands parameter changes to the plugin with a block
    datagram, reply_to = daemon.recvfrom(65536)
    [(_, args)] = decode(datagram)
    instance, request_id = args[5], args[9]
    manifests, _ = deliver(tmp_path / "drop", "j-saved", request_id, 1.0, 1.0)
    daemon.sendto(encode("/bridge/accepted", [request_id, "j-saved"]), reply_to)
    daemon.sendto(encode("/bridge/done", ["j-saved", *manifests]), reply_to)
    assert wait_for_job(captures, ("ready",), instance=instance)["manifests"] == manifests
    saving.variant = 2
    saving.process(silence, 48000)
    deadline = time.monotonic() + 5  # the background thread notes the chosen variant in the index and the state
    while wait_for_job(captures, ("ready",), instance=instance).get("variant") != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    project_state = saving.raw_state
    del saving

    before = {p.name for p in captures.iterdir()}
    reopened = pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))
    reopened.raw_state = project_state
    reopened.process(silence, 48000)
    deadline = time.monotonic() + 5
    while not (new := [p.name for p in captures.iterdir() if p.name not in before]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the restored instance writes its index once it has the job back
    assert len(new) == 1, new
    job = wait_for_job(captures, ("ready",), instance=new[0])
    assert (job["job_id"], job["request_id"], job["manifests"], job["variant"]) == (
        "j-saved", request_id, manifests, 2)
    assert reopened.variant == 2
