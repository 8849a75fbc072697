"""Load: fifty jobs at once on the embedded engine. The worker pool stays at its configured size, OSC keeps
answering throughout, and every job ends exactly once. (Latency figures against an idle daemon: bench/load.py.)"""

from __future__ import annotations

import json
import statistics
import threading
import time

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

import osc_schema
from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.adversarial.support import Daemon, journal_records, rss_kib, worker_processes
from tests.conftest import Project

JOBS = 50
WORKERS = 2


class Sampler(threading.Thread):
    """Counts the daemon's engine worker processes and its memory while the jobs run."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.workers: list[int] = []
        self.rss: list[int] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.workers.append(len(worker_processes(self.pid)))
            self.rss.append(rss_kib(self.pid))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def test_fifty_jobs_at_once_keep_the_pool_bounded_and_osc_answering(tmp_path, demo_song_path, figures):
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config(f"max_jobs = 4\n[local]\nworkers = {WORKERS}\n")
    daemon = Daemon(project).start()
    sampler = Sampler(daemon.pid)
    sampler.start()
    accepted: dict[str, str] = {}
    outcomes: dict[str, list] = {}
    pings: list[float] = []
    try:
        with BridgeClient("127.0.0.1", project.port) as load, BridgeClient("127.0.0.1", project.port) as probe:
            fired = time.monotonic()
            for i in range(JOBS):
                load.send("inpaint", source=str(project.song), start=10.0 + i % 3, end=14.0 + i % 3, prompt="",
                          num_outputs=2, request_id=f"load-{i}")
            deadline = time.monotonic() + 300
            while sum(len(v) for v in outcomes.values()) < JOBS and time.monotonic() < deadline:
                start = time.perf_counter()
                probe.send("ping")
                answered = probe.wait_for(lambda r: r.name == "pong", timeout=10)
                assert answered is not None, f"a ping went unanswered with {len(outcomes)} jobs ended"
                pings.append(time.perf_counter() - start)
                while (reply := load.receive(timeout=0.02)) is not None:
                    if reply.name == "accepted":
                        accepted[reply.args[1]] = reply.args[0]
                    elif reply.name in ("done", "failed"):
                        outcomes.setdefault(reply.args[0], []).append(reply)
            took = time.monotonic() - fired
            while (reply := load.receive(timeout=1.0)) is not None:  # a repeated outcome would arrive now
                if reply.name in ("done", "failed"):
                    outcomes.setdefault(reply.args[0], []).append(reply)
    finally:
        sampler.stop()
        daemon.stop()

    assert len(accepted) == JOBS and sorted(accepted.values()) == sorted(f"load-{i}" for i in range(JOBS))
    assert set(outcomes) == set(accepted), "a job never ended"
    assert all(len(replies) == 1 for replies in outcomes.values()), "a job ended more than once"
    failed = [r[0].args for r in outcomes.values() if r[0].name == "failed"]
    assert all(code and message for _, code, message in failed), failed
    # the engine's pool, plus the one process that draws the results' pictures
    assert 1 <= max(sampler.workers) <= WORKERS + 1, f"worker processes seen: {max(sampler.workers)}"
    records = journal_records(project)
    assert len(records) == JOBS and all(r.state.finished for r in records)
    delivered = JOBS - len(failed)
    files = project.visible_drop_files()
    by_kind = {kind: [f for f in files if f.suffix == kind] for kind in (".wav", ".json", ".png")}
    assert len(by_kind[".wav"]) == len(by_kind[".json"]) == 2 * delivered  # per variant: audio and manifest
    # pictures follow a job by a moment (the daemon was stopped meanwhile): each manifest names one only once it is
    # whole
    named = [json.loads(f.read_text()).get("picture") for f in by_kind[".json"]]
    assert sorted(f.name for f in by_kind[".png"]) == sorted(name for name in named if name)
    ms = 1000
    figures["load (50 jobs x 2 variants, max_jobs 4)"] = {
        "ended": f"{delivered} delivered, {len(failed)} failed, in {took:.1f} s",
        "pings answered while they ran": f"{len(pings)} of {len(pings)}: median {statistics.median(pings) * ms:.1f} "
                                         f"ms, max {max(pings) * ms:.1f} ms",
        "engine worker processes (max seen)": f"{max(sampler.workers)} (configured {WORKERS})",
        "daemon VmRSS KiB (min / max)": f"{min(sampler.rss)} / {max(sampler.rss)}",
        "accepted-reply p99 against idle": "see bench/load.py"}


def test_a_flood_past_max_jobs_and_max_queued_is_refused_as_busy_and_starts_nothing(tmp_path, demo_song_path):
    """A script sending in a loop: five inpaints in one bundle (handled in one go, so none ends between them) to a
    daemon taking one job at a time and queueing two. Three are admitted; the other two are told 'busy', by their
    request_id, and leave no job, no work and no file; once the three are done the same command is admitted."""
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config("max_jobs = 1\nmax_queued = 2\n")
    daemon = Daemon(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as producer:
            bundle = OscBundleBuilder(IMMEDIATELY)
            for i in range(5):
                address, args = osc_schema.to_osc_args("inpaint", dict(
                    source=str(project.song), start=10.0 + i, end=12.0 + i, prompt="", num_outputs=1,
                    request_id=f"flood-{i}"))
                bundle.add_content(OscMessage(encode(address, args)))
            producer.send_raw(bundle.build().dgram)
            accepted, refused, ended = {}, {}, {}
            while len(accepted) + len(refused) < 5 or len(ended) < len(accepted):
                reply = producer.receive(timeout=120)
                assert reply is not None, f"no more replies: accepted {accepted}, refused {refused}, ended {ended}"
                if reply.name == "accepted":
                    accepted[reply.args[0]] = reply.args[1]
                elif reply.name == "error":
                    refused[reply.args[1]] = reply.args
                elif reply.name in ("done", "failed"):
                    ended[reply.args[0]] = reply.name
            assert sorted(accepted) == ["flood-0", "flood-1", "flood-2"]
            assert sorted(refused) == ["flood-3", "flood-4"]
            for address, _, field, reason in refused.values():
                assert (address, field) == ("/bridge/inpaint", "")
                assert reason.startswith("busy: 3 jobs are running or waiting (max_jobs 1 + max_queued 2)"), reason
                assert "\n" not in reason
            assert set(ended.values()) == {"done"}
            records = journal_records(project)
            assert sorted(r.request_id for r in records) == ["flood-0", "flood-1", "flood-2"]
            assert sorted(p.name for p in (project.state / "work").iterdir()) == sorted(accepted.values())

            outcome, _ = producer.run_job("inpaint", source=str(project.song), start=13.0, end=15.0, prompt="",
                                          num_outputs=1, request_id="flood-3")
            assert outcome.name == "done", outcome
    finally:
        daemon.stop()
    assert len([f for f in project.visible_drop_files() if f.suffix == ".json"]) == 4
