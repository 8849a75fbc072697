"""Continuing a song after a point: a walk through the song's own passages, jumping where the music allows.

The walk starts with the passage whose lead-in sounds most like the music before the point (the song's own
continuation only when nothing else fits nearly as well; the producer has it, so the caller delivers it only when
nothing else fits at all: ``plays_on``), plays it for as long as the song lasts, and jumps at a beat to another
passage that continues naturally before it runs out.
Jumps back into music heard in the last ``LOOP_GUARD`` seconds cost extra, so the walk avoids short repeating
loops; the listener heard the music before the point too, so it counts as heard, and a jump is charged for the
share of the bars it would play that were heard recently. Near the end it tries to jump into the song's own
ending so the extension finishes like the song does; otherwise the renderer fades the last beat. Extending after
a song that has ended treats its ending as a break: the continuation follows the music that led into the ending,
and is not turned down to the ending's fading level. Replaying the last 2, 4 or 8 bars before the point is offered
as a start too: the caller ranks those repeats with the walks by how their joins render.
"""

from __future__ import annotations

import numpy as np

from bridge.backends.local.analysis import CELL_SECONDS, SongAnalysis
from bridge.backends.local.inpaint import JOIN_SECONDS
from bridge.backends.local.plans import Passage, Plan
from bridge.backends.local.similarity import (
    CellSpace,
    cell_space,
    context_cost,
    local_minima,
    switch_cost,
)

LOOP_GUARD = 30.0  # seconds of recent output whose material a jump should not return to
REUSE_PENALTY = 0.3  # for a jump whose next bars were all heard recently; less for a share of them
LOOP_BARS = 8  # material heard again within this many bars of a recent hearing makes a loop
SWITCH_SEARCH_BEATS = 8  # how many beats before a passage runs out are tried as jump points
ENDING_OK = 0.4  # the song's own ending is used when the jump into it costs no more than this
MARGIN_SECONDS = 0.3
MIN_PASSAGE_BEATS = 4
PHRASE_BARS = (2, 4, 8)  # the recent phrases an extension may repeat
OWN_CONTINUATION_PENALTY = 0.15  # prefer new material that fits, but continue as the song does when nothing does
SECTION_SECONDS = 12.0  # the music before the point that finds where the song was at the same place before
SILENCE_UNDER_DB = 50.0  # a song's last seconds this far under its median level are silence after the music


def plays_on(plan: Plan) -> bool:
    """Whether an extension starts with the song's own music after the point, which the producer already has."""
    return abs(plan.passages[0].lag) < 0.5 * CELL_SECONDS


def _levels(analysis: SongAnalysis) -> np.ndarray:
    """Each cell's level (dB), smoothed over half a second."""
    level = 10.0 * np.log10(np.sum(10.0 ** (analysis.mel / 10.0), axis=1) + 1e-12)
    window = max(int(round(0.5 / CELL_SECONDS)), 1)
    return np.convolve(level, np.ones(window) / window, mode="same")


def song_ends(analysis: SongAnalysis) -> tuple[float, float]:
    """Where the music ends, and where its ending begins, from one pass over the cells' levels.

    The music ends at the song's end, or at the end of its last stretch less than ``SILENCE_UNDER_DB`` under its
    median level: the silence a bounce leaves after the music is neither material nor an ending to land on (played
    as either, an extension after it came back silent, labelled as sure as can be: an outside probe). The ending
    begins at its last bar, or earlier if the level has stayed 10 dB down since (a fade), but at most four bars before
    the music's end.
    """
    smooth = _levels(analysis)
    median = np.median(smooth)
    heard = np.flatnonzero(smooth >= median - SILENCE_UNDER_DB)
    end = float(min((heard[-1] + 1) * CELL_SECONDS, analysis.duration)) if len(heard) else analysis.duration
    loud = np.flatnonzero(smooth >= median - 10.0)
    earliest = end - 16 * analysis.beat_period
    last_loud = (loud[-1] + 1) * CELL_SECONDS if len(loud) else end
    return end, float(np.clip(min(last_loud, end - 4 * analysis.beat_period), max(earliest, 0.0), end))


