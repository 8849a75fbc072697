"""A long run at a steady rate: does the daemon stay bounded, and does every job arrive exactly once?

Starts the real daemon (``python3 -m bridge serve``) on a temporary project with a generated 40 s song, default
settings (so default retention) and the embedded engine, and sends ``--jobs`` inpaint commands over loopback OSC
at ``--rate`` per second from one socket, one variant each. It prints:

- deliveries: every job's ``/bridge/done`` replies and its manifests in the drop folder, counted per job (each
  should be exactly one of each), and failures by code;
- memory: resident memory of the daemon and every process it started (the engine workers), read from /proc, when
  the 100th job is delivered and at the end (RSS sums count pages shared between the processes twice; the growth
  is the figure to watch), with the lowest and highest of samples taken every 5 s;
- the state folder's size at the end, by part, with the journal's job count and bytes per job;
- ``/bridge/inpaint`` -> ``/bridge/accepted`` latency seen by the sender while the soak runs: p50/p99 over all
  jobs, and over the first and last tenth.

Bounded in time (``--timeout``, by default the sending time plus 10 minutes) and count. Nothing is asserted.

    python bench/soak.py [--jobs 1000] [--rate 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, BridgeClient, free_udp_port, percentile

from bridge.core.retention import folder_size
from bridge.demo_song import make_song
from bridge.lifeline import ask_to_die_with_parent

# Ranges of the generated song the engine can fill (at 20.5 s it finds nothing similar enough, on purpose not used).
STARTS = (8.0, 10.5, 13.0, 15.5, 18.0, 23.0)


def family(pid: int) -> list[int]:
    """The process and its descendants, as far as they still exist while we look."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    queue += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


