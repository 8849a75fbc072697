"""Putting returned audio back on the song's clock (bridge.audio.align) and splicing it in (bridge.audio.splice)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.audio.align import context_pieces, find_offset, match_channels, resample
from bridge.audio.region import read_region
from bridge.audio.splice import Edit, splice_inpaint, splice_span

RATE = 44100


@pytest.fixture
def crop(song):
    audio, rate = read_region(song, 5.0, 35.0)  # a 30 s crop: 10 s range at 10..20 s of it
    assert rate == RATE
    return audio


def _service_output(crop: np.ndarray, shift: int, gain: float = 1.0) -> np.ndarray:
    """What a generator sends back: the crop with 10..20 s replaced, late by ``shift`` frames (early if negative)."""
    out = crop.copy()
    out[10 * RATE:20 * RATE] = np.random.default_rng(3).normal(0, 0.2, (10 * RATE, crop.shape[1]))
    out *= gain
    if shift >= 0:
        return np.concatenate([np.zeros((shift, crop.shape[1]), np.float32), out]).astype(np.float32)
    return out[-shift:].astype(np.float32)


@pytest.mark.parametrize("shift", [0, 137, -2205, 6615, int(1.5 * RATE)])
def test_the_offset_of_returned_audio_is_found_to_the_frame(crop, shift):
    pieces = context_pieces(len(crop), 10 * RATE, 20 * RATE, RATE)
    alignment = find_offset(crop, _service_output(crop, shift), pieces, sample_rate=RATE)
    assert alignment.found and alignment.offset == shift
    assert alignment.confidence > 0.99 and len(alignment.piece_confidences) == 2


def test_the_offset_survives_resampling_there_and_back(crop):
    there = resample(_service_output(crop, 4410), RATE, 48000)  # 0.1 s late, at the service's rate
    back = resample(there, 48000, RATE)
    alignment = find_offset(crop, back, context_pieces(len(crop), 10 * RATE, 20 * RATE, RATE), sample_rate=RATE)
    assert alignment.offset == 4410 and alignment.confidence > 0.98


def test_music_that_repeats_exactly_aligns_at_the_nearest_candidate():
    loop = np.random.default_rng(1).normal(0, 0.3, (RATE // 2, 1)).astype(np.float32)  # a 0.5 s loop
    song = np.tile(loop, (40, 1))  # 20 s of the loop: shifts of 0.5 s match just as well
    edited = song.copy()
    edited[8 * RATE:12 * RATE] = 0.1
    alignment = find_offset(song, edited, context_pieces(len(song), 8 * RATE, 12 * RATE, RATE), sample_rate=RATE)
    assert alignment.offset == 0


def test_silent_or_unrelated_context_is_reported_not_guessed(crop):
    pieces = context_pieces(len(crop), 10 * RATE, 20 * RATE, RATE)
    silent = find_offset(np.zeros_like(crop), crop, pieces, sample_rate=RATE)
    unrelated = find_offset(crop, np.random.default_rng(9).normal(0, 0.2, crop.shape).astype(np.float32), pieces,
                            sample_rate=RATE)
    assert not silent.found and not unrelated.found and unrelated.offset == 0 and unrelated.confidence < 0.3
    assert find_offset(crop, crop, [], sample_rate=RATE).found is False  # no context at all (whole-song range)


def test_channels_are_matched_to_the_source():
    mono = np.ones((10, 1), np.float32)
    stereo = np.stack([np.ones(10), np.zeros(10)], axis=1).astype(np.float32)
    assert match_channels(mono, 2).shape == (10, 2)
    assert match_channels(stereo, 1)[:, 0].tolist() == [0.5] * 10
    assert match_channels(np.zeros((10, 6), np.float32), 2).shape == (10, 2)


def test_an_inpaint_splice_keeps_the_source_outside_its_joins():
    source = np.full((1000, 2), 0.5, np.float32)
    material = np.full((1000, 2), -0.5, np.float32)
    out = splice_inpaint(source, material, join_in=300, join_out=700, xf_in=100, xf_out=100)
    np.testing.assert_array_equal(out[:200], source[:200])
    np.testing.assert_array_equal(out[300:700], material[300:700])
    np.testing.assert_array_equal(out[800:], source[800:])
    assert out[200, 0] == pytest.approx(0.5, abs=0.02) and out[299, 0] == pytest.approx(-0.5, abs=0.02)


def test_a_splice_of_late_quiet_output_lines_up_and_is_loudness_matched(crop):
    generated = _service_output(crop, 2205, gain=0.5)
    edit = Edit("inpaint", 10 * RATE, 20 * RATE, handle=RATE, crossfade=RATE // 10)
    span = splice_span(crop, generated, edit, RATE, crop_start_s=5.0)
    assert span.first == 9 * RATE and len(span.audio) == 12 * RATE
    np.testing.assert_array_equal(span.audio[:int(0.9 * RATE)], crop[9 * RATE:int(9.9 * RATE)])
    np.testing.assert_array_equal(span.audio[-int(0.9 * RATE):], crop[int(20.1 * RATE):21 * RATE])
    replaced = _service_output(crop, 0)[10 * RATE:20 * RATE]
    np.testing.assert_allclose(span.audio[RATE:11 * RATE], replaced, atol=1e-6)  # gain 2 undid the 0.5
    assert span.info["alignment"]["offset_s"] == pytest.approx(0.05)
    assert span.info["gain_db"] == pytest.approx(6.02, abs=0.01)
    assert [j["at"] for j in span.info["joins"]] == [15.0, 25.0]
