"""OSC command -> accepted reply on loopback, against ping -> pong measured in the same run.

An accepted reply means the command was parsed, validated, its source probed (in a thread) and the job journaled:
that is what the figure includes. The embedded engine's jobs are not synced to disk step by step (a resubmit costs
nothing); a paid job's intent to submit is. Target: p99 < 5 ms over 500 commands.

    python bench/osc_latency.py [--commands 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import BenchDaemon, BridgeClient, describe

from bridge.demo_song import make_song


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=500)
    args = parser.parse_args()
    # One generation at a time, so most of the run measures OSC while the engine works on the other core; every
    # command is queued (none refused as busy), so each reply is an admission's
    with BenchDaemon(f"max_jobs = 1\nmax_queued = {args.commands}\n[local]\nworkers = 1\n") as daemon:
        song = make_song(daemon.root / "song.wav", seconds=30.0)
        with BridgeClient("127.0.0.1", daemon.port) as client:
            pings, accepts = [], []
            for i in range(args.commands):
                start = time.perf_counter()
                client.send("ping")
                client.wait_for(lambda r: r.name == "pong", timeout=5)
                pings.append(time.perf_counter() - start)

                start = time.perf_counter()
                client.send("inpaint", source=str(song), start=10.0, end=12.0, prompt="", request_id=f"b{i}",
                            num_outputs=1)
                reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=5)
                accepts.append(time.perf_counter() - start)
                assert reply is not None and reply.name == "accepted", reply
    print(f"ping -> pong (baseline):        {describe(pings)}")
    print(f"inpaint -> accepted:            {describe(accepts)}")
    print(f"ratio accepted/ping (medians):  {statistics.median(accepts) / statistics.median(pings):.2f}")


if __name__ == "__main__":
    main()
