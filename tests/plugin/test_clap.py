"""The CLAP in a host of our own (hosts/clap_host.c, built against the CLAP headers dpf-source ships) with a transport.

A producer's story in a CLAP DAW: the plugin on a track adds no latency and passes every sample through untouched;
the song plays from 10 s, then from 2 s, and the capture holds each stretch at its song position, although the
process call's steady_time (DPF 1.6 reports it as the frame) is a host counter unrelated to the song; after an
inpaint is delivered, rolling over the range plays variant 1 in place, and variant 0 is the input again. A count-in
before the song is not captured. A song with a tempo change is not captured at the right place yet (an expected
failure, see its reason).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_tool

from .conftest import only_capture
from .hosts.clap import finish_clap_host, run_clap_host, start_clap_host
from .hosts.standin import StandInDaemon

RATE = 48000
SONG = np.random.default_rng(12).uniform(-1, 1, (700_000, 2)).astype(np.float32)
SONG[1000] = [np.finfo(np.float32).tiny / 4, -0.0]  # a denormal and a negative zero survive too


@pytest.fixture
def clap(bundles):
    require_tool("cc")
    return bundles / "DawBridge.clap"


@pytest.mark.parametrize("block", [1, 128, 1000])
def test_audio_passes_through_bit_for_bit_with_no_latency_rolling_or_stopped(clap, tmp_path, block):
    run = run_clap_host(clap, SONG, tmp_path, ["stop:0:3000", "play:0:20000", "play:300000:7001"], block=block,
                        env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
    assert run.latency == 0
    assert np.array_equal(run.output, np.concatenate([SONG[:3000], SONG[:20000], SONG[300000:307001]]))


def test_the_capture_holds_each_played_stretch_at_its_song_position_not_the_hosts_counter(clap, tmp_path):
    # 123 bpm: a beat is 23414.63 frames, so a song position rebuilt from beats must be rounded right
    run_clap_host(clap, SONG, tmp_path, ["play:480000:72000", "stop:552000:5000", "play:96000:48000"], bpm=123.0,
                  env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
    capture = only_capture(tmp_path / "captures")
    assert capture.index["plugin_format"] == "CLAP"
    assert capture.index["dropped_blocks"] == 0
    assert [(s["timeline_start_frame"], s["frames"]) for s in capture.spans] == [(480000, 72000), (96000, 48000)]
    for span in capture.spans:
        first = span["timeline_start_frame"]
        assert np.array_equal(capture.audio(span), SONG[first:first + span["frames"]])
    # what the daemon counts bars from: the song position rebuilt the same way, and the host's tempo and signature
    transport = capture.index["transport"]
    assert (transport["tempo"], transport["beats_per_bar"]) == (123.0, 4)
    assert transport["heard"] == [[10.0, 11.5, 123.0, 4], [2.0, 3.0, 123.0, 4]]


def test_a_count_in_before_the_song_is_not_captured_and_the_song_after_it_is(clap, tmp_path):
    """The DAW counts in two bars (2 s from -2 s) before the song: DPF 1.6 reports a CLAP host's negative song
    position as bar 1, so every count-in block looked like one played at 0 and became a span of its own (375 files
    per count-in) and the last one stood for the song's start. Only what played from the song's start is captured:
    the song itself, less its first block, which looks like the count-in's blocks."""
    run_clap_host(clap, SONG, tmp_path, ["play:-96000:192000", "stop:96000:256", "play:-48000:96000"],
                  env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
    capture = only_capture(tmp_path / "captures")
    # the second count-in's last block straddles 0 (-128 to 128): the song from 128 on follows it
    assert [(s["timeline_start_frame"], s["frames"]) for s in capture.spans] == [(256, 96000 - 256), (128, 48000 - 128)]
    for span in capture.spans:
        first = span["timeline_start_frame"]
        assert np.array_equal(capture.audio(span), SONG[first:first + span["frames"]])
    assert sorted(p.name for p in capture.folder.glob("*.wav")) == [s["file"] for s in capture.spans]


@pytest.mark.xfail(strict=True, reason=(
    "DPF 1.6's CLAP wrapper hands the plugin the song position only as bars/beats plus the current tempo (it drops "
    "the transport's song_pos_seconds, and its frame is steady_time): after a tempo change the plugin's rebuilt "
    "position is wrong (here 11.33 s for 10 s)"))
def test_after_a_tempo_change_the_capture_is_still_at_the_song_position(clap, tmp_path):
    # 120 bpm for the first 4 s, 90 bpm after: at 10 s the song is at beat 17
    run_clap_host(clap, SONG, tmp_path, [f"tempo:{4 * RATE}:90", f"play:{10 * RATE}:{RATE}"], bpm=120.0,
                  env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
    capture = only_capture(tmp_path / "captures")
    assert [(s["timeline_start_frame"], s["frames"]) for s in capture.spans] == [(10 * RATE, RATE)]


def with_variant(variant: np.ndarray, first: int, frames: np.ndarray, song: np.ndarray, fade: int) -> np.ndarray:
    """What the plugin plays at timeline ``frames``: the variant across its span (linear fades from and to the song
    over its first and last ``fade`` frames), the song elsewhere."""
    out = song[frames].copy()
    k = frames - first
    inside = (k >= 0) & (k < len(variant))
    gain = np.minimum(1.0, np.minimum(k + 1, len(variant) - k) / fade).astype(np.float32)[inside, None]
    played = variant[k[inside]]
    out[inside] = np.where(gain >= 1.0, played, out[inside] + (played - out[inside]) * gain)
    return out


def test_a_delivered_variant_plays_in_place_and_variant_0_is_the_input_again(clap, tmp_path):
    first, fade = round(10.4 * RATE), round(0.005 * RATE)
    variants = [(0.5 * np.random.default_rng(v).uniform(-1, 1, (round(0.9 * RATE), 2))).astype(np.float32)
                for v in (1, 2)]
    with StandInDaemon() as daemon:
        proc, out_file = start_clap_host(clap, SONG, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}", "set:Range start:10.5", "set:Range end:11.2",
            "play:480000:72000",  # 10 s to 11.5 s, played once: the capture holds the range and its context
            "set:Inpaint:1", "stop:552000:256", "wait:Variants loaded:2",
            "set:Variant:1", "play:470000:96000",  # 9.79 s to 11.79 s, over the whole span
            "set:Variant:0", "play:470000:96000"], env={"DAW_BRIDGE_CAPTURE_DIR": str(tmp_path / "captures")})
        try:
            request = daemon.answer_inpaint(tmp_path / "drop", variants, first / RATE, RATE)
        finally:
            run = finish_clap_host(proc, out_file)
    assert request[:4] == [None, 10.5, pytest.approx(11.2, abs=1e-6), ""]
    assert request[4:6] == ["capture", only_capture(tmp_path / "captures").folder.name]

    frames = np.arange(470000, 566000)
    played, again = run.output[72256:72256 + 96000], run.output[72256 + 96000:]
    expected = with_variant(variants[0], first, frames, SONG, fade)
    k = frames - first
    fading = (k >= 0) & (k < len(variants[0])) & (np.minimum(k + 1, len(variants[0]) - k) < fade)
    assert np.array_equal(played[~fading], expected[~fading]), "not bit-exact outside the span's fades"
    np.testing.assert_allclose(played[fading], expected[fading], rtol=0, atol=1e-6)
    assert np.array_equal(again, SONG[frames]), "variant 0 is not the input"
