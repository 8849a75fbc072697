"""Coverage of the embedded engine on real music it was not tuned on: inpaint 2/5/10 s and extend 10/30 s.

The songs are the manifest of ``bench/music_set.py`` (Debian game-music packages, fixed dev / held-out split); each
song is cropped to its first ``--crop`` seconds (default 270) so memory and time stay bounded on 10-29 minute
tracks. Every figure is printed separately for the development and the held-out part.

Inpaint: gaps of 2, 5 and 10 s at 30 %, 55 % and 80 % of the crop. The gap is silenced in the file the engine gets
(so it cannot peek), the job runs through ``engine.render_job`` in this process exactly as a worker runs it (two
variants, variant 1 is the one delivered first), and the result is compared with the original by log-spectral
distance (LSD) next to the two baselines of ``engine_quality.py`` computed on the same case: silence, and a copy of
the audio just before the gap with 50 ms crossfades. A refusal counts as a loss. The job runs with
``min_confidence`` 0 and the floor is applied here afterwards: an inpaint's variants and their order do not depend
on the floor, so "delivered at floor f" is exactly what the engine does with ``[local] min_confidence = f``, and the
cases it would refuse still have an LSD (what a lower floor would have delivered).

Join quality at every join the engine reports (entry, switches, exit): the spectral-flux spike ratio and the click
detector of ``engine_quality.py``, against the original's own flux and edges at that spot.

Extend: the song is cut at t (45 % and 70 % of the crop, when t + 30 s fits), the engine gets only the audio before
t and continues it for 10 and 30 s; compared by LSD with what the song really did next, next to two baselines:
the last bar before t looped, and silence. Also: a repetition check (a stretch of material heard three times or
more, each time less than 8 bars after the previous, counting its original hearing before t) and the ending (the
engine's ending kind, and the last 20 ms against the extension's median level: clean when 30 dB or more below).
An extension job runs at the default floor, not 0: which of its candidates comes first depends on which are offered
(``bridge/backends/local/agreement.py``), so its rows of the floor table below the default show the default's.

    python bench/engine_coverage.py [--quick] [--songs N] [--part dev|heldout|outside|both] [--crop 270]
                                   [--json out.json] [--only SUBSTRING] [--no-inpaint] [--no-extend] [--long [middle]]

``--long`` runs the independent evaluation's case instead: one inpaint of 100 s around 55 % of each whole song of
3.5 to 7 minutes (not cropped), starting no earlier than 101 s so the copy baseline has audio to copy (and one
passage of the song can supply it). ``--long middle`` centres it in the song, as the evaluation did: in a 4-minute
song 70 s lie either side, so no one passage fits, and the copy baseline repeats what lies before.

``--songs N`` takes N songs of each part, round-robin over the packages; ``--quick`` is 2 songs per part.
``--part outside`` runs music_set.py's third part (packages no decision has seen) alone; ``both`` never includes it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import music_set  # noqa: E402
from engine_quality import (  # noqa: E402
    _mono22,
    baselines,
    clicks,
    copy_pieces,
    flux,
    log_spectral_distance,
    material_edges,
    played_pieces,
    spike,
)

from bridge.audio.region import probe  # noqa: E402
from bridge.backends.local import engine  # noqa: E402
from bridge.backends.local.backend import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from bridge.exceptions import NoMaterialError  # noqa: E402
from bridge.models import JobSpec  # noqa: E402

GAPS = (2.0, 5.0, 10.0)
POSITIONS = (0.30, 0.55, 0.80)
EXTENDS = (10.0, 30.0)
EXTEND_POSITIONS = (0.45, 0.70)
FLOORS = tuple(sorted({0.0, 0.1, 0.2, 0.3, DEFAULT_MIN_CONFIDENCE}))
LONG_GAP, LONG_AT, LONG_SONGS = 100.0, 0.55, (210.0, 420.0)  # --long: seconds, where, the songs' lengths
BARS_FOR_LOOP = 8


@dataclass
class Result:
    part: str
    song: str
    package: str
    operation: str  # inpaint | extend
    at: float
    length: float
    confidence: float = np.nan  # variant 1's, or the best refused one's
    refusal: str = ""  # empty when something was rendered (inpaint: at floor 0; extend: at the default)
    lsd: float = np.nan
    base_a: float = np.nan  # inpaint: silence; extend: loop of the last bar
    base_b: float = np.nan  # inpaint: copy before the gap; extend: silence
    spikes: list = field(default_factory=list)  # per join
    clicks: int = 0
    joins: int = 0
    base_clicks: int = 0  # inpaint: copy baseline's clicks at the two edges
    passages: int = 0
    loops: bool = False  # extend: a short loop heard three times
    ending: str = ""
    tail_db: float = np.nan
    seconds: float = 0.0

    def delivered(self, floor: float = DEFAULT_MIN_CONFIDENCE) -> bool:
        """Whether the engine run with ``[local] min_confidence = floor`` delivers this case's variant 1."""
        scaled = engine.floor_for(floor, self.length) if self.operation == "inpaint" else floor
        return not self.refusal and self.confidence >= scaled

    def better(self, floor: float = DEFAULT_MIN_CONFIDENCE) -> bool:
        return self.delivered(floor) and self.lsd < self.base_a and self.lsd < self.base_b


