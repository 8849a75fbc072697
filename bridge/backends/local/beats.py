"""Tempo and beats from an onset envelope, in plain numpy: nothing here is compiled at run time.

This is the classic dynamic-programming beat tracker (Ellis, "Beat tracking by dynamic programming", JNMR 2007)
with the static tempo estimate of an autocorrelation tempogram, written to give the same beats and tempo as
librosa 0.11 (``beat.beat_track(..., trim=False)`` and ``feature.tempo``) on our onset envelopes. librosa's
versions are JIT-compiled with numba: the first call in a fresh install compiles for ~20 s, and a worker killed
while numba writes its on-disk cache leaves files that crash every later worker. Ours cost a few milliseconds.

The DP is vectorised over blocks of frames: a beat's predecessor lies at least half a beat back, so every frame
of a half-beat block depends only on frames before the block, and the whole block is scored at once.
"""

from __future__ import annotations

import numpy as np

START_BPM = 120.0  # centre of the log-normal tempo prior
STD_OCTAVES = 1.0  # its width, in octaves
MAX_BPM = 320.0
TIGHTNESS = 100.0  # how strongly beat spacing sticks to the tempo
_TEMPOGRAM_COLUMNS = 256  # tempogram columns computed at once: ~4 MB, whatever the song's length


def tempo_lags(lags: int, frame_rate: float) -> np.ndarray:
    """BPM of each autocorrelation lag (lag 0 is infinitely fast)."""
    bpm = np.empty(lags)
    bpm[0] = np.inf
    bpm[1:] = 60.0 * frame_rate / np.arange(1.0, lags)
    return bpm


def estimate_tempo(onset: np.ndarray, frame_rate: float, window: int = 384, stride: int = 8) -> float:
    """The song's tempo in BPM: the lag with the strongest mean windowed autocorrelation of the onset envelope,
    weighted by a log-normal prior around 120 BPM; the tempogram is taken at every ``stride``-th frame (the
    average barely moves and a 4-minute song costs 10 ms instead of 100), a block of columns at a time."""
    padded = np.pad(onset, window // 2, mode="linear_ramp")
    columns = np.lib.stride_tricks.sliding_window_view(padded, window)[::stride].T  # (window, n) views
    total = np.zeros(window)
    for first in range(0, columns.shape[1], _TEMPOGRAM_COLUMNS):
        total += _tempogram(columns[:, first:first + _TEMPOGRAM_COLUMNS]).sum(axis=1)
    strength = total / columns.shape[1]
    bpm = tempo_lags(window, frame_rate)
    log_prior = -0.5 * ((np.log2(bpm) - np.log2(START_BPM)) / STD_OCTAVES) ** 2
    log_prior[:int(np.argmax(bpm < MAX_BPM))] = -np.inf
    return float(bpm[np.argmax(np.log1p(1e6 * strength) + log_prior)])


def _tempogram(columns: np.ndarray) -> np.ndarray:
    """Each column's windowed autocorrelation, scaled to a peak of 1 (window, n)."""
    window = len(columns)
    size = 2 * window  # >= 2 * window - 1: no circular wrap-around, and an FFT-friendly length
    spectrum = np.fft.rfft(columns * hann(window)[:, None], n=size, axis=0)
    autocorr = np.fft.irfft(spectrum.real ** 2 + spectrum.imag ** 2, n=size, axis=0)[:window]
    peak = np.max(np.abs(autocorr), axis=0, keepdims=True)
    peak[peak < np.finfo(autocorr.dtype).tiny] = 1.0
    return autocorr / peak


def beat_frames(onset: np.ndarray, bpm: float, frame_rate: float, tightness: float = TIGHTNESS) -> np.ndarray:
    """Frame indices of the beats: the path through the onset envelope that best combines strong onsets with
    spacing close to ``bpm``. Leading and trailing frames without any onset nearby carry no beat."""
    period = float(np.round(frame_rate * 60.0 / bpm))  # frames per beat
    local = _local_score(onset, period)
    cumulative, backlink = _dynamic_program(local, period, tightness)
    beats = []
    frame = _last_beat(cumulative)
    while frame >= 0:
        beats.append(frame)
        frame = backlink[frame]
    beats = np.array(beats[::-1], dtype=int)
    scored = np.flatnonzero(local > 0)
    if not len(scored):
        return beats[:0]
    return beats[(beats >= scored[0]) & (beats <= scored[-1])]


def hann(length: int) -> np.ndarray:
    """Periodic Hann window (as for spectral analysis), the same values as scipy's ``get_window("hann", n)``."""
    return 0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, length + 1)[:-1])


