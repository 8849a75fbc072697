"""How hard is issue 11's extension measure? The song's real continuation, played late, scored the same way.

``engine_coverage.py`` counts an extension as a win when its log-spectral distance to what the song really did next
is below both baselines' (the last bar before the cut looped, and silence). Music re-used from elsewhere in the
song is at best a plausible future, never the future itself; so as a yardstick this scores the real future played
late, by half a beat, a beat, a bar and two bars (the song's own audio from ``t - d`` on, heard from ``t``: the real
next notes, each arriving ``d`` late), on the same cases (cuts at 45 % and 70 % of the crop, 10 and 30 s, the beat
and bar measured by the engine's analysis of the audio before the cut, as ``engine_coverage.py`` does). With
``--coverage`` (an ``engine_coverage.py --json`` run on the same songs) the engine's delivered variant is counted
beside them, case for case. Nothing here is the engine's; it is a ruler for the ruler.

    python bench/extend_reference.py --part heldout --songs 20 --coverage /tmp/held.json   # ~4 min
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import music_set  # noqa: E402
from engine_coverage import EXTENDS, _loop_last_bar, extend_cuts  # noqa: E402
from engine_quality import _mono22, log_spectral_distance  # noqa: E402

from bridge.backends.local import engine  # noqa: E402

LATE = {"half a beat": 0.5, "a beat": 1.0, "a bar": 4.0, "two bars": 8.0}  # how late, in beats


def song_cases(song: music_set.Song, crop: float, folder: Path) -> list[dict]:
    original, sr = music_set.load(song, crop)
    cases = []
    for cut in extend_cuts(len(original) / sr):
        a = int(round(cut * sr))
        sf.write(str(folder / "song.wav"), original[:a], sr, subtype="FLOAT")
        shutil.rmtree(folder / "cache", ignore_errors=True)
        beat = engine.song_analysis(folder / "song.wav", folder / "cache")[0].beat_period
        for seconds in EXTENDS:
            b = int(round((cut + seconds) * sr))
            truth = _mono22(original[a:b], sr)
            case = {"song": song.label, "package": song.package, "cut": cut, "length": seconds,
                    "base_loop": log_spectral_distance(_mono22(_loop_last_bar(original[:a], sr, 4 * beat, seconds), sr),
                                                       truth),
                    "base_silence": log_spectral_distance(np.zeros_like(truth), truth)}
            for name, beats in LATE.items():
                late = int(round(beats * beat * sr))
                case[name] = log_spectral_distance(_mono22(original[a - late:b - late], sr), truth)
            cases.append(case)
            print(f"  {song.key:45s} {cut:6.1f}+{seconds:3.0f}s  loop {case['base_loop']:5.2f}  " +
                  "  ".join(f"{name} {case[name]:5.2f}" for name in LATE), flush=True)
    return cases


def _wins(case: dict, lsd: float) -> bool:
    return lsd < min(case["base_loop"], case["base_silence"])


def _engine(cases: list[dict], coverage: Path | None) -> None:
    """Adds each case's engine LSD (``engine``; None when the job refused) from an ``engine_coverage.py`` run."""
    if coverage is None:
        return
    runs = {(r["song"], round(r["at"], 2), r["length"]): r for r in json.loads(coverage.read_text())
            if r["operation"] == "extend"}
    for case in cases:
        run = runs.get((case["song"], round(case["cut"], 2), case["length"]))
        if run is not None:
            case["engine"] = None if run["refusal"] else run["lsd"]


def table(cases: list[dict]) -> None:
    with_engine = any("engine" in case for case in cases)
    columns = (["the engine"] if with_engine else []) + [f"real future {name} late" for name in LATE]
    print("\nbetter than both baselines (loop the last bar; silence):\n")
    print("| length | package | cases | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for seconds in EXTENDS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for case in cases:
            if case["length"] == seconds and (not with_engine or "engine" in case):
                groups[case["package"]].append(case)
                groups["all"].append(case)
        for name, rows in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
            counts = ([sum(r["engine"] is not None and _wins(r, r["engine"]) for r in rows)] if with_engine else []) + \
                [sum(_wins(r, r[late]) for r in rows) for late in LATE]
            print(f"| {seconds:.0f} s | {name} | {len(rows)} | " +
                  " | ".join(f"{n} ({100 * n / len(rows):.0f} %)" for n in counts) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("dev", "heldout", "outside"), default="dev")
    parser.add_argument("--songs", type=int, default=0, help="N songs, round-robin over packages (0 = all)")
    parser.add_argument("--skip", type=int, default=0, help="leave out the songs --songs SKIP would take")
    parser.add_argument("--crop", type=float, default=270.0)
    parser.add_argument("--only", default="", help="only songs whose package/file contains this")
    parser.add_argument("--coverage", type=Path, help="an engine_coverage.py --json of the same songs")
    parser.add_argument("--json", type=Path, help="write every case here")
    args = parser.parse_args()
    chosen = music_set.pick([s for s in music_set.songs(args.part) if args.only in s.key], args.songs, args.skip)
    folder = Path(tempfile.mkdtemp(prefix="extend-reference-"))
    cases: list[dict] = []
    try:
        for song in chosen:
            cases += song_cases(song, args.crop, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _engine(cases, args.coverage)
    if args.json:
        args.json.write_text(json.dumps(cases))
    table(cases)


if __name__ == "__main__":
    main()
