"""How alike two moments of a song are, and how well a passage's surroundings match a range's surroundings.

Each cell (~46 ms) becomes one vector: its mel spectrum, chroma and onset strength. Distances are divided by the
song's median distance between cells, so a cost of 1.0 means "as different as two moments picked at random" and
0.0 means "identical"; confidence is one minus that cost. Cells overlapping the hidden range are *unknown*:
comparing with them costs 1.0, so the search never leans on the range's own audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.backends.local.analysis import (
    ANALYSIS_RATE,
    CELL_SECONDS,
    N_FFT,
    SongAnalysis,
)

CONTEXT_SECONDS = 4.0  # how much music either side of a join is compared
_ROWS_AT_ONCE = 64  # context cells whose distances to every cell are held at once (a 60-min song: 40 MB)
SWITCH_SECONDS = 2.0  # how much music either side of a jump inside the new material is compared
HIDDEN_GUARD = N_FFT / 2 / ANALYSIS_RATE + CELL_SECONDS  # seconds either side of a range whose cells saw it
_WEIGHTS = {"mel": 1.0, "chroma": 0.7, "onset": 0.4}


@dataclass
class CellSpace:
    """Per-cell vectors of a song, which cells may be compared, and the song's typical distance."""

    vectors: np.ndarray  # (n, d) float32
    known: np.ndarray  # (n,) bool: False where a cell overlaps the hidden range
    scale: float  # median distance between two cells of this song
    norms: np.ndarray  # (n,) squared vector lengths, kept for fast distances

    @property
    def size(self) -> int:
        return len(self.vectors)

    def distances(self, rows: np.ndarray) -> np.ndarray:
        """Normalised distance from each cell in ``rows`` to every cell: (len(rows), n); unknown cells cost 1."""
        rows = np.asarray(rows, dtype=int)
        sq = self.norms[rows][:, None] + self.norms[None, :] - 2.0 * (self.vectors[rows] @ self.vectors.T)
        dist = np.sqrt(np.maximum(sq, 0.0)) / self.scale
        dist[:, ~self.known] = 1.0
        dist[~self.known[rows], :] = 1.0
        return dist

    def pair_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Normalised distance between cells a[i] and b[i] (same shapes); out-of-song or unknown cells cost 1."""
        a, b = np.asarray(a), np.asarray(b)
        inside = (a >= 0) & (a < self.size) & (b >= 0) & (b < self.size)
        ac, bc = np.clip(a, 0, self.size - 1), np.clip(b, 0, self.size - 1)
        d = np.linalg.norm(self.vectors[ac] - self.vectors[bc], axis=-1) / self.scale
        ok = inside & self.known[ac] & self.known[bc]
        return np.where(ok, d, 1.0)


def cell_space(analysis: SongAnalysis, hidden: tuple[float, float] | None = None) -> CellSpace:
    """Vectors for every cell; cells touching ``hidden`` (start, end seconds) are marked unknown.

    Features are scaled by statistics of the known cells only, so the hidden range's audio changes nothing.
    """
    n = analysis.cell_count
    known = np.ones(n, dtype=bool)
    if hidden is not None:
        # an STFT window reaching into the range sees its audio: cells that close are unknown too
        first = int(np.floor((hidden[0] - HIDDEN_GUARD) / CELL_SECONDS))
        last = int(np.ceil((hidden[1] + HIDDEN_GUARD) / CELL_SECONDS))
        known[max(first, 0):max(last, 0)] = False
    seen = known if known.any() else np.ones(n, dtype=bool)
    mel = analysis.mel - analysis.mel[seen].mean(axis=0)
    mel = mel / (float(mel[seen].std()) + 1e-6) / np.sqrt(mel.shape[1])
    peak = analysis.mel.max(axis=1)
    loud = np.clip((peak - peak[seen].max() + 50.0) / 20.0, 0.0, 1.0)[:, None]
    chroma = analysis.chroma * loud  # chroma of near-silence is noise: fade it out
    onset = (analysis.onset / (float(analysis.onset[seen].std()) + 1e-6))[:, None]
    vectors = np.hstack([_WEIGHTS["mel"] * mel, _WEIGHTS["chroma"] * chroma,
                         _WEIGHTS["onset"] * onset]).astype(np.float32)
    scale = _median_distance(vectors, known)
    return CellSpace(vectors=vectors, known=known, scale=scale, norms=np.sum(vectors * vectors, axis=1))


def _median_distance(vectors: np.ndarray, known: np.ndarray) -> float:
    """Median distance between known cells at least a second apart (sampled, seeded so it is repeatable)."""
    pool = np.flatnonzero(known)
    if len(pool) < 2:
        return 1.0
    rng = np.random.default_rng(0)
    a = pool[rng.integers(0, len(pool), size=20000)]
    b = pool[rng.integers(0, len(pool), size=20000)]
    keep = np.abs(a - b) >= min(int(1.0 / CELL_SECONDS), len(pool) - 1)
    if not np.any(keep):
        keep = a != b
    d = np.linalg.norm(vectors[a[keep]] - vectors[b[keep]], axis=1)
    return max(float(np.median(d)), 1e-3)


def _context_weights(cells: int, half_life: float) -> np.ndarray:
    return np.exp(-np.arange(cells) * CELL_SECONDS / half_life)


def context_cost(space: CellSpace, anchor: int, direction: int, seconds: float = CONTEXT_SECONDS) -> np.ndarray:
    """For every cell c: how unlike the music leading into (direction -1) or out of (+1) ``anchor`` is to c's.

    direction -1 compares cells anchor-1, anchor-2, ... with c-1, c-2, ... (c then plays the anchor's role);
    direction +1 compares anchor, anchor+1, ... with c, c+1, .... Context beyond the song's edges is skipped;
    returns zeros when the anchor has no context at all.
    """
    n = space.size
    count = max(int(round(seconds / CELL_SECONDS)), 1)
    offsets = np.arange(1, count + 1) if direction < 0 else np.arange(count)
    weights = _context_weights(count, half_life=seconds / 3.0)
    targets = anchor - offsets if direction < 0 else anchor + offsets
    usable = (targets >= 0) & (targets < n)
    usable[usable] = space.known[targets[usable]]  # the range's own cells say nothing: leave them out
    if not np.any(usable):
        return np.zeros(n)
    targets, weights = targets[usable], weights[usable]
    total = np.zeros(n)
    for first in range(0, len(targets), _ROWS_AT_ONCE):  # a long context in a long song: bounded memory
        rows = targets[first:first + _ROWS_AT_ONCE]
        dist = space.distances(rows)
        for row, (k, w) in enumerate(zip(anchor - rows, weights[first:first + _ROWS_AT_ONCE])):
            shifted = np.ones(n)  # candidate context cell = c - k
            if k >= 0:
                shifted[k:] = dist[row, :n - k] if k else dist[row]
            else:
                shifted[:n + k] = dist[row, -k:]
            total += w * shifted
    return total / weights.sum()


def switch_cost(space: CellSpace, a: np.ndarray, b: np.ndarray, seconds: float = SWITCH_SECONDS) -> np.ndarray:
    """How audible a jump from playing up to cell a[i] to playing on from cell b[i] is (0 = seamless, 1 = random).

    Either side may vouch for the jump: when the music leading into b sounds like the music leading into a, what
    follows b continues what the listener just heard; when the music after b sounds like the music that would
    have followed a, the listener hears what they expected. Nearer cells weigh more.
    """
    count = max(int(round(seconds / CELL_SECONDS)), 1)
    weights = _context_weights(count, half_life=seconds / 3.0)
    a, b = np.asarray(a)[..., None], np.asarray(b)[..., None]
    before = -np.arange(1, count + 1)
    after = np.arange(count)
    past = (space.pair_distances(a + before, b + before) * weights).sum(axis=-1)
    future = (space.pair_distances(a + after, b + after) * weights).sum(axis=-1)
    return np.minimum(past, future) / weights.sum()


def switch_matrix(space: CellSpace, a: np.ndarray, b: np.ndarray, seconds: float = SWITCH_SECONDS) -> np.ndarray:
    """``switch_cost`` of every jump from a cell of ``a`` to a cell of ``b``: (len(a), len(b)).

    The same figures, computed as one batch of small matrix products instead of one distance per pair and cell.
    """
    count = max(int(round(seconds / CELL_SECONDS)), 1)
    weights = _context_weights(count, half_life=seconds / 3.0)
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    before = -np.arange(1, count + 1)[:, None]
    after = np.arange(count)[:, None]
    past = np.tensordot(weights, _cross_distances(space, a + before, b + before), axes=1)
    future = np.tensordot(weights, _cross_distances(space, a + after, b + after), axes=1)
    return np.minimum(past, future) / weights.sum()


def _cross_distances(space: CellSpace, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised distances between the cells a[k, i] and b[k, j] for every k: (k, i, j); out-of-song or unknown
    cells cost 1."""
    ok_a = (a >= 0) & (a < space.size)
    ok_b = (b >= 0) & (b < space.size)
    ac, bc = np.clip(a, 0, space.size - 1), np.clip(b, 0, space.size - 1)
    ok_a &= space.known[ac]
    ok_b &= space.known[bc]
    x, y = space.vectors[ac].astype(np.float64), space.vectors[bc].astype(np.float64)
    sq = np.sum(x * x, axis=2)[:, :, None] + np.sum(y * y, axis=2)[:, None, :] - 2.0 * (x @ y.transpose(0, 2, 1))
    dist = np.sqrt(np.maximum(sq, 0.0)) / space.scale
    return np.where(ok_a[:, :, None] & ok_b[:, None, :], dist, 1.0)


def local_minima(cost: np.ndarray, count: int, spacing: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``count`` lowest costs at least ``spacing`` apart (greedy non-maximum suppression)."""
    cost = np.where(np.isfinite(cost), cost, np.inf)
    if allowed is not None:
        cost = np.where(allowed, cost, np.inf)
    order = np.argsort(cost, kind="stable")
    chosen: list[int] = []
    taken = np.zeros(len(cost), dtype=bool)
    for idx in order:
        if not np.isfinite(cost[idx]) or len(chosen) >= count:
            break
        if taken[idx]:
            continue
        chosen.append(int(idx))
        taken[max(idx - spacing + 1, 0):idx + spacing] = True
    return np.array(chosen, dtype=int)


def confidence(cost: float) -> float:
    """Map a normalised cost to 0..1: 1 for an identical match, 0 for a match no better than chance."""
    return float(min(max(1.0 - float(cost), 0.0), 1.0))
