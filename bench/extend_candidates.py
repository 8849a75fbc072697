"""Every candidate an extension job renders, scored against what the song really did next: does the engine's choice
lose cases that one of its own candidates would have won?

The cases are ``engine_coverage.py``'s extensions (10 and 30 s after cuts at 45 % and 70 % of the crop, the engine
given only the audio before the cut). Each case's candidates are the plans ``engine.render_job`` renders for a
two-variant job (two walks and the phrase repeats), rendered the same way, and the texture (``"texture": true``),
rendered for every case though the engine offers it only when no passage reaches ``TEXTURE_BELOW``, so rules for
offering it can be tried offline too; each gets its rendered join confidence
(``sure``), its log-spectral distance to the real continuation, and its distance to the last bar before the cut
looped (a ranking signal that needs no knowledge of the future); each case names the candidate the job delivers
first (``variant1``, chosen by ``agreement.order`` as the engine does). Printed per length: cases the
engine's first variant wins against both baselines, cases the best candidate would win (the ceiling of any
ranking of these candidates), and per package. ``--json`` keeps every candidate, so rankings can be tried offline
in seconds: load the file, pick one candidate per case, count ``lsd < min(base_loop, base_silence)`` with
``sure`` at the default floor or above.

    python bench/extend_candidates.py --part dev --songs 40 --json /tmp/candidates.json   # ~10 min on 2 cores
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
from engine_coverage import EXTENDS, _loop_last_bar, _loops, extend_cuts  # noqa: E402
from engine_quality import _mono22, log_spectral_distance  # noqa: E402

from bridge.backends.local import agreement, engine  # noqa: E402
from bridge.backends.local.backend import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from bridge.backends.local.extend import plan_extend  # noqa: E402
from bridge.backends.local.joins import FileSource  # noqa: E402
from bridge.backends.local.render import render  # noqa: E402
from bridge.backends.local.similarity import confidence  # noqa: E402
from bridge.backends.local.texture import TEXTURE_BELOW, Texture, plan_texture, render_texture  # noqa: E402

HANDLE = 1.0  # JobSpec's default handle: the rendered span starts this long before the cut


def song_cases(song: music_set.Song, crop: float, folder: Path) -> list[dict]:
    original, sr = music_set.load(song, crop)
    cases = []
    for cut in extend_cuts(len(original) / sr):
        a = int(round(cut * sr))
        path = folder / "song.wav"
        sf.write(str(path), original[:a], sr, subtype="FLOAT")
        shutil.rmtree(folder / "cache", ignore_errors=True)
        analysis, _ = engine.song_analysis(path, folder / "cache")
        bar = 4 * analysis.beat_period
        start = min(cut, analysis.duration)  # as engine.render_job: the song may end a sample before the cut
        for seconds in EXTENDS:
            b = int(round((cut + seconds) * sr))
            truth = _mono22(original[a:b], sr)
            looped = _mono22(_loop_last_bar(original[:a], sr, bar, seconds), sr)
            case = {"song": song.key, "package": song.package, "cut": cut, "length": seconds, "bar": bar,
                    "base_loop": log_spectral_distance(looped, truth),
                    "base_silence": log_spectral_distance(np.zeros_like(truth), truth), "candidates": []}
            first = int(round(max(0.0, start - HANDLE) * sr))
            source = FileSource(path)
            extensions = []
            try:
                plans = plan_extend(analysis, start, seconds, 2, more_starts=True)
                plans += [texture for texture in [plan_texture(analysis, start, seconds)] if texture is not None]
                for plan in plans:
                    span = (first, int(round((start + seconds) * sr)))
                    draw = render_texture if isinstance(plan, Texture) else render
                    out, joins, passages = draw(source, sr, plan, start, start + seconds, span, analysis.beat_period)
                    extensions.append(out[a - first:b - first])
                    extension = _mono22(extensions[-1], sr)
                    sure = min([j["confidence"] for j in joins] + [confidence(plan.worst_join) if not joins else 1.0])
                    case["candidates"].append({
                        "sure": sure,
                        "lsd": log_spectral_distance(extension, truth),
                        "to_loop": log_spectral_distance(extension, looped),
                        "passages": passages, "loops": _loops(passages, cut, cut + seconds, bar),
                        "texture": isinstance(plan, Texture)})
            finally:
                source.close()
            case["variant1"] = _variant1(case["candidates"], extensions, sr)
            case["between"] = _between(extensions, sr)
            cases.append(case)
            wins = "".join("+" if _wins(case, c) else "." for c in case["candidates"])
            print(f"  {song.key:45s} {cut:6.1f}+{seconds:3.0f}s  {len(case['candidates'])} candidates {wins}",
                  flush=True)
    return cases


def _wins(case: dict, candidate: dict) -> bool:
    beats_both = candidate["lsd"] < min(case["base_loop"], case["base_silence"])
    return beats_both and candidate["sure"] >= DEFAULT_MIN_CONFIDENCE


def _offered(candidates: list[dict]) -> list[int]:
    """The candidates a job at the default floor offers, surest first: the texture only when no passage reaches
    ``TEXTURE_BELOW``."""
    best = max((c["sure"] for c in candidates if not c["texture"]), default=0.0)
    offered = [i for i, c in enumerate(candidates)
               if c["sure"] >= DEFAULT_MIN_CONFIDENCE and (best < TEXTURE_BELOW or not c["texture"])]
    return sorted(offered, key=lambda i: -candidates[i]["sure"])


def _variant1(candidates: list[dict], extensions: list[np.ndarray], sr: int) -> int | None:
    """Which candidate the job delivers as variant 1 (``agreement.order`` among those offered), None if none."""
    offered = _offered(candidates)
    if not offered:
        return None
    ranked = agreement.order([extensions[i] for i in offered], sr, [candidates[i]["sure"] for i in offered])
    return offered[ranked[0][0]]


def _between(extensions: list[np.ndarray], sr: int) -> list[list[float]]:
    """The candidates' distances to each other as ``agreement`` measures them, for rankings tried offline."""
    powers = [agreement.spectra(e, sr) for e in extensions]
    if len(powers) < 2 or min(p.shape[1] for p in powers) == 0:
        return [[0.0] * len(powers) for _ in powers]
    return agreement.distances(powers).round(3).tolist()


