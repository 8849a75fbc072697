"""Choosing what fills a range: passages from elsewhere in the song whose surroundings match the range's.

The range's own audio is never looked at: its cells are unknown to the search. A candidate is a *lag* (play the
song ``lag`` seconds away). The best plan is found by a small Viterbi search over the range's beats, where each
state is a candidate lag: staying on a lag is free, switching costs how audible the jump would be plus a fixed
penalty, entering is scored by the music before the range and leaving by the music after it. With no switch
this is a single passage; when no single lag fits both sides, the path moves between passages at beats.
"""

from __future__ import annotations

import numpy as np

from bridge.backends.local.analysis import CELL_SECONDS, SongAnalysis
from bridge.backends.local.plans import Passage, Plan
from bridge.backends.local.similarity import (
    CellSpace,
    cell_space,
    context_cost,
    local_minima,
    switch_matrix,
)

SWITCH_PENALTY = 0.08  # a switch must buy at least this much better fit
CANDIDATES = 8  # lags kept from each of the three lists (whole range, entry, exit)
MARGIN_SECONDS = 0.25  # material kept clear of the range and the song's edges, for crossfades and alignment
MAX_DRIFT = 0.006  # a passage may land up to 0.6 % of its length away from where it started (varispeed)
EDGE = 0.02  # a range this close to the song's start or end has no join there
JOIN_SECONDS = 1.5  # the music either side of a join that its confidence is judged on


def plan_inpaint(analysis: SongAnalysis, start: float, end: float, count: int) -> list[Plan]:
    """Up to ``count`` plans for replacing ``start..end``, best first, each using lags the earlier ones did not.

    ``analysis`` should come from ``without_range(analysis, start, end)`` so its beats ignore the range too.
    """
    space = cell_space(analysis, hidden=(start, end))
    search = _Search(analysis, space, start, end)
    plans: list[Plan] = []
    used: list[int] = []
    for _ in range(count):
        plan = search.best(excluded=used)
        if plan is None:
            break
        plans.append(plan)
        used.extend(int(round(p.lag / CELL_SECONDS)) for p in plan.passages)
    return plans


