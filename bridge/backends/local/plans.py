"""A plan says which parts of the song play where: passages (stretches of the song's own audio) and the joins
between them. Searches produce plans; the renderer turns a plan into audio."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Passage:
    """One stretch of the song re-used: output times ``start..end`` play source time ``output time + lag``.

    ``end_lag`` differs from ``lag`` when the passage must land on a slightly different place than it started
    from (tempo drift between two repetitions); the renderer absorbs the difference with a tiny varispeed.
    """

    start: float
    end: float
    lag: float
    end_lag: float | None = None

    @property
    def source_start(self) -> float:
        return self.start + self.lag

    def to_json(self) -> dict:
        data = {"at": round(self.start, 4), "until": round(self.end, 4), "from": round(self.source_start, 4)}
        if self.end_lag is not None and abs(self.end_lag - self.lag) > 1e-6:
            data["stretch"] = round((self.end - self.start + self.end_lag - self.lag) / (self.end - self.start), 6)
        return data


@dataclass
class Plan:
    """Passages in output order and the cost of each join (0 seamless .. 1 no better than chance).

    ``join_costs`` has one entry per join actually made: into the first passage (absent when the range starts at
    the song's start), between passages, and back into the source (inpaint, absent at the song's end).
    ``ending`` says how an extension finishes: "source" (inpaint), "song_end" (the song's own ending) or "fade".
    """

    passages: list[Passage]
    join_costs: list[float]
    ending: str = "source"
    has_entry: bool = True  # False when the range starts at the song's start: nothing to join from
    has_exit: bool = True  # False when the range (or an extension) runs to the end: nothing to join back into
    match_entry_level: bool = True  # False when what precedes the join is the song's ending dying away
    notes: list[str] = field(default_factory=list)

    @property
    def cost(self) -> float:
        return float(sum(self.join_costs))

    @property
    def worst_join(self) -> float:
        return float(max(self.join_costs)) if self.join_costs else 0.0

    @property
    def lags(self) -> list[float]:
        return [p.lag for p in self.passages]
