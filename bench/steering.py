"""Does "calmer" or "more intense" move the chosen material the asked way, on real music?

The songs are ``music_set.py``'s (fixed dev / held-out split), each cropped to its first ``--crop`` seconds. Ranges:
inpaints of 4 and 8 s at 20, 35, 50, 65 and 80 % of the crop, and (``--extend``) extensions of 10 s after 45 and
70 %. For each range three jobs run through ``engine.render_job`` in this process, as a worker runs them, at the
shipped ``[local] min_confidence``:

1. no prompt, as many variants as a one-variant steering prompt plans: every candidate steering could choose from,
   with its confidence; those within ``steering.FIT_MARGIN`` of the best *fit*;
2. "calmer", one variant;
3. "more intense", one variant.

Everything is measured here independently of the engine's own ruler: RMS (dB, all channels) and onsets per
second (``librosa.onset.onset_detect`` at 22.05 kHz, librosa's defaults, averaged over four analysis grids a quarter
hop apart) of a candidate's range, against the same measures of the music around it (8 s before and, for an
inpaint, 8 s after; an extension's last 2 s are left out, as they hold its ending). A range *offers both* when
among the fitting candidates one is at least 1 dB quieter than another with no more onsets per second. The judge's
own noise is the spread of the four grids' counts of one candidate; a range offers both *beyond the judge's noise*
when the quieter one also has fewer onsets by more than the larger of the two candidates' spreads (the rule was
fixed on dev before the held-out part ran; where the counts differ less, the song offers a level choice but no
density choice the judge can tell). On those ranges the figures are the shares where the chosen material moved the
asked way: calmer's pick quieter than more-intense's pick, with fewer (or as few) onsets per second, and each pick
against the context. Both definitions' figures are printed; every other delivered range is reported apart.

    python bench/steering.py [--songs N] [--part dev|heldout|both] [--crop 240] [--extend] [--only SUBSTRING]

``--dump FOLDER`` runs only the unprompted job and keeps, per range, every fitting candidate's judged audio (mono),
the context's, the judge's measures and the engine ruler's, so a ranking or a density measure is tried offline in
seconds (``--from FOLDER``, see ``from_dump``; ``--remeasure`` for the current ruler's measures) instead of a
half-hour run; the steered picks are then the engine's ``steering.rank`` of those candidates.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the daemon runs the engine (bridge/cli.py), before numpy

import argparse  # noqa: E402
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import music_set  # noqa: E402

from bridge.audio import fades  # noqa: E402
from bridge.audio.region import probe  # noqa: E402
from bridge.backends.local import engine, steering  # noqa: E402
from bridge.backends.local.backend import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from bridge.exceptions import NoMaterialError  # noqa: E402
from bridge.models import JobSpec  # noqa: E402

GAPS = (4.0, 8.0)
POSITIONS = (0.20, 0.35, 0.50, 0.65, 0.80)
EXTEND_POSITIONS = (0.45, 0.70)
EXTEND_SECONDS = 10.0
ENDING_SECONDS = 2.0  # an extension's last seconds hold its ending (a fade or the song's own), not the material
CONTEXT_SECONDS = 8.0
AUDIBLE_DB = 1.0  # a level difference between two candidates that a producer hears
ONSET_RATE, ONSET_HOP = 22050, 512  # librosa's defaults
GRID_OFFSETS = 4  # librosa's onsets are counted on analysis grids a quarter hop apart (see measure)
PROMPTS = {"calmer": "calmer", "intense": "more intense"}


@dataclass(frozen=True)
class Measure:
    level_db: float
    onsets_per_s: float  # the four grids' mean
    spread_per_s: float = 0.0  # the four grids' largest count minus their smallest, per second: the judge's noise

    def busier_than(self, other: Measure) -> bool:
        """More onsets per second than ``other`` by more than either one's spread over the grids."""
        return self.onsets_per_s - other.onsets_per_s > max(self.spread_per_s, other.spread_per_s)


