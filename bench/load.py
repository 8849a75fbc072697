"""OSC accepted-reply latency while 50 jobs run on the embedded engine, against the idle daemon in the same run.

A *probe* is an inpaint of a 3-second clip: parsed, validated, its source probed and its job journaled (fsync)
before /bridge/accepted goes back, like any job; the engine then refuses the clip at once (too short to re-use),
so probes add no generation work of their own. Each round measures probes sent one at a time to the idle daemon,
then fires 50 real jobs at once (two variants each, max_jobs = 4, one engine worker) and probes every 50 ms until
all 50 have ended. Pings are measured the same way. Figures are per round, then the median over rounds and the
percentiles of all rounds' samples pooled (a p99 of one round's few dozen samples is little more than its maximum).

    python bench/load.py [--rounds 3] [--jobs 50] [--idle-probes 100]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from _common import BenchDaemon, BridgeClient, percentile

from bridge.demo_song import make_song


def probe(client: BridgeClient, clip: str, n: int) -> float:
    """Seconds from sending an inpaint to its accepted reply."""
    start = time.perf_counter()
    client.send("inpaint", source=clip, start=0.5, end=1.0, prompt="", num_outputs=1, request_id=f"probe-{n}")
    reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
    elapsed = time.perf_counter() - start
    assert reply is not None and reply.name == "accepted", reply
    return elapsed


def ping(client: BridgeClient) -> float:
    start = time.perf_counter()
    client.send("ping")
    assert client.wait_for(lambda r: r.name == "pong", timeout=10) is not None
    return time.perf_counter() - start


class LoadClient(threading.Thread):
    """Fires the jobs at once and follows them to their ends on its own socket."""

    def __init__(self, port: int, song: str, jobs: int, round_no: int):
        super().__init__(daemon=True)
        self.client = BridgeClient("127.0.0.1", port)
        self.song, self.jobs, self.round_no = song, jobs, round_no
        self.accepted: dict[str, float] = {}
        self.ended: dict[str, str] = {}
        self.fired = 0.0
        self.last_accepted = 0.0

    def run(self) -> None:
        self.fired = time.perf_counter()
        for i in range(self.jobs):
            self.client.send("inpaint", source=self.song, start=10.0 + (i % 3), end=14.0 + (i % 3), prompt="",
                             num_outputs=2, request_id=f"load-{self.round_no}-{i}")
        deadline = time.monotonic() + 600
        while len(self.ended) < self.jobs and time.monotonic() < deadline:
            reply = self.client.receive(timeout=1.0)
            if reply is None:
                continue
            if reply.name == "accepted":
                self.accepted[reply.args[1]] = time.perf_counter()
                self.last_accepted = time.perf_counter() - self.fired
            elif reply.name in ("done", "failed") and reply.args[0] in self.accepted:
                self.ended[reply.args[0]] = reply.name
        self.client.close()


def one_round(port: int, song: str, clip: str, jobs: int, idle_probes: int, round_no: int) -> dict:
    with BridgeClient("127.0.0.1", port) as client:
        idle, idle_pings = [], []
        for n in range(idle_probes):
            idle.append(probe(client, clip, n))
            idle_pings.append(ping(client))
            time.sleep(0.05)  # the probe's job fails in the engine within milliseconds: the daemon is idle again
        load = LoadClient(port, song, jobs, round_no)
        started = time.perf_counter()
        load.start()
        loaded, loaded_pings = [], []
        n = idle_probes
        while load.is_alive():
            loaded.append(probe(client, clip, n))
            loaded_pings.append(ping(client))
            n += 1
            time.sleep(0.05)
        load.join()
        took = time.perf_counter() - started
    delivered = sum(1 for outcome in load.ended.values() if outcome == "done")
    return {"idle": idle, "loaded": loaded, "idle_pings": idle_pings, "loaded_pings": loaded_pings, "took": took,
            "delivered": delivered, "ended": len(load.ended), "burst": load.last_accepted}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--idle-probes", type=int, default=100)
    args = parser.parse_args()
    with BenchDaemon("max_jobs = 4\n[local]\nworkers = 1\n") as daemon:
        song = str(make_song(daemon.root / "song.wav", seconds=40.0))
        clip = str(make_song(daemon.root / "clip.wav", seconds=3.0))
        with BridgeClient("127.0.0.1", daemon.port) as client:  # spawn the engine worker before measuring
            client.run_job("inpaint", source=song, start=10.0, end=14.0, prompt="", num_outputs=1, timeout=120)
        rounds = [one_round(daemon.port, song, clip, args.jobs, args.idle_probes, r) for r in range(args.rounds)]

    ms = 1000.0
    print(f"{args.jobs} jobs x 2 variants per round, max_jobs 4, one engine worker, {args.rounds} rounds")
    for r, data in enumerate(rounds, start=1):
        print(f"round {r}: {data['ended']}/{args.jobs} ended ({data['delivered']} delivered) in {data['took']:.1f} s; "
              f"all {args.jobs} accepted {data['burst'] * ms:.1f} ms after the burst; "
              f"accepted p99 idle {percentile(data['idle'], 99) * ms:.2f} ms (n={len(data['idle'])}), "
              f"loaded {percentile(data['loaded'], 99) * ms:.2f} ms (n={len(data['loaded'])})")
    median = statistics.median
    idle_p99 = median(percentile(d["idle"], 99) for d in rounds)
    loaded_p99 = median(percentile(d["loaded"], 99) for d in rounds)
    idle_p50 = median(median(d["idle"]) for d in rounds)
    loaded_p50 = median(median(d["loaded"]) for d in rounds)
    ping_idle = median(percentile(d["idle_pings"], 99) for d in rounds)
    ping_loaded = median(percentile(d["loaded_pings"], 99) for d in rounds)
    print(f"inpaint -> accepted, idle:          p50 {idle_p50 * ms:.2f} ms, p99 {idle_p99 * ms:.2f} ms")
    print(f"inpaint -> accepted, 50 jobs busy:  p50 {loaded_p50 * ms:.2f} ms, p99 {loaded_p99 * ms:.2f} ms")
    print(f"ratio loaded/idle:                  p50 {loaded_p50 / idle_p50:.2f}, p99 {loaded_p99 / idle_p99:.2f}")
    print(f"ping -> pong p99, idle / loaded:    {ping_idle * ms:.2f} ms / {ping_loaded * ms:.2f} ms "
          f"(ratio {ping_loaded / ping_idle:.2f})")
    print("(medians over rounds of each round's figure)")
    pooled = {kind: [v for d in rounds for v in d[kind]] for kind in ("idle", "loaded")}
    print(f"pooled accepted p99: idle {percentile(pooled['idle'], 99) * ms:.2f} ms (n={len(pooled['idle'])}), "
          f"loaded {percentile(pooled['loaded'], 99) * ms:.2f} ms (n={len(pooled['loaded'])}), ratio "
          f"{percentile(pooled['loaded'], 99) / percentile(pooled['idle'], 99):.2f}")


if __name__ == "__main__":
    main()
