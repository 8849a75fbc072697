"""A small synthetic song (drums, bass, chords, lead) with exact repeats, for the demo command, tests and benches.

Every bar is rendered from its pattern alone and placed at a whole-sample position with a constant bar length, so
two bars with the same pattern (and the same pattern before them, whose tails ring into them) are identical sample
for sample. After a 4-bar intro, sections (8 bars, or 4 in songs under 90 s) follow a seeded pop form (verse,
chorus, bridge) that repeats, with a drum fill at each section's last bar and a held final chord so the song ends
rather than stops. Nothing is downloaded.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

_ROOTS = {"A": [0, 5, 7, 3], "B": [8, 10, 0, 7], "C": [5, 7, 3, 10]}  # semitones above the key, one per bar
_MINOR = (0, 3, 7, 10)
_MAJOR = (0, 4, 7, 11)


def make_song_array(seconds: float = 30.0, sample_rate: int = 44100, channels: int = 2, bpm: float = 120.0,
                    seed: int = 0) -> tuple[np.ndarray, int]:
    """The song as float32 frames (frames, channels) at ``sample_rate``; exactly ``round(seconds * sample_rate)``."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be >= 8000, got {sample_rate}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if not 40 <= bpm <= 240:
        raise ValueError(f"bpm must be in 40..240, got {bpm}")
    rng = np.random.default_rng(seed)
    total = int(round(seconds * sample_rate))
    beat = int(round(60.0 / bpm * sample_rate))
    bar = 4 * beat
    key = 45 + int(rng.integers(0, 7))  # MIDI note of the key's bass root (A2..E3)
    plan = _section_plan(int(np.ceil(total / bar)), rng, section_bars=8 if seconds >= 90 else 4)
    leads = {name: rng.integers(0, 4, size=(4, 8)) for name in _ROOTS}  # a seeded riff per section type
    tail = 2 * bar
    stems = np.zeros((3, total + tail), dtype=np.float64)  # drums, bass+chords, lead: panned differently
    for index, (section, bar_in_section, last_bar) in enumerate(plan):
        at = index * bar
        if at >= total:
            break
        ending = at + bar >= total
        parts = _render_bar(section, bar_in_section, ending, last_bar, key, beat, sample_rate, seed,
                            tuple(map(tuple, leads[section])) if section in leads else None)
        for stem, block in enumerate(parts):
            stems[stem, at:at + len(block)] += block[:len(stems[stem]) - at]
    stems = stems[:, :total]
    pans = np.array([[0.5, 0.5], [0.62, 0.38], [0.35, 0.65]])  # left/right gains per stem
    if channels == 1:
        audio = stems.sum(axis=0)[:, None]
    else:
        lr = stems.T @ pans  # (frames, 2)
        audio = np.stack([lr[:, c % 2] for c in range(channels)], axis=1)
    audio *= 0.8 / max(float(np.max(np.abs(audio))), 1e-9)
    return audio.astype(np.float32), sample_rate


def make_song(path: Path, seconds: float = 30.0, sample_rate: int = 44100, channels: int = 2, bpm: float = 120.0,
              seed: int = 0) -> Path:
    """Write the song as a 24-bit WAV at ``path`` (creating its folder) and return the path."""
    import soundfile as sf

    audio, sr = make_song_array(seconds, sample_rate, channels, bpm, seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sr, subtype="PCM_24")
    return path


_FORMS = (("A", "B", "A", "B", "C", "B"), ("A", "A", "B", "A", "B", "C"), ("A", "B", "C", "A", "B", "B"))


def _section_plan(bars: int, rng: np.random.Generator, section_bars: int) -> list[tuple[str, int, bool]]:
    """(section type, bar within the section, is the section's last bar) for each bar: a 4-bar intro, then a
    seeded pop form of sections (verse, chorus, bridge) repeated for as long as the song lasts."""
    form = _FORMS[int(rng.integers(0, len(_FORMS)))]
    plan = [("I", b, b == 3) for b in range(4)]
    while len(plan) < bars:
        for section in form:
            plan.extend((section, b, b == section_bars - 1) for b in range(section_bars))
    return plan[:max(bars, 1)]