def _spec(path: Path, **fields) -> JobSpec:
    values = {"job_id": "j-coverage", "source": path, "source_info": probe(path), "backend": "local",
              "num_outputs": 2}
    values.update(fields)
    return JobSpec(**values)


def _run(spec: JobSpec, folder: Path, floor: float = 0.0) -> tuple[dict | None, str]:
    """(variant 1 as rendered, refusal reason) from the engine as a worker runs it at ``floor``."""
    cache, work = folder / "cache", folder / "work"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        engine.analyse_source(str(spec.source), str(cache))
        results = engine.render_job(spec.to_json(), str(work), str(cache), floor)
    except NoMaterialError as exc:
        return None, str(exc)
    return results[0], ""


def _read_variant(variant: dict) -> tuple[np.ndarray, float]:
    audio, _ = sf.read(variant["path"], dtype="float32", always_2d=True)
    return audio, float(variant["span_start"])


class _Local:
    """Flux and edges of the original around one case, so each case looks at seconds, not the whole song."""

    def __init__(self, original: np.ndarray, sr: int, lo: float, hi: float, median_flux: float):
        self.sr, self.median = sr, median_flux
        self.lo = max(lo, 0.0)
        self.a, self.b = int(self.lo * sr), min(int(hi * sr), len(original))
        self.original = original[self.a:self.b]
        self.original_flux = flux(_mono22(self.original, sr))

    def joins(self, version: np.ndarray, windows: list[tuple[float, float]], gap: tuple[float, float],
              pieces: list[tuple[float, np.ndarray, float]]):
        """(flux spike ratio, click) of each join window; ``pieces`` are the re-used audio (``material_edges``)."""
        part = version[self.a:self.b]
        version_flux = flux(_mono22(part, self.sr))
        shifted = [(lo - self.lo, hi - self.lo) for lo, hi in windows]
        spikes = [spike(version_flux, self.original_flux, self.median, lo, hi)[0] for lo, hi in shifted]
        found = clicks(part, self.original, self.sr, shifted, (gap[0] - self.lo, gap[1] - self.lo),
                       material_edges(pieces, self.sr, windows))
        return spikes, found


def _join_windows(joins: list[dict], end: float | None) -> list[tuple[float, float]]:
    """The stretch each join's crossfade and its aftermath cover (the exit join's crossfade lies after it)."""
    windows = []
    for join in joins:
        at, fade = float(join["at"]), float(join["crossfade"])
        if end is not None and abs(at - end) < 1e-3:
            windows.append((at - 0.05, at + fade + 0.2))
        else:
            windows.append((at - fade - 0.2, at + 0.05))
    return windows


def _refusal_kind(message: str) -> tuple[str, float]:
    found = re.search(r"best match confidence ([0-9.]+)", message)
    if found:
        return "no similar material", float(found.group(1))
    if "too short" in message:
        return "too short", np.nan
    if "silent" in message:
        return "silent", np.nan
    return message[:60], np.nan