@dataclass
class Case:
    part: str
    song: str
    operation: str
    at: float
    length: float
    context: Measure | None = None
    fitting: list[Measure] = field(default_factory=list)
    picks: dict[str, Measure] = field(default_factory=dict)  # "plain" (variant 1 unprompted), "calmer", "intense"
    seconds: dict[str, float] = field(default_factory=dict)
    refused: bool = False

    @property
    def judged_seconds(self) -> float:
        return self.length - (ENDING_SECONDS if self.operation == "extend" else 0.0)

    @property
    def offers_both(self) -> bool:
        """Two fitting candidates, one at least ``AUDIBLE_DB`` quieter than the other with no more onsets/s."""
        return any(a.level_db <= b.level_db - AUDIBLE_DB and a.onsets_per_s <= b.onsets_per_s
                   for a in self.fitting for b in self.fitting)

    @property
    def offers_both_beyond_noise(self) -> bool:
        """As ``offers_both``, and the quieter has fewer onsets by more than either one's spread over the grids."""
        return any(a.level_db <= b.level_db - AUDIBLE_DB and b.busier_than(a)
                   for a in self.fitting for b in self.fitting)


def measure(pieces: list[np.ndarray], sr: int) -> Measure:
    """RMS and librosa's onsets per second over the pieces (each detected on its own, so no seam counts).

    librosa's count of the same audio moves by a median 2 onsets (up to 10 and more) when its 23 ms analysis grid
    shifts by a few milliseconds, as much as fitting candidates usually differ; so each piece is counted at
    ``GRID_OFFSETS`` offsets a fraction of a hop apart and the counts are averaged."""
    import librosa

    pieces = [p for p in pieces if len(p) > sr // 4]
    frames = sum(len(p) for p in pieces)
    power = sum(float(np.sum(np.square(p, dtype=np.float64))) / p.shape[1] for p in pieces) / max(frames, 1)
    grids = np.zeros(GRID_OFFSETS)
    for piece in pieces:
        mono = librosa.resample(piece.mean(axis=1), orig_sr=sr, target_sr=ONSET_RATE)
        for k in range(GRID_OFFSETS):
            offset = k * ONSET_HOP // GRID_OFFSETS
            grids[k] += len(librosa.onset.onset_detect(y=mono[offset:], sr=ONSET_RATE, hop_length=ONSET_HOP))
    seconds = max(frames / sr, 1e-9)
    return Measure(float(10 * np.log10(max(power, 1e-12))), float(grids.mean()) / seconds,
                   float(grids.max() - grids.min()) / seconds)


def _job(path: Path, folder: Path, prompt: str, outputs: int, **fields) -> tuple[list[dict], float]:
    work = folder / f"work-{prompt or 'plain'}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec = JobSpec(job_id="j-steering", source=path, source_info=probe(path), backend="local", num_outputs=outputs,
                   prompt=prompt, **fields)
    t0 = time.perf_counter()
    variants = engine.render_job(spec.to_json(), str(work), str(folder / "cache"), DEFAULT_MIN_CONFIDENCE)
    return variants, time.perf_counter() - t0


def _range(variant: dict, start: float, end: float) -> np.ndarray:
    audio, sr = sf.read(variant["path"], dtype="float32", always_2d=True)
    first = int(round(variant["span_start"] * sr))
    return audio[int(round(start * sr)) - first:int(round(end * sr)) - first]


