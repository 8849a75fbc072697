"""Continuing the music with a texture of its own sound, for an extension where no passage of the song fits.

Through-composed and ambient cues often offer no passage that continues the music before the point, yet that
music holds one sound for many seconds. A texture plays that sound on: grains (stretches of a few seconds, each
faded in and out with a sine window) of the music before the point, ``LAYERS`` sounding at once and each starting
a fraction of a grain after the previous, so every moment is a blend and no grain boundary is heard. Grains are
drawn in no fixed order from the stretches whose mean spectrum is closest to the last seconds before the point,
each brought to the level of those seconds. No stretch is heard three times within ``LOOP_BARS`` bars (the
music before the point counts as heard once), so the texture has no repetition period. The renderer ends it
with the fade over the last beat that the walks use.

Its confidence is how steady the music before the point is (``steadiness``): the caller offers a texture only
when no passage reached ``TEXTURE_BELOW``, and ranks it with the passages like any candidate (``agreement``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.audio.fades import equal_power_curves
from bridge.backends.local.analysis import CELL_SECONDS, SongAnalysis
from bridge.backends.local.extend import LOOP_BARS
from bridge.backends.local.joins import level_gain
from bridge.backends.local.plans import Passage, Plan
from bridge.backends.local.render import Rendering, _ending, _fade

TEXTURE_BELOW = 0.35  # a texture is offered when no passage's rendered confidence reaches this
GRAIN_BARS = 2  # a grain's length, within GRAIN_SECONDS
GRAIN_SECONDS = (3.0, 6.0)
LAYERS = 2  # grains sounding at once
POOL_SECONDS = 40.0  # grains come from this far before the point at least, more for a long texture
SOUND_SECONDS = 6.0  # the music whose sound (mean spectrum) and level the texture keeps
STEADY_SECONDS = 12.0  # the music whose steadiness is the texture's confidence
STEADY_CHANGE_DB = 6.0  # a half-second to half-second spectral change this large counts as not steady at all
ENTRY_SECONDS = 1.0  # the longest crossfade from the music before the point into the texture
STEP_SECONDS = 0.25  # the grid of grain sources
CHOICE_DB = 0.3  # grains are drawn at random among stretches whose sound is this close to the best


@dataclass
class Texture(Plan):
    """An extension plan whose passages are overlapping grains (rendered by ``render_texture``)."""

    grain: float = 0.0
    layers: int = LAYERS
    steadiness: float = 0.0

    def describe(self, passages: list[dict]) -> str:
        """What a producer hears, for the manifest: which audio, and that it is not a passage played on."""
        lo = min(p["from"] for p in passages)
        hi = max(p["from"] + p["until"] - p["at"] for p in passages)
        return (f"a texture, not a passage of the song: {len(passages)} overlapping grains of {self.grain:.1f} s "
                f"({self.layers} sounding at once) of the song's own audio at {lo:.1f}-{hi:.1f} s, in no fixed order, "
                f"crossfaded and level-matched; offered because no passage fits the music before the point")


def steadiness(analysis: SongAnalysis, after: float, seconds: float = STEADY_SECONDS) -> float:
    """How steady the music before ``after`` sounds, 0..1: one minus the mean change of its spectrum (dB) from one
    half-second to the next, over ``STEADY_CHANGE_DB``."""
    hi = min(int(after / CELL_SECONDS), len(analysis.mel))
    mel = analysis.mel[max(hi - int(seconds / CELL_SECONDS), 0):hi]
    width = max(int(round(0.5 / CELL_SECONDS)), 1)
    blocks = len(mel) // width
    if blocks < 4:
        return 0.0
    means = mel[len(mel) - blocks * width:].reshape(blocks, width, -1).mean(axis=1)
    change = float(np.mean(np.sqrt(np.mean(np.diff(means, axis=0) ** 2, axis=1))))
    return float(np.clip(1.0 - change / STEADY_CHANGE_DB, 0.0, 1.0))


def plan_texture(analysis: SongAnalysis, after: float, duration: float) -> Texture | None:
    """A texture continuing the music before ``after`` for ``duration`` seconds; None when there is too little
    music before the point to draw its grains without playing a stretch three times within ``LOOP_BARS`` bars."""
    bar = 4 * analysis.beat_period
    grain = float(np.clip(GRAIN_BARS * bar, *GRAIN_SECONDS))
    hop = grain / LAYERS
    if after < 2 * grain + ENTRY_SECONDS:
        return None
    # enough material that most stretches are used once: a stretch heard again is a loop's beginning
    pool_lo = max(after - max(POOL_SECONDS, 1.2 * LAYERS * duration), 0.0)
    steps = np.arange(pool_lo, after, STEP_SECONDS)
    width = int(np.ceil(grain / STEP_SECONDS)) + 1  # the steps a grain touches
    starts = steps[:max(len(steps) - width + 1, 0)]
    if len(starts) == 0:
        return None
    cells = np.clip((steps / CELL_SECONDS).astype(int), 0, len(analysis.mel) - 1)
    sound = _mean_spectrum(analysis, after - SOUND_SECONDS, after)
    # the mean spectrum of every grain-long stretch, from running sums over the grid
    running = np.concatenate([np.zeros((1, analysis.mel.shape[1])), np.cumsum(analysis.mel[cells], axis=0)])
    means = (running[width:width + len(starts)] - running[:len(starts)]) / width
    distance = np.sqrt(np.mean((means - sound) ** 2, axis=1))
    rng = np.random.default_rng(int(round(after * 1000)) + int(round(duration)))
    # every hearing of each step of source, the music before the point included; unused slots are NaN
    heard = np.full((len(steps), 2 * LAYERS + 2), np.nan)
    heard[:, 0] = steps
    guard = LOOP_BARS * bar + 1.0  # a second more: hearings are placed on a grid
    offsets = np.arange(width) * STEP_SECONDS
    played = np.arange(len(starts))[:, None] + np.arange(width)[None, :]  # the steps each start would play
    grains: list[Passage] = []
    at = after - ENTRY_SECONDS - grain + hop  # every layer sounds by the time the entry crossfade begins
    while at < after + duration:
        times = np.sort(np.concatenate([heard[played], (at + offsets)[None, :, None].repeat(len(starts), 0)],
                                       axis=2), axis=2)
        close = np.diff(times, axis=2) < guard  # NaN compares False
        loops = np.any(close[:, :, 1:] & close[:, :, :-1], axis=2)  # three hearings each within the guard
        score = distance + rng.uniform(0.0, CHOICE_DB, len(starts)) + 100.0 * loops.mean(axis=1)
        if grains:  # the next grain is not the stretch just heard
            score[np.abs(starts - grains[-1].source_start) < hop] += 100.0
        pick = int(np.argmin(score))
        if loops[pick].any():
            return None  # too little music before the point for a texture that repeats nothing
        rows = played[pick]
        slot = np.argmin(np.nan_to_num(heard[rows], nan=-np.inf), axis=1)  # a free slot, else the oldest hearing
        heard[rows, slot] = at + offsets
        grains.append(Passage(start=at, end=min(at + grain, after + duration), lag=float(starts[pick]) - at))
        at += hop
    steady = steadiness(analysis, after)
    return Texture(passages=grains, join_costs=[1.0 - steady], ending="fade", has_exit=False,
                   grain=grain, layers=LAYERS, steadiness=steady)


def _mean_spectrum(analysis: SongAnalysis, lo: float, hi: float) -> np.ndarray:
    a = max(int(lo / CELL_SECONDS), 0)
    b = max(min(int(hi / CELL_SECONDS), len(analysis.mel)), a + 1)
    return analysis.mel[a:b].mean(axis=0)


def render_texture(source, sample_rate: int, texture: Texture, start: float, end: float, span: tuple[int, int],
                   beat: float) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The span's audio with start..end played as the texture; returns (audio, joins, passages) for the manifest.

    ``lay_out_texture`` and its ``Rendering.blocks`` make the same audio without holding it whole.
    """
    rendering = lay_out_texture(source, sample_rate, texture, start, end, span, beat)
    return rendering.audio(), rendering.joins, rendering.passages


