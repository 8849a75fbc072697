"""Each ``daw-bridge install TARGET``: files written, time taken, and install -> uninstall giving the folders back.

Every target runs in a throw-away HOME with folders a real set-up would already have (a REAPER resource folder with
a reaper-kb.ini of other people's actions, an Ardour scripts folder holding someone else's script, a plugin folder
with another plugin). The figures are the CLI's own, in this process: median of ``--runs`` installs into a fresh copy
of the folders, the lines it printed for the files it changed, and a byte-for-byte comparison of the whole tree
before install and after uninstall. ``service`` writes the unit file only (``--no-start``): no user manager here.

    python3 bench/install_roundtrip.py [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT

from bridge.cli import main

KB = ("\r\n".join([
    'ACT 0 0 "e5c2d7f1a3b44c7e9a1d2f3b4c5d6e7f" "Custom: my macro" 40001 40002 _SWS_SAVESEL',
    'KEY 1 65 40044 0',
    'SCR 4 0 RS7d3c0a0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60 "Custom: my_script.lua" "my_script.lua"',
    'KEY 1 70 _RS7d3c0a0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60 0',
]) + "\r\n").encode()


def _existing(home: Path) -> None:
    """What a producer's machine already holds before daw-bridge is installed."""
    reaper = home / ".config" / "REAPER"
    (reaper / "Scripts").mkdir(parents=True)
    (reaper / "reaper-kb.ini").write_bytes(KB)
    (reaper / "Scripts" / "my_script.lua").write_text("-- someone else's\n")
    (home / ".config" / "ardour7" / "scripts").mkdir(parents=True)
    (home / ".config" / "ardour7" / "scripts" / "theirs.lua").write_text("-- someone else's\n")
    (home / ".lv2" / "other.lv2").mkdir(parents=True)
    (home / ".lv2" / "other.lv2" / "manifest.ttl").write_text("# another plugin\n")


TARGETS = {
    "reaper": lambda home: ["--resource-path", str(home / ".config" / "REAPER")],
    "ardour": lambda home: [],
    "plugin": lambda home: [],  # the default per-user folders under HOME
    "service": lambda home: ["--unit-path", str(home / "daw-bridge.service"), "--no-start"],
}


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _run(args: list[str]) -> tuple[int, str, float]:
    out = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(args)
    return status, out.getvalue(), time.perf_counter() - began


def _written(out: str) -> int:
    """The CLI's closing line: 'install reaper: 18 file(s) written, 0 unchanged, 0.00 s'."""
    return int(re.search(r"(\d+) file\(s\) written", out).group(1))


def measure(target: str, runs: int) -> dict:
    times, written, round_trip = [], 0, True
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="daw-bridge-install-"))
        old_home = os.environ.get("HOME")
        os.environ["HOME"] = str(home)
        try:
            _existing(home)
            before = _tree(home)
            status, out, took = _run(["install", target, *TARGETS[target](home)])
            if status != 0:
                raise SystemExit(f"install {target} failed: {out.strip().splitlines()[-1]}")
            times.append(took)
            written = _written(out)
            installed = _tree(home)
            idempotent = _written(_run(["install", target, *TARGETS[target](home)])[1]) == 0 and \
                _tree(home) == installed
            _run(["uninstall", target, *TARGETS[target](home)])
            round_trip = round_trip and _tree(home) == before and idempotent
        finally:
            os.environ["HOME"] = old_home or ""
            shutil.rmtree(home, ignore_errors=True)
    return {"target": target, "written": written, "ms": statistics.median(times) * 1000, "round_trip": round_trip}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (ROOT / "daw_scripts" / "plugin" / "build").is_dir():
        raise SystemExit("build the plugin first: make -C daw_scripts/plugin")
    print(f"{'target':8} {'files written':>13} {'install ms':>11}  install twice, then uninstall: folders as before")
    for target in TARGETS:
        row = measure(target, args.runs)
        print(f"{row['target']:8} {row['written']:>13} {row['ms']:>11.1f}  {'yes' if row['round_trip'] else 'NO'}")


if __name__ == "__main__":
    main_bench()