def run_case(case: Case, path: Path, audio: np.ndarray, sr: int, folder: Path, fields: dict,
             dump: Path | None = None) -> Case:
    start = case.at
    end = start + case.length
    judged_end = start + case.judged_seconds
    reach = int(CONTEXT_SECONDS * sr)
    first, last = int(round(start * sr)), int(round(end * sr))
    context = [audio[max(first - reach, 0):first]]
    if case.operation == "inpaint":
        context.append(audio[last:last + reach])
    case.context = measure(context, sr)
    candidates = steering.MIN_PLANS  # what a one-variant steering prompt plans (steering.Steering.plan_count)
    try:
        every, case.seconds["plain"] = _job(path, folder, "", candidates, **fields)
        picks = {} if dump else {name: _job(path, folder, prompt, 1, **fields) for name, prompt in PROMPTS.items()}
    except NoMaterialError:
        case.refused = True
        return case
    best = every[0]["splice"]["confidence"]
    fitting = [variant for variant in every if variant["splice"]["confidence"] >= best - steering.FIT_MARGIN]
    case.fitting = [measure([_range(variant, start, judged_end)], sr) for variant in fitting]
    case.picks["plain"] = case.fitting[0]
    if dump:
        _dump(case, fitting, context, sr, dump)
    for name, ([variant], seconds) in picks.items():
        case.picks[name] = measure([_range(variant, start, judged_end)], sr)
        case.seconds[name] = seconds
    return case


def _dump(case: Case, fitting: list[dict], context: list[np.ndarray], sr: int, folder: Path) -> None:
    """Keep what an offline ranking needs: each fitting candidate's range as the engine's ruler judges it (an
    extension without its last bar, see ``engine.render_job``), the context, and both rulers' measures."""
    end = case.at + case.length
    if case.operation == "extend":
        end -= min(4 * 60.0 / max(fitting[0]["splice"]["tempo"], 1e-3), case.length / 2)
    ruler = steering.Ruler(context, sr)
    ranges = [_range(variant, case.at, end) for variant in fitting]
    name = f"{case.song.replace('/', '+')}-{case.operation}-{case.at:.2f}-{case.length:.0f}"
    arrays = {f"context{k}": fades.mono(piece) for k, piece in enumerate(context)}
    arrays.update({f"candidate{k}": fades.mono(piece) for k, piece in enumerate(ranges)})
    np.savez(folder / f"{name}.npz", **arrays)
    record = {"part": case.part, "song": case.song, "operation": case.operation, "at": case.at,
              "length": case.length, "sample_rate": sr, "context": asdict(case.context),
              "fitting": [asdict(m) for m in case.fitting],
              "confidence": [variant["splice"]["confidence"] for variant in fitting],
              "ruler_context": asdict(ruler.context),
              "ruler": [asdict(mine) | change for mine, change in map(ruler.change, ranges)]}
    (folder / f"{name}.json").write_text(json.dumps(record))


def from_dump(folder: Path, rank=None, remeasure: bool = False) -> list[Case]:
    """The dumped ranges as cases, each with the picks "calmer" and "more intense" would make among its fitting
    candidates: ``rank(prompt, record)`` -> index into the record's candidates, by default the engine's
    ``steering.rank`` of the ruler's measures as dumped or (``remeasure``) of the current ruler's measures of the
    kept mono audio (its level is then the mono mix's)."""
    cases = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if remeasure:
            with np.load(path.with_suffix(".npz")) as kept:
                ruler = steering.Ruler([kept[k] for k in kept.files if k.startswith("context")], record["sample_rate"])
                changes = [ruler.change(kept[f"candidate{k}"]) for k in range(len(record["fitting"]))]
            record["ruler_context"] = asdict(ruler.context)
            record["ruler"] = [asdict(mine) | change for mine, change in changes]
        case = Case(record["part"], record["song"], record["operation"], record["at"], record["length"],
                    Measure(**record["context"]), [Measure(**m) for m in record["fitting"]])
        case.picks["plain"] = case.fitting[0]
        for name, prompt in PROMPTS.items():
            chosen = rank(prompt, record) if rank else _engine_pick(prompt, record)
            case.picks[name] = case.fitting[chosen]
        cases.append(case)
    return cases


