"""What the embedded engine knows about a song: its beats, and what every ~46 ms of it sounds like.

One STFT of the mono mix at 22.05 kHz feeds everything (mel bands, onset strength, chroma), which keeps a
4-minute song's analysis around half a second. Beats come from a dynamic-programming tracker (``beats.py``) and
place joins; the search itself compares short *cells* (two STFT frames) rather than beats, because a tracker's
beat phase can differ between two repetitions of the same passage while the cells line up whatever it decided.

Everything here is plain numpy, computing what librosa 0.11 computes for the same settings (the tests compare
nothing with librosa; the equivalence was measured when this replaced it). librosa is not imported at all: its
modules JIT-compile numba functions as they are imported (~20 s in a fresh install), and a worker killed while
numba writes its on-disk cache left files that crashed every later worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np

from bridge.audio import fades
from bridge.backends.local.beats import beat_frames, hann
from bridge.backends.local.beats import estimate_tempo as _estimate_tempo

ANALYSIS_VERSION = 8  # part of the cache key: bump when the analysis changes
ANALYSIS_RATE = 22050
CANCELLING_DB = 20.0  # a silent mix this far under its channels' unrelated sum: they cancel (see _ChannelLevel)
HOP = 512
N_FFT = 2048
FRAMES_PER_CELL = 2
CELL_SECONDS = HOP * FRAMES_PER_CELL / ANALYSIS_RATE
MEL_BANDS = 32
FRAME_RATE = ANALYSIS_RATE / HOP  # STFT frames per second
_STFT_BLOCK = 32  # frames transformed at once: 512 kB of float64 stays in cache
READ_FRAMES = 1 << 16  # frames of the song read and mixed to mono at a time
_FRAMES_AT_ONCE = 4096  # STFT frames reduced to mel and chroma per matrix product: 17 MB of power, and few
# products (threaded BLAS on a busy machine pays a thread hand-off per call)
SILENCE_DB = -60.0


class InvalidSamples(ValueError):
    """The song holds samples that are not numbers (NaN) or are infinite: nothing can be measured from them."""


class CancellingChannels(InvalidSamples):
    """The song's channels cancel when mixed to mono (one is another inverted): it is music, not silence, but the
    mono mix every feature (and every join's alignment) is measured on holds nothing."""


@dataclass
class SongAnalysis:
    """Beat grid and per-cell features of one song. Cell ``i`` covers ``i * CELL_SECONDS`` onwards."""

    duration: float
    beats: np.ndarray  # (b,) beat times in seconds
    mel: np.ndarray  # (n, MEL_BANDS) dB per cell
    chroma: np.ndarray  # (n, 12) pitch-class profile per cell, unit length
    onset: np.ndarray  # (n,) strongest onset per cell
    onset_envelope: np.ndarray  # (frames,) onset strength per STFT hop: beats are tracked again around a range
    tempo: float  # beats per minute
    level_db: float  # loudness of the whole song
    peak: float  # its loudest sample (magnitude): the ceiling re-used material is held under (see engine._write)
    tail_db: float  # loudness of its last half second: far below level_db means the song ends rather than stops

    @property
    def cell_count(self) -> int:
        return len(self.mel)

    @property
    def beat_period(self) -> float:
        """Median beat length in seconds."""
        if len(self.beats) > 2:
            return float(np.median(np.diff(self.beats)))
        return 60.0 / max(self.tempo, 1.0)

    @property
    def silent(self) -> bool:
        """Nothing in the song: a mix silent only because its channels cancel never gets here (its analysis
        refused it as CancellingChannels), so a silent mix means silent channels."""
        return self.level_db < SILENCE_DB

    @property
    def has_ending(self) -> bool:
        """The song fades or rings out at its end (rather than being cut off mid-bar)."""
        return self.tail_db < self.level_db - 12.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> "SongAnalysis":
        values = {}
        for f in fields(cls):
            value = np.asarray(arrays[f.name])
            values[f.name] = float(value) if value.ndim == 0 else value
        return cls(**values)


def analyse_file(path) -> SongAnalysis:
    """Beats and per-cell features of a song file, read a block at a time: what is held while it runs is the
    features and one block, never the decoded song (a 60-minute song would be 1.3 GB as float32 stereo)."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as song:
        return analyse_blocks(song.blocks(READ_FRAMES, dtype="float32", always_2d=True), song.samplerate)


def analyse(audio: np.ndarray, sample_rate: int) -> SongAnalysis:
    """Beats and per-cell features of ``audio`` (frames, channels) held in memory."""
    return analyse_blocks((audio[at:at + READ_FRAMES] for at in range(0, len(audio), READ_FRAMES)), sample_rate)


def analyse_blocks(blocks: Iterable[np.ndarray], sample_rate: int) -> SongAnalysis:
    """Beats and per-cell features of a song given as consecutive blocks of (frames, channels) float32 samples.

    Each block is mixed to mono, resampled to the analysis rate by a streaming resampler (the same samples as
    resampling the whole mix at once) and cut into STFT frames whose mel and chroma energies are all that is kept.
    """
    resample = resampler(sample_rate)
    spectra = _Spectra()
    frames, channels, peak = 0, _ChannelLevel(), 0.0
    for block in blocks:
        if not np.isfinite(block).all():  # they would spread through every feature and leave nothing to compare
            at = frames + int(np.argmin(np.isfinite(block).all(axis=1)))
            raise InvalidSamples(f"invalid samples (NaN or infinity), the first at {at / sample_rate:.3f} s")
        frames += len(block)
        if block.size:
            peak = max(peak, float(block.max()), -float(block.min()))
        mono = fades.mono(block)
        channels.feed(block, mono)
        spectra.feed(resample(mono, False))
    spectra.feed(resample(np.zeros(0, dtype=np.float32), True))
    duration = frames / sample_rate
    level_db = fades.power_db(spectra.energy / max(spectra.samples, 1))
    if level_db < SILENCE_DB <= (channels_db := channels.db(frames)) and channels.cancel():
        # Only the silence check looks at the channels: a song whose mix cancels is music, and called silent it
        # would send the producer looking for a muted track. Not analysed on: its mix holds no features to match.
        raise CancellingChannels(f"channels that cancel when mixed to mono (they are at {channels_db:.0f} dBFS, "
                                 f"their mix at {level_db:.0f} dBFS: one channel is another inverted); the embedded "
                                 f"engine listens to the mono mix: flip that channel's polarity and bounce again")
    tail_db = fades.power_db(np.mean(np.square(spectra.tail, dtype=np.float64))) if len(spectra.tail) else SILENCE_DB
    mel_power, chroma = spectra.finish(min_samples=N_FFT * 4)
    onset = onset_strength(power_to_db(mel_power, top_db=80.0))
    beats, tempo = track_beats(onset, level_db)
    cells = int(np.ceil(duration / CELL_SECONDS))
    cell_mel = _pool(mel_power.reshape(MEL_BANDS, 2, -1).mean(axis=1), cells)  # 64 bands -> 32 by pairs
    cell_chroma = _pool(chroma, cells)
    cell_chroma /= np.linalg.norm(cell_chroma, axis=1, keepdims=True) + 1e-9
    cell_onset = _pool(onset[None, :], cells, reduce=np.maximum)[:, 0]
    mel_db = power_to_db(cell_mel.T, top_db=None).T  # a fixed floor: no global max
    return SongAnalysis(duration=duration, beats=beats.astype(np.float64), mel=mel_db.astype(np.float32),
                        chroma=cell_chroma.astype(np.float32), onset=cell_onset.astype(np.float32),
                        onset_envelope=onset.astype(np.float32), tempo=tempo,
                        level_db=level_db, peak=peak, tail_db=tail_db)


class _ChannelLevel:
    """The mean of the channels' energies, as far as the silence check needs it (never above the song's).

    Measured only in blocks whose mix is silent (below SILENCE_DB), where channels that cancel would hide; a louder
    block counts its mix's energy, which the mean of its channels' is never below. A song whose mix is silent has
    few such blocks, so the figure is close where it decides. Measuring every block's channels cost ~10 % of an
    analysis (a 4-minute stereo song's: 0.6 s); this costs 5 ms.
    """

    def __init__(self):
        self.energy = 0.0
        # in the blocks whose mix is silent: its energy, and what channels with nothing in common would give it (the
        # mix is their mean); far under that is cancelling, not quiet (one channel of six, a side left empty)
        self.quiet_mix = self.unrelated = 0.0

    def feed(self, block: np.ndarray, mono: np.ndarray) -> None:
        mix = float(np.dot(mono, mono))
        if mix >= 10 ** (SILENCE_DB / 10) * len(mono) or block.ndim == 1 or block.shape[1] == 1:
            self.energy += mix
        else:
            channels = float(np.trace(block.T @ block))
            self.energy += channels / block.shape[1]
            self.quiet_mix += mix
            self.unrelated += channels / block.shape[1] ** 2

    def db(self, frames: int) -> float:
        return fades.power_db(self.energy / max(frames, 1))

    def cancel(self) -> bool:
        """The silent mix is at least ``CANCELLING_DB`` under what channels with nothing in common would give."""
        return self.quiet_mix < 10 ** (-CANCELLING_DB / 10) * self.unrelated


def to_analysis_rate(mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """A short mono stretch resampled at once to the analysis rate."""
    return resampler(sample_rate)(mono, True)


def stretch_onsets(samples: np.ndarray) -> np.ndarray:
    """The onset strength of a short mono stretch at the analysis rate, framed as a song's (centred frames, zeros
    beyond its ends) with its dB floored 80 dB below its own loudest band."""
    mel = _mel_filters() @ frame_power(np.pad(samples, N_FFT // 2))
    return onset_strength(power_to_db(mel, top_db=80.0))


def resampler(sample_rate: int):
    """``resample(mono, last)``: the next stretch of the mix at the analysis rate (``last`` flushes the end)."""
    if sample_rate == ANALYSIS_RATE:
        return lambda mono, last: mono
    import soxr

    stream = soxr.ResampleStream(sample_rate, ANALYSIS_RATE, 1, dtype="float32", quality="MQ")
    return stream.resample_chunk


class _Spectra:
    """Mel-band and chroma energy of each STFT frame of a mono signal fed piece by piece.

    Frames are centred (frame ``t`` covers ``t * HOP`` ± N_FFT / 2, zeros beyond the ends); only the samples of
    frames not yet complete are held, and each frame's 1025 power bins are reduced to 64 + 12 numbers at once.
    The signal's energy and its last half second are kept for its loudness and its ending.
    """

    def __init__(self):
        self.samples = 0  # fed so far
        self.energy = 0.0  # their sum of squares
        self.tail = np.zeros(0, dtype=np.float32)  # the last half second of them
        self._waiting: list[np.ndarray] = []  # fed, not yet cut into frames
        self._pending = np.zeros(N_FFT // 2, dtype=np.float32)  # the start of frames not yet complete
        self._mel: list[np.ndarray] = []
        self._chroma: list[np.ndarray] = []

    def feed(self, mono: np.ndarray) -> None:
        self.samples += len(mono)
        self.energy += float(np.sum(np.square(mono, dtype=np.float64)))
        self.tail = np.concatenate((self.tail, mono))[-(ANALYSIS_RATE // 2):]
        self._waiting.append(mono)
        if sum(map(len, self._waiting)) >= _FRAMES_AT_ONCE * HOP:
            self._frames()

    def finish(self, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """(mel power (2 * MEL_BANDS, frames), chroma (12, frames)) after zeros past the end; a signal shorter
        than ``min_samples`` is first padded to that length."""
        self._waiting.append(np.zeros(max(min_samples - self.samples, 0) + N_FFT // 2, dtype=np.float32))
        self._frames()
        return np.concatenate(self._mel, axis=1), np.concatenate(self._chroma, axis=1)

    def _frames(self) -> None:
        pending = np.concatenate((self._pending, *self._waiting))
        self._waiting.clear()
        count = (len(pending) - N_FFT) // HOP + 1 if len(pending) >= N_FFT else 0
        if count:
            bands = _band_filters() @ frame_power(pending[:(count - 1) * HOP + N_FFT])
            self._mel.append(bands[:2 * MEL_BANDS])
            self._chroma.append(bands[2 * MEL_BANDS:])
        self._pending = pending[count * HOP:].copy()  # not a view that keeps the whole stretch alive


def track_beats(onset: np.ndarray, level_db: float) -> tuple[np.ndarray, float]:
    """Beat times (seconds) and tempo (BPM) from an onset envelope."""
    if level_db < SILENCE_DB or not np.any(onset > 0):
        return np.zeros(0), 0.0
    tempo = estimate_tempo(onset)
    frames = np.unique(beat_frames(onset, tempo, FRAME_RATE))
    return frames * HOP / float(ANALYSIS_RATE), tempo


def estimate_tempo(onset: np.ndarray) -> float:
    """The song's tempo in BPM (autocorrelation tempogram, log-normal prior around 120 BPM)."""
    return _estimate_tempo(onset, FRAME_RATE)


