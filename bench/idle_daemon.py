"""An idle daemon's cost: CPU over a window (target < 1 %) and resident memory, next to an idle bare Python.

    python bench/idle_daemon.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _common import BenchDaemon

from bridge.lifeline import ask_to_die_with_parent

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def family(pid: int) -> list[int]:
    """The process and its descendants (the engine's warmed-up worker and multiprocessing's resource tracker)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in os.listdir(f"/proc/{current}/task"):
            queue += [int(c) for c in open(f"/proc/{current}/task/{task}/children").read().split()]
    return found


def measure(pid: int, seconds: float) -> tuple[float, float]:
    """CPU % over the window and resident MiB, for the process and everything it started."""
    pids = family(pid)
    before, start = sum(cpu_seconds(p) for p in pids), time.monotonic()
    time.sleep(seconds)
    used, wall = sum(cpu_seconds(p) for p in pids) - before, time.monotonic() - start
    return used / wall * 100, sum(rss_mib(p) for p in pids)


def breakdown(pid: int) -> str:
    """Resident MiB per process of the family, named by what it is."""
    parts = []
    for one in family(pid):
        command = open(f"/proc/{one}/cmdline").read().replace("\0", " ")
        name = ("daemon" if one == pid else "resource tracker" if "resource_tracker" in command
                else f"worker {one}")
        parts.append(f"{name} {rss_mib(one):.0f}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], preexec_fn=ask_to_die_with_parent)
    try:
        with BenchDaemon() as daemon:
            time.sleep(15)  # let start-up and the engine worker's warm-up settle
            daemon_cpu, daemon_rss = measure(daemon.proc.pid, args.seconds)
            parts = breakdown(daemon.proc.pid)
            bare_cpu, bare_rss = measure(bare.pid, 1.0)
    finally:
        bare.kill()
    print(f"idle daemon (with its warmed-up engine worker) over {args.seconds:.0f} s: CPU {daemon_cpu:.3f} %, "
          f"RSS {daemon_rss:.1f} MiB ({parts})")
    print(f"idle bare python (baseline):  CPU {bare_cpu:.3f} %, RSS {bare_rss:.1f} MiB; "
          f"RSS ratio {daemon_rss / bare_rss:.1f}x")


if __name__ == "__main__":
    main()