def _engine_pick(prompt: str, record: dict) -> int:
    fields = {f.name for f in dataclasses.fields(steering.Character)}
    measured = [(steering.Character(**{k: v for k, v in m.items() if k in fields}),
                 {k: v for k, v in m.items() if k not in fields}) for m in record["ruler"]]
    ruler = SimpleNamespace(context=steering.Character(**record["ruler_context"]))  # all rank reads of a ruler
    return steering.rank(steering.understand(prompt), ruler, measured, record["confidence"])[0][0]


def song_cases(song: music_set.Song, crop: float, extend: bool, root: Path, dump: Path | None = None) -> list[Case]:
    audio, sr = music_set.load(song, crop)
    folder = root / "case"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "song.wav"
    sf.write(str(path), audio, sr, subtype="FLOAT")
    duration = len(audio) / sr
    cases = []
    for gap in GAPS:
        for position in POSITIONS:
            at = round(position * duration, 2)
            case = Case(song.part, song.label, "inpaint", at, gap)
            cases.append(run_case(case, path, audio, sr, folder, {"operation": "inpaint", "start": at,
                                                                  "end": at + gap}, dump))
    for position in EXTEND_POSITIONS if extend else ():
        # the engine gets only the music before the point, as a producer extending the end of their song
        at = round(position * duration, 2)
        cut = folder / "cut.wav"
        sf.write(str(cut), audio[:int(round(at * sr))], sr, subtype="FLOAT")
        case = Case(song.part, song.label, "extend", at, EXTEND_SECONDS)
        cases.append(run_case(case, cut, audio[:int(round(at * sr))], sr, folder,
                              {"operation": "extend", "extend_after": at, "duration": EXTEND_SECONDS}, dump))
    return cases


def _share(flags: list[bool]) -> str:
    return f"{100.0 * sum(flags) / len(flags):5.1f} % ({sum(flags)}/{len(flags)})" if flags else "   - (0/0)"


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):+.2f}" if values else "-"