def lay_out_texture(source, sample_rate: int, texture: Texture, start: float, end: float, span: tuple[int, int],
                    beat: float) -> Rendering:
    """The span's audio with start..end played as the texture, laid out: each grain's gain set.

    The one join is the entry: an equal-power crossfade (the texture is not the same waveform as what it follows)
    of up to ``ENTRY_SECONDS`` before the point. The passages are the grains, marked ``"texture": true``.
    """
    f0, f1 = span
    first, last = int(round(start * sample_rate)), int(round(end * sample_rate))
    level = int(round(SOUND_SECONDS * sample_rate))
    reference = source.read(max(first - level, 0), min(level, first))
    grain = int(round(texture.grain * sample_rate))
    # sine windows 1 / layers of a grain apart sum to layers / 2 in power: every moment is at the grains' level
    window = (np.sin(np.pi * (np.arange(grain) + 0.5) / grain) * np.sqrt(2.0 / texture.layers)).astype(np.float32)
    stream_lo = int(round(texture.passages[0].start * sample_rate))
    passages, grains = [], []  # grains: (first output frame, frames, first source frame, gain)
    fade = max(0, min(int(round(ENTRY_SECONDS * sample_rate)), first - f0, first - stream_lo))
    heard_from = (first - fade) / sample_rate  # the texture is heard from where the entry crossfade begins
    for grain_plan in texture.passages:
        at = int(round(grain_plan.start * sample_rate))
        frames = min(int(round(grain_plan.end * sample_rate)) - at, grain)
        read_at = at + int(round(grain_plan.lag * sample_rate))
        gain = level_gain(reference, source.read(read_at, frames))
        grains.append((at, frames, read_at, gain))
        if at + frames > first - fade:  # what is heard of each grain
            skip = max(heard_from - grain_plan.start, 0.0)
            passages.append({"at": round(grain_plan.start + skip, 4), "until": round((at + frames) / sample_rate, 4),
                             "from": round(grain_plan.source_start + skip, 4), "gain_db": round(20 * np.log10(gain), 2),
                             "texture": True})
    del reference
    joins = []
    if fade:  # an extension always has music before its point to join from (LocalBackend.check)
        joins.append({"at": round(start, 4), "from": passages[0]["from"], "crossfade": round(fade / sample_rate, 4),
                      "confidence": round(texture.steadiness, 3), "correlation": 0.0, "gain_db": 0.0})
    curves = equal_power_curves(fade) if fade else None
    ending = _ending(last - f0, int(round(beat * sample_rate)))
    channels = source.channels

    def stream(lo: int, hi: int, held: dict) -> np.ndarray:
        """Output frames lo..hi (source frames) of the grains overlapped, added in the grains' order."""
        out = np.zeros((hi - lo, channels), dtype=np.float32)
        for number, (at, frames, read_at, gain) in enumerate(grains):
            a, b = max(lo, at), min(hi, at + frames)
            if a >= b:
                if at >= hi:
                    break
                continue
            if number not in held:  # a grain is weighted whole once per pass, and let go once the pass is past it
                for done in [key for key in held if key < number and grains[key][0] + grains[key][1] <= lo]:
                    del held[done]
                held[number] = source.read(read_at, frames) * (window[:frames, None] * np.float32(gain))
            out[a - lo:b - lo] += held[number][a - at:b - at]
        return out

    def make(lo: int, hi: int, held: dict) -> np.ndarray:
        a, b = f0 + lo, f0 + hi
        out = np.empty((hi - lo, channels), dtype=np.float32)
        for x, y in ((a, min(b, first - fade)), (max(a, last), b)):
            if y > x:
                out[x - a:y - a] = source.read(x, y - x)
        x, y = max(a, first - fade), min(b, first)
        if y > x:
            part = slice(x - first + fade, y - first + fade)
            out[x - a:y - a] = source.read(x, y - x) * curves[0][part] + stream(x, y, held) * curves[1][part]
        x, y = max(a, first), min(b, last)
        if y > x:
            out[x - a:y - a] = stream(x, y, held)
        if ending is not None:
            _fade(out, lo, ending)
        return out

    return Rendering(f1 - f0, channels, joins, passages, make, (first - fade - f0, last - f0))