def _local_score(onset: np.ndarray, period: float) -> np.ndarray:
    """Onsets scaled by their standard deviation, smoothed by a Gaussian about a beat wide (float64)."""
    scaled = onset / (onset.std(ddof=1) + np.finfo(onset.dtype).tiny)
    offsets = np.arange(-period, period + 1)
    kernel = np.exp(-0.5 * (offsets * 32.0 / period) ** 2)
    half = len(kernel) // 2
    values = scaled.astype(np.float64)
    values[0] = 0.0  # the first frame never counts (as in librosa; our envelopes start with zeros anyway)
    return np.convolve(values, kernel)[half:half + len(values)]  # centred, whatever the lengths


def _dynamic_program(local: np.ndarray, period: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """Best cumulative score of a beat path ending at each frame, and each frame's best previous beat (-1: none).

    A beat's predecessor lies between half a beat and two beats back; a spacing of ``d`` frames costs
    ``tightness * log(d / period) ** 2``. Ties go to the nearest predecessor.
    """
    n = len(local)
    nearest = max(int(np.round(period / 2)), 1)
    farthest = int(2 * period)
    spacing = np.arange(nearest, farthest + 1)  # candidate distances back, nearest first
    penalty = tightness * (np.log(spacing) - np.log(period)) ** 2
    # cumulative[i] is stored at padded[farthest + i]; the -inf before frame 0 are predecessors that do not exist
    padded = np.full(farthest + n, -np.inf)
    # row i: the scores stored for frames i - nearest, i - nearest - 1, ... i - farthest (a view, newest first)
    candidates = np.lib.stride_tricks.sliding_window_view(padded, len(spacing))[:, ::-1]
    cumulative = padded[farthest:]
    best = np.full(n, -1, dtype=np.int64)
    cumulative[:nearest] = local[:nearest]  # the first half beat has no predecessor
    for start in range(nearest, n, nearest):  # a block of frames only looks back before the block
        stop = min(start + nearest, n)
        scores = candidates[start:stop] - penalty
        pick = np.argmax(scores, axis=1)  # the first, i.e. nearest, of equal scores
        cumulative[start:stop] = local[start:stop] + scores[np.arange(stop - start), pick]
        best[start:stop] = np.arange(start, stop) - spacing[pick]
    # the path cannot start before the onsets do: no back-link until the first clear onset
    first = int(np.argmax(local >= 0.01 * local.max()))
    best[:first] = -1
    return cumulative, best


def _last_beat(cumulative: np.ndarray) -> int:
    """The last local maximum of the cumulative score that reaches half the median local maximum."""
    peaks = np.zeros(len(cumulative), dtype=bool)
    if len(cumulative) > 1:
        peaks[1:-1] = (cumulative[1:-1] > cumulative[:-2]) & (cumulative[1:-1] >= cumulative[2:])
        peaks[-1] = cumulative[-1] > cumulative[-2]
    if not peaks.any():
        return len(cumulative) - 1
    threshold = 0.5 * np.median(cumulative[peaks])
    good = np.flatnonzero(peaks & (cumulative >= threshold))
    return int(good[-1]) if len(good) else len(cumulative) - 1
