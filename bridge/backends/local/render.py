"""Turning a plan into audio: passages read at their lags, each join aligned, level-matched and crossfaded.

Positions are in samples of the source. A passage's lag is refined at the join where it comes in (so it lines up
with what plays before it); the last passage of an inpaint is also aligned with the source after the range, and
if the two alignments disagree the passage is resampled by that tiny ratio so both joins line up.
"""

from __future__ import annotations

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


def _blend(outgoing: np.ndarray, incoming: np.ndarray, correlation: float) -> np.ndarray:
    fade_out, fade_in = joins.crossfade_curves(len(outgoing), correlation)
    return outgoing * fade_out + incoming * fade_in


def _ramp(block: np.ndarray, gain_from: float, gain_to: float) -> np.ndarray:
    if gain_from == gain_to:
        return block * np.float32(gain_from) if gain_from != 1.0 else block
    db = np.linspace(20 * np.log10(gain_from), 20 * np.log10(gain_to), len(block))
    return block * (10 ** (db / 20)).astype(np.float32)[:, None]


def _within_ceiling(gain: float, block: np.ndarray) -> float:
    """``gain``, lowered as far as the block's peaks need to stay under full scale, but never below unity: a loud
    master's material turned up to match quieter surroundings was clipped when written (audible distortion), and a
    level step of a dB or two at the join is the smaller harm. A block already beyond full scale keeps its level."""
    peak = float(np.max(np.abs(block))) if block.size else 0.0
    if gain * peak <= _CEILING:
        return gain
    return max(min(gain, _CEILING / peak), min(gain, 1.0))


def _new_material(r: _Renderer, lags: list[int], fades: list[int], bounds: list[int], gains: list[float], tail: int,
                  end_lag: int | None, end_gain: float | None,
                  correlations: list[float]) -> tuple[np.ndarray, float | None]:
    """All passages chained with their internal crossfades, covering bounds[0] - fades[0] .. bounds[-1] + tail;
    and the exit's gain as played. ``gains`` are lowered in place where they would take a passage past full scale.

    Each passage is written into one buffer as it is read (chaining them by concatenation copied all that came
    before at every join, and held it twice: a 600 s extension of many passages peaked at several times its size)."""
    origin = bounds[0] - fades[0]
    pieces = np.empty((bounds[-1] + tail - origin, r.source.channels), dtype=np.float32)
    count = len(lags)
    for i in range(count):
        lo = bounds[i] - fades[i]
        hi = bounds[i + 1] + (tail if i == count - 1 else 0)
        last = i == count - 1
        block = r.material(lo, hi, lags[i], end_lag if last else None)
        gains[i] = _within_ceiling(gains[i], block)
        if last and end_gain is not None:
            end_gain = _within_ceiling(end_gain, block)
        block = _ramp(block, gains[i], end_gain if (last and end_gain is not None) else gains[i])
        at, overlap = lo - origin, fades[i] if i else 0
        if overlap:
            pieces[at:at + overlap] = _blend(pieces[at:at + overlap], block[:overlap], correlations[i])
        pieces[at + overlap:hi - origin] = block[overlap:]
    return pieces, end_gain


def render(song, sample_rate: int, plan: Plan, start: float, end: float, span: tuple[int, int],
           beat: float) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The span's audio with start..end played from the plan; returns (audio, joins, passages) for the manifest.

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
    new, end_gain = _new_material(r, lags, fades, bounds, gains, tail, end_lag, end_gain, correlations)
    for join, which in zip(rendered, gain_of):  # the gains as played (lowered where a peak would clip)
        join.gain = end_gain if which is None else gains[which]
    out = source.read(f0, f1 - f0)
    lo = first - fades[0]
    if fades[0]:
        out[lo - f0:first - f0] = _blend(out[lo - f0:first - f0], new[:fades[0]], correlations[0])
    out[first - f0:last - f0] = new[fades[0]:fades[0] + last - first]
    if tail:
        out[last - f0:last + tail - f0] = _blend(new[-tail:], out[last - f0:last + tail - f0], exit_correlation)
    if plan.ending != "source":
        finish(out, last - f0, int(round(beat * sample_rate)))
    passages = [p.to_json() for p in plan.passages]
    for entry, at, lag, gain in zip(passages, bounds, lags, gains):
        entry["from"] = round((at + lag) / sample_rate, 4)
        entry["gain_db"] = round(20 * np.log10(gain), 2)
        entry.pop("stretch", None)
    if end_lag is not None and end_lag != lags[-1]:
        passages[-1]["stretch"] = round((last - bounds[-2] + end_lag - lags[-1]) / (last - bounds[-2]), 6)
    return out, [j.to_json(sample_rate) for j in rendered], passages


def finish(out: np.ndarray, end: int, beat: int) -> None:
    """End an extension cleanly: fade over the last beat.

    A beat lets the last notes ring down without cutting one; a longer fade (a whole bar was tried) spends more of
    the extension fading: the music the producer asked for plays at its level until the last beat. The song's own
    ending is faded too: a song that only went quiet where its file stops (a bounce cut in a soft passage) counts
    as ending, and its last note was cut with it; an ending that rings out to silence loses nothing audible."""
    length = min(beat, end)
    if length <= 0:
        return
    x = (np.arange(length) + 0.5) / length
    out[end - length:end] *= (np.cos(0.5 * np.pi * x) ** 2).astype(np.float32)[:, None]
