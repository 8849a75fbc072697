"""Ordering an extension's candidates: the guess the others agree with comes first, confidence still counts."""

from __future__ import annotations

import tracemalloc

import numpy as np

from bridge.backends.local.agreement import CONFIDENCE_DB, order

SR = 44100


def chord(seconds: float, seed: int, burst_at: float | None = None) -> np.ndarray:
    """A held A-major chord with a little noise (stereo); ``burst_at``: a loud noise hit of up to 1.5 s there."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    mono = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) + 0.01 * rng.standard_normal(len(t))
    if burst_at is not None:
        hit = slice(int(burst_at * SR), int((burst_at + 1.5) * SR))
        mono[hit] += 0.8 * rng.standard_normal(len(mono[hit]))
    return np.repeat(mono[:, None], 2, axis=1).astype(np.float32)


def test_the_guess_that_plays_an_event_the_others_do_not_is_delivered_last():
    guesses = [chord(10.0, 1, burst_at=4.0), chord(10.0, 2), chord(10.0, 3)]
    ranked = order(guesses, SR, [0.5, 0.5, 0.5])
    assert [i for i, _ in ranked][-1] == 0
    apart = dict(ranked)
    assert apart[0] > apart[1] + 1.0 and abs(apart[1] - apart[2]) < 0.5  # dB


def test_confidence_outweighs_a_small_disagreement_but_not_a_large_one():
    guesses = [chord(10.0, 1, burst_at=4.0), chord(10.0, 2), chord(10.0, 3)]
    apart = dict(order(guesses, SR, [0.5, 0.5, 0.5]))
    lead = (apart[0] - apart[1]) / CONFIDENCE_DB  # the confidence the burst needs over the others to come first
    assert order(guesses, SR, [0.5 + lead + 0.05, 0.5, 0.5])[0][0] == 0
    assert order(guesses, SR, [0.5 + lead - 0.05, 0.5, 0.5])[0][0] != 0


def test_two_alike_guesses_keep_the_surer_first_and_the_given_order_on_ties():
    guesses = [chord(10.0, 1), chord(10.0, 2)]
    assert [i for i, _ in order(guesses, SR, [0.4, 0.6])] == [1, 0]
    assert [i for i, _ in order(guesses, SR, [0.5, 0.5])] == [0, 1]


def test_nothing_to_compare_keeps_the_given_order_without_a_distance():
    assert order([chord(10.0, 1)], SR, [0.3]) == [(0, None)]
    short = [chord(0.05, 1), chord(0.05, 2, burst_at=0.0)]  # less than one analysis frame at 22.05 kHz
    assert order(short, SR, [0.2, 0.9]) == [(0, None), (1, None)]
    assert order([], SR, []) == []


def test_ordering_long_extensions_holds_only_the_frames_it_compares():
    """A 10-minute extension's candidates are compared on ``MAX_FRAMES`` frames each: ordering three of them holds
    a few MB of spectra on top of one candidate's mix, not a spectrum of every frame (100 MB a candidate)."""
    rng = np.random.default_rng(0)
    rate = 22050  # the analysis rate: the candidates are not resampled
    guesses = [(0.1 * rng.standard_normal(600 * rate)).astype(np.float32) for _ in range(3)]
    tracemalloc.start()
    try:
        ranked = order(guesses, rate, [0.5, 0.5, 0.5])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ranked) == 3 and all(distance is not None for _, distance in ranked)
    assert peak < 2 * guesses[0].nbytes, f"{peak / 1e6:.0f} MB held for candidates of {guesses[0].nbytes / 1e6:.0f}"
