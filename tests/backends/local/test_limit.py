"""A loud master comes back under its own peak, without clipped runs: overs of re-used material are brought under the
ceiling by a short dip in gain, and everything farther from an over is the rendering sample for sample."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import engine
from bridge.backends.local.limit import HOLD_SECONDS, RAMP_SECONDS, limited
from bridge.models import JobSpec
from tests.songs import make_song_array, write

SR = 48000
REACH = int(round((HOLD_SECONDS + RAMP_SECONDS) * SR))


def longest_pinned_run(audio: np.ndarray, level: float) -> int:
    """The most samples in a row at ``level`` or more: a clipped run."""
    pinned = np.abs(audio).max(axis=1) >= level
    return int(max(np.diff(np.flatnonzero(np.diff(np.concatenate([[0], pinned.astype(np.int8), [0]]))))[::2],
                   default=0))


def streamed(audio: np.ndarray, size: int, ceiling: float = 1.0, made: tuple[int, int] | None = None) -> np.ndarray:
    blocks = (audio[at:at + size].copy() for at in range(0, len(audio), size))
    return np.concatenate(list(limited(blocks, SR, ceiling, made)))


@pytest.fixture(scope="module")
def overs() -> np.ndarray:
    """2 s of a loud tone with three overs: one short (a crossfade's), one long (a re-timed peak), one at the end."""
    t = np.arange(2 * SR) / SR
    audio = np.stack([0.9 * np.sin(2 * np.pi * 220 * t), 0.8 * np.sin(2 * np.pi * 330 * t)], axis=1)
    audio[30000:30010] *= 1.25
    audio[60000:62000] *= 1.2
    audio[-50:] *= 1.3
    return audio.astype(np.float32)


def test_overs_are_brought_under_the_ceiling_and_nothing_far_from_them_changes(overs):
    out = streamed(overs, 4096)
    assert out.shape == overs.shape
    assert np.abs(out).max() <= 1.0
    over = np.flatnonzero(np.abs(overs).max(axis=1) > 1.0)
    near = np.zeros(len(overs), bool)
    for at in over:
        near[max(at - REACH, 0):at + REACH + 1] = True
    np.testing.assert_array_equal(out[~near], overs[~near])  # the untouched source around a range stays so
    assert longest_pinned_run(out, 0.9999) <= 2  # the peaks reach the ceiling; nothing is held flat there


@pytest.mark.parametrize("size", [1, 97, 2 * REACH - 1, 2 * REACH, 2 * REACH + 1, 4096, 1 << 20])
def test_where_the_blocks_begin_does_not_change_the_result(overs, size):
    whole = streamed(overs, 1 << 21)
    np.testing.assert_allclose(streamed(overs, size), whole, atol=1e-6)  # a running mean's rounding
    made = (29990, 61000)
    np.testing.assert_allclose(streamed(overs, size, made=made), streamed(overs, 1 << 21, made=made), atol=1e-6)


@pytest.mark.parametrize("channels", [1, 8])
def test_any_channel_count_is_limited_alike(overs, channels):
    audio = np.repeat(overs[:, :1], channels, axis=1).astype(np.float64)
    out = streamed(audio, 4096)
    assert out.shape == audio.shape and out.dtype == audio.dtype and np.abs(out).max() <= 1.0
    np.testing.assert_array_equal(out, np.repeat(out[:, :1], channels, axis=1))


def test_frames_outside_what_was_made_are_never_changed(overs):
    """The untouched source beside a crossfade stays sample for sample, even within reach of an over in it."""
    made = (30005, 61000)  # the first over half inside; the long one ends past the made frames
    out = streamed(overs, 4096, made=made)
    np.testing.assert_array_equal(out[:made[0]], overs[:made[0]])
    np.testing.assert_array_equal(out[made[1]:62000 + REACH], overs[made[1]:62000 + REACH])
    assert np.abs(out[made[0]:made[1]]).max() <= 1.0


def test_a_float_sources_ceiling_above_full_scale_keeps_its_overs(overs):
    np.testing.assert_array_equal(streamed(overs, 4096, ceiling=2.0), overs)


@pytest.mark.parametrize("master_db", [-1.0, -0.1])
def test_a_loud_master_comes_back_under_its_own_peak_with_no_clipped_run(tmp_path, master_db):
    """An outside probe: the demo song through tanh and normalised to -1 or -0.1 dBFS, 3 s gaps at eight places, two
    variants each: crossfades and re-timed passages took the re-used material past the master's peak (half the
    variants; at -1 dBFS to full scale), and the writer's clipping left runs of up to 50 samples pinned there."""
    audio, sr = make_song_array(40.0, seed=2)
    loud = np.tanh(4 * audio)
    path = write(tmp_path / "master.wav", (loud / np.abs(loud).max() * 10 ** (master_db / 20)).astype(np.float32), sr,
                 subtype="PCM_24")
    peak = np.abs(sf.read(path, dtype="float32")[0]).max()
    for start in range(3, 32, 4):
        work = tmp_path / f"work-{start}"
        work.mkdir()
        spec = JobSpec(job_id="j-loud", operation="inpaint", source=path, source_info=probe(path), backend="local",
                       start=float(start), end=float(start + 3), num_outputs=2)
        for variant in engine.render_job(spec.to_json(), str(work), str(tmp_path / "cache"), 0.1):
            written = sf.read(variant["path"], dtype="float32", always_2d=True)[0]
            assert np.abs(written).max() <= peak + 2 ** -23, (start, variant["variant"])  # a 24-bit step
            assert longest_pinned_run(written, 0.99999) <= 1
            # outside the crossfades the source as it was, whatever the dips beside them
            first = int(round(variant["span_start"] * sr))
            joins = variant["splice"]["joins"]
            entry = int(round((joins[0]["at"] - joins[0]["crossfade"]) * sr)) - first - 2
            exit_ = int(round((joins[-1]["at"] + joins[-1]["crossfade"]) * sr)) - first + 2
            source = sf.read(path, dtype="float32", always_2d=True, start=first, frames=len(written))[0]
            np.testing.assert_array_equal(written[:entry], source[:entry])
            np.testing.assert_array_equal(written[exit_:], source[exit_:])
