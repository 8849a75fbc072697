"""The inbox's listing for files no event told of (a network share), against watchdog's PollingObserver's look.

    python bench/inbox_rescan.py [--answered 1000] [--rounds 7] [--calls 200]

Per look, CPU and wall time of ``InboxFrontend._check_folders`` (what the daemon does every 2 s: its event loop
awaits the look, made on the inbox's own thread; CPU counts both threads) and of what a
PollingObserver does at each of its intervals (a ``DirectorySnapshot`` of the folder and its diff with the last),
on an inbox holding ``--answered`` answered requests (processed/ and their status files), then the same inbox with
as many files of the producer's lying in the inbox itself (not requests), then with as many results' manifests
there (request names the daemon leaves where they are). Local folder first; through a FUSE mount (bindfs, as
root) when bindfs is installed, where each listing and stat is a round trip to the FUSE process, as to a NAS.
Medians of ``--rounds`` rounds of ``--calls`` looks each; the FUSE process's own CPU is not in "CPU".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import ROOT  # noqa: F401  (puts the repository on sys.path)
from watchdog.utils.dirsnapshot import DirectorySnapshot, DirectorySnapshotDiff

import osc_schema
from bridge.frontends.inbox import InboxFrontend
from tests.conftest import fuse_share


def fill_answered(inbox: Path, count: int) -> None:
    for folder in ("processed", "status", "rejected", "processing"):
        (inbox / folder).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        name = f"take-{n:04d}"
        (inbox / "processed" / f"{name}.json").write_text(json.dumps({"command": "extend", "request_id": name}))
        (inbox / "status" / f"{name}.json").write_text(json.dumps({"request_id": name, "state": "delivered"}))


def per_look(look, rounds: int, calls: int) -> tuple[float, float]:
    """Median CPU and wall seconds of one look."""
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            look()
        cpu.append((time.process_time() - c0) / calls)
        wall.append((time.perf_counter() - w0) / calls)
    return statistics.median(cpu), statistics.median(wall)


@contextlib.contextmanager
def rescan_look(inbox: Path):
    loop = asyncio.get_event_loop()
    frontend = InboxFrontend(SimpleNamespace(subscribe=lambda callback: None), inbox)
    loop.run_until_complete(frontend.start())  # its first listing takes what it finds; later ones find it known
    try:
        yield lambda: loop.run_until_complete(frontend._check_folders())
    finally:
        frontend.close()


@contextlib.contextmanager
def polling_look(inbox: Path):
    last = [DirectorySnapshot(str(inbox), recursive=False)]

    def look():
        now = DirectorySnapshot(str(inbox), recursive=False)
        DirectorySnapshotDiff(last[0], now)
        last[0] = now
    yield look


def measure(label: str, inbox: Path, rounds: int, calls: int) -> None:
    for name, make in (("rescan (daemon)", rescan_look), ("PollingObserver", polling_look)):
        with make(inbox) as look:
            cpu, wall = per_look(look, rounds, calls)
        print(f"  {label:<46} {name:<16} CPU {cpu * 1e3:7.3f} ms  wall {wall * 1e3:7.3f} ms  "
              f"(every 2 s: {cpu / 2 * 100:.4f} % of a core)")


def cases(inbox: Path, answered: int, rounds: int, calls: int) -> None:
    entries = len(os.listdir(inbox))
    measure(f"{answered} answered ({entries} entries at the top)", inbox, rounds, calls)
    for n in range(answered):
        (inbox / f"notes-{n:04d}.txt").write_text("a producer's file")
    measure(f"+{answered} other files in the inbox", inbox, rounds, calls)
    for n in range(answered):
        (inbox / f"result-{n:04d}.json").write_text(json.dumps({"format": osc_schema.MANIFEST_FORMAT}))
    measure(f"+{answered} manifests left in the inbox", inbox, rounds, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answered", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the manifests' one line each
    asyncio.set_event_loop(asyncio.new_event_loop())
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "local"
        fill_answered(local, args.answered)
        print("local folder:")
        cases(local, args.answered, args.rounds, args.calls)

        bindfs = shutil.which("bindfs")
        if bindfs is None or os.geteuid() != 0:
            print("FUSE mount: skipped (needs bindfs and root)")
            return
        nas, mount = Path(tmp) / "nas", Path(tmp) / "mount"
        mount.mkdir()
        fill_answered(nas, args.answered)
        with fuse_share(bindfs, nas, mount):
            print("FUSE mount (bindfs):")
            cases(mount, args.answered, args.rounds, args.calls)


if __name__ == "__main__":
    main()
