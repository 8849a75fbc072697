"""What the embedded engine knows about a song: its beats, and what every ~46 ms of it sounds like.

One STFT of the mono mix at 22.05 kHz feeds everything (mel bands, onset strength, chroma), which keeps a
4-minute song's analysis around half a second once the worker is warm. Beats come from librosa's tracker and
place joins; the search itself compares short *cells* (two STFT frames) rather than beats, because a tracker's
beat phase can differ between two repetitions of the same passage while the cells line up whatever it decided.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

ANALYSIS_VERSION = 6  # part of the cache key: bump when the analysis changes
ANALYSIS_RATE = 22050
HOP = 512
N_FFT = 2048
FRAMES_PER_CELL = 2
CELL_SECONDS = HOP * FRAMES_PER_CELL / ANALYSIS_RATE
MEL_BANDS = 32
SILENCE_DB = -60.0


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


def mono_for_analysis(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono mix at the analysis rate."""
    import soxr

    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sample_rate != ANALYSIS_RATE:
        mono = soxr.resample(mono, sample_rate, ANALYSIS_RATE, quality="MQ")
    return mono


def analyse(audio: np.ndarray, sample_rate: int) -> SongAnalysis:
    """Beats and per-cell features of ``audio`` (frames, channels)."""
    import librosa

    duration = len(audio) / sample_rate
    mono = mono_for_analysis(audio, sample_rate)
    level_db = _db(np.mean(np.square(mono, dtype=np.float64)))
    tail = mono[-ANALYSIS_RATE // 2:]
    tail_db = _db(np.mean(np.square(tail, dtype=np.float64))) if len(tail) else SILENCE_DB
    if len(mono) < N_FFT * 4:
        mono = np.pad(mono, (0, N_FFT * 4 - len(mono)))
    power = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel_power = librosa.feature.melspectrogram(S=power, sr=ANALYSIS_RATE, n_mels=64)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel_power, top_db=80.0), sr=ANALYSIS_RATE,
                                         hop_length=HOP)
    beats, tempo = track_beats(onset, level_db)
    chroma = librosa.feature.chroma_stft(S=power, sr=ANALYSIS_RATE, tuning=0.0, norm=None)
    cells = int(np.ceil(duration / CELL_SECONDS))
    cell_mel = _pool(mel_power.reshape(MEL_BANDS, 2, -1).mean(axis=1), cells)  # 64 bands -> 32 by pairs
    cell_chroma = _pool(chroma, cells)
    cell_chroma /= np.linalg.norm(cell_chroma, axis=1, keepdims=True) + 1e-9
    cell_onset = _pool(onset[None, :], cells, reduce=np.maximum)[:, 0]
    mel_db = librosa.power_to_db(cell_mel.T, ref=1.0, amin=1e-10, top_db=None).T  # a fixed floor: no global max
    return SongAnalysis(duration=duration, beats=beats.astype(np.float64), mel=mel_db.astype(np.float32),
                        chroma=cell_chroma.astype(np.float32), onset=cell_onset.astype(np.float32),
                        onset_envelope=onset.astype(np.float32), tempo=tempo,
                        level_db=level_db, tail_db=tail_db)


def track_beats(onset: np.ndarray, level_db: float) -> tuple[np.ndarray, float]:
    """Beat times (seconds) and tempo (BPM) from an onset envelope, with librosa's tempo estimate and tracker."""
    import librosa

    if level_db < SILENCE_DB or not np.any(onset > 0):
        return np.zeros(0), 0.0
    tempo = estimate_tempo(onset)
    _, frames = librosa.beat.beat_track(onset_envelope=onset, sr=ANALYSIS_RATE, hop_length=HOP, bpm=tempo,
                                        trim=False)
    frames = np.unique(np.asarray(frames, dtype=int))
    return librosa.frames_to_time(frames, sr=ANALYSIS_RATE, hop_length=HOP).astype(np.float64), tempo


def estimate_tempo(onset: np.ndarray, window: int = 384, stride: int = 8) -> float:
    """librosa's static tempo estimate (autocorrelation tempogram, log-normal prior around 120 BPM), with the
    tempogram taken at every ``stride``-th frame instead of every frame: the average barely moves and a
    4-minute song costs 10 ms instead of 100 (this runs again for every inpaint job)."""
    import librosa
    import scipy.signal

    padded = np.pad(onset, window // 2, mode="linear_ramp")
    frames = librosa.util.frame(padded, frame_length=window, hop_length=stride)
    frames = frames * scipy.signal.get_window("hann", window)[:, None]
    tempogram = librosa.util.normalize(librosa.autocorrelate(frames, axis=0), norm=np.inf, axis=0)
    tg = tempogram.mean(axis=1, keepdims=True)
    return float(np.atleast_1d(librosa.feature.tempo(tg=tg, sr=ANALYSIS_RATE, hop_length=HOP,
                                                     aggregate=None))[0])


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


def _db(power: float) -> float:
    return float(10.0 * np.log10(max(float(power), 1e-12)))
