"""The money matrix as a table: every way a MusicGPT job can reach a submit, and the tasks the fake counted.

Runs the scenarios of ``tests/adversarial/money_scenarios.py`` (the same code the test suite runs, one test per
row) against the real daemon process and the fake MusicGPT service on loopback, and prints one row per path:
tasks created on the fake (what MusicGPT charges for; want 1 everywhere), submit POSTs received, the job's final
state, and the story the producer saw (states, CLI answers). Broken promises are listed under the table as
"observed ...; wanted ...". Exit status 1 when any promise is broken.

    python bench/money_matrix.py [-k SUBSTRING]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

sys.path.insert(0, str(ROOT))

from bridge.demo_song import make_song
from tests.adversarial.money_scenarios import SCENARIOS, Outcome, run_scenario, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the paths whose name contains this")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="money-matrix-") as tmp:
        song = make_song(Path(tmp) / "song.wav", seconds=24.0)
        for n, scenario in enumerate(s for s in SCENARIOS.values() if args.k in s.name):
            outcomes.append(run_scenario(scenario, Path(tmp) / f"path-{n}", song))
            print(f"  ran {scenario.name}: {outcomes[-1].tasks} task(s), {outcomes[-1].state}", file=sys.stderr)
    print(table(outcomes))
    print(f"\n{len(outcomes)} paths in {time.monotonic() - started:.0f} s; "
          f"{sum(o.tasks == o.want_tasks for o in outcomes)} with the wanted number of tasks, "
          f"{sum(not o.problems for o in outcomes)} keeping every promise")
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
