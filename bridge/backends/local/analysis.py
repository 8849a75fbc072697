"""What the embedded engine knows about a song: its beats and, for each beat, what it sounds like.

One STFT of the mono mix at 22.05 kHz feeds everything (mel bands, onset strength, chroma, MFCC), which keeps a
4-minute song's analysis well under a second once the worker is warm. Beats come from librosa's tracker; features
are summarised per beat so that the search compares beats, not frames.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

ANALYSIS_VERSION = 3  # part of the cache key: bump when the analysis changes
ANALYSIS_RATE = 22050
HOP = 512
N_FFT = 2048
SUBDIVISIONS = 4  # onset strength is kept per quarter of a beat: the rhythm inside the beat
SILENCE_DB = -60.0


@dataclass
class SongAnalysis:
    """Beat grid and per-beat features of one song. Beat ``k`` spans ``beats[k]..beats[k + 1]``."""

    duration: float
    beats: np.ndarray  # (n + 1,) seconds: n beat starts, then the end of the last beat
    chroma: np.ndarray  # (n, 12) unit-length pitch-class profile per beat
    timbre: np.ndarray  # (n, 12) MFCC 1..12 per beat
    loudness: np.ndarray  # (n,) dB per beat
    rhythm: np.ndarray  # (n, SUBDIVISIONS) onset strength per quarter beat, over the song's mean onset strength
    tempo: float  # beats per minute
    level_db: float  # loudness of the whole song
    tail_db: float  # loudness of its last half second: far below level_db means the song ends rather than stops

    @property
    def beat_count(self) -> int:
        return len(self.beats) - 1

    @property
    def beat_period(self) -> float:
        """Median beat length in seconds."""
        return float(np.median(np.diff(self.beats))) if len(self.beats) > 1 else 60.0 / max(self.tempo, 1.0)

    @property
    def silent(self) -> bool:
        return self.level_db < SILENCE_DB

    @property
    def has_ending(self) -> bool:
        """The song fades or rings out at its end (rather than being cut off mid-bar)."""
        return self.tail_db < self.level_db - 20.0

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> "SongAnalysis":
        values = {}
        for f in fields(cls):
            value = arrays[f.name]
            values[f.name] = float(value) if value.ndim == 0 else np.asarray(value)
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
    """Beats and per-beat features of ``audio`` (frames, channels)."""
    import librosa

    duration = len(audio) / sample_rate
    mono = mono_for_analysis(audio, sample_rate)
    level_db = _db(np.mean(np.square(mono, dtype=np.float64)))
    tail = mono[-ANALYSIS_RATE // 2:]
    tail_db = _db(np.mean(np.square(tail, dtype=np.float64))) if len(tail) else SILENCE_DB
    if len(mono) < N_FFT * 4:
        mono = np.pad(mono, (0, N_FFT * 4 - len(mono)))
    power = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=ANALYSIS_RATE, n_mels=64), top_db=80.0)
    onset = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_RATE, hop_length=HOP)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=onset, sr=ANALYSIS_RATE, hop_length=HOP))[0])
    if level_db < SILENCE_DB or not np.any(onset > 0):
        beat_frames = np.zeros(0, dtype=int)
    else:
        _, beat_frames = librosa.beat.beat_track(onset_envelope=onset, sr=ANALYSIS_RATE, hop_length=HOP,
                                                 bpm=tempo, trim=False)
    frames = power.shape[1]
    beat_frames = np.unique(np.clip(np.asarray(beat_frames, dtype=int), 0, frames - 1))
    beat_frames = beat_frames[np.diff(beat_frames, append=frames) > 1]  # a beat needs at least two frames
    beats = np.append(librosa.frames_to_time(beat_frames, sr=ANALYSIS_RATE, hop_length=HOP), duration)
    bounds = np.append(beat_frames, frames)
    chroma = librosa.feature.chroma_stft(S=power, sr=ANALYSIS_RATE, tuning=0.0, norm=None)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=13)[1:]
    energy = power.sum(axis=0)
    starts = bounds[:-1]
    beat_chroma = np.add.reduceat(chroma, starts, axis=1).T
    beat_chroma /= np.linalg.norm(beat_chroma, axis=1, keepdims=True) + 1e-9
    counts = np.diff(bounds)[:, None]
    beat_timbre = np.add.reduceat(mfcc, starts, axis=1).T / counts
    beat_loud = np.array([_db(p) for p in np.add.reduceat(energy, starts) / counts[:, 0] / (N_FFT * N_FFT / 4)])
    # onset strength per quarter beat: the max over each quarter keeps the rhythm's shape
    onset = np.pad(onset, (0, max(0, frames - len(onset))))
    edges = np.rint(starts[:, None] + np.diff(bounds)[:, None] * np.arange(SUBDIVISIONS)[None, :] / SUBDIVISIONS)
    quarter_starts = np.minimum(edges.astype(int).ravel(), frames - 1)
    beat_rhythm = np.maximum.reduceat(onset, quarter_starts).reshape(-1, SUBDIVISIONS) / (float(np.mean(onset)) + 1e-6)
    beat_chroma, beat_timbre = beat_chroma.astype(np.float32), beat_timbre.astype(np.float32)
    beat_loud, beat_rhythm = beat_loud.astype(np.float32), beat_rhythm.astype(np.float32)
    return SongAnalysis(duration=duration, beats=beats, chroma=beat_chroma, timbre=beat_timbre,
                        loudness=beat_loud, rhythm=beat_rhythm, tempo=tempo, level_db=level_db, tail_db=tail_db)


def _db(power: float) -> float:
    return float(10.0 * np.log10(max(float(power), 1e-12)))
