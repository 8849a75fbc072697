"""How fast the embedded engine answers: a 4-minute 44.1 kHz stereo song, 10 s inpaint and 30 s extend.

- cold: the song's analysis is not cached (a fresh cache folder each run); the worker process is already up
- warm: the analysis is cached on disk (a second job on the same song, the file hashed again); also printed: a
  job right after another on the same song, when the worker remembers its content key and skips the hashing
- first job of a new daemon: a freshly spawned worker, imports included (reported once)
- peak memory: the largest resident set of a worker process doing a cold job
Each figure is the median of several runs of LocalBackend.wait (two variants each, as a producer asks by default),
next to a baseline measured in the same process: reading the song and writing one 12 s WAV (the I/O floor).

    python bench/engine_speed.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.audio.region import probe  # noqa: E402
from bridge.audio.wavio import write_atomic  # noqa: E402
from bridge.backends.local import engine  # noqa: E402
from bridge.backends.local.backend import LocalBackend  # noqa: E402
from bridge.demo_song import make_song  # noqa: E402
from bridge.models import JobSpec  # noqa: E402

SONG_SECONDS = 240.0


def spec(song: Path, **fields) -> JobSpec:
    values = {"job_id": "j-bench", "source": song, "source_info": probe(song), "backend": "local",
              "num_outputs": 2}
    values.update(fields)
    return JobSpec(**values)


def jobs(song: Path) -> dict[str, JobSpec]:
    return {"inpaint 10 s": spec(song, operation="inpaint", start=121.3, end=131.3),
            "extend 30 s": spec(song, operation="extend", extend_after=180.0, duration=30.0)}


def baseline(song: Path, folder: Path) -> float:
    started = time.perf_counter()
    audio, sr = sf.read(str(song), dtype="float32", always_2d=True)
    write_atomic(folder / "baseline.wav", audio[:int(12 * sr)], sr)
    return time.perf_counter() - started


async def timed(backend: LocalBackend, job: JobSpec, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    await backend.wait(job, {}, {}, folder, lambda *_: None)
    return time.perf_counter() - started


def forget_loaded_song() -> None:
    """Run in the worker: drop its memory of the last song, so a warm run hashes the file like a new job."""
    engine._loaded.clear()


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (VmHWM: unlike ru_maxrss it does not inherit the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cold_job_peak(job: JobSpec, folder: str) -> tuple[float, float]:
    """Run in a fresh worker: (peak RSS after warm-up, peak RSS after a cold job) in MB."""
    before = peak_rss_mb()
    cache = tempfile.mkdtemp(prefix="cache-", dir=folder)
    engine.analyse_source(str(job.source), cache)
    engine.render_job(job.to_json(), folder, cache, 0.0)
    return before, peak_rss_mb()


async def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="daw-bridge-speed-"))
    try:
        await measure(root, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def measure(root: Path, runs: int) -> None:
    song = make_song(root / "song.wav", seconds=SONG_SECONDS)
    print(f"song: {SONG_SECONDS:.0f} s, 44.1 kHz stereo, 24-bit WAV ({song.stat().st_size / 1e6:.0f} MB)")
    context = multiprocessing.get_context("spawn")

    started = time.perf_counter()
    fresh = LocalBackend(root / "first-cache")
    first = await timed(fresh, jobs(song)["inpaint 10 s"], root / "first")
    await fresh.close()
    print(f"first job of a new daemon (spawn + imports + cold analysis): {first:.2f} s "
          f"(wall {time.perf_counter() - started:.2f} s incl. shutdown)")

    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=engine.warm_up)
    try:
        backend = LocalBackend(root / "cache", executor=pool)
        await asyncio.get_running_loop().run_in_executor(pool, engine.warm_up)
        floor = statistics.median(baseline(song, root) for _ in range(runs))
        print(f"baseline (read the song, write 12 s): median {floor:.3f} s\n")
        for name, job in jobs(song).items():
            cold, warm = [], []
            for run in range(runs):
                cold_backend = LocalBackend(root / f"cold-{name[:6]}-{run}", executor=pool)
                await asyncio.get_running_loop().run_in_executor(pool, forget_loaded_song)
                cold.append(await timed(cold_backend, job, root / f"out-cold-{run}"))
            await timed(backend, job, root / "prime")
            for run in range(runs):
                await asyncio.get_running_loop().run_in_executor(pool, forget_loaded_song)
                warm.append(await timed(backend, job, root / f"out-warm-{run}"))
            remembered = [await timed(backend, job, root / f"out-again-{run}") for run in range(runs)]
            print(f"{name}: cold median {statistics.median(cold):.2f} s (min {min(cold):.2f}, max {max(cold):.2f}; "
                  f"{statistics.median(cold) / floor:.1f}x baseline), warm median {statistics.median(warm):.3f} s "
                  f"(min {min(warm):.3f}, max {max(warm):.3f}; {statistics.median(warm) / floor:.1f}x baseline), "
                  f"worker remembering the song's key {statistics.median(remembered):.3f} s")
    finally:
        pool.shutdown(wait=True)

    for name, job in jobs(song).items():  # a fresh worker each, so one job's peak does not hide the other's
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, initializer=engine.warm_up) as probe:
            before, after = probe.submit(cold_job_peak, job, str(root)).result()
        print(f"peak memory, {name} cold: {after:.0f} MB resident (worker after imports and warm-up: "
              f"{before:.0f} MB)")
    print(f"\n(song samples as float32: {SONG_SECONDS * 44100 * 2 * 4 / 1e6:.0f} MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
