"""The VST3 in DawDreamer, a scriptable host with a transport (it renders a graph from song position 0 at a BPM).

A producer's story: the song renders through the plugin twice; every sample comes out untouched, and the capture
holds each pass as a take at its song position (0), exactly the audio that played. An Inpaint press (a footswitch's
momentary on/off, as automation) reaches the daemon, and on the next pass the delivered variant plays in place.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from .conftest import only_capture, wait_for_index, wait_for_job
from .hosts.standin import StandInDaemon

daw = pytest.importorskip("dawdreamer")  # in the test extra; absent only outside `pip install -e '.[test]'`

RATE, BLOCK = 48000, 256
SONG = np.random.default_rng(21).uniform(-1, 1, (2, 3 * RATE)).astype(np.float32)  # DawDreamer: channels first


class Session:
    """A DawDreamer engine playing SONG (or ``played``, channels first) into the plugin from song position 0, at
    48 kHz in blocks of ``block``; parameters are set by name in the plugin's own units."""

    def __init__(self, plugin_path: str, played: np.ndarray = SONG, block: int = BLOCK):
        self.block = block
        self.engine = daw.RenderEngine(RATE, block)
        self.engine.set_bpm(97.0)
        self.plugin = self.engine.make_plugin_processor("daw_bridge", plugin_path)
        self.engine.load_graph([(self.engine.make_playback_processor("song", played), []),
                                (self.plugin, ["song"])])
        self.parameters = {self.plugin.get_parameter_name(i): i for i in range(self.plugin.get_plugin_parameter_size())}

    def set(self, name: str, value: float, low: float, high: float) -> None:
        self.plugin.set_parameter(self.parameters[name], (value - low) / (high - low))  # VST3 values are 0..1

    def render(self, seconds: float) -> np.ndarray:
        self.engine.render(seconds)
        return self.engine.get_audio()

    def press_inpaint(self) -> None:
        """A momentary press of Inpaint, as a footswitch mapped to the parameter sends it, in 0.1 s of song."""
        press = np.zeros(RATE // 10, np.float32)
        press[self.block:4 * self.block] = 1.0
        self.plugin.set_automation(self.parameters["Inpaint"], press)
        self.render(0.1)
        self.plugin.set_automation(self.parameters["Inpaint"], np.zeros(1, np.float32))

    def close(self) -> None:
        del self.plugin, self.engine  # the plugin instance (and its capture thread) ends here, not at exit
        gc.collect()


@pytest.fixture
def session(bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(tmp_path / "captures"))
    made = Session(str(bundles / "DawBridge.vst3"))
    yield made
    made.close()


def test_each_render_passes_through_bit_for_bit_and_is_captured_at_its_song_position(session, tmp_path):
    assert session.plugin.get_latency_samples() == 0
    first = session.render(2.0)
    second = session.render(1.0)
    assert np.array_equal(first, SONG[:, :2 * RATE])
    assert np.array_equal(second, SONG[:, :RATE])

    # a render ends on a whole block: 1 s is 187.5 blocks of 256, so the plugin heard (and keeps) 188. The index
    # lists the second span from its first drained blocks on (the thread publishes every 20 ms, mid-render too)
    index = wait_for_index(tmp_path / "captures", lambda index: sum(s["frames"] for s in index["spans"])
                           >= 2 * RATE + 188 * BLOCK)
    capture = only_capture(tmp_path / "captures")
    assert index["plugin_format"] == "VST3" and index["dropped_blocks"] == 0
    assert [(s["timeline_start_frame"], s["frames"]) for s in capture.spans] == [(0, 2 * RATE), (0, 188 * BLOCK)]
    for span in capture.spans:
        assert np.array_equal(capture.audio(span), SONG[:, :span["frames"]].T)


def test_an_inpaint_press_is_delivered_and_variant_1_plays_in_place_on_the_next_pass(session, tmp_path):
    variant = (0.5 * np.random.default_rng(3).uniform(-1, 1, (RATE, 2))).astype(np.float32)
    first, fade = RATE // 2, round(0.005 * RATE)  # the variant plays from 0.5 s to 1.5 s
    with StandInDaemon() as daemon:
        session.set("Daemon OSC port", daemon.port, 1, 65535)
        session.render(2.0)  # played once: the capture holds the range and its context
        session.press_inpaint()
        daemon.answer_inpaint(tmp_path / "drop", [variant], first / RATE, RATE)
    wait_for_job(tmp_path / "captures", ("ready",))
    session.set("Variant", 1, 0, 16)
    heard = session.render(2.0).T
    assert np.array_equal(heard[:first], SONG[:, :first].T)
    assert np.array_equal(heard[first + fade:first + RATE - fade], variant[fade:-fade])
    assert np.array_equal(heard[first + RATE:], SONG[:, first + RATE:2 * RATE].T)


def test_the_capture_index_reports_the_hosts_tempo_and_where_its_cursor_stopped(session, tmp_path):
    """What the daemon counts bars from: the VST3 reports DawDreamer's BPM and song position, as the LV2 does jalv's."""
    session.render(2.0)
    # the index written after the render's last block and its stop (the stop may be published a cycle after it)
    transport = wait_for_index(tmp_path / "captures", lambda index: (t := index.get("transport") or {})
                               .get("heard", [[0, 0]])[-1][1] == 2.0 and t["playing"] is False)["transport"]
    assert transport["heard"] == [[0.0, 2.0, 97.0, 4]]  # the whole render at 97 BPM in 4/4
    assert (transport["tempo"], transport["beats_per_bar"]) == (97.0, 4)
    assert (transport["position"], transport["playing"]) == (2.0, False)  # stopped where the render ended
    assert abs(transport["observed"] - time.time()) < 60  # a wall-clock time, not a counter of the host's