@lru_cache(maxsize=256)
def _render_bar(section: str, bar_in_section: int, ending: bool, last_bar: bool, key: int, beat: int, sr: int,
                seed: int, lead: tuple | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drums, harmony and lead for one bar, each a block of 3 bars (the bar plus its ringing tail)."""
    length = 12 * beat
    drums, harmony, melody = (np.zeros(length) for _ in range(3))
    roots = _ROOTS.get(section, _ROOTS["A"])
    root = key + roots[bar_in_section % 4]
    chord = _MINOR if section != "C" else _MAJOR
    if ending:
        _add(harmony, 0, _tone(_chord_freqs(key + 12, _MINOR), 4 * beat / sr, sr, decay=1.2, bright=0.3))
        _add(drums, 0, _kick(sr, seed))
        return drums, harmony, melody
    eighth = beat // 2
    for step in range(8):  # drums on eighths
        at = step * eighth
        fill = last_bar and step >= 5 and section != "I"
        if step in (0, 4) or (step == 7 and section == "B"):
            _add(drums, at, _kick(sr, seed))
        if step in (2, 6) or (fill and step in (5, 7)):
            _add(drums, at, _snare(sr, seed) * (0.7 if fill and step in (5, 7) else 1.0))
        if section != "I":
            _add(drums, at, _hat(sr, seed) * (0.6 if step % 2 else 0.9))
    bass_steps = (0, 3, 4, 6) if section != "B" else (0, 2, 4, 5, 6)
    for step in bass_steps:
        _add(harmony, step * eighth, _tone([_hz(root)], 0.9 * eighth / sr, sr, decay=0.25, bright=0.6) * 0.9)
    _add(harmony, 0, _tone(_chord_freqs(root + 12, chord), 4 * beat / sr, sr, decay=2.5, bright=0.2) * 0.35)
    if lead is not None and section != "I":
        scale = (0, 3, 5, 7)
        for step in range(8):
            if (step + bar_in_section) % 3 == 2:
                continue  # rests make the riff rhythmic
            note = root + 24 + scale[lead[bar_in_section % 4][step]]
            _add(melody, step * eighth, _tone([_hz(note)], 0.8 * eighth / sr, sr, decay=0.3, bright=0.5) * 0.3)
    return drums, harmony, melody


def _add(block: np.ndarray, at: int, sound: np.ndarray) -> None:
    end = min(len(block), at + len(sound))
    block[at:end] += sound[:end - at]


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _chord_freqs(root: int, shape: tuple[int, ...]) -> list[float]:
    return [_hz(root + step) for step in shape]


def _tone(freqs: list[float], seconds: float, sr: int, decay: float, bright: float) -> np.ndarray:
    """Notes with a few harmonics, a short attack and an exponential decay, released at ``seconds``."""
    n = int((seconds + 0.15) * sr)
    t = np.arange(n) / sr
    wave = np.zeros(n)
    for f in freqs:
        for h in range(1, 5):
            if f * h < sr / 2.2:
                wave += bright ** (h - 1) * np.sin(2 * np.pi * f * h * t) / h
    env = np.minimum(t / 0.005, 1.0) * np.exp(-t / decay)
    release = np.clip((seconds + 0.15 - t) / 0.15, 0.0, 1.0)
    return wave * env * release / max(len(freqs), 1)


@lru_cache(maxsize=8)
def _kick(sr: int, seed: int) -> np.ndarray:
    t = np.arange(int(0.3 * sr)) / sr
    freq = 45 + 75 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12) * 1.2


@lru_cache(maxsize=8)
def _snare(sr: int, seed: int) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    noise = np.random.default_rng(seed + 101).standard_normal(len(t))
    noise = np.diff(noise, prepend=0.0)  # tilt towards highs
    return (0.35 * noise * np.exp(-t / 0.06) + 0.5 * np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05))


@lru_cache(maxsize=8)
def _hat(sr: int, seed: int) -> np.ndarray:
    t = np.arange(int(0.06 * sr)) / sr
    noise = np.random.default_rng(seed + 202).standard_normal(len(t))
    noise = np.diff(np.diff(noise, prepend=0.0), prepend=0.0)
    return 0.08 * noise * np.exp(-t / 0.015)
