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

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pid: int, seconds: float) -> tuple[float, float]:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, wall = cpu_seconds(pid) - before, time.monotonic() - start
    return used / wall * 100, rss_mib(pid)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        with BenchDaemon() as daemon:
            time.sleep(2)  # let start-up settle
            daemon_cpu, daemon_rss = measure(daemon.proc.pid, args.seconds)
            bare_cpu, bare_rss = measure(bare.pid, 1.0)
    finally:
        bare.kill()
    print(f"idle daemon over {args.seconds:.0f} s: CPU {daemon_cpu:.3f} %, RSS {daemon_rss:.1f} MiB")
    print(f"idle bare python (baseline):  CPU {bare_cpu:.3f} %, RSS {bare_rss:.1f} MiB; "
          f"RSS ratio {daemon_rss / bare_rss:.1f}x")


if __name__ == "__main__":
    main()
