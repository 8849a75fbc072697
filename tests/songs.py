"""Generated test songs: the demo song (drums, bass, chords, lead with exact repeats) and songs with nothing to
re-use. Deterministic, any sample rate, channel count and length, nothing downloaded. And real music: a stretch of
a song Debian's planetblupi-music-ogg installs (a real master, lossy source)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.demo_song import make_song, make_song_array

__all__ = ["make_song", "make_song_array", "make_noise_array", "make_silence_array", "write", "real_music"]

PLANETBLUPI = Path("/usr/share/planetblupi/music")


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


def real_music(name: str, seconds: float, start: float = 0.0) -> tuple[np.ndarray, int]:
    """``seconds`` of planetblupi's ``name`` (music001.ogg...) from ``start``, float32 (frames, channels), and its
    rate. Skips the test without the package, and fails it when CI=true (CI must run it)."""
    path = PLANETBLUPI / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing: apt-get install planetblupi-music-ogg, CI must run this test")
        pytest.skip(f"{path} is missing (planetblupi-music-ogg)")
    with sf.SoundFile(str(path)) as f:
        f.seek(int(start * f.samplerate))
        return f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True), f.samplerate