class Soak:
    """One sender paced to the rate, one receiver following every job to its end, a memory sampler."""

    def __init__(self, port: int, song: str, jobs: int, rate: float, pid: int):
        self.client = BridgeClient("127.0.0.1", port)
        self.song, self.jobs, self.rate, self.pid = song, jobs, rate, pid
        self.sent: dict[str, float] = {}  # request_id -> when sent
        self.accepted: dict[str, float] = {}  # request_id -> seconds until /bridge/accepted
        self.job_of: dict[str, str] = {}  # job_id -> request_id
        self.done: Counter = Counter()  # job_id -> /bridge/done replies
        self.failed: dict[str, str] = {}  # job_id -> code
        self.errors: list[str] = []
        self.mark = min(100, max(1, jobs // 2))  # the delivery after which memory is first read
        self.rss_at_mark: float | None = None
        self.samples: list[tuple[float, float]] = []  # (seconds into the soak, MiB)
        self.finished = threading.Event()
        self.started = 0.0

    def send_all(self) -> None:
        self.started = time.perf_counter()
        for i in range(self.jobs):
            due = self.started + i / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            request_id = f"soak-{i:05d}"
            start = STARTS[i % len(STARTS)]
            self.sent[request_id] = time.perf_counter()
            self.client.send("inpaint", source=self.song, start=start, end=start + 4.0, prompt="", num_outputs=1,
                             request_id=request_id)

    def receive_until(self, deadline: float) -> None:
        while time.monotonic() < deadline and not self.all_ended():
            reply = self.client.receive(timeout=0.5)
            if reply is None:
                continue
            now = time.perf_counter()
            if reply.name == "accepted":
                request_id, job_id = reply.args[0], reply.args[1]
                if request_id in self.sent and request_id not in self.accepted:
                    self.accepted[request_id] = now - self.sent[request_id]
                    self.job_of[job_id] = request_id
            elif reply.name == "done":
                self.done[reply.args[0]] += 1
                if self.rss_at_mark is None and len(self.done) >= self.mark:
                    self.rss_at_mark = rss_mib(family(self.pid))
            elif reply.name == "failed":
                self.failed[reply.args[0]] = reply.args[1]
            elif reply.name == "error":
                self.errors.append(" ".join(str(a) for a in reply.args))
        self.finished.set()

    def all_ended(self) -> bool:
        return len(self.sent) == self.jobs and len(self.done.keys() | self.failed.keys()) + len(self.errors) >= \
            self.jobs

    def sample_memory(self) -> None:
        while not self.finished.wait(5.0):
            self.samples.append((time.perf_counter() - self.started, rss_mib(family(self.pid))))


def manifests_per_job(drop: Path) -> Counter:
    counts: Counter = Counter()
    for path in drop.glob("*.json"):
        if not path.name.startswith("."):
            counts[json.loads(path.read_text())["job_id"]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="commands per second")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds for the whole soak (default: the sending time plus 600)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = parser.parse_args()
    if args.jobs < 1 or args.rate <= 0:
        parser.error("--jobs must be 1 or more and --rate more than 0")
    timeout = args.timeout or args.jobs / args.rate + 600

    root = Path(tempfile.mkdtemp(prefix="daw-bridge-soak-"))
    port = free_udp_port()
    state, drop = root / "state", root / "daw-bridge"
    config = root / "daw-bridge.toml"
    config.write_text(f'osc_port = {port}\ninbox = "{root / "inbox"}"\nstate_dir = "{state}"\n'
                      f'drop_folder = "{drop}"\nproject_roots = ["{root}"]\n', encoding="utf-8")
    song = str(make_song(root / "audio" / "song.wav", seconds=40.0))
    log_path = root / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--config", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                                preexec_fn=ask_to_die_with_parent)
    soak = None
    try:
        with BridgeClient("127.0.0.1", port) as client:
            deadline = time.monotonic() + 60
            while not client.ping(timeout=0.3):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"daemon did not start:\n{log_path.read_text()}")
        rss_start = rss_mib(family(proc.pid))
        soak = Soak(port, song, args.jobs, args.rate, proc.pid)
        receiver = threading.Thread(target=soak.receive_until, args=(time.monotonic() + timeout,), daemon=True)
        sampler = threading.Thread(target=soak.sample_memory, daemon=True)
        receiver.start()
        sender_started = time.perf_counter()
        sampler.start()
        soak.send_all()
        sending = time.perf_counter() - sender_started
        receiver.join()
        took = time.perf_counter() - sender_started
        sampler.join()
        time.sleep(2.0)  # let the last deliveries' clean-up settle before the final figures
        rss_end = rss_mib(family(proc.pid))
        state_parts = {p.name: (folder_size(p) if p.is_dir() else p.stat().st_size) for p in sorted(state.iterdir())}
        state_total = folder_size(state)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            exit_status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_status = proc.wait()
        if soak is not None:
            soak.client.close()
    state_after_stop = folder_size(state)
    journal_bytes = sum(p.stat().st_size for p in state.glob("journal.sqlite*"))
    journal_rows = _journal_rows(state / "journal.sqlite")
    manifests = manifests_per_job(drop)
    log_text = log_path.read_text()

    accepted = list(soak.accepted.values())
    ms = 1000.0
    jobs_done = set(soak.done)
    once = sum(1 for job_id in soak.job_of if soak.done[job_id] == 1 and manifests[job_id] == 1)
    print(f"soak: {args.jobs} inpaint jobs (one variant each) at {args.rate:g}/s over loopback OSC, embedded engine, "
          f"default settings; sent in {sending:.1f} s, all ended {took:.1f} s after the first was sent")
    print(f"jobs: {len(soak.accepted)} accepted, {len(jobs_done)} delivered, {len(soak.failed)} failed "
          f"{dict(Counter(soak.failed.values())) or ''}, {len(soak.errors)} refused; "
          f"delivered exactly once (one done reply and one manifest): {once}/{len(soak.accepted)}")
    print(f"  done replies per job {dict(Counter(soak.done[j] for j in soak.job_of))}, manifests per job "
          f"{dict(Counter(manifests[j] for j in soak.job_of))}, manifests of unknown jobs "
          f"{sum(n for j, n in manifests.items() if j not in soak.job_of)}")
    if soak.errors:
        print(f"  first refusal: {soak.errors[0]}")
    at_mark = f"{soak.rss_at_mark:.1f} MiB" if soak.rss_at_mark is not None else "n/a"
    growth = f"{rss_end - soak.rss_at_mark:+.1f} MiB" if soak.rss_at_mark is not None else "n/a"
    samples = [mib for _, mib in soak.samples]
    print(f"memory (daemon + engine workers, RSS): {rss_start:.1f} MiB idle at start, {at_mark} at delivery "
          f"{soak.mark}, {rss_end:.1f} MiB at the end: growth {growth} over the last "
          f"{max(0, len(jobs_done) - soak.mark)} jobs" + (f"; 5 s samples {min(samples):.1f}..{max(samples):.1f} MiB"
                                                     if samples else ""))
    parts = ", ".join(f"{name} {size / 1e3:.0f} kB" for name, size in state_parts.items())
    print(f"state folder at the end: {state_total / 1e6:.2f} MB running ({parts}); {state_after_stop / 1e6:.2f} MB "
          f"after a clean stop; journal holds {journal_rows} jobs in {journal_bytes / 1e3:.0f} kB, "
          f"{journal_bytes / max(journal_rows, 1):.0f} bytes per job")
    if accepted:
        tenth = max(1, len(accepted) // 10)
        order = [soak.accepted[r] for r in sorted(soak.accepted)]
        print(f"/bridge/inpaint -> /bridge/accepted during the soak: p50 {statistics.median(accepted) * ms:.2f} ms, "
              f"p99 {percentile(accepted, 99) * ms:.2f} ms, max {max(accepted) * ms:.2f} ms (n={len(accepted)}); "
              f"first tenth p50/p99 {statistics.median(order[:tenth]) * ms:.2f}/"
              f"{percentile(order[:tenth], 99) * ms:.2f} ms, last tenth "
              f"{statistics.median(order[-tenth:]) * ms:.2f}/{percentile(order[-tenth:], 99) * ms:.2f} ms")
    print(f"daemon: exit status {exit_status} after SIGTERM, {log_text.count('retention: removed')} retention "
          f"pass(es) logged, {log_text.count('Traceback')} traceback(s) in its log")
    if args.keep:
        print(f"project kept at {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def _journal_rows(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        db.close()


if __name__ == "__main__":
    main()
