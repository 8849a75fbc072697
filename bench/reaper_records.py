"""REAPER scripts beside a year of results: a run's time with records and a drop folder of N results.

    python bench/reaper_records.py [--results 5000] [--rounds 3] [--against REV]

Runs the REAPER scripts under lua5.4 against the tests' REAPER stand-in (tests/daw_scripts/reaper/harness), on:

- *song, import now*: song.RPP has imported N results (its record ``daw_bridge_imported`` holds N names, the drop
  folder their manifests and audio, ``.reaper-sent`` N lines); one new result comes and "Import results now" runs.
- *song, inpaint*: the same project sends one more request (a line appended to ``.reaper-sent``).
- *other, import now*: other.RPP, saved in the same folder, is in front beside song.RPP's N results, which it
  leaves for song.RPP; "Import results now" runs (one scan).
- *other, companion scan*: the same with the companion running; a scan after its first (the median CPU time of 10
  scans in the Lua process: the scripts and the stand-in's Lua, not the ``find`` it runs for a folder's listing).
- *song, decided scan*: song.RPP with the companion running, each of its N results decided on (a decision file in
  the drop folder, a line in ``.reaper-decided``, the seq in its record ``daw_bridge_decided``); a scan, as above.

Each case also with N = 0 in the same run (the baseline), and with ``--against REV`` for that git revision's scripts
as well (``git show REV:"daw_scripts/reaper/DAW Bridge/..."``), on the same stand-in. Medians of ``--rounds``.
The stand-in's ``EnumProjExtState`` goes through all of the project's keys at the start of each enumeration (until
9d79e40 it also sorted them at each index, n^2 log n for a record of n names, which made "song, import now" 20 s):
that part is the stand-in's, not REAPER's (whose cost is not measured here).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT

from tests.daw_scripts.reaper.conftest import PACKAGE, Project
from tests.daw_scripts.reaper.results import decision_json, deliver


def scripts_of(rev: str, into: Path) -> Path:
    """The REAPER package's Lua files as they were at git revision `rev`, in `into`."""
    listing = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:daw_scripts/reaper/DAW Bridge"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, listing):
        text = subprocess.run(["git", "show", f"{rev}:daw_scripts/reaper/DAW Bridge/{name}"], cwd=ROOT, check=True,
                              capture_output=True).stdout
        (into / name).write_bytes(text)
    return into


def project_with_results(folder: Path, count: int, package: Path, decided: bool = False) -> tuple[Project, dict]:
    """song.RPP with one item, `count` results of its requests imported, each listed in .reaper-sent; `decided`: each
    result's job kept (its decision file, its line in .reaper-decided, its seq in the project's record)."""
    project = Project(folder)
    if package != PACKAGE:
        for path in package.glob("*.lua"):
            (project.scripts_dir / path.name).write_bytes(path.read_bytes())
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    ids = dict(item=item["guid"], track=mix["guid"])
    template = deliver(project.drop_folder, variants=1, **ids)
    text, wav = template.read_text(), template.with_suffix(".wav")
    lines, applied = [], []
    decisions = project.drop_folder / ".daw-bridge-decisions"
    decisions.mkdir()
    for n in range(count):
        request_id, stem = f"reaper-{1700000000 + n}-{n + 1}", f"mix_inpaint_12.50-20.00_v1_{n:06x}"
        manifest = project.drop_folder / f"{stem}.json"
        manifest.write_text(text.replace("reaper-1700000000-1", request_id).replace(wav.stem, stem))
        (project.drop_folder / f"{stem}.wav").hardlink_to(wav)
        lines.append(f"{request_id} {project.project_path / 'song.RPP'}\n")
        project.state.setdefault("projext", {})[f"daw_bridge_imported/{stem}.json"] = "1"
        if decided:
            job = f"j-20261121-190512-{n:06x}"
            (decisions / f"{job}.json").write_text(decision_json(job, 1, "keep", 1, [manifest]))
            applied.append(f"{job}\t1\n")
            project.state["projext"][f"daw_bridge_decided/{job}"] = "1"
    template.unlink()
    wav.unlink()
    (project.drop_folder / ".reaper-sent").write_text("".join(lines))
    (project.drop_folder / ".reaper-decided").write_text("".join(applied))
    return project, ids


def timed(run) -> float:
    start = time.perf_counter()
    result = run()
    assert result.errors == [], result.errors
    return time.perf_counter() - start


def song_import_now(folder: Path, count: int, package: Path) -> float:
    project, ids = project_with_results(folder, count, package)
    deliver(project.drop_folder, variants=1, job="j-20261202-040000-new0", **ids)
    return timed(lambda: project.run("import now"))


def song_inpaint(folder: Path, count: int, package: Path) -> float:
    project, _ = project_with_results(folder, count, package)
    project.select_time(12.5, 20.0)
    return timed(lambda: project.run("inpaint", dialog=[{"Prompt": "soft guitar solo", "Variants": "1",
                                                         "Render": "n"}]))


def other_in_front(folder: Path, count: int, package: Path) -> Project:
    """other.RPP, saved beside song.RPP and its `count` results, in front."""
    project, _ = project_with_results(folder, count, package)
    project.state["project_file"] = str(project.project_path / "other.RPP")
    project.state["tracks"], project.state["projext"] = [], {}
    project.add_item(project.add_track("Drums"), position=0.0, length=30.0, file="/music/other/drums.wav")
    return project


def other_import_now(folder: Path, count: int, package: Path) -> float:
    project = other_in_front(folder, count, package)
    return timed(lambda: project.run("import now"))


SCANS = 10  # companion scans after its first, whose median is a scan's time


def scan_time(project: Project) -> float:
    """The median CPU time of the companion's scans after its first, in the Lua process (the scripts and the
    stand-in's Lua; not the ``find`` the stand-in runs for a folder's listing, nor the start of the process)."""
    result = project.run("companion", ticks=SCANS)
    assert result.errors == [] and len(result.tick_cpu) == SCANS, result.errors
    return statistics.median(result.tick_cpu)


def other_scan(folder: Path, count: int, package: Path) -> float:
    return scan_time(other_in_front(folder, count, package))


def song_decided_scan(folder: Path, count: int, package: Path) -> float:
    return scan_time(project_with_results(folder, count, package, decided=True)[0])


CASES = {"song, import now": song_import_now, "song, inpaint": song_inpaint, "other, import now": other_import_now,
         "other, companion scan": other_scan, "song, decided scan": song_decided_scan}


def median_time(case, count: int, package: Path, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="daw-bridge-bench-") as folder:
            times.append(case(Path(folder), count, package))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure the scripts of this git revision")
    parser.add_argument("--case", action="append", choices=CASES, help="only this case (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="daw-bridge-scripts-") as old:
        packages = {"this tree": PACKAGE}
        if args.against:
            packages[args.against] = scripts_of(args.against, Path(old))
        for label, package in packages.items():
            for name in args.case or CASES:
                case = CASES[name]
                empty = median_time(case, 0, package, args.rounds)
                full = median_time(case, args.results, package, args.rounds)
                print(f"{label:>10} | {name:<22} | 0 results {empty * 1000:9.1f} ms | {args.results} results "
                      f"{full * 1000:9.1f} ms | x{full / empty:.1f}", flush=True)


if __name__ == "__main__":
    main()