class _Search:
    """The fixed part of one range's search: contexts, switch points and which lags fit where."""

    def __init__(self, analysis: SongAnalysis, space: CellSpace, start: float, end: float):
        self.analysis, self.space = analysis, space
        self.start, self.end = start, end
        self.has_entry = start > EDGE
        self.has_exit = end < analysis.duration - EDGE
        n = space.size
        self.first = int(np.floor(start / CELL_SECONDS))
        self.last = min(int(np.ceil(end / CELL_SECONDS)), n)
        self.beat_cells = max(int(round(analysis.beat_period / CELL_SECONDS)), 1)
        self.margin = int(np.ceil(MARGIN_SECONDS / CELL_SECONDS))
        self.entry = context_cost(space, self.first, -1) if self.has_entry else np.zeros(n)
        exit_cost = context_cost(space, self.last, +1) if self.has_exit else np.zeros(n)
        drift = max(1, int(round(MAX_DRIFT * (end - start) / CELL_SECONDS)))
        self.exit, self.exit_drift = _relaxed(exit_cost, drift)
        # a join's confidence is judged on the music right around it, which is what a listener hears
        self.entry_near = context_cost(space, self.first, -1, JOIN_SECONDS) if self.has_entry else np.zeros(n)
        self.exit_near = context_cost(space, self.last, +1, JOIN_SECONDS) if self.has_exit else np.zeros(n)
        self.bounds = self._segment_bounds()
        self.unknown_before = np.concatenate([[0], np.cumsum(~space.known)])

    def _segment_bounds(self) -> np.ndarray:
        """Cells where passages may change: the range's beats (predicted from the beats around it), then its end."""
        beats, period = self.analysis.beats, self.analysis.beat_period
        before = beats[beats <= self.start]
        after = beats[beats >= self.end]
        left = before[-1] if len(before) else self.start
        right = after[0] if len(after) else self.end
        steps = max(int(round((right - left) / period)), 1)
        grid = left + (right - left) * np.arange(1, steps) / steps
        keep = (grid > self.start + period / 2) & (grid < self.end - period / 2)
        inner = np.unique(np.round(grid[keep] / CELL_SECONDS).astype(int))
        return np.concatenate([[self.first], inner, [self.last]])

    def _fits(self, lags: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Whether each lag can supply cells lo..hi: inside the song, clear of the range, with margins."""
        a = lo + lags - self.margin
        b = hi + lags + self.margin
        inside = (a >= 0) & (b <= self.space.size)
        a, b = np.clip(a, 0, self.space.size), np.clip(b, 0, self.space.size)
        return inside & (self.unknown_before[b] - self.unknown_before[a] == 0)

    def _candidates(self, excluded: list[int]) -> np.ndarray:
        n = self.space.size
        lags = np.arange(-self.first, n - self.first)
        allowed = np.ones(len(lags), dtype=bool)
        for lag in excluded:
            allowed &= np.abs(lags - lag) > self.beat_cells
        entry = self.entry[np.clip(self.first + lags, 0, n - 1)]
        exit_ = self.exit[np.clip(self.last + lags, 0, n - 1)]
        whole = self._fits(lags, self.first, self.last) & allowed
        head = self._fits(lags, self.bounds[0], self.bounds[1]) & allowed
        tail = self._fits(lags, self.bounds[-2], self.bounds[-1]) & allowed
        if whole.any():
            picks = [local_minima(entry + exit_, CANDIDATES, self.beat_cells, whole)]
            if len(self.bounds) > 2:
                picks.append(local_minima(entry, CANDIDATES, self.beat_cells, head))
                picks.append(local_minima(exit_, CANDIDATES, self.beat_cells, tail))
        else:
            picks = self._relay(lags, allowed, entry, exit_)
        chosen = np.unique(np.concatenate(picks)) if picks else np.zeros(0, dtype=int)
        return lags[chosen] if len(chosen) else np.zeros(0, dtype=int)

    def _relay(self, lags: np.ndarray, allowed: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> list[np.ndarray]:
        """When no one passage can supply the whole range (a 105 s range in the middle of a 4-minute song): music
        from before the range leading in and music from after it leading out, each reaching far enough to hand over
        to the other, so that the range holds two passages that never play the same music. Lags fitting only the
        range's first or last beat rarely reach that far, and from one side of the range both halves played much of
        the same stretch twice. None when the two sides cannot meet (a range longer than the music around it)."""
        segments = len(self.bounds) - 1
        before, after = allowed & (lags < 0), allowed & (lags > 0)

        def fits(a: int, b: int, side: np.ndarray) -> np.ndarray:
            return self._fits(lags, self.bounds[a], self.bounds[b]) & side

        lo, hi = 0, segments  # the furthest bound music from before supplies from the start (monotone in it)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(0, mid, before).any() else (lo, mid - 1)
        reach = lo
        lo, hi = 0, segments  # the earliest bound from which music from after supplies the rest
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid, segments, after).any() else (mid + 1, hi)
        if lo > reach:
            return []
        meet = (lo + reach) // 2  # where both fit, so the search can choose the switch around it
        return [local_minima(entry, CANDIDATES, self.beat_cells, fits(0, meet, before)),
                local_minima(exit_, CANDIDATES, self.beat_cells, fits(meet, segments, after))]

    def best(self, excluded: list[int]) -> Plan | None:
        """The cheapest path through the candidate lags, or None when no lag can supply the range."""
        lags = self._candidates(excluded)
        if len(lags) == 0:
            return None
        n = self.space.size
        segments = len(self.bounds) - 1
        fits = np.array([self._fits(lags, self.bounds[i], self.bounds[i + 1]) for i in range(segments)])
        cost = np.where(fits[0], self.entry[np.clip(self.first + lags, 0, n - 1)], np.inf)
        back = np.zeros((segments, len(lags)), dtype=int)
        back[0] = np.arange(len(lags))
        switch_costs = []
        for i in range(1, segments):
            at = self.bounds[i]
            jump = switch_matrix(self.space, at + lags, at + lags)  # (from, to)
            switch_costs.append(jump)
            moved = cost[:, None] + SWITCH_PENALTY + jump
            np.fill_diagonal(moved, np.inf)
            came_from = np.argmin(moved, axis=0)
            moved_cost = moved[came_from, np.arange(len(lags))]
            stay = moved_cost >= cost
            back[i] = np.where(stay, np.arange(len(lags)), came_from)
            cost = np.where(fits[i], np.where(stay, cost, moved_cost), np.inf)
        exit_cost = self.exit[np.clip(self.last + lags, 0, n - 1)]
        total = cost + exit_cost
        final = int(np.argmin(total))
        if not np.isfinite(total[final]):
            return None
        path = [final]
        for i in range(segments - 1, 0, -1):
            path.append(int(back[i, path[-1]]))
        path.reverse()
        return self._plan(lags, path, switch_costs)

    def _plan(self, lags: np.ndarray, path: list[int], switch_costs: list[np.ndarray]) -> Plan:
        n = self.space.size
        passages: list[Passage] = []
        join_costs: list[float] = []
        if self.has_entry:
            join_costs.append(float(self.entry_near[min(self.first + lags[path[0]], n - 1)]))
        for i, state in enumerate(path):
            seg_start = self.start if i == 0 else self.bounds[i] * CELL_SECONDS
            lag = float(lags[state] * CELL_SECONDS)
            if passages and abs(passages[-1].lag - lag) < 1e-9:
                continue
            if passages:
                passages[-1].end = seg_start
                join_costs.append(float(switch_costs[i - 1][path[i - 1], state]))
            passages.append(Passage(start=seg_start, end=self.end, lag=lag))
        last = passages[-1]
        exit_cell = min(self.last + int(round(last.lag / CELL_SECONDS)), n - 1)
        if self.has_exit:
            join_costs.append(float(self.exit_near[min(exit_cell + self.exit_drift[exit_cell], n - 1)]))
            last.end_lag = last.lag + float(self.exit_drift[exit_cell]) * CELL_SECONDS
        return Plan(passages=passages, join_costs=join_costs, has_entry=self.has_entry, has_exit=self.has_exit)


def _relaxed(cost: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """For each cell the lowest cost within ``reach`` cells, and the offset where it lies."""
    n = len(cost)
    best = cost.copy()
    offset = np.zeros(n, dtype=int)
    for r in range(-reach, reach + 1):
        if r == 0:
            continue
        shifted = np.full(n, np.inf)
        if r > 0:
            shifted[:n - r] = cost[r:]
        else:
            shifted[-r:] = cost[:n + r]
        # prefer no drift: a shifted cell must be clearly better
        better = shifted + 0.01 * abs(r) < best
        best = np.where(better, shifted, best)
        offset = np.where(better, r, offset)
    return best, offset
