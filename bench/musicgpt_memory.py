"""What one large MusicGPT result costs the real daemon in memory: from the download to the delivered WAV.

A daemon (``daw-bridge serve``, ``backend = "musicgpt"``, ``context_s = "whole"``) talks to the fake MusicGPT on
loopback (in this process), which answers with a 32-bit float WAV as long as the song. The song is a generated
48 kHz stereo float WAV of ``--minutes`` (written piece by piece, deleted after). Each job inpaints the middle
``--fraction`` of it with ``delivery = full``, so every step after the download (decode and check, align, splice,
the span in the work folder, the whole song written into the drop folder) handles a file of the song's length.
Resident memory is summed over the daemon and every process it started (the picture's too), sampled every 20 ms
from sending the job until "done" and on until its picture is published, against the idle figure measured before
the first job. Median of ``--runs`` jobs (each a new task).

    python bench/musicgpt_memory.py [--minutes 15] [--runs 3] [--fraction 0.8]

The figure to read is "peak over idle" against the size of the downloaded WAV: before the streaming delivery it
grew with the file (several times its size); after, it should stay near a constant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import soundfile as sf
from _common import ROOT, BenchDaemon
from engine_memory import PeakSampler, wait_idle

from bridge.client import BridgeClient
from bridge.demo_song import make_song_array
from tests.adversarial.support import musicgpt_table
from tests.fakes.musicgpt import FakeMusicGPT

RATE = 48000
PIECE_SECONDS = 120.0


def write_song(path: Path, minutes: float) -> Path:
    """A ``minutes`` long 48 kHz stereo float song, written piece by piece (never whole in this process)."""
    total, written, seed = int(round(minutes * 60 * RATE)), 0, 0
    with sf.SoundFile(str(path), "w", RATE, 2, "FLOAT") as out:
        while written < total:
            piece = make_song_array(PIECE_SECONDS, RATE, 2, bpm=96.0 + 5 * (seed % 7), seed=seed)[0]
            piece = piece[:total - written]
            out.write(piece)
            written, seed = written + len(piece), seed + 1
    return path


def wait_for_picture(manifest: Path, timeout: float = 120.0) -> None:
    """Until the manifest names its picture (or ``timeout`` seconds: a picture that could not be drawn)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(manifest.read_text(encoding="utf-8")).get("picture"):
                return
        except (OSError, ValueError):  # being replaced right now
            pass
        time.sleep(0.05)


def one_job(client: BridgeClient, fake: FakeMusicGPT, pid: int, song: Path, seconds: float, fraction: float,
            tag: str) -> tuple[float, float, float, str, int]:
    """(seconds from sending to the outcome, peak MiB of the daemon family until "done", and until the picture is
    out, outcome, downloaded WAV bytes)."""
    start = seconds * (1 - fraction) / 2
    known = set(fake.tasks)
    with PeakSampler(pid) as sampler:
        began = time.perf_counter()
        outcome, _ = client.run_job("inpaint", timeout=1800, source=str(song), start=start,
                                    end=start + seconds * fraction, prompt="a long solo", num_outputs=1,
                                    delivery="full", request_id=f"mem-{tag}")
        took, delivered = time.perf_counter() - began, sampler.peak
        if outcome.name == "done":  # the picture is drawn after "done": its memory counts too
            wait_for_picture(Path(outcome.args[1]))
    result = outcome.name if outcome.name == "done" else f"{outcome.name} {' '.join(map(str, outcome.args))}"
    downloaded = 0
    for task_id in set(fake.tasks) - known:  # this process holds the fake's renders: let them go
        task = fake.tasks.pop(task_id)
        downloaded = max((len(r["wav"]) for r in task.rendered.values()), default=0)
    return took, delivered, sampler.peak, result, downloaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.8, help="of the song inpainted (its middle)")
    args = parser.parse_args()
    print(f"tree: {ROOT}")
    with FakeMusicGPT(time_scale=0.001, eta=20) as fake:
        fake.output_subtype = "FLOAT"
        os.environ["MUSICGPT_API_KEY"] = fake.api_key
        config = 'backend = "musicgpt"\n' + musicgpt_table(fake.url, context_s="whole", http_timeout_s=120.0)
        with BenchDaemon(config) as daemon, BridgeClient("127.0.0.1", daemon.port) as client:
            audio = daemon.root / "audio"
            audio.mkdir()
            song = write_song(audio / "song.wav", args.minutes)
            idle = wait_idle(daemon.proc.pid, timeout=10.0)
            rows = [one_job(client, fake, daemon.proc.pid, song, args.minutes * 60, args.fraction, str(run))
                    for run in range(args.runs)]
            song_mb = song.stat().st_size / 1e6
            drop = daemon.root / "drop"
            delivered = max((p.stat().st_size for p in drop.glob("*.wav")), default=0) / 1e6
    times, peaks = [r[0] for r in rows], [r[2] for r in rows]
    done_peaks, wav_bytes = [r[1] for r in rows], rows[-1][4]
    print(f"{args.minutes:g} min 48 kHz stereo float song ({song_mb:.0f} MB), inpaint of its middle "
          f"{args.fraction:.0%}, delivery full; MusicGPT's WAV {wav_bytes / 1e6:.0f} MB (float), "
          f"delivered WAV {delivered:.0f} MB")
    print(f"idle daemon family: {idle:.0f} MiB; sampled every 20 ms; peak MiB until done / until the picture is out")
    for number, (took, done_peak, peak, result, _) in enumerate(rows, start=1):
        print(f"  job {number}: {took:6.2f} s, peak {done_peak:6.0f} / {peak:6.0f} MiB "
              f"({done_peak - idle:+.0f} / {peak - idle:+.0f} over idle)  {result}")
    for label, values in (("until done", done_peaks), ("until the picture", peaks)):
        median = statistics.median(values)
        print(f"median of {len(rows)}, {label}: peak {median:.0f} MiB, {median - idle:+.0f} MiB over idle = "
              f"{(median - idle) * 2**20 / max(wav_bytes, 1):.2f} x the downloaded WAV")
    print(f"median time to done: {statistics.median(times):.2f} s")

if __name__ == "__main__":
    main()