def inpaint_case(song: music_set.Song, original: np.ndarray, sr: int, start: float, length: float,
                 median_flux: float, folder: Path) -> Result:
    end = start + length
    first, last = int(round(start * sr)), int(round(end * sr))
    case = Result(song.part, song.label, song.package, "inpaint", start, length)
    hidden = original.copy()
    hidden[first:last] = 0.0
    path = folder / "song.wav"
    sf.write(str(path), hidden, sr, subtype="FLOAT")
    del hidden
    t0 = time.perf_counter()
    variant, refusal = _run(_spec(path, operation="inpaint", start=start, end=end), folder)
    case.seconds = time.perf_counter() - t0
    silence, copy = baselines(original, sr, start, end)
    ref = _mono22(original[first:last], sr)
    case.base_a = log_spectral_distance(_mono22(silence[first:last], sr), ref)
    case.base_b = log_spectral_distance(_mono22(copy[first:last], sr), ref)
    local = _Local(original, sr, start - 3.0, end + 3.0, median_flux)
    edges = [(start - 0.2, start + 0.05), (end - 0.05, end + 0.2)]
    case.base_clicks = local.joins(copy, edges, (start, end),
                                   copy_pieces(original, sr, start, end))[1]
    if variant is None:
        case.refusal, case.confidence = _refusal_kind(refusal)
        return case
    out, position = _read_variant(variant)
    result = original.copy()
    at = int(round(position * sr))
    result[at:at + len(out)] = out
    splice = variant["splice"]
    case.confidence = float(splice["confidence"])
    case.passages = len(splice["passages"])
    case.lsd = log_spectral_distance(_mono22(result[first:last], sr), ref)
    windows = _join_windows(splice["joins"], end)
    case.joins = len(windows)
    if windows:
        case.spikes, case.clicks = local.joins(result, windows, (start, end),
                                               played_pieces(original, sr, splice["passages"], splice["joins"]))
    return case


def extend_cuts(length: float) -> list[float]:
    """Where a song of ``length`` seconds is cut for the extension cases: at ``EXTEND_POSITIONS``, each leaving 20 s
    before it and the longest extension after it."""
    cuts = (round(q * length, 2) for q in EXTEND_POSITIONS)
    return [cut for cut in cuts if cut >= 20.0 and cut + max(EXTENDS) <= length]


