"""Bringing generated audio back onto the source's clock.

A cloud generator returns the uploaded crop with its range replaced, but not necessarily sample-aligned: encoder
delay, padding and resampling shift it by some milliseconds, sometimes more. The context around the range was not
meant to change, so it is the ruler: the offset that best lines the generated context up with the source context
(normalised cross-correlation, computed by FFT over a bounded window) is the shift to undo.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soxr

from bridge.audio.fades import mono
from bridge.audio.region import padded_slice

COARSE_STEP = 8  # decimation of the wide offset search (44.1 kHz -> 5.5 kHz); the winner is refined per frame


@dataclass(frozen=True)
class Alignment:
    """Where the generated audio sits: ``generated[i + offset]`` lines up with ``reference[i]``."""

    offset: int  # frames at the reference's rate; positive when the generated audio starts late
    sample_rate: int
    confidence: float  # normalised correlation at the offset over all context pieces, 0..1
    piece_confidences: tuple[float, ...] = ()
    found: bool = True  # False: no usable context, or too weak a match; offset 0 was assumed

    @property
    def offset_s(self) -> float:
        """The offset in seconds."""
        return self.offset / self.sample_rate

    def to_json(self) -> dict:
        """The alignment as the manifest's splice report shows it."""
        return {"offset_s": round(self.offset_s, 6), "offset_frames": self.offset,
                "confidence": round(self.confidence, 4), "found": self.found}


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio`` (frames, channels) at ``to_rate``, float32; unchanged when the rates already agree."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate or len(audio) == 0:
        return audio
    out = soxr.resample(audio, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[1])


def resample_blocks(blocks: Iterable[np.ndarray], from_rate: int, to_rate: int, channels: int) -> Iterator[np.ndarray]:
    """:func:`resample` for audio that comes a block at a time (soxr's stream, the same filter): the same samples
    as resampling the whole at once, with memory following a block. Unchanged when the rates agree."""
    if from_rate == to_rate:
        yield from (np.asarray(block, dtype=np.float32) for block in blocks)
        return
    stream = soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality="HQ")
    for block in blocks:
        out = stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
        if len(out):
            yield np.asarray(out, dtype=np.float32).reshape(-1, channels)
    tail = stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True)
    if len(tail):
        yield np.asarray(tail, dtype=np.float32).reshape(-1, channels)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """``audio`` with ``channels`` channels: mono is copied out, extra channels are mixed down or dropped."""
    have = audio.shape[1]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    if channels == 1:
        return audio.mean(axis=1, keepdims=True, dtype=np.float32)
    if have > channels:
        return np.ascontiguousarray(audio[:, :channels])
    return np.ascontiguousarray(audio[:, np.arange(channels) % have])


def context_pieces(crop_frames: int, edit_first: int, edit_stop: int | None, sample_rate: int, *,
                   window_s: float = 6.0, guard_s: float = 0.2, min_s: float = 0.5) -> list[tuple[int, int]]:
    """Untouched stretches of the crop to align on: up to ``window_s`` before the range and after it (inpaint).

    ``guard_s`` next to each join is left out: a generator may blend into the context there.
    """
    window, guard, shortest = (int(round(x * sample_rate)) for x in (window_s, guard_s, min_s))
    pieces = []
    left_stop = edit_first - guard
    left_start = max(0, left_stop - window)
    if left_stop - left_start >= shortest:
        pieces.append((left_start, left_stop))
    if edit_stop is not None:
        right_start = edit_stop + guard
        right_stop = min(crop_frames, right_start + window)
        if right_stop - right_start >= shortest:
            pieces.append((right_start, right_stop))
    return pieces


