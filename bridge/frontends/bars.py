"""A range in bars from the DAW's play cursor: "the last N bars", "this bar", "the next N bars".

The DAW's transport feedback (``daw_feedback``) says where the cursor is (timeline seconds), the tempo and, where it
can, the beats in a bar (4/4 otherwise). Bars are counted from the timeline's start at that one tempo: a DAW that
reports no tempo map gives no way to see a tempo change, so the reply names the tempo and the bars it assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from osc_schema import ValidationError

ANCHORS = ("last", "this", "next")
EPSILON = 1e-6  # seconds: a cursor this close to a bar line stands on it (feedback is rounded)
SELECTION_KEYS = ("source", "position", "item_id", "track_id", "take_id", "drop_folder")  # what a request carries on


@dataclass(frozen=True)
class Transport:
    daw: str  # reaper | ableton
    cursor: float  # timeline seconds
    tempo: float  # beats per minute
    beats_per_bar: float = 4.0

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo

    def describe(self) -> str:
        daw = {"reaper": "REAPER", "ableton": "Live"}.get(self.daw, self.daw)
        return f"{self.tempo:g} BPM, {self.beats_per_bar:g} beats a bar, from {daw}'s play cursor"


@dataclass(frozen=True)
class BarRange:
    first_bar: int  # 1-based, as the DAW counts
    bars: int
    start: float  # timeline seconds
    end: float

    def describe(self) -> str:
        bars = f"bar {self.first_bar}" if self.bars == 1 else f"bars {self.first_bar}-{self.first_bar + self.bars - 1}"
        return f"{bars} ({self.start:.3f}-{self.end:.3f} s)"


def bar_range(transport: Transport, anchor: str, bars: int) -> BarRange:
    """The whole bars before the one the cursor is in (last), that bar (this), or those from the next bar line on
    (next; from the cursor's bar line when it stands on one). Raises ValidationError when they would start before
    the timeline does."""
    length = transport.bar_seconds
    position = transport.cursor / length
    current = math.floor(position + EPSILON / length)  # 0-based bar the cursor is in
    if anchor == "this":
        first, bars = current, 1
    elif anchor == "last":
        first = current - bars
    else:
        first = current if position - current < EPSILON / length else current + 1
    if first < 0:
        raise ValidationError("bars", bars, f"reach before the song's start: the cursor is in bar {current + 1}")
    return BarRange(first + 1, bars, round(first * length, 6), round((first + bars) * length, 6))


def bars_on_source(transport: Transport | None, selection: dict, anchor: str, bars: int
                   ) -> tuple[BarRange, float, float]:
    """The bars from the cursor, and their start and end in source seconds (through the selection's position)."""
    if transport is None:
        raise ValidationError("bars", bars, "need the DAW's play cursor and tempo: add [midi.daw] to the daemon's "
                                            "config (reaper_port, or ableton = true) and let the DAW send them")
    chosen = bar_range(transport, anchor, bars)
    position = selection.get("position") or 0.0
    return chosen, round(chosen.start - position, 6), round(chosen.end - position, 6)


def selection_request(command: str, selection: dict) -> dict:
    """A request for ``command`` on the current selection: its source and ids (those known); no range, no prompt."""
    return {"command": command, "prompt": "",
            **{key: selection[key] for key in SELECTION_KEYS if selection.get(key) is not None}}


def range_arguments(operation: str, start: float, end: float) -> dict:
    """An inpaint replaces start..end; an extension continues the song from start for as long."""
    return {"start": start, "end": end} if operation == "inpaint" else {"extend_after": start,
                                                                          "duration": round(end - start, 6)}
