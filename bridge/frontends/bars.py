"""A range in bars from the DAW's play cursor: "the last N bars", "this bar", "the next N bars".

The DAW's transport feedback (``daw_feedback``) says where the cursor is (timeline seconds), the tempo and, where it
can, the beats in a bar (4/4 otherwise). Bars are counted from the timeline's start at that one tempo. No DAW's
feedback reports its tempo map, so the tempo and signature it reported while its cursor moved are kept
(``TransportHistory``): a bars selection is refused, with the reason, when the timeline up to its end (or up to the
cursor, when that lies later) was reported at another tempo or signature, since the bar lines counted at the
cursor's tempo would not be the DAW's there. Ardour reports no tempo but its own bar count at the cursor: its bar
lines are found as they pass (``BarLines``), and its bars are counted on them. The audio plugin reports its host's
transport in its capture index, with the tempo of every stretch it played (``daw_feedback.bars_transport``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from osc_schema import ValidationError

ANCHORS = ("last", "this", "next")
EPSILON = 1e-6  # seconds: a cursor this close to a bar line stands on it (feedback is rounded)
SELECTION_KEYS = ("source", "capture", "position", "item_id", "track_id", "take_id", "drop_folder")  # carried on
STEP = 1.0  # seconds: a cursor that moved further forward than this between two reports was located, not played
HISTORY = 128  # stretches of timeline the history keeps (a locate starts one)
TEMPO_TOLERANCE = 0.005  # BPM: reports this close are one tempo (REAPER's /tempo/raw is a float)
MIN_BEATS_APART = 0.25  # reports spread this far in one bar place its bar line
MIN_BAR_S = 0.01  # seconds: a shorter bar (4 beats at 24000 BPM), or a cursor or bars past MAX_TIMELINE_S (11.6
MAX_TIMELINE_S = 1e6  # days; /bridge/selected's float32 is 1/16 s off there) is a transport no DAW reports: refused


@dataclass(frozen=True)
class Heard:
    """A stretch of timeline over which the DAW reported one tempo and signature."""

    start: float  # timeline seconds
    end: float
    tempo: float
    beats_per_bar: float


@dataclass(frozen=True)
class Transport:
    daw: str  # reaper | ableton | ardour | plugin (the audio plugin's host)
    cursor: float  # timeline seconds
    tempo: float = 0.0  # beats per minute; 0: the DAW reports none (Ardour), its bar lines count instead
    beats_per_bar: float = 4.0
    heard: tuple[Heard, ...] = field(default=(), compare=False)  # the history when the transport was read
    bar: int | None = None  # the DAW's own bar number at the cursor (Ardour's /position/bbt)...
    beat: float = 0.0  # ...and the beats into that bar
    bar_lines: tuple[tuple[int, float], ...] = field(default=(), compare=False)  # (bar, timeline start) seen pass

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.tempo

    @property
    def daw_name(self) -> str:
        return {"reaper": "REAPER", "ableton": "Live", "ardour": "Ardour", "plugin": "the plugin host"}.get(
            self.daw, self.daw)

    def describe(self) -> str:
        if not self.tempo:
            return f"{self.daw_name}'s bar lines, from its play cursor"
        return f"{self.tempo:g} BPM, {self.beats_per_bar:g} beats a bar, from {self.daw_name}'s play cursor"


@dataclass(frozen=True)
class BarRange:
    first_bar: int  # 1-based, as the DAW counts
    bars: int
    start: float  # timeline seconds
    end: float
    counted_at: str = field(default="", compare=False)  # "at 120 BPM", "on Ardour's bar lines"

    def describe(self, seconds: bool = True) -> str:
        bars = f"bar {self.first_bar}" if self.bars == 1 else f"bars {self.first_bar}-{self.first_bar + self.bars - 1}"
        return f"{bars} ({self.start:.3f}-{self.end:.3f} s)" if seconds else bars

    def with_tempo(self) -> str:
        """What a job made on these bars says of its range: "bars 7-8 (12.000-16.000 s) at 120 BPM"."""
        return f"{self.describe()} {self.counted_at}"


def bar_range(transport: Transport, anchor: str, bars: int) -> BarRange:
    """The whole bars before the one the cursor is in (last), that bar (this), or those from the next bar line on
    (next; from the cursor's bar line when it stands on one). Raises ValidationError when they would start before
    the timeline does."""
    if not transport.tempo:
        return _on_bar_lines(transport, anchor, bars)
    length = transport.bar_seconds
    if not MIN_BAR_S <= length <= MAX_TIMELINE_S or abs(transport.cursor) > MAX_TIMELINE_S:
        raise ValidationError("bars", bars, f"cannot be counted from {transport.daw_name}'s transport: a bar of "
                                            f"{length:.3g} s ({transport.tempo:g} BPM, {transport.beats_per_bar:g} "
                                            f"beats a bar) from a cursor at {transport.cursor:.6g} s; check the "
                                            "tempo and the play cursor it reports", shown="")
    position = transport.cursor / length
    current = math.floor(position + EPSILON / length)  # 0-based bar the cursor is in
    first, bars = _anchored(anchor, bars, current, on_line=position - current < EPSILON / length)
    if first < 0:
        where = f"is in bar {current + 1}" if transport.cursor >= 0 else f"is at {transport.cursor:g} s"
        raise ValidationError("bars", bars, f"reach before the song's start: the cursor {where}")
    if (first + bars) * length > MAX_TIMELINE_S:
        raise ValidationError("bars", bars, f"reach past {MAX_TIMELINE_S:g} s of timeline: the cursor is in bar "
                                            f"{current + 1} at {transport.tempo:g} BPM")
    counted_at = f"at {transport.tempo:g} BPM" + (f", {transport.beats_per_bar:g} beats a bar"
                                               if transport.beats_per_bar != 4 else "")
    chosen = BarRange(first + 1, bars, round(first * length, 6), round((first + bars) * length, 6), counted_at)
    _refuse_a_change(transport, chosen)
    return chosen


def _anchored(anchor: str, bars: int, current: int, on_line: bool) -> tuple[int, int]:
    """The first bar (numbered as ``current``, the cursor's) and how many bars, for the anchor."""
    if anchor == "this":
        return current, 1
    if anchor == "last":
        return current - bars, bars
    return (current if on_line else current + 1), bars


def _on_bar_lines(transport: Transport, anchor: str, bars: int) -> BarRange:
    """``bar_range`` on the bar lines the DAW's own bar count showed passing (``BarLines``)."""
    current = transport.bar
    first, bars = _anchored(anchor, bars, current, on_line=transport.beat < EPSILON)
    if first < 1:
        raise ValidationError("bars", bars, f"reach before the song's start: the cursor is in bar {current}")
    lines = dict(transport.bar_lines)
    unseen = [bar for bar in range(first, first + bars + 1) if bar not in lines]
    if unseen:
        play = f"bar {unseen[0]}" if len(unseen) == 1 else f"bars {unseen[0]}-{unseen[-1]}"
        raise ValidationError("bars", bars, f"need bar lines not seen yet: {transport.daw_name} reports no tempo, "
                                            f"so bars are found as its transport rolls through them: play {play} once "
                                            f"(the cursor is in bar {current})", shown="")
    return BarRange(first, bars, lines[first], lines[first + bars], f"on {transport.daw_name}'s bar lines")


class BarLines:
    """Where the DAW's bars start, found from its bar count at the cursor while the transport rolls.

    Ardour's OSC feedback gives the cursor (``/position/time``, cut to the millisecond) and Ardour's own bar, beat
    and tick there (``/position/bbt``) but no tempo. The reports inside one bar lie on a line (a tempo constant
    within the bar); fitted, it puts the bar line where the beats count back to 0, to well under a millisecond from
    ten reports a second. A report on beat 1, tick 0 is a bar line itself. The lines come from the DAW's own tempo
    map, so a tempo change needs no refusal. Kept to the millisecond; the newest reports win.
    """

    LIMIT = 10000  # bars
    SECOND_CUT = 0.001  # Ardour cuts its time to the millisecond (and rounds its beats to the tick, 1/1920)

    def __init__(self):
        self._lines: dict[int, float] = {}
        self._exact: set[int] = set()  # bars whose line a report on it gave
        self._bar: int | None = None  # the bar the last reports were in...
        self._points: list[tuple[float, float]] = []  # ...and (beat, seconds) there

    def learn(self, cursor: float, bar: int, beat: float) -> None:
        """A report: the cursor (timeline seconds) is ``beat`` beats into ``bar``."""
        if beat < EPSILON:  # on the line: no fit needed, none could do better
            self._lines[bar] = round(cursor, 3)
            self._exact.add(bar)
        if bar != self._bar:
            self._bar, self._points = bar, []
        self._points.append((beat, cursor + self.SECOND_CUT / 2))  # the time lay up to a cut on, half of it likely
        beats = [b for b, _ in self._points]
        if max(beats) - min(beats) < MIN_BEATS_APART:
            return
        n, mean_beat = len(beats), sum(beats) / len(beats)
        mean_second = sum(t for _, t in self._points) / n
        seconds_a_beat = (sum((b - mean_beat) * (t - mean_second) for b, t in self._points)
                          / sum((b - mean_beat) ** 2 for b in beats))
        if seconds_a_beat <= 0:  # the tempo map changed under the cursor: start again from this report
            self._points = self._points[-1:]
            return
        line = round(mean_second - mean_beat * seconds_a_beat, 3) + 0.0  # + 0.0: no "-0.000"
        if bar in self._exact and abs(line - self._lines[bar]) <= 2 * self.SECOND_CUT:
            return
        self._exact.discard(bar)
        self._lines[bar] = line
        if len(self._lines) > self.LIMIT:
            del self._lines[next(iter(self._lines))]

    def snapshot(self) -> tuple[tuple[int, float], ...]:
        return tuple(self._lines.items())


def _refuse_a_change(transport: Transport, chosen: BarRange) -> None:
    """ValidationError when the DAW reported another tempo or signature between the song's start and the later of
    the range's end and the cursor: the bars counted at the cursor's tempo are not the DAW's there."""
    reach = max(chosen.end, transport.cursor)
    for heard in transport.heard:
        if heard.start >= reach:
            continue
        tempo_differs = abs(heard.tempo - transport.tempo) > TEMPO_TOLERANCE
        if not tempo_differs and heard.beats_per_bar == transport.beats_per_bar:
            continue
        before = heard.end < transport.cursor  # the cursor stands at the counted tempo, past or before this stretch
        counted = [h.start for h in transport.heard if h.start > heard.end
                   and abs(h.tempo - transport.tempo) <= TEMPO_TOLERANCE and h.beats_per_bar == transport.beats_per_bar]
        at = min(counted, default=transport.cursor) if before else heard.start  # where the DAW first reported the
        # counted tempo after this stretch (a stretch at this one's tempo played again later is no change)
        if tempo_differs:
            values, unit, what = (heard.tempo, transport.tempo), " BPM", "tempo"
        else:
            values, unit, what = (heard.beats_per_bar, transport.beats_per_bar), " beats a bar", "time signature"
        old, new = values if before else values[::-1]
        where = "inside" if chosen.start < at < chosen.end else "before" if at <= chosen.start else "after"
        why = "" if where == "inside" else ", and bars are counted from the song's start at the cursor's tempo"
        raise ValidationError("bars", chosen.bars, f"{what} changes {where} {chosen.describe(seconds=False)} "
                                                   f"({old:g} → {new:g}{unit} at {at:.1f} s){why}: select the "
                                                   "range in the DAW instead", shown="")


class TransportHistory:
    """The tempo and signature the DAW reported over its timeline, as stretches (``Heard``), the newest last.

    A report extends the newest stretch while the cursor plays forward at the same tempo and signature, else starts
    one; what a newer report says about a stretch of timeline replaces what older ones said (a tempo edited where
    the cursor stands). Only the last ``HISTORY`` stretches are kept.
    """

    def __init__(self):
        self._heard: list[Heard] = []

    def record(self, cursor: float, tempo: float, beats_per_bar: float) -> None:
        heard = self._heard
        last = heard[-1] if heard else None
        if (last is not None and (last.tempo, last.beats_per_bar) == (tempo, beats_per_bar)
                and last.end <= cursor <= last.end + STEP):
            if cursor == last.end:
                return
            self._keep(Heard(last.start, cursor, tempo, beats_per_bar), heard[:-1])
        else:
            self._keep(Heard(cursor, cursor, tempo, beats_per_bar), heard)

    def played(self, stretch: Heard) -> None:
        """A whole stretch played at one tempo and signature (the plugin reports them so)."""
        self._keep(stretch, self._heard)

    def _keep(self, newest: Heard, older: list[Heard]) -> None:
        self._heard = [piece for stretch in older for piece in _outside(stretch, newest)][-HISTORY + 1:] + [newest]

    def snapshot(self) -> tuple[Heard, ...]:
        return tuple(self._heard)


def _outside(stretch: Heard, newer: Heard) -> list[Heard]:
    """The parts of ``stretch`` that ``newer`` does not cover."""
    if stretch.end < newer.start or stretch.start > newer.end:
        return [stretch]
    pieces = []
    if stretch.start < newer.start - EPSILON:
        pieces.append(Heard(stretch.start, newer.start - EPSILON, stretch.tempo, stretch.beats_per_bar))
    if stretch.end > newer.end + EPSILON:
        pieces.append(Heard(newer.end + EPSILON, stretch.end, stretch.tempo, stretch.beats_per_bar))
    return pieces


def bars_on_source(transport: Transport | None, selection: dict, anchor: str, bars: int
                   ) -> tuple[BarRange, float, float]:
    """The bars from the cursor, and their start and end in source seconds (through the selection's position)."""
    if transport is None:
        raise ValidationError("bars", bars, "need the DAW's play cursor and tempo: add [midi.daw] to the daemon's "
                                            "config (reaper_port, ableton = true or ardour = true) and let the DAW "
                                            "send them, or put the audio plugin on a track")
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
