"""Which of an extension's candidates to deliver first: the one the other candidates agree with, among the surest.

Nobody knows what the song would have done after the point, so each candidate an extension renders (walks from
different passages, the last bars played again, a texture) is one guess at it. The guess closest to the others
is the safest single bet (a minimum-Bayes-risk choice): it is the least likely to play an event the song does not
play there, and its sound is what the guesses share. How well its joins fit still counts. Candidates are ordered
by their mean log-spectral distance to the others (dB, the measure ``bench/engine_coverage.py`` judges extensions
by) less ``CONFIDENCE_DB`` per unit of confidence; ``bench/README.md`` has what was measured and tried.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from bridge.audio import fades
from bridge.backends.local.analysis import (
    _STFT_BLOCK,
    ANALYSIS_RATE,
    FRAME_RATE,
    HOP,
    N_FFT,
    frame_power,
    resampler,
)

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


def order_spectra(powers: list[np.ndarray], confidences: list[float],
                  reuse: bool = False) -> list[tuple[int, float | None]]:
    """``order`` of candidates given by their ``spectra()``: a caller need not hold every candidate's audio. With
    ``reuse`` the spectra are turned into levels in place (a caller done with them saves holding them twice)."""
    if len(powers) < 2 or min(power.shape[1] for power in powers) == 0:  # nothing to compare, or too short
        return [(i, None) for i in range(len(powers))]
    apart = list(distances(powers, reuse).sum(axis=1) / (len(powers) - 1))
    ranked = sorted(range(len(powers)), key=lambda i: (apart[i] - CONFIDENCE_DB * confidences[i], i))
    return [(i, apart[i]) for i in ranked]


def distances(powers: list[np.ndarray], reuse: bool = False) -> np.ndarray:
    """The candidates' mean log-spectral distances to each other (dB), a symmetric matrix, given their
    ``spectra()`` (at least one frame each); with ``reuse``, turned into their levels in place."""
    floor = _FLOOR * max(float(power.max()) for power in powers) + 1e-30
    levels = [_level(power if reuse else power.copy(), floor) for power in powers]
    between = np.zeros((len(levels), len(levels)))
    for i in range(len(levels)):
        for j in range(i + 1, len(levels)):
            between[i, j] = between[j, i] = np.sqrt(np.mean(np.square(levels[i] - levels[j]), axis=0)).mean()
    return between


def _level(power: np.ndarray, floor: float) -> np.ndarray:
    """10 log10(power + floor), in place."""
    power += floor
    np.log10(power, out=power)
    power *= 10
    return power


class SpreadMismatch(Exception):
    """The audio's length at the analysis rate was not the one reckoned ahead, and gave another frame spread."""


def spectra(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Power spectra of the mono mix at the analysis rate, at most ``MAX_FRAMES`` frames evenly spread (only those
    are transformed: a spectrum of every frame of a 10-minute candidate would hold 100 MB)."""
    return spectra_of_blocks([audio], sample_rate, len(audio))


def spectra_of_blocks(blocks: Iterable[np.ndarray], sample_rate: int, frames: int) -> np.ndarray:
    """``spectra`` of ``frames`` frames of audio that come a block at a time, equal to the bit: only the spectra
    kept are held, and the samples of a frame or two (a 10-minute candidate whole is 212 MB).

    The frames' spread depends on the length at the analysis rate, reckoned ahead from ``frames`` as the resampler
    rounds it (half up); ``SpreadMismatch`` is raised should it come out another length with another spread.
    """
    resample = resampler(sample_rate)
    ahead = frames if sample_rate == ANALYSIS_RATE else (2 * frames * ANALYSIS_RATE + sample_rate) // (2 * sample_rate)
    hop = HOP * _spread(ahead)
    runs: list[np.ndarray] = []
    held, held_from, done, seen = np.zeros(0, dtype=np.float32), 0, 0, 0  # held: samples seen from ``held_from``

    def transform(final: bool) -> None:
        """Transform the frames that are complete, in runs of _STFT_BLOCK as frame_power groups them."""
        nonlocal held, held_from, done
        while True:
            available = held_from + len(held)
            ready = (available - N_FFT) // hop + 1 - done if available >= N_FFT else 0
            if ready <= 0 or (ready < _STFT_BLOCK and not final):
                break
            count = min(ready, _STFT_BLOCK)
            begin = done * hop - held_from
            runs.append(frame_power(held[begin:begin + (count - 1) * hop + N_FFT], hop))
            done += count
        cut = min(max(done * hop - held_from, 0), len(held))  # what no frame still to come starts before
        held, held_from = held[cut:], held_from + cut

    for block in itertools.chain(blocks, [None]):
        mono = resample(fades.mono(block), False) if block is not None else resample(np.zeros(0, np.float32), True)
        seen += len(mono)
        held = np.concatenate([held, mono]) if len(held) else mono
        transform(block is None)
    if seen < N_FFT:
        return np.zeros((N_FFT // 2 + 1, 0), dtype=np.float32)
    if _spread(seen) != hop // HOP:
        raise SpreadMismatch(f"{frames} frames at {sample_rate} Hz came to {seen} at the analysis rate, not {ahead}")
    return np.concatenate(runs, axis=1)


def _spread(length: int) -> int:
    """Every how many hops a frame is kept of ``length`` samples at the analysis rate."""
    return max(-(-(1 + (length - N_FFT) // HOP) // MAX_FRAMES), 1) if length >= N_FFT else 1