def plan_extend(analysis: SongAnalysis, after: float, duration: float, count: int,
                more_starts: bool = False) -> list[Plan]:
    """Up to ``count`` plans continuing the song from ``after`` for ``duration`` seconds, best first.

    With ``more_starts``, more plans follow, for the caller to rank with the rest by their rendered joins: the walk
    from where the song's last ``SECTION_SECONDS`` before the point were heard before (the same place in an earlier
    pass through the section, which a match on the last few seconds can miss for a passage that only ends alike),
    and the repeats of the song's most recent phrase (its last 2, 4 or 8 bars played again, then walking on): a
    repeat of the music just heard often lines up on the waveform better than its features' match predicts.
    """
    space = cell_space(analysis)
    walker = _Walker(analysis, space, after, duration)
    plans: list[Plan] = []
    for _ in range(count):
        plan = walker.walk(excluded=[p.passages[0].lag for p in plans], avoid=plans)
        if plan is None:
            break
        plans.append(plan)
    if not more_starts:
        return plans
    section = context_cost(space, walker.anchor, -1, SECTION_SECONDS)
    lag = walker.first_lag([p.passages[0].lag for p in plans], section)
    if lag is not None and (plan := walker.walk(excluded=[], avoid=plans, first=lag)) is not None:
        plans.append(plan)
    for lag in walker.phrase_lags():
        plan = walker.walk(excluded=[], avoid=[], first=lag)
        if plan is not None and all(abs(lag - p.passages[0].lag) >= walker.beat for p in plans):
            plans.append(plan)
    return plans


