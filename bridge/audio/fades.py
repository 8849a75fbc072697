"""Crossfades, levels and loudness matching shared by every backend's joins, the engine's analysis and the pictures."""

from __future__ import annotations

import numpy as np


def equal_power_curves(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in gains whose squares sum to 1, shaped (frames, 1) to broadcast over channels."""
    phase = (np.arange(frames, dtype=np.float64) + 0.5) / max(frames, 1) * (np.pi / 2)
    return np.cos(phase)[:, None].astype(np.float32), np.sin(phase)[:, None].astype(np.float32)


def crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Equal-power crossfade of two equally long blocks (for uncorrelated material; keeps loudness steady)."""
    if outgoing.shape != incoming.shape:
        raise ValueError(f"crossfade blocks differ in shape: {outgoing.shape} vs {incoming.shape}")
    fade_out, fade_in = equal_power_curves(len(outgoing))
    return outgoing * fade_out + incoming * fade_in


def mono(audio: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The channels' mean of (frames, channels) audio (1-D audio is returned as ``dtype``), summed channel by channel:
    numpy's mean over a short last axis is many times slower."""
    if audio.ndim == 1:
        return audio.astype(dtype)
    out = np.array(audio[:, 0], dtype=dtype)
    for channel in range(1, audio.shape[1]):
        out += audio[:, channel]
    return out / dtype(audio.shape[1]) if audio.shape[1] > 1 else out


def power_db(power: float) -> float:
    """A mean-square power in dB, floored at -120 dB (digital silence)."""
    return float(10.0 * np.log10(max(float(power), 1e-12)))


def level_db(block: np.ndarray) -> float:
    """The RMS level of ``block`` in dB (-120 for silence or no samples)."""
    return power_db(rms(block) ** 2)


def rms(block: np.ndarray) -> float:
    """Root-mean-square level over all channels."""
    if block.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))


def match_gain(material: np.ndarray, reference: np.ndarray, max_db: float = 12.0) -> float:
    """Gain that brings ``material`` to the RMS level of ``reference``, bounded to +/- max_db."""
    have, want = rms(material), rms(reference)
    if have < 1e-9 or want < 1e-9:
        return 1.0
    limit = 10 ** (max_db / 20)
    return float(np.clip(want / have, 1 / limit, limit))
