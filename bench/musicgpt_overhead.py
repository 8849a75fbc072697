"""What the MusicGPT backend costs around the generation itself, against the fake service on loopback.

Figures, for a 10 s inpaint in the middle of a 4-minute 44.1 kHz stereo song (30 s of context each side):

1. bridge overhead per job, generation time excluded: export + multipart upload (prepare, submit), then byId,
   download, decode, align, splice and write (wait, started once the fake has finished and rendered the task).
   Median of several runs; target < 1 s. The baseline, measured in the same run, is reading the whole song and
   writing it back once.
2. uploaded bytes against uploading the whole song.
3. byId calls per job against the minimum (one poll, just as the task completes) for tasks that finish on their eta,
   late, and with unknown status values; and what the vendor SDK's fixed 3 s polling would have used.

    python bench/musicgpt_overhead.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from _common import ROOT

sys.path.insert(0, str(ROOT))

from bridge.audio.region import probe  # noqa: E402
from bridge.backends.musicgpt.backend import MusicGPTBackend  # noqa: E402
from bridge.backends.musicgpt.secrets import Redacted  # noqa: E402
from bridge.demo_song import make_song  # noqa: E402
from bridge.models import JobSpec  # noqa: E402
from tests.fakes.musicgpt import FakeMusicGPT  # noqa: E402

SONG_S, START, END = 240.0, 115.0, 125.0


def spec_for(song: Path, job: int, **fields) -> JobSpec:
    return JobSpec(job_id=f"j-bench-{job}", operation="inpaint", source=song, source_info=probe(song),
                   backend="musicgpt", start=START, end=END, prompt="bench", num_outputs=fields.pop("outputs", 1),
                   **fields)


def backend_for(fake: FakeMusicGPT, state: Path, **settings) -> MusicGPTBackend:
    values = dict(poll_calls_per_minute=100000, http_timeout_s=30.0, retry_base_s=0.01)
    values.update(settings)
    return MusicGPTBackend(base_url=fake.url, api_key=Redacted(fake.api_key), state_dir=state, **values)


async def one_job(fake: FakeMusicGPT, backend: MusicGPTBackend, song: Path, work: Path, job: int,
                  mp3: bool) -> dict:
    spec = spec_for(song, job)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepared = await backend.prepare(spec, work)
    t1 = time.perf_counter()
    receipt = await backend.submit(spec, prepared)
    t2 = time.perf_counter()
    await asyncio.to_thread(fake.finish, receipt["task_id"], mp3=mp3)  # generation: not ours, not timed
    t3 = time.perf_counter()
    await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
    t4 = time.perf_counter()
    return {"prepare": t1 - t0, "submit": t2 - t1, "wait": t4 - t3, "total": (t2 - t0) + (t4 - t3),
            "bytes": prepared["upload_bytes"]}


async def overhead(song: Path, folder: Path, runs: int, *, mp3: bool, rate: int | None) -> list[dict]:
    with FakeMusicGPT(time_scale=0.0, eta=0) as fake:
        fake.missing_wav, fake.output_rate, fake.shift_s = mp3, rate, 0.02
        backend = backend_for(fake, folder / "state", eta_scale=0.0)
        try:
            await one_job(fake, backend, song, folder / "warm", 0, mp3)  # imports, first connections
            return [await one_job(fake, backend, song, folder / f"w{n}", n + 1, mp3) for n in range(runs)]
        finally:
            await backend.close()


def baseline(song: Path, folder: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        audio, rate = sf.read(song, dtype="float32")
        sf.write(folder / "copy.wav", audio, rate, subtype="PCM_24")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def upload_sizes(song: Path, folder: Path) -> tuple[int, int]:
    with FakeMusicGPT() as fake:
        sizes = []
        for context in (30.0, None):
            backend = backend_for(fake, folder / "state-size", context_s=context)
            work = folder / f"size-{context}"
            work.mkdir(exist_ok=True)
            try:
                sizes.append((await backend.prepare(spec_for(song, 0), work))["upload_bytes"])
            finally:
                await backend.close()
        return sizes[0], sizes[1]


async def poll_counts(song: Path, folder: Path) -> list[tuple[str, float, int]]:
    """byId calls for a 40 s eta with production's schedule (3 s, x1.5, up to 30 s), time scaled by 1/100."""
    scale = 0.01
    rows = []
    for label, slow, unknown in (("on its eta", 1.0, []), ("2x its eta", 2.0, []), ("4x its eta", 4.0, []),
                                 ("2x, unknown statuses", 2.0, ["RENDERING", "MASTERING"])):
        with FakeMusicGPT(time_scale=scale, eta=40) as fake:
            fake.slow_factor, fake.unknown_statuses = slow, unknown
            # a ledger of its own per scenario: the spend ledger refuses a job id it already holds as submitted
            backend = backend_for(fake, folder / f"state-poll-{label}", eta_scale=1.0 * scale,
                                  poll_interval_s=3.0 * scale, poll_max_interval_s=30.0 * scale)
            work = folder / f"poll-{label}"
            work.mkdir(exist_ok=True)
            spec = spec_for(song, 0)
            try:
                prepared = await backend.prepare(spec, work)
                receipt = await backend.submit(spec, prepared)
                await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
            finally:
                await backend.close()
            rows.append((label, 40 * slow, fake.by_id_calls[receipt["task_id"]]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the unknown-status scenario warns by design; figures only here
    with tempfile.TemporaryDirectory(prefix="musicgpt-bench-") as tmp:
        run(Path(tmp), args.runs)


def run(folder: Path, runs: int) -> None:
    song = make_song(folder / "song.wav", seconds=SONG_S)
    base = baseline(song, folder, runs)
    print(f"4-minute song, 10 s inpaint at {START:.0f}-{END:.0f} s, 30 s context, one variant, {runs} runs\n")
    print(f"baseline: read the whole song and write it back once: median {base * 1000:.0f} ms")
    for label, mp3, rate in (("WAV offered, same rate", False, None), ("MP3 only, 48 kHz (decode + resample)",
                                                                        True, 48000)):
        results = asyncio.run(overhead(song, folder / label.split()[0], runs, mp3=mp3, rate=rate))
        med = {k: statistics.median(r[k] for r in results) for k in ("prepare", "submit", "wait", "total")}
        print(f"bridge overhead per job, {label}: median {med['total'] * 1000:.0f} ms "
              f"(prepare {med['prepare'] * 1000:.0f}, submit {med['submit'] * 1000:.0f}, "
              f"wait {med['wait'] * 1000:.0f}); {med['total'] / base:.2f}x the baseline; target < 1000 ms")
    crop, whole = asyncio.run(upload_sizes(song, folder))
    print(f"uploaded bytes: {crop} for the region with context vs {whole} for the whole song "
          f"({crop / whole:.1%}, {whole / crop:.1f}x less)")
    print("byId calls per job (eta 40 s; production schedule: first poll at the eta, then 3 s growing 1.5x to 30 s):")
    for label, seconds, calls in asyncio.run(poll_counts(song, folder)):
        print(f"  task done {label:<22} ({seconds:>4.0f} s): {calls} calls; minimum 1; "
              f"fixed 3 s polling from the submit: {math.ceil(seconds / 3)}")


if __name__ == "__main__":
    main()