class _Walker:
    def __init__(self, analysis: SongAnalysis, space: CellSpace, after: float, duration: float):
        self.analysis, self.space = analysis, space
        self.after, self.end = after, after + duration
        self.beat = analysis.beat_period
        self.bar = 4 * self.beat
        self.margin = MARGIN_SECONDS
        # material may be played up to here; the song's last bar is its ending, only used to finish
        self.music_end, ending = song_ends(analysis)
        self.body_limit = self.music_end - (self.bar if analysis.has_ending else 0.0) - self.margin
        # extending after the song has ended: its ending is treated as a break, and the continuation follows
        # the music that led into it
        self.lead_in = min(after, ending) if analysis.has_ending else after
        anchor = min(int(np.floor(self.lead_in / CELL_SECONDS)), space.size)
        self.entry = context_cost(space, anchor, -1)
        self.entry_near = context_cost(space, anchor, -1, JOIN_SECONDS)
        self.anchor = anchor

    def walk(self, excluded: list[float], avoid: list[Plan], first: float | None = None) -> Plan | None:
        """A continuation starting at lag ``first``, or else at the best-fitting lag not near ``excluded``."""
        lag = self.first_lag(excluded, self.entry) if first is None else first
        if lag is None:
            return None
        cell = min(int(round((self.after + lag) / CELL_SECONDS)), self.space.size - 1)
        costs = [float(self.entry_near[cell])]
        passages = [Passage(start=self.after, end=self.end, lag=lag)]
        used = [(p.start + p.lag, p.end + p.lag) for plan in avoid for p in plan.passages]
        ending = "fade"
        while True:
            current = passages[-1]
            if self.analysis.has_ending:
                finish = self._jump_to_ending(current)
                if finish is not None:
                    at, ending_lag, cost = finish
                    if abs(ending_lag - current.lag) > 1.5 * CELL_SECONDS:  # else it already leads there
                        current.end = at
                        passages.append(Passage(start=at, end=self.end, lag=ending_lag))
                        costs.append(cost)
                    ending = "song_end"
                    break
            runs_out = self.body_limit - current.lag  # output time at which this passage's material ends
            if runs_out >= self.end:
                break
            jump = self._next_jump(current, runs_out, passages, used)
            if jump is None:
                return None
            at, new_lag, cost = jump
            current.end = at
            passages.append(Passage(start=at, end=self.end, lag=new_lag))
            costs.append(cost)
        return Plan(passages=passages, join_costs=costs, ending=ending, has_exit=False,
                    match_entry_level=self.lead_in >= self.after)

    def first_lag(self, excluded: list[float], entry: np.ndarray) -> float | None:
        """The lag whose material best follows on from the music before the point, by ``entry`` (a context cost
        per cell), and not within a beat of ``excluded``."""
        n = self.space.size
        # cell anchor + k plays the lead-in's role, so its material follows on at the join
        seconds = (np.arange(n) - self.anchor) * CELL_SECONDS + (self.lead_in - self.after)
        material_start = self.after + seconds
        fits = (material_start - self.margin >= 0) & (material_start + self.beat <= self.body_limit)
        own = np.abs(seconds) < 0.5 * CELL_SECONDS  # the song's own continuation after the point
        fits &= own | (np.abs(seconds) >= self.bar)  # a jump back by less than a bar would stutter
        for lag in excluded:
            fits &= np.abs(seconds - lag) >= self.beat
        # the longer a start can play before it must jump, the better: a small nudge, not a rule
        room = np.clip((self.body_limit - material_start) / max(self.end - self.after, 1e-6), 0.0, 1.0)
        score = entry + 0.05 * (1.0 - room) + np.where(own, OWN_CONTINUATION_PENALTY, 0.0)
        best = local_minima(score, 1, 1, fits)
        return float(seconds[best[0]]) if len(best) else None

    def phrase_lags(self) -> list[float]:
        """Lags that play the last 2, 4 or 8 bars before the point again: counted on the song's beats, then moved
        within a beat to where the music leading in matches best (a beat tracker's grid drifts over 8 bars)."""
        beats = self.analysis.beats
        last = int(np.searchsorted(beats, self.lead_in + 0.5 * CELL_SECONDS, side="right")) - 1
        reach = max(int(round(self.beat / CELL_SECONDS)), 1)
        lags = []
        for bars in PHRASE_BARS:
            back = last - 4 * bars
            if back < 0:
                continue
            cell = self.anchor + int(round((beats[back] - beats[last]) / CELL_SECONDS))
            lo, hi = max(cell - reach, 0), min(cell + reach + 1, self.space.size)
            if hi <= lo:
                continue
            cell = lo + int(np.argmin(self.entry[lo:hi]))
            lag = (cell - self.anchor) * CELL_SECONDS + (self.lead_in - self.after)
            if self.after + lag - self.margin >= 0:
                lags.append(lag)
        return lags

    def _beats_between(self, lo: float, hi: float, lag: float) -> np.ndarray:
        """Output times in lo..hi where the passage at ``lag`` has a beat."""
        beats = self.analysis.beats - lag
        return beats[(beats >= lo) & (beats <= hi)]

    def _jump_to_ending(self, current: Passage) -> tuple[float, float, float] | None:
        """(output time, lag, cost) of a jump after which the song's own ending finishes the span.

        The ending may land up to two bars before the span's end (the rest is the ending's own decay, then
        silence), which lets the jump keep the music's phase instead of landing the ending on the last sample.
        """
        exact = self.music_end - self.end
        # every other cell: the join's waveform alignment takes care of the last 46 ms
        deltas = np.arange(0, int(round(2 * self.bar / CELL_SECONDS)) + 1, 2) * CELL_SECONDS
        lo = max(current.start + MIN_PASSAGE_BEATS * self.beat, self.end - 8 * self.bar)
        hi = min(self.body_limit - current.lag, self.end - self.bar)
        points = self._beats_between(lo, hi, current.lag)
        if len(points) == 0:
            return None
        lags = exact + deltas  # the ending's source runs out deltas seconds before the span's end
        starts = points[:, None] + lags[None, :]
        a = np.round((points + current.lag) / CELL_SECONDS).astype(int)[:, None] + np.zeros_like(starts, dtype=int)
        b = np.round(starts / CELL_SECONDS).astype(int)
        cost = switch_cost(self.space, a, b)
        cost = np.where(starts - self.margin >= 0, cost, np.inf)
        score = cost + 0.05 * deltas[None, :] / self.bar - 0.002 * np.arange(len(points))[:, None]
        i, j = np.unravel_index(int(np.argmin(score)), score.shape)
        if not cost[i, j] <= ENDING_OK:
            return None
        return float(points[i]), float(lags[j]), float(cost[i, j])

    def _next_jump(self, current: Passage, runs_out: float, passages: list[Passage],
                   used: list[tuple[float, float]]) -> tuple[float, float, float] | None:
        """The best (output time, new lag, cost) to leave ``current`` before its material runs out."""
        lo = current.start + MIN_PASSAGE_BEATS * self.beat
        points = self._beats_between(lo, runs_out, current.lag)[-SWITCH_SEARCH_BEATS:]
        if len(points) == 0:
            points = np.array([max(min(runs_out, self.end), current.start + self.beat)])
        recent = used + [(p.start + p.lag, min(p.end, points[-1]) + p.lag) for p in passages
                         if p.end > points[-1] - LOOP_GUARD]
        if points[-1] - LOOP_GUARD < self.lead_in:  # the music before the point was heard too
            recent.append((max(points[-1] - LOOP_GUARD, 0.0), self.lead_in))
        n = self.space.size
        best: tuple[float, float, float] | None = None
        best_score = np.inf
        for order, at in enumerate(points[::-1]):
            anchor = int(round((at + current.lag) / CELL_SECONDS))
            cost = np.minimum(context_cost(self.space, anchor, -1, 2.0), context_cost(self.space, anchor, +1, 2.0))
            cells = np.arange(n)
            lags = cells * CELL_SECONDS - at
            material = at + lags
            fits = (material - self.margin >= 0) & (material + MIN_PASSAGE_BEATS * self.beat <= self.body_limit)
            fits &= np.abs(lags - current.lag) >= self.bar
            score = cost + 0.01 * order  # later jumps keep passages long
            # what the listener hears of the new passage before it could leave: the share heard recently counts
            until = np.minimum(material + LOOP_BARS * self.bar, self.body_limit)
            span = np.maximum(until - material, self.beat)
            for lo_src, hi_src in recent:
                heard = np.clip(np.minimum(until, hi_src) - np.maximum(material, lo_src), 0.0, None)
                score = score + REUSE_PENALTY * heard / span
            score = np.where(fits, score, np.inf)
            pick = int(np.argmin(score))
            if score[pick] < best_score:
                best_score = float(score[pick])
                best = (float(at), float(lags[pick]), float(cost[pick]))
        return best