def engine_choice(case: dict) -> dict:
    """Variant 1 of the job as the engine delivers it (a case none is offered for: the surest, which loses)."""
    if case.get("variant1") is not None:
        return case["candidates"][case["variant1"]]
    return max(case["candidates"], key=lambda c: c["sure"])


def table(cases: list[dict]) -> None:
    print("\n| length | package | cases | engine's variant 1 wins | best candidate would win | candidates a case |")
    print("|---|---|---|---|---|---|")
    for seconds in EXTENDS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for case in cases:
            if case["length"] == seconds and case["candidates"]:
                groups[case["package"]].append(case)
                groups["all"].append(case)
        for name, rows in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
            print(f"| {seconds:.0f} s | {name} | {len(rows)} | {sum(_wins(r, engine_choice(r)) for r in rows)} | "
                  f"{sum(any(_wins(r, c) for c in r['candidates']) for r in rows)} | "
                  f"{np.mean([len(r['candidates']) for r in rows]):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("dev", "heldout", "outside"), default="dev")
    parser.add_argument("--songs", type=int, default=0, help="N songs, round-robin over packages (0 = all)")
    parser.add_argument("--skip", type=int, default=0, help="leave out the songs --songs SKIP would take")
    parser.add_argument("--crop", type=float, default=270.0)
    parser.add_argument("--only", default="", help="only songs whose package/file contains this")
    parser.add_argument("--json", type=Path, help="write every case and candidate here")
    args = parser.parse_args()
    chosen = music_set.pick([s for s in music_set.songs(args.part) if args.only in s.key], args.songs, args.skip)
    folder = Path(tempfile.mkdtemp(prefix="extend-candidates-"))
    cases: list[dict] = []
    try:
        for song in chosen:
            cases += song_cases(song, args.crop, folder)
            if args.json:
                args.json.write_text(json.dumps(cases))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table(cases)


if __name__ == "__main__":
    main()