def find_offset(reference: np.ndarray, generated: np.ndarray, pieces: list[tuple[int, int]], *,
                sample_rate: int, max_shift_s: float = 2.0, min_confidence: float = 0.3) -> Alignment:
    """Search offsets within +/- ``max_shift_s`` for the one that best lines ``generated`` up with ``reference``.

    Both are at ``sample_rate``; only the ``pieces`` (frame ranges of ``reference``) are compared. The wide search
    runs on audio decimated by ``COARSE_STEP`` (FFT correlation), then the best lag is refined frame by frame.
    Music repeats, so among correlation peaks that are practically as good as the best, the one nearest zero wins.
    """
    if not pieces:
        return Alignment(0, sample_rate, 0.0, (), found=False)
    step = COARSE_STEP if min(b - a for a, b in pieces) >= 64 * COARSE_STEP else 1
    max_shift = -(-int(round(max_shift_s * sample_rate)) // step) * step  # a whole number of coarse steps
    # Only what is compared is converted: each piece, and the stretch of generated audio it may slide over.
    refs = [mono(reference[a:b], np.float64) for a, b in pieces]
    windows = [mono(padded_slice(generated, a - max_shift, b - a + 2 * max_shift), np.float64) for a, b in pieces]
    ref_energies = [_dot(r, r) for r in refs]
    if sum(ref_energies) <= 1e-12:
        return Alignment(0, sample_rate, 0.0, (), found=False)  # silent context: nothing to align on
    coarse_refs = [_decimate(r, step) for r in refs]
    numerators, energies = _fft_scores(coarse_refs, [_decimate(w, step) for w in windows])
    coarse = _normalised(numerators, energies, sum(_dot(r, r) for r in coarse_refs))
    centre = (_nearest_best_peak(coarse, max_shift // step) - max_shift // step) * step
    lags = np.arange(max(-max_shift, centre - 2 * step), min(max_shift, centre + 2 * step) + 1)
    numerators, energies = _direct_scores(refs, windows, lags + max_shift)
    scores = _normalised(numerators, energies, sum(ref_energies))
    best = int(np.argmax(scores))
    confidence = float(np.clip(scores[best], 0.0, 1.0))
    per_piece = tuple(float(np.clip(n[best] / np.sqrt(r * g[best] + 1e-20), 0.0, 1.0))
                      for n, g, r in zip(numerators, energies, ref_energies))
    if confidence < min_confidence:
        return Alignment(0, sample_rate, confidence, per_piece, found=False)
    return Alignment(int(lags[best]), sample_rate, confidence, per_piece)


def _fft_scores(refs: list[np.ndarray], windows: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per piece, its correlation with every position in its window, and the window's energy there."""
    from scipy import signal  # here, not at import: scipy.signal is ~70 MB resident in a daemon that never splices

    numerators, energies = [], []
    for piece, window in zip(refs, windows):
        numerators.append(signal.correlate(window, piece, mode="valid", method="fft"))
        energies.append(_sliding_energy(window, len(piece)))
    return numerators, energies


def _direct_scores(refs: list[np.ndarray], windows: list[np.ndarray],
                   positions: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The same as ``_fft_scores`` at a handful of window positions, by plain products."""
    numerators, energies = [], []
    for piece, window in zip(refs, windows):
        numerators.append(np.array([_dot(window[p:p + len(piece)], piece) for p in positions]))
        energies.append(_sliding_energy(window, len(piece))[positions])
    return numerators, energies


def _sliding_energy(window: np.ndarray, length: int) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(window))])
    return np.maximum(cumulative[length:] - cumulative[:-length], 0.0)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not np.dot: a BLAS dot may spread over threads that fight the daemon's own for two cores.
    return float(np.einsum("i,i->", a, b))


def _normalised(numerators: list[np.ndarray], energies: list[np.ndarray], ref_energy: float) -> np.ndarray:
    return np.sum(numerators, axis=0) / np.sqrt(ref_energy * np.sum(energies, axis=0) + 1e-20)


def _decimate(samples: np.ndarray, step: int) -> np.ndarray:
    """Block averages of ``step`` frames: a crude low-pass that keeps correlation peaks where they were."""
    if step == 1:
        return samples
    usable = samples[:len(samples) // step * step]
    return sum(usable[k::step] for k in range(step)) / step  # strided adds: far quicker than a reshape-mean


def _nearest_best_peak(scores: np.ndarray, centre: int, tolerance: float = 0.005) -> int:
    peaks = np.flatnonzero((scores >= np.roll(scores, 1)) & (scores >= np.roll(scores, -1)))
    if len(peaks) == 0:
        return int(np.argmax(scores))
    good = peaks[scores[peaks] >= scores[peaks].max() - tolerance]
    return int(good[np.argmin(np.abs(good - centre))])




