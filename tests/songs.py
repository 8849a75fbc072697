"""Generated test songs: the demo song (drums, bass, chords, lead with exact repeats) and songs with nothing to
re-use. Deterministic, any sample rate, channel count and length, nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.demo_song import make_song, make_song_array

__all__ = ["make_song", "make_song_array", "make_noise_array", "make_silence_array", "write"]


def make_noise_array(seconds: float, sample_rate: int = 44100, channels: int = 2, seed: int = 0
                     ) -> tuple[np.ndarray, int]:
    """White noise: every moment is as unlike every other as chance allows, so nothing can be re-used."""
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((int(round(seconds * sample_rate)), channels))).astype(np.float32), sample_rate


def make_silence_array(seconds: float, sample_rate: int = 44100, channels: int = 2) -> tuple[np.ndarray, int]:
    """Digital silence."""
    return np.zeros((int(round(seconds * sample_rate)), channels), dtype=np.float32), sample_rate


def write(path: Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> Path:
    """Write frames as a WAV (or FLAC/OGG by suffix) and return the path.

    Written in blocks: libsndfile's Vorbis encoder has crashed here when handed minutes of audio in one call.
    """
    with sf.SoundFile(str(path), "w", sample_rate, audio.shape[1], subtype=subtype) as out:
        for at in range(0, len(audio), 8192):
            out.write(audio[at:at + 8192])
    return Path(path)
