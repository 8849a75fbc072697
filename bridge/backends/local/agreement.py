"""Which of an extension's candidates to deliver first: the one the other candidates agree with, among the surest.

Nobody knows what the song would have done after the point, so each candidate an extension renders (walks from
different passages, the last bars played again, a texture) is one guess at it. The guess closest to the others
is the safest single bet (a minimum-Bayes-risk choice): it is the least likely to play an event the song does not
play there, and its sound is what the guesses share. How well its joins fit still counts. Candidates are ordered
by their mean log-spectral distance to the others (dB, the measure ``bench/engine_coverage.py`` judges extensions
by) less ``CONFIDENCE_DB`` per unit of confidence; ``bench/README.md`` has what was measured and tried.
"""

from __future__ import annotations

import numpy as np

from bridge.audio import fades
from bridge.backends.local.analysis import FRAME_RATE, HOP, N_FFT, frame_power, to_analysis_rate

CONFIDENCE_DB = 6.0  # dB of distance one unit of confidence is worth (2-8 won alike on the development songs)
MAX_FRAMES = int(60 * FRAME_RATE)  # a longer extension is compared on evenly spread frames of it
_FLOOR = 1e-8  # power floor, relative to the loudest bin of all candidates: -80 dB


def order(extensions: list[np.ndarray], sample_rate: int,
          confidences: list[float]) -> list[tuple[int, float | None]]:
    """(index, mean distance in dB to the other candidates) of each candidate, in delivery order; the distance is
    None when there was nothing to compare (one candidate, or less than a frame of audio), and the order is then
    the given one.

    ``extensions`` are the candidates' new material only, (frames, channels) float32 at ``sample_rate``, all of
    one length; the first of equals comes first, so a caller that sorted by confidence keeps that order on ties.
    """
    return order_spectra([spectra(audio, sample_rate) for audio in extensions], confidences)


def order_spectra(powers: list[np.ndarray], confidences: list[float]) -> list[tuple[int, float | None]]:
    """``order`` of candidates given by their ``spectra()``: a caller need not hold every candidate's audio."""
    if len(powers) < 2 or min(power.shape[1] for power in powers) == 0:  # nothing to compare, or too short
        return [(i, None) for i in range(len(powers))]
    apart = list(distances(powers).sum(axis=1) / (len(powers) - 1))
    ranked = sorted(range(len(powers)), key=lambda i: (apart[i] - CONFIDENCE_DB * confidences[i], i))
    return [(i, apart[i]) for i in ranked]


def distances(powers: list[np.ndarray]) -> np.ndarray:
    """The candidates' mean log-spectral distances to each other (dB), a symmetric matrix, given their
    ``spectra()`` (at least one frame each)."""
    floor = _FLOOR * max(float(power.max()) for power in powers) + 1e-30
    levels = [10 * np.log10(power + floor) for power in powers]
    between = np.zeros((len(levels), len(levels)))
    for i in range(len(levels)):
        for j in range(i + 1, len(levels)):
            between[i, j] = between[j, i] = np.sqrt(np.mean(np.square(levels[i] - levels[j]), axis=0)).mean()
    return between


def spectra(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power spectra of the mono mix at the analysis rate, at most ``MAX_FRAMES`` frames evenly spread (only those
    are transformed: a spectrum of every frame of a 10-minute candidate would hold 100 MB)."""
    mono = to_analysis_rate(fades.mono(audio), sample_rate)
    if len(mono) < N_FFT:
        return np.zeros((N_FFT // 2 + 1, 0), dtype=np.float32)
    step = -(-(1 + (len(mono) - N_FFT) // HOP) // MAX_FRAMES)
    return frame_power(mono, HOP * step)
