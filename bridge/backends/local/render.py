"""Turning a plan into audio: passages read at their lags, each join aligned, level-matched and crossfaded.

Positions are in samples of the source. A passage's lag is refined at the join where it comes in (so it lines up
with what plays before it); the last passage of an inpaint is also aligned with the source after the range, and
if the two alignments disagree the passage is resampled by that tiny ratio so both joins line up.

A plan is laid out first (``lay_out``: joins aligned, gains set) and its audio made from the layout a block at a
time (``Rendering.blocks``), so a 10-minute extension is never held whole; ``render`` gives it as one array.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bridge.backends.local import joins
from bridge.backends.local.plans import Plan

MAX_STRETCH = 0.01  # at most 1 % varispeed (17 cents): beyond that the exit join takes what alignment it can get
_GAIN_BOUNDS = (10 ** (-joins.MAX_GAIN_DB / 20), 10 ** (joins.MAX_GAIN_DB / 20))  # a passage's, all joins before it
_CEILING = 1.0  # full scale


class _Join:
    """One join as rendered: where, which material comes in, how it was blended."""

    def __init__(self, at: int, source_from: int, frames: int, alignment: joins.Alignment, cost: float,
                 gain: float):
        self.at, self.source_from, self.frames = at, source_from, frames
        self.alignment, self.cost, self.gain = alignment, cost, gain

    @property
    def confidence(self) -> float:
        """How sure we are the join is inaudible: the surroundings' match, or the waveforms' if they agree better.

        Two copies of the same music line up on the waveform (correlation near 1) even where the coarser
        feature match is blurred by where its grid happens to fall.
        """
        return max(1.0 - min(max(self.cost, 0.0), 1.0), max(self.alignment.correlation, 0.0))

    def to_json(self, sample_rate: int) -> dict:
        return {"at": round(self.at / sample_rate, 4), "from": round(self.source_from / sample_rate, 4),
                "crossfade": round(self.frames / sample_rate, 4),
                "confidence": round(self.confidence, 3),
                "correlation": round(self.alignment.correlation, 3),
                "gain_db": round(20 * np.log10(max(self.gain, 1e-6)), 2)}


class _Renderer:
    def __init__(self, source, sample_rate: int, beat: float):
        self.source, self.sr, self.beat = source, sample_rate, beat
        self.window = int(round(joins.ALIGN_WINDOW * sample_rate))
        self.search = int(round(joins.ALIGN_SEARCH * sample_rate))
        self.level_window = int(round(joins.LEVEL_WINDOW * sample_rate))

    def read(self, start: int, length: int) -> np.ndarray:
        return self.source.read(start, length)

    def mono(self, start: int, length: int) -> np.ndarray:
        block = self.source.read(start, length)
        return block @ np.full(block.shape[1], 1.0 / block.shape[1], dtype=np.float32)

    def crossfade_frames(self, correlation: float, room: int) -> int:
        frames = int(round(joins.crossfade_seconds(correlation, self.beat) * self.sr))
        return max(0, min(frames, room))

    def _align(self, reference_at: int, width: int, source_at: int, limits=None) -> joins.Alignment:
        reference = self.mono(reference_at, width)
        block = self.mono(source_at - self.search, width + 2 * self.search)
        return joins.align(reference, block, self.search, limits)

    def entry(self, at: int, lag: int, match_level: bool) -> tuple[int, joins.Alignment, float]:
        """Align material coming in at ``at`` with the source before it; returns (lag, alignment, gain)."""
        ref_start = max(at - self.window, 0)
        found = self._align(ref_start, at - ref_start, ref_start + lag)
        lag += found.shift
        lo = max(at - self.level_window, 0)
        gain = joins.level_gain(self.read(lo, at - lo), self.read(lo + lag, at - lo)) if match_level else 1.0
        return lag, found, gain

    def switch(self, at: int, old_lag: int, new_lag: int) -> tuple[int, joins.Alignment, float]:
        """Align a passage coming in at ``at`` with the passage it replaces (a window around the join)."""
        half = self.window // 2
        found = self._align(at - half + old_lag, 2 * half, at - half + new_lag)
        new_lag += found.shift
        level = self.level_window // 2
        gain = joins.level_gain(self.read(at - level + old_lag, 2 * level), self.read(at - level + new_lag, 2 * level))
        return new_lag, found, gain

    def exit(self, at: int, lag: int, limits: tuple[int, int]) -> tuple[int, joins.Alignment, float]:
        """Align the last passage with the source after ``at`` (its lag may move only within ``limits``)."""
        width = max(min(self.window, self.source.frames - at), 0)
        found = self._align(at, width, at + lag, limits)
        lag += found.shift
        level = min(self.level_window, max(self.source.frames - at, 0))
        gain = joins.level_gain(self.read(at, level), self.read(at + lag, level))
        return lag, found, gain

    def material(self, out_start: int, out_end: int, lag: int, end_lag: int | None = None) -> np.ndarray:
        """Source audio for output samples out_start..out_end, drifting linearly to ``end_lag`` at the end."""
        frames = out_end - out_start
        if end_lag is None or end_lag == lag:
            return self.read(out_start + lag, frames)
        pad = int(0.05 * self.sr)  # resample a little beyond both ends so the filter's edges fall outside
        ratio = (frames + end_lag - lag) / frames
        src_start, src_end = out_start + lag, out_end + end_lag
        block = self.read(src_start - pad, src_end - src_start + 2 * pad)
        out_pad = int(round(pad / ratio))
        stretched = joins.stretch(block, frames + 2 * out_pad)
        return stretched[out_pad:out_pad + frames]


BLOCK_FRAMES = 1 << 17  # a span's audio is made this many frames at a time (3 s at 44.1 kHz, 1 MB of stereo)


class Rendering:
    """A plan laid out as audio: the joins and passages for the manifest, and the span's audio, made a block at a
    time from the source when it is asked for (``blocks``): a 10-minute extension is never held whole.

    ``frames`` is the span's length; ``made`` the frames lo..hi of it that are not the source as it is (the new
    material and its crossfades), and all of it where it is none.
    """

    def __init__(self, frames: int, channels: int, joins: list[dict], passages: list[dict], make,
                 made: tuple[int, int] | None = None):
        self.frames, self.channels = frames, channels
        self.joins, self.passages = joins, passages
        self.made = made or (0, frames)
        self._make = make  # make(lo, hi, held) -> float32 (hi - lo, channels); held: what one pass keeps

    def blocks(self, lo: int = 0, hi: int | None = None, size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The span's frames lo..hi, in order, as new float32 arrays of at most ``size`` frames."""
        hi = self.frames if hi is None else hi
        held: dict = {}
        for at in range(lo, hi, size):
            yield self._make(at, min(at + size, hi), held)

    def audio(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The span's frames lo..hi as one array."""
        hi = self.frames if hi is None else hi
        out = np.empty((hi - lo, self.channels), dtype=np.float32)
        at = 0
        for block in self.blocks(lo, hi):
            out[at:at + len(block)] = block
            at += len(block)
        return out


def _blend(outgoing: np.ndarray, incoming: np.ndarray, curves: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``outgoing`` faded out into ``incoming`` by ``curves`` (the part of a whole crossfade's that they cover)."""
    fade_out, fade_in = curves
    return outgoing * fade_out + incoming * fade_in


def _ramp_curve(gain_from: float, gain_to: float, frames: int) -> np.ndarray:
    """Per-frame float32 gains (frames, 1) moving from ``gain_from`` to ``gain_to`` evenly in dB."""
    db = np.linspace(20 * np.log10(gain_from), 20 * np.log10(gain_to), frames)
    return (10 ** (db / 20)).astype(np.float32)[:, None]


def _within_ceiling(gain: float, peak: float) -> float:
    """``gain``, lowered as far as the block's peaks need to stay under full scale, but never below unity: a loud
    master's material turned up to match quieter surroundings was clipped when written (audible distortion), and a
    level step of a dB or two at the join is the smaller harm. A block already beyond full scale keeps its level."""
    if gain * peak <= _CEILING:
        return gain
    return max(min(gain, _CEILING / peak), min(gain, 1.0))


def _peak(block: np.ndarray) -> float:
    return float(np.max(np.abs(block))) if block.size else 0.0


class _Walk:
    """The new material of a plan laid out: passage ``i`` plays output frames ``los[i]..his[i]`` from the source at
    ``lags[i]`` with ``gains[i]``, crossfading from the passage before over its first ``fades[i]`` frames."""

    def __init__(self, r: _Renderer, lags: list[int], fades: list[int], bounds: list[int], gains: list[float],
                 tail: int, end_lag: int | None, end_gain: float | None, correlations: list[float]):
        self.r, self.lags, self.fades, self.gains = r, lags, fades, gains
        count = len(lags)
        self.los = [bounds[i] - fades[i] for i in range(count)]
        self.his = [bounds[i + 1] + (tail if i == count - 1 else 0) for i in range(count)]
        self.end_lag = end_lag
        self.curves = [joins.crossfade_curves(fades[i], correlations[i]) if i else None for i in range(count)]
        # each passage's gain lowered where it would take its peaks past full scale (read once, a block at a time)
        for i in range(count):
            peak = self._raw_peak(i)
            gains[i] = _within_ceiling(gains[i], peak)
            if i == count - 1 and end_gain is not None:
                end_gain = _within_ceiling(end_gain, peak)
        self.end_gain = end_gain

    def _stretched(self, i: int) -> bool:
        return i == len(self.lags) - 1 and self.end_lag is not None and self.end_lag != self.lags[i]

    def _raw_peak(self, i: int) -> float:
        if self._stretched(i):
            return _peak(self.r.material(self.los[i], self.his[i], self.lags[i], self.end_lag))
        peak = 0.0
        for at in range(self.los[i], self.his[i], BLOCK_FRAMES):
            peak = max(peak, _peak(self.r.read(at + self.lags[i], min(at + BLOCK_FRAMES, self.his[i]) - at)))
        return peak

    def _played(self, i: int, lo: int, hi: int, held: dict) -> np.ndarray:
        """Passage ``i``'s output frames lo..hi at its gain (a stretched or ramped passage is made whole once)."""
        last = i == len(self.lags) - 1
        gain_to = self.end_gain if (last and self.end_gain is not None) else self.gains[i]
        if self._stretched(i):
            if ("stretched", i) not in held:
                held.clear()  # a pass moves forward: what an earlier passage held is done with
                held[("stretched", i)] = self.r.material(self.los[i], self.his[i], self.lags[i], self.end_lag)
            block = held[("stretched", i)][lo - self.los[i]:hi - self.los[i]]
        else:
            block = self.r.read(lo + self.lags[i], hi - lo)
        if self.gains[i] == gain_to:
            return block * np.float32(gain_to) if gain_to != 1.0 else block
        if ("ramp", i) not in held:
            held[("ramp", i)] = _ramp_curve(self.gains[i], gain_to, self.his[i] - self.los[i])
        return block * held[("ramp", i)][lo - self.los[i]:hi - self.los[i]]

    def frames(self, lo: int, hi: int, held: dict) -> np.ndarray:
        """Output frames lo..hi of the chained passages (within the first passage's start .. the last's end)."""
        out = np.empty((hi - lo, self.r.source.channels), dtype=np.float32)
        for i in range(len(self.lags)):
            a, b = max(lo, self.los[i]), min(hi, self.his[i])
            if a >= b:
                continue
            block = self._played(i, a, b, held)
            blended = max(a, min(b, self.los[i] + self.fades[i])) if i else a  # the crossfade from the one before
            if blended > a:
                part = slice(a - self.los[i], blended - self.los[i])
                curves = (self.curves[i][0][part], self.curves[i][1][part])
                out[a - lo:blended - lo] = _blend(out[a - lo:blended - lo], block[:blended - a], curves)
            out[blended - lo:b - lo] = block[blended - a:]
        return out


def render(song, sample_rate: int, plan: Plan, start: float, end: float, span: tuple[int, int],
           beat: float) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The span's audio with start..end played from the plan; returns (audio, joins, passages) for the manifest.

    ``lay_out`` and its ``Rendering.blocks`` make the same audio without holding it whole.
    """
    rendering = lay_out(song, sample_rate, plan, start, end, span, beat)
    return rendering.audio(), rendering.joins, rendering.passages


def lay_out(song, sample_rate: int, plan: Plan, start: float, end: float, span: tuple[int, int],
            beat: float) -> Rendering:
    """The span's audio with start..end played from the plan, laid out: its joins aligned, its gains set.

    ``song`` is float32 frames (frames, channels) or a source with ``read(start, length)`` and ``frames``. For an
    inpaint ``end`` lies inside the song and the source takes over again there; for an extension it is where the
    span ends, where the last beat fades (after the song's own ending, when the plan lands on it).
    """
    source = joins.ArraySource(song) if isinstance(song, np.ndarray) else song
    r = _Renderer(source, sample_rate, beat)
    f0, f1 = span
    first, last = int(round(start * sample_rate)), int(round(end * sample_rate))
    bounds = [first] + [int(round(p.start * sample_rate)) for p in plan.passages[1:]] + [last]
    lags = [int(round(p.lag * sample_rate)) for p in plan.passages]
    costs = list(plan.join_costs)
    rendered: list[_Join] = []
    fades, gains, correlations = [0], [1.0], [1.0]
    gain_of: list[int | None] = []  # each rendered join's passage in ``gains``; None: the exit's
    if plan.has_entry and first > f0:
        lags[0], found, gains[0] = r.entry(first, lags[0], plan.match_entry_level)
        fades[0] = r.crossfade_frames(found.correlation, first - f0)
        correlations[0] = found.correlation
        rendered.append(_Join(first, first + lags[0], fades[0], found, costs.pop(0), gains[0]))
        gain_of.append(0)
    elif plan.has_entry:
        costs.pop(0)  # no handle before the range: the DAW's own edit is the join
    for i in range(1, len(lags)):
        lags[i], found, step = r.switch(bounds[i], lags[i - 1], lags[i])
        room = min(bounds[i] - bounds[i - 1], bounds[i + 1] - bounds[i]) // 2
        fades.append(r.crossfade_frames(found.correlation, room))
        # each join matches what it follows, so the gains compound; bounded as one join's are, a long walk over
        # music that swells does not ratchet its level up (or down) join after join
        gains.append(float(np.clip(gains[-1] * step, *_GAIN_BOUNDS)))
        correlations.append(found.correlation)
        rendered.append(_Join(bounds[i], bounds[i] + lags[i], fades[-1], found, costs.pop(0), gains[-1]))
        gain_of.append(i)
    end_lag, end_gain, tail, exit_correlation = None, None, 0, 1.0
    if plan.has_exit and last < f1:
        planned = plan.passages[-1].end_lag
        want = int(round(planned * sample_rate)) if planned is not None else lags[-1]
        allowed = int(MAX_STRETCH * (last - bounds[-2]))
        end_lag, found, end_gain = r.exit(last, want, (lags[-1] - allowed - want, lags[-1] + allowed - want))
        tail = r.crossfade_frames(found.correlation, f1 - last)
        exit_correlation = found.correlation
        rendered.append(_Join(last, last, tail, found, costs.pop(0), end_gain))
        gain_of.append(None)
    walk = _Walk(r, lags, fades, bounds, gains, tail, end_lag, end_gain, correlations)
    for join, which in zip(rendered, gain_of):  # the gains as played (lowered where a peak would clip)
        join.gain = walk.end_gain if which is None else gains[which]
    entry = joins.crossfade_curves(fades[0], correlations[0]) if fades[0] else None
    exit_curves = joins.crossfade_curves(tail, exit_correlation) if tail else None
    fade_from = first - fades[0]
    ending = _ending(last - f0, int(round(beat * sample_rate))) if plan.ending != "source" else None

    def make(lo: int, hi: int, held: dict) -> np.ndarray:
        a, b = f0 + lo, f0 + hi  # in source frames
        out = np.empty((hi - lo, source.channels), dtype=np.float32)
        for x, y in ((a, min(b, fade_from)), (max(a, last + tail), b)):  # the source around the new material
            if y > x:
                out[x - a:y - a] = source.read(x, y - x)
        x, y = max(a, fade_from), min(b, first)
        if y > x:  # the entry's crossfade
            part = slice(x - fade_from, y - fade_from)
            out[x - a:y - a] = _blend(source.read(x, y - x), walk.frames(x, y, held), (entry[0][part], entry[1][part]))
        x, y = max(a, first), min(b, last)
        if y > x:
            out[x - a:y - a] = walk.frames(x, y, held)
        x, y = max(a, last), min(b, last + tail)
        if y > x:  # the exit's crossfade
            part = slice(x - last, y - last)
            out[x - a:y - a] = _blend(walk.frames(x, y, held), source.read(x, y - x),
                                      (exit_curves[0][part], exit_curves[1][part]))
        if ending is not None:
            _fade(out, lo, ending)
        return out

    passages = [p.to_json() for p in plan.passages]
    for entry_json, at, lag, gain in zip(passages, bounds, lags, gains):
        entry_json["from"] = round((at + lag) / sample_rate, 4)
        entry_json["gain_db"] = round(20 * np.log10(gain), 2)
        entry_json.pop("stretch", None)
    if end_lag is not None and end_lag != lags[-1]:
        passages[-1]["stretch"] = round((last - bounds[-2] + end_lag - lags[-1]) / (last - bounds[-2]), 6)
    return Rendering(f1 - f0, source.channels, [j.to_json(sample_rate) for j in rendered], passages, make,
                     (fade_from - f0, last + tail - f0))


# Seconds beyond a passage that laying it out and playing it may read: a level window (1 s), an align window and its
# search (0.42 s), a crossfade (0.15 s), a resampler's pad (0.05 s). A read past it costs a lossy song another pass.
READ_REACH = 2.0


def spans_read(plans: list[Plan], span: tuple[int, int], sample_rate: int,
               around: float = 0.0) -> list[tuple[int, int]]:
    """The source frames that laying out and playing ``plans`` over ``span`` may read, as (first, stop) ranges:
    each passage with ``READ_REACH`` either side (its drift to ``end_lag`` and ``MAX_STRETCH`` of it more), and the
    span with ``around`` seconds more either side."""
    reach = int(round(max(READ_REACH, around) * sample_rate))
    ranges = [(span[0] - reach, span[1] + reach)]
    for plan in plans:
        for p in plan.passages:
            lags = (p.lag, p.lag if p.end_lag is None else p.end_lag)
            slack = READ_REACH + MAX_STRETCH * (p.end - p.start)
            ranges.append((int((p.start + min(lags) - slack) * sample_rate),
                           int(np.ceil((p.end + max(lags) + slack) * sample_rate))))
    return ranges


def _ending(end: int, beat: int) -> tuple[int, np.ndarray] | None:
    """(first frame, gains) of ``finish``'s fade over the last beat before ``end``; None when there is none."""
    length = min(beat, end)
    if length <= 0:
        return None
    x = (np.arange(length) + 0.5) / length
    return end - length, (np.cos(0.5 * np.pi * x) ** 2).astype(np.float32)[:, None]


def _fade(out: np.ndarray, at: int, ending: tuple[int, np.ndarray]) -> None:
    """Apply the part of ``ending`` that falls in ``out`` (whose first frame is frame ``at`` of the span)."""
    begin, gains = ending
    x, y = max(at, begin), min(at + len(out), begin + len(gains))
    if y > x:
        out[x - at:y - at] *= gains[x - begin:y - begin]


def finish(out: np.ndarray, end: int, beat: int) -> None:
    """End an extension cleanly: fade over the last beat.

    A beat lets the last notes ring down without cutting one; a longer fade (a whole bar was tried) spends more of
    the extension fading: the music the producer asked for plays at its level until the last beat. The song's own
    ending is faded too: a song that only went quiet where its file stops (a bounce cut in a soft passage) counts
    as ending, and its last note was cut with it; an ending that rings out to silence loses nothing audible."""
    ending = _ending(end, beat)
    if ending is not None:
        _fade(out, 0, ending)
