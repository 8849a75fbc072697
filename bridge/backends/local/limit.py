"""Overs brought under the ceiling by a short dip in gain, not clipped.

Re-used material can go past the song's own peak where the song never did: two passages summing in a crossfade, a
re-timed passage's resampled peaks, a level match. Clipped when written, a loud master came back with runs of
samples pinned at full scale (an outside probe: 54 in a row), which the producer hears as distortion. Here the gain
falls to just what each over needs, ``RAMP_SECONDS`` before it, stays there ``HOLD_SECONDS`` either side, and rises
again as smoothly: a few milliseconds at a fraction of a dB. Every sample farther than ``RAMP_SECONDS +
HOLD_SECONDS`` from an over is passed on as it came, and so is every sample outside the frames a caller names as
made (the untouched source around a range stays sample for sample, whatever an over in the crossfade beside it
needs: the gain steps back to 1 there, by at most what that over needed). The blocks are limited as they stream
(memory follows a block): a block is held back until the samples after it that could lower its gain have come, and
the result does not depend on where blocks begin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

HOLD_SECONDS = 0.005
RAMP_SECONDS = 0.005


def limited(blocks: Iterable[np.ndarray], sample_rate: int, limit: float,
            made: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """``blocks`` (frames x channels, float) with every over of ``limit`` limited, all channels alike, changing
    only the frames ``made`` (first, stop: counted over all the blocks), or any."""
    hold = max(int(round(HOLD_SECONDS * sample_rate)), 1)
    ramp = min(max(int(round(RAMP_SECONDS * sample_rate)), 1), hold)  # at most the hold: the dip covers each over
    reach = hold + ramp  # how far an over lowers the gain either side
    # the last ``reach`` frames given out, then the frames held back; ``near`` when an over lies among them
    before = held = None
    near = False
    given = 0  # frames given out so far
    lo, hi = made or (0, np.inf)

    def over(frames: np.ndarray) -> bool:
        return frames.size > 0 and not float(np.max(np.abs(frames))) <= limit

    for block in blocks:
        if before is None:
            before, held = block[:0], block[:0]
        if not near and len(block) >= 2 * reach and not over(block):  # the usual case: nothing to lower
            if len(held):
                yield held
            yield block[:-reach]
            given += len(held) + len(block) - reach
            before, held = block[-2 * reach:-reach].copy(), block[-reach:].copy()  # a renderer may refill it
            continue
        frames = np.concatenate([before, held, block])
        out = len(frames) - reach  # the frames whose gain every frame within reach has decided
        if out > len(before):
            start = given - len(before)
            yield _dipped(frames, limit, hold, ramp, (lo - start, hi - start))[len(before):out]
            given += out - len(before)
            before, held = frames[max(out - reach, 0):out], frames[out:]
        else:
            held = frames[len(before):]
        near = over(before) or over(held)
    if held is not None and len(held):
        start = given - len(before)
        yield _dipped(np.concatenate([before, held]), limit, hold, ramp, (lo - start, hi - start))[len(before):]


def _dipped(frames: np.ndarray, limit: float, hold: int, ramp: int, made: tuple[float, float]) -> np.ndarray:
    """``frames`` with the gain dipped around each over of ``limit`` within ``made`` (first, stop, counted in
    ``frames``); the same array when there is none."""
    if not len(frames):
        return frames
    peak = np.abs(frames[:, 0])
    for channel in range(1, frames.shape[1]):  # numpy's max across a row of two is 10x slower
        np.maximum(peak, np.abs(frames[:, channel]), out=peak)
    overs = np.flatnonzero(peak > limit)
    if not len(overs):
        return frames
    reach = hold + ramp
    out = frames.copy()
    # each run of overs less than two reaches apart dips as one, the frames within reach of it deciding its gains
    apart = np.flatnonzero(np.diff(overs) > 2 * reach)
    for first, last in zip(overs[np.r_[0, apart + 1]], overs[np.r_[apart, len(overs) - 1]]):
        lo, hi = max(first - 2 * reach, 0), min(last + 2 * reach + 1, len(frames))
        need = np.minimum(1.0, limit / np.maximum(peak[lo:hi], 1e-30))
        # held at the lowest need within ``hold``, then averaged over ``ramp`` either side: each frame's gain is a
        # mean of needs that each include its own, so it is never above what it needs
        gain = uniform_filter1d(minimum_filter1d(need, 2 * hold + 1, mode="nearest"), 2 * ramp + 1, mode="nearest")
        gain = np.minimum(gain, need)  # the mean's rounding
        a, b = max(first - reach, 0, made[0]), min(last + reach + 1, len(frames), made[1])  # beyond, the gain is 1
        if b > a:
            out[a:b] *= gain[a - lo:b - lo, None].astype(frames.dtype)
            np.clip(out[a:b], -limit, limit, out=out[a:b])  # the gain's float32 rounding
    return out