def _loop_last_bar(before: np.ndarray, sr: int, bar: float, seconds: float) -> np.ndarray:
    """The last bar before the cut played over and over, 10 ms crossfades between repeats."""
    frames, want = max(int(round(bar * sr)), int(0.1 * sr)), int(round(seconds * sr))
    block = before[-frames:].copy()
    fade = int(0.01 * sr)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
    block[:fade] *= ramp
    block[-fade:] *= ramp[::-1]
    return np.tile(block, (want // frames + 1, 1))[:want]


def _loops(passages: list[dict], cut: float, end: float, bar: float) -> bool:
    """A stretch of material heard three times or more, each hearing less than 8 bars after the previous one.

    The material's own place in the song (before the cut, where the listener heard it first) counts as a hearing.
    """
    step = 0.25
    hearings: dict[int, list[float]] = {}
    for p in passages:
        for t in np.arange(float(p["at"]), float(p["until"]), step):
            source = float(p["from"]) + (t - float(p["at"]))
            times = hearings.setdefault(int(round(source / step)), [float(source)])
            if float(t) - times[-1] > 1.0:  # one hearing, not the neighbouring sample of the same one
                times.append(float(t))
    limit = BARS_FOR_LOOP * bar
    for times in hearings.values():
        times.sort()
        for i in range(len(times) - 2):
            if times[i + 1] - times[i] < limit and times[i + 2] - times[i + 1] < limit:
                return True
    return False


def extend_case(song: music_set.Song, original: np.ndarray, sr: int, cut: float, length: float,
                median_flux: float, folder: Path) -> Result:
    a, b = int(round(cut * sr)), int(round((cut + length) * sr))
    case = Result(song.part, song.label, song.package, "extend", cut, length)
    path = folder / "song.wav"
    sf.write(str(path), original[:a], sr, subtype="FLOAT")
    t0 = time.perf_counter()
    # at the default floor: which of an extension's candidates comes first depends on which are offered
    variant, refusal = _run(_spec(path, operation="extend", extend_after=cut, duration=length), folder,
                            DEFAULT_MIN_CONFIDENCE)
    case.seconds = time.perf_counter() - t0
    analysis, _ = engine.song_analysis(path, folder / "cache")
    bar = 4 * analysis.beat_period
    ref = _mono22(original[a:b], sr)
    case.base_a = log_spectral_distance(_mono22(_loop_last_bar(original[:a], sr, bar, length), sr), ref)
    case.base_b = log_spectral_distance(_mono22(np.zeros((b - a, original.shape[1]), np.float32), sr), ref)
    if variant is None:
        case.refusal, case.confidence = _refusal_kind(refusal)
        return case
    out, position = _read_variant(variant)
    start = int(round(position * sr))
    result = original[:b].copy()
    result[start:start + len(out)] = out[:b - start]
    splice = variant["splice"]
    case.confidence = float(splice["confidence"])
    case.passages = len(splice["passages"])
    case.lsd = log_spectral_distance(_mono22(result[a:b], sr), ref)
    windows = _join_windows(splice["joins"], None)
    case.joins = len(windows)
    if windows:
        local = _Local(original, sr, cut - 3.0, cut + length, median_flux)
        case.spikes, case.clicks = local.joins(result, windows, (cut, cut),
                                               played_pieces(original[:a], sr, splice["passages"], splice["joins"]))
    case.loops = _loops(splice["passages"], cut, cut + length, bar)
    case.ending = splice.get("ending", "")
    extension = result[a:b].mean(axis=1)
    level = 20 * np.log10(np.median(np.abs(extension)) + 1e-9)
    tail = 20 * np.log10(np.sqrt(np.mean(extension[-int(0.02 * sr):] ** 2)) + 1e-9)
    case.tail_db = float(tail - level)
    return case


def song_results(song: music_set.Song, crop: float, folder: Path, extend: bool, inpaint: bool = True,
                 long: str = "") -> list[Result]:
    original, sr = music_set.load(song, song.seconds if long else crop)
    length = len(original) / sr
    whole_flux = flux(_mono22(original, sr))
    median = float(np.median(whole_flux))
    del whole_flux
    results = []
    if long:
        start = round(length / 2 - LONG_GAP / 2, 2) if long == "middle" else \
            max(round(LONG_AT * length - LONG_GAP / 2, 2), LONG_GAP + 1.0)
        results.append(inpaint_case(song, original, sr, start, LONG_GAP, median, folder))
        extend = inpaint = False
    for q in POSITIONS if inpaint else ():
        for gap in GAPS:
            start = round(q * length, 2)
            if start - 5.0 < 0 or start + gap + 5.0 > length:
                continue
            results.append(inpaint_case(song, original, sr, start, gap, median, folder))
    for cut in extend_cuts(length) if extend else ():
        for seconds in EXTENDS:
            results.append(extend_case(song, original, sr, cut, seconds, median, folder))
    for r in results:
        verdict = "refused" if r.refusal else ("better" if r.better(0.0) else "WORSE")
        spikes = "/".join(f"{s:.1f}" for s in r.spikes)
        print(f"  {r.part:7s} {r.song:38s} {r.operation:7s} {r.at:6.1f}+{r.length:4.0f}s  conf {r.confidence:4.2f}  "
              f"LSD {r.lsd:5.2f} vs {r.base_a:5.2f}/{r.base_b:5.2f} {verdict:7s} spikes {spikes or '-'} "
              f"clicks {r.clicks}{'  LOOP' if r.loops else ''}{'  ' + r.refusal if r.refusal else ''}  "
              f"{r.seconds:.1f}s", flush=True)
    return results


def _median(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return statistics.median(values) if values else float("nan")


def _pct(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.0f} %)" if total else "-"


def inpaint_table(results: list[Result]) -> None:
    print("\n| part | gap | cases | delivered | better than both (of all) | LSD engine / silence / copy (median) "
          "| spike median / p90 / max, < 2 | clicks engine / copy (joins) |")
    print("|---|---|---|---|---|---|---|---|")
    for part in music_set.PARTS:
        mine = [r for r in results if r.part == part and r.operation == "inpaint"]
        for gap in sorted({r.length for r in mine}) + [None]:
            rows = [r for r in mine if gap is None or r.length == gap]
            if not rows:
                continue
            done = [r for r in rows if r.delivered()]
            spikes = [s for r in done for s in r.spikes]
            spike_text = (f"{_median(spikes):.2f} / {np.percentile(spikes, 90):.2f} / {max(spikes):.1f}, "
                          f"{100 * np.mean(np.array(spikes) < 2):.0f} %" if spikes else "-")
            print(f"| {part} | {'all' if gap is None else f'{gap:.0f} s'} | {len(rows)} | "
                  f"{_pct(len(done), len(rows))} | {_pct(sum(r.better() for r in rows), len(rows))} | "
                  f"{_median(r.lsd for r in done):.2f} / {_median(r.base_a for r in rows):.2f} / "
                  f"{_median(r.base_b for r in rows):.2f} | {spike_text} | "
                  f"{sum(r.clicks for r in done)} / {sum(r.base_clicks for r in rows)} "
                  f"({sum(r.joins for r in done)}) |")


def extend_table(results: list[Result]) -> None:
    print("\n| part | length | cases | delivered | better than both (of all) | LSD engine / loop bar / silence "
          "(median) | loops | clean ending (song's own / fade) | entry spike median |")
    print("|---|---|---|---|---|---|---|---|---|")
    for part in music_set.PARTS:
        mine = [r for r in results if r.part == part and r.operation == "extend"]
        for seconds in EXTENDS + (None,):
            rows = [r for r in mine if seconds is None or r.length == seconds]
            if not rows:
                continue
            done = [r for r in rows if r.delivered()]
            entry = [r.spikes[0] for r in done if r.spikes]
            print(f"| {part} | {'all' if seconds is None else f'{seconds:.0f} s'} | {len(rows)} | "
                  f"{_pct(len(done), len(rows))} | {_pct(sum(r.better() for r in rows), len(rows))} | "
                  f"{_median(r.lsd for r in done):.2f} / {_median(r.base_a for r in rows):.2f} / "
                  f"{_median(r.base_b for r in rows):.2f} | {sum(r.loops for r in done)} | "
                  f"{sum(r.tail_db <= -30 for r in done)}/{len(done)} ({sum(r.ending == 'song_end' for r in done)} / "
                  f"{sum(r.ending == 'fade' for r in done)}) | {_median(entry):.2f} |")


def floor_table(results: list[Result]) -> None:
    print("\n| part | operation | floor | delivered | better than both (of all) | better among delivered |")
    print("|---|---|---|---|---|---|")
    for part in music_set.PARTS:
        for op in ("inpaint", "extend"):
            rows = [r for r in results if r.part == part and r.operation == op]
            if not rows:
                continue
            for floor in FLOORS:
                done = [r for r in rows if r.delivered(floor)]
                print(f"| {part} | {op} | {floor:.2f} | {_pct(len(done), len(rows))} | "
                      f"{_pct(sum(r.better(floor) for r in rows), len(rows))} | "
                      f"{_pct(sum(r.better(floor) for r in done), len(done))} |")


def confidence_table(results: list[Result]) -> None:
    edges = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.01)
    print("\n| part | operation | " + " | ".join(f"{lo:.1f}-{min(hi, 1):.1f}" for lo, hi in zip(edges, edges[1:]))
          + " | median | better among them, by bin |")
    print("|---|---|" + "---|" * (len(edges) + 1))
    for part in music_set.PARTS:
        for op in ("inpaint", "extend"):
            rows = [r for r in results if r.part == part and r.operation == op and np.isfinite(r.confidence)]
            if not rows:
                continue
            bins = [[r for r in rows if lo <= r.confidence < hi] for lo, hi in zip(edges, edges[1:])]
            good = " ".join(f"{sum(r.better(0.0) for r in b)}/{len(b)}" for b in bins)
            print(f"| {part} | {op} | " + " | ".join(str(len(b)) for b in bins)
                  + f" | {_median(r.confidence for r in rows):.2f} | {good} |")


def refusal_table(results: list[Result]) -> None:
    print("\n| part | operation | refusal reason (at the default floor) | cases |")
    print("|---|---|---|---|")
    for part in music_set.PARTS:
        for op in ("inpaint", "extend"):
            rows = [r for r in results if r.part == part and r.operation == op and not r.delivered()]
            reasons: dict[str, int] = {}
            for r in rows:
                reason = r.refusal or f"confidence below {DEFAULT_MIN_CONFIDENCE}"
                reasons[reason] = reasons.get(reason, 0) + 1
            for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
                print(f"| {part} | {op} | {reason} | {count} |")


def package_table(results: list[Result]) -> None:
    print("\n| part | package | inpaint delivered | inpaint better (of all) | extend better (of all) |")
    print("|---|---|---|---|---|")
    for part in music_set.PARTS:
        for source in music_set.SOURCES + music_set.OUTSIDE_SOURCES:
            ins = [r for r in results if r.part == part and r.package == source.package and r.operation == "inpaint"]
            ext = [r for r in results if r.part == part and r.package == source.package and r.operation == "extend"]
            if ins or ext:
                print(f"| {part} | {source.package} | {_pct(sum(r.delivered() for r in ins), len(ins))} | "
                      f"{_pct(sum(r.better() for r in ins), len(ins))} | "
                      f"{_pct(sum(r.better() for r in ext), len(ext))} |")


def compare(results: list[Result], baseline: Path) -> None:
    """The same cases before (``baseline``, a --json file) and now: a paired view, far more sensitive than medians."""
    before = {(r["part"], r["song"], r["operation"], r["at"], r["length"]):
              Result(**{k: np.nan if v is None else v for k, v in r.items()}) for r in json.loads(baseline.read_text())}
    print("\n| part | operation | paired cases | delivered before → now | better before → now "
          "| LSD lower / higher now "
          "| joins with spike > 2 before → now |")
    print("|---|---|---|---|---|---|---|")
    for part in music_set.PARTS:
        for op in ("inpaint", "extend"):
            pairs = [(before[k], r) for r in results if r.part == part and r.operation == op
                     and (k := (r.part, r.song, r.operation, r.at, r.length)) in before]
            if not pairs:
                continue
            old, new = [p[0] for p in pairs], [p[1] for p in pairs]
            moved = [(a.lsd, b.lsd) for a, b in pairs if abs(a.lsd - b.lsd) > 1e-3]
            spikes = [sum(s > 2 for r in rows if r.delivered() for s in r.spikes) for rows in (old, new)]
            print(f"| {part} | {op} | {len(pairs)} | "
                  f"{sum(r.delivered() for r in old)} → {sum(r.delivered() for r in new)} | "
                  f"{sum(r.better() for r in old)} → {sum(r.better() for r in new)} | "
                  f"{sum(b < a for a, b in moved)} / {sum(b > a for a, b in moved)} | {spikes[0]} → {spikes[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=0,
                        help="N songs of each part, round-robin over packages (0 = all)")
    parser.add_argument("--quick", action="store_true", help="2 songs of each part")
    parser.add_argument("--skip", type=int, default=0, help="leave out the songs --songs SKIP would take (a final "
                        "check on songs no earlier run measured)")
    parser.add_argument("--part", choices=("dev", "heldout", "outside", "both"), default="both",
                        help="both = dev and heldout; outside only on its own, never to tune on")
    parser.add_argument("--crop", type=float, default=270.0, help="seconds of each song used (memory, time)")
    parser.add_argument("--no-extend", action="store_true")
    parser.add_argument("--no-inpaint", action="store_true")
    parser.add_argument("--only", default="", help="only songs whose package/file contains this")
    parser.add_argument("--long", nargs="?", const="late", default="", choices=("late", "middle"),
                        help=f"only one {LONG_GAP:.0f} s inpaint in each whole song of {LONG_SONGS[0]:.0f}-"
                        f"{LONG_SONGS[1]:.0f} s: late (where one passage can supply it) or in the middle")
    parser.add_argument("--json", type=Path, help="write every case here")
    parser.add_argument("--compare", type=Path,
                        default=Path(__file__).resolve().parent / "engine_coverage_baseline.json",
                        help="a --json file of an earlier run: paired comparison of the cases both ran")
    args = parser.parse_args()
    count = 2 if args.quick and not args.songs else args.songs
    parts = ("dev", "heldout") if args.part == "both" else (args.part,)
    wanted = (lambda s: LONG_SONGS[0] <= s.seconds <= LONG_SONGS[1]) if args.long else (lambda s: True)
    chosen = [s for part in parts
              for s in music_set.pick([s for s in music_set.songs(part) if args.only in s.key and wanted(s)],
                                      count, args.skip)]
    print(f"{len(chosen)} songs, {'whole' if args.long else f'first {args.crop:.0f} s of each'}; "
          f"default floor {DEFAULT_MIN_CONFIDENCE}")
    started = time.perf_counter()
    results: list[Result] = []
    folder = Path(tempfile.mkdtemp(prefix="engine-coverage-"))
    try:
        for song in chosen:
            print(f"{song.part} {song.key} ({song.seconds:.0f} s)", flush=True)
            results += song_results(song, args.crop, folder, not args.no_extend, not args.no_inpaint, args.long)
            if args.json:
                args.json.write_text(json.dumps([asdict(r) for r in results], default=float))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{len(chosen)} songs, {len(results)} cases, {time.perf_counter() - started:.0f} s; "
          f"medians over cases; refusals count as losses")
    inpaint_table(results)
    extend_table(results)
    floor_table(results)
    confidence_table(results)
    refusal_table(results)
    package_table(results)
    if args.compare and args.compare.exists():
        print(f"\ncompared with {args.compare}:")
        compare(results, args.compare)


if __name__ == "__main__":
    main()