def summarise(title: str, cases: list[Case]) -> None:
    ran = [c for c in cases if not c.refused]
    both = [c for c in ran if c.offers_both]
    clearly = [c for c in ran if c.offers_both_beyond_noise]
    noise = [m.spread_per_s * c.judged_seconds for c in ran for m in c.fitting]
    print(f"\n== {title}: {len(cases)} ranges, {len(cases) - len(ran)} refused, {len(both)} offer both "
          f"a calmer and a more intense fitting candidate ({AUDIBLE_DB:.0f} dB apart), {len(clearly)} of them "
          f"with onsets apart beyond the judge's noise (a candidate's count over the range moves by a median "
          f"{statistics.median(noise) if noise else 0:.1f} across the four grids)")
    for label, group in (("offer both", both), ("offer both beyond the judge's noise", clearly),
                         ("all delivered", ran)):
        if not group:
            continue
        quieter = [c.picks["calmer"].level_db < c.picks["intense"].level_db for c in group]
        sparser = [c.picks["calmer"].onsets_per_s <= c.picks["intense"].onsets_per_s for c in group]
        strictly = [c.picks["calmer"].onsets_per_s < c.picks["intense"].onsets_per_s for c in group]
        together = [q and s for q, s in zip(quieter, sparser)]
        print(f"  {label} (n={len(group)}): calmer's pick quieter than more-intense's {_share(quieter)}; "
              f"no more onsets/s {_share(sparser)} (fewer {_share(strictly)}); both {_share(together)}")
        busier = [c for c in group if c.picks["calmer"].onsets_per_s > c.picks["intense"].onsets_per_s]
        if busier:
            by = [(c.picks["calmer"].onsets_per_s - c.picks["intense"].onsets_per_s) * c.judged_seconds
                  for c in busier]
            noisy = [not c.picks["calmer"].busier_than(c.picks["intense"]) for c in busier]
            print(f"    where calmer's pick is busier ({len(busier)}): by a median {statistics.median(by):.1f} onsets "
                  f"over the range, {sum(noisy)} of them by no more than the two picks' spread over the grids")
        calm_ctx = [c.picks["calmer"].level_db < c.context.level_db and
                    c.picks["calmer"].onsets_per_s <= c.context.onsets_per_s for c in group]
        loud_ctx = [c.picks["intense"].level_db > c.context.level_db and
                    c.picks["intense"].onsets_per_s >= c.context.onsets_per_s for c in group]
        print(f"    against the context: calmer quieter and no busier {_share(calm_ctx)}; "
              f"more intense louder and no sparser {_share(loud_ctx)}")
        for name in ("plain", "calmer", "intense"):
            levels = [c.picks[name].level_db - c.context.level_db for c in group]
            density = [np.log2((c.picks[name].onsets_per_s + 0.25) / (c.context.onsets_per_s + 0.25)) * 100
                       for c in group]
            print(f"    {name:8s} median vs context: level {_median(levels)} dB, onsets/s {_median(density)} "
                  f"(log2 ratio x100)")
    timed = [c for c in ran if "plain" in c.seconds]
    if timed:
        steered = [c.seconds[n] for c in timed for n in PROMPTS]
        print(f"  job time: median {statistics.median(steered):.2f} s steered (1 variant of {steering.MIN_PLANS} "
              f"candidates) vs {statistics.median(c.seconds['plain'] for c in timed):.2f} s for the "
              f"{steering.MIN_PLANS}-variant unprompted job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=6, help="songs per part, round-robin over packages (0: all)")
    parser.add_argument("--part", choices=("dev", "heldout", "outside", "both"), default="dev")
    parser.add_argument("--skip", type=int, default=0, help="leave out the songs --songs SKIP would take (a final "
                        "check on songs no earlier run measured)")
    parser.add_argument("--crop", type=float, default=240.0)
    parser.add_argument("--extend", action="store_true", help="also extensions of 10 s")
    parser.add_argument("--only", default="", help="songs whose label contains this")
    parser.add_argument("--dump", type=Path, help="keep every fitting candidate here (no steered jobs run)")
    parser.add_argument("--from", dest="dumped", type=Path, help="judge the engine's ranking of a dump's candidates")
    parser.add_argument("--remeasure", action="store_true", help="with --from: the current ruler measures them again")
    args = parser.parse_args()
    if args.dumped:
        cases = from_dump(args.dumped, remeasure=args.remeasure)
        for part in sorted({c.part for c in cases}):
            for operation in ("inpaint", "extend"):
                mine = [c for c in cases if c.part == part and c.operation == operation]
                if mine:
                    summarise(f"{part}, {operation} (ranked offline)", mine)
        return
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    parts = ("dev", "heldout") if args.part == "both" else (args.part,)
    root = Path(tempfile.mkdtemp(prefix="daw-bridge-steering-"))
    try:
        for part in parts:
            chosen = [s for s in music_set.songs(part) if args.only in s.label]
            if not chosen:
                print(f"no songs in part {part}: install the packages listed in bench/music_set.py")
                continue
            cases: list[Case] = []
            for song in music_set.pick(chosen, args.songs, args.skip):
                t0 = time.perf_counter()
                mine = song_cases(song, args.crop, args.extend, root, args.dump)
                both = sum(1 for c in mine if not c.refused and c.offers_both)
                fitting = [len(c.fitting) for c in mine if not c.refused]
                print(f"{song.label}: {len(mine)} ranges, {both} offer both, median "
                      f"{statistics.median(fitting) if fitting else 0:.0f} candidates fit "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
                cases.extend(mine)
            if args.dump:  # the picks the engine's ranking makes among the dumped candidates
                cases = [c for c in from_dump(args.dump) if c.part == part] + [c for c in cases if c.refused]
            summarise(f"{part}, inpaint", [c for c in cases if c.operation == "inpaint"])
            if args.extend:
                summarise(f"{part}, extend", [c for c in cases if c.operation == "extend"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
