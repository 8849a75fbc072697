"""The VST3 in pedalboard (a host without transport): parameters, and pass-through bit for bit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.frontends.osc_wire import encode

from .conftest import answer_with_variants, wait_for_job

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


SILENCE = np.zeros((2, 512), np.float32)


def pressed(bundles, daemon):
    """A new instance that sent the stand-in daemon (a UDP socket) its Inpaint request."""
    plugin = pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))
    # set by normalized value: pedalboard snaps values set by name to 1001 steps of the range
    plugin.parameters["daemon_osc_port"].raw_value = (daemon.getsockname()[1] - 1) / 65534
    plugin.inpaint = True
    plugin.process(SILENCE, 48000)  # the host hands parameter changes to the plugin with a block
    return plugin


def delivered(bundles, tmp_path, daemon, job_id: str):
    """A new instance whose inpaint the stand-in daemon answered with two variants, once they are loaded."""
    plugin = pressed(bundles, daemon)
    answered = answer_with_variants(daemon, tmp_path / "captures", tmp_path / "drop" / job_id, job_id, 1.0, 1.0)
    assert answered.job["manifests"] == answered.manifests
    return plugin, answered


def reopened(bundles, captures, project_state: bytes):
    """A new instance given the saved project's state: (the instance, its name once its index is written)."""
    before = {p.name for p in captures.iterdir()}
    plugin = pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))
    plugin.raw_state = project_state
    plugin.process(SILENCE, 48000)
    deadline = time.monotonic() + 30
    while not (new := [p.name for p in captures.iterdir() if p.name not in before]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the restored instance writes its index once it has the job back
    assert len(new) == 1, new
    return plugin, new[0]


def test_the_job_and_the_chosen_variant_are_saved_with_the_project_and_reloaded(bundles, tmp_path, monkeypatch,
                                                                              daemon_port):
    """A producer's story: variants came back and they chose variant 2; they save the project (the host asks for
    the plugin's state) and reopen it later: the new instance has the job, variant 2 and its variants loaded."""
    captures = tmp_path / "captures"
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(captures))
    saving, answered = delivered(bundles, tmp_path, daemon_port, "j-saved")
    instance, request_id, manifests = answered.instance, answered.request_id, answered.manifests
    saving.variant = 2
    saving.process(SILENCE, 48000)
    wait_for_job(captures, ("ready",), instance=instance, variant=2)  # noted in the index and the saved state at once
    project_state = saving.raw_state
    del saving

    plugin, instance = reopened(bundles, captures, project_state)
    job = wait_for_job(captures, ("ready",), instance=instance)
    assert (job["job_id"], job["request_id"], job["manifests"], job["variant"]) == (
        "j-saved", request_id, manifests, 2)
    assert plugin.variant == 2


@pytest.mark.parametrize("decision, choice, state", [("choose", 2, "chosen"), ("discard", 0, "discarded"),
                                                     ("keep", 0, "discarded")])  # keeping the original discards
def test_a_decision_from_outside_the_host_is_saved_with_the_project_and_holds_again(bundles, tmp_path, monkeypatch,
                                                                                    daemon_port, decision, choice,
                                                                                    state):
    """A producer's story: with the host's Variant on 0 they chose variant 2 from a pad (or discarded the job, or
    kept the original); the daemon told the instance (/bridge/decided). They save the project and reopen it: the
    decision holds again, variant 2 chosen over the host's 0 (or the variants forgotten)."""
    captures = tmp_path / "captures"
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(captures))
    saving, answered = delivered(bundles, tmp_path, daemon_port, "j-decided")
    daemon_port.sendto(encode("/bridge/decided", ["j-decided", decision, choice, 1]), answered.reply_to)
    saved = wait_for_job(captures, (state,), instance=answered.instance)
    project_state = saving.raw_state
    del saving

    plugin, instance = reopened(bundles, captures, project_state)
    job = wait_for_job(captures, (state,), instance=instance)
    assert job["decision"] == saved["decision"] == {"decision": decision, "choice": choice, "seq": 1}
    assert job["manifests"] == (answered.manifests if decision == "choose" else [])
    assert len(job["gains"]) == (2 if decision == "choose" else 0)  # one per variant loaded
    assert (job["variant"], plugin.variant) == (0, 0)