def frame_power(samples: np.ndarray, hop: int = HOP) -> np.ndarray:
    """|STFT|^2 as float32 (1 + N_FFT / 2, frames) of periodic Hann frames of N_FFT every ``hop`` samples, the first
    at sample 0; transformed in float64, rounded to complex64 like librosa's ``stft`` of float32 audio."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::hop]
    window = hann(N_FFT)
    power = np.empty((N_FFT // 2 + 1, len(frames)), dtype=np.float32)
    for first in range(0, len(frames), _STFT_BLOCK):
        block = np.fft.rfft(frames[first:first + _STFT_BLOCK] * window, axis=1).astype(np.complex64)
        power[:, first:first + _STFT_BLOCK] = (np.abs(block) ** 2).T
    return power


def power_to_db(power: np.ndarray, top_db: float | None) -> np.ndarray:
    """10 log10(power) with a -100 dB floor and, with ``top_db``, no value more than that below the maximum
    (computed in place: a long song's per-frame bands are tens of MB)."""
    db = np.maximum(1e-10, power)
    np.log10(db, out=db)
    db *= 10.0
    if top_db is not None:
        np.maximum(db, db.max() - top_db, out=db)
    return db


def onset_strength(mel_db: np.ndarray) -> np.ndarray:
    """Spectral flux per frame (float32): the mean over mel bands of each band's rise in dB since the previous
    frame, delayed by that one frame plus N_FFT / (2 HOP), as a centred frame hears a sound half a window early."""
    flux = np.empty(max(mel_db.shape[1] - 1, 0), dtype=mel_db.dtype)
    for first in range(0, len(flux), _FRAMES_AT_ONCE):  # a block of frames at a time: no song-long temporaries
        stop = min(first + _FRAMES_AT_ONCE, len(flux))
        flux[first:stop] = np.maximum(0.0, mel_db[:, first + 1:stop + 1] - mel_db[:, first:stop]).mean(axis=0)
    delay = 1 + N_FFT // (2 * HOP)
    return np.pad(flux, (delay, 0))[:mel_db.shape[1]]


@lru_cache(maxsize=None)
def _mel_filters(bands: int = 2 * MEL_BANDS) -> np.ndarray:
    """(bands, 1 + N_FFT / 2) float32: triangles on the Slaney mel scale (linear below 1 kHz, logarithmic
    above) from 0 Hz to Nyquist, each scaled to unit area in Hz (``librosa.filters.mel``'s defaults)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(ANALYSIS_RATE / 2), bands + 2))
    bins = np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_RATE)
    width = np.diff(edges)
    rising = (bins[None, :] - edges[:-2, None]) / width[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / width[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=None)
def _band_filters() -> np.ndarray:
    """The mel filters, then the chroma filters: one matrix product per block of frames gives both."""
    return np.vstack((_mel_filters(), _chroma_filters()))


_SLANEY_HZ_PER_MEL = 200.0 / 3  # below 1 kHz
_SLANEY_KNEE_MEL = 1000.0 / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # above 1 kHz, each mel multiplies the frequency by exp(this)


def _hz_to_mel(hz: float) -> float:
    if hz < 1000.0:
        return hz / _SLANEY_HZ_PER_MEL
    return _SLANEY_KNEE_MEL + np.log(hz / 1000.0) / _SLANEY_LOG_STEP


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = _SLANEY_HZ_PER_MEL * mel
    above = mel >= _SLANEY_KNEE_MEL
    hz[above] = 1000.0 * np.exp(_SLANEY_LOG_STEP * (mel[above] - _SLANEY_KNEE_MEL))
    return hz


@lru_cache(maxsize=None)
def _chroma_filters() -> np.ndarray:
    """(12, 1 + N_FFT / 2) float32, C first: each FFT bin spreads over the pitch classes near its own as a Gaussian
    (narrower than the bin spacing at low frequencies allows), each bin's weights have unit length, and bins far
    from octave 5 (around 880 Hz, two octaves either side) are faded (Ellis's chroma; ``librosa.filters.chroma``
    with tuning 0)."""
    hz = np.linspace(0, ANALYSIS_RATE, N_FFT, endpoint=False)[1:]
    pitch = 12 * np.log2(hz / (440.0 / 16))  # semitones above A0 (27.5 Hz)
    pitch = np.concatenate(([pitch[0] - 18.0], pitch))  # DC: 1.5 octaves below the first bin
    width = np.concatenate((np.maximum(np.diff(pitch), 1.0), [1]))
    distance = np.subtract.outer(pitch, np.arange(12.0)).T  # (12, N_FFT) semitones from each pitch class
    distance = np.remainder(distance + 6.0 + 120.0, 12) - 6.0  # wrapped into -6..6
    weights = np.exp(-0.5 * (2 * distance / width[None, :]) ** 2)
    length = np.sum(weights ** 2, axis=0, keepdims=True) ** 0.5
    length[length < np.finfo(length.dtype).tiny] = 1.0
    weights = weights / length
    weights *= np.exp(-0.5 * ((pitch / 12 - 5.0) / 2.0) ** 2)[None, :]
    weights = np.roll(weights, -3, axis=0)  # rows from C instead of A
    weights = np.ascontiguousarray(weights[:, :N_FFT // 2 + 1], dtype=np.float32)
    weights.flags.writeable = False
    return weights


def without_range(analysis: SongAnalysis, start: float, end: float) -> SongAnalysis:
    """The analysis as if start..end were unknown: beats and tempo tracked again with that range's onsets muted.

    The beat tracker looks at the whole song at once, so beats elsewhere could otherwise depend on the range's
    own audio; with its onsets muted, nothing the search uses does. Costs about a tenth of a second.
    """
    guard = N_FFT / ANALYSIS_RATE
    lo = max(int((start - guard) * ANALYSIS_RATE / HOP), 0)
    hi = int(np.ceil((end + guard) * ANALYSIS_RATE / HOP))
    onset = analysis.onset_envelope.copy()
    onset[lo:hi] = 0.0
    beats, tempo = track_beats(onset, analysis.level_db)
    return replace(analysis, beats=beats, tempo=tempo, onset_envelope=onset)


def _pool(frames: np.ndarray, cells: int, reduce=np.add) -> np.ndarray:
    """(bands, frames) -> (cells, bands), combining FRAMES_PER_CELL frames per cell (mean, or max with np.maximum)."""
    need = cells * FRAMES_PER_CELL
    if frames.shape[1] < need:
        frames = np.pad(frames, ((0, 0), (0, need - frames.shape[1])), mode="edge")
    grouped = frames[:, :need].reshape(frames.shape[0], cells, FRAMES_PER_CELL)
    pooled = grouped.max(axis=2) if reduce is np.maximum else grouped.mean(axis=2)
    return np.ascontiguousarray(pooled.T)


