"""Region export: 10 s with 30 s of context each side, from 6- and 60-minute 48 kHz 24-bit stereo WAVs.

Figures: median wall time of export_region over several runs (target < 50 ms on the 60-minute file), the ratio to
`sox` trimming the same range in the same run, and the peak memory the export allocates (tracemalloc) for each file
length (target: the same for both).

    python bench/region_export.py [--runs 9] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import describe

from bridge.audio.region import export_region

RATE, CHANNELS = 48000, 2
START, END, CONTEXT = 1770.0, 1780.0, 30.0  # mid-song in the long file


def make_long_wav(path: Path, minutes: int) -> Path:
    if path.exists() and sf.info(str(path)).duration >= minutes * 60:
        return path
    rng = np.random.default_rng(0)
    minute = (rng.standard_normal((RATE * 60, CHANNELS)) * 0.1).astype(np.float32)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=CHANNELS, subtype="PCM_24") as f:
        for _ in range(minutes):
            f.write(minute)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="folder to keep the long test files in between runs")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="region-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = {6: make_long_wav(folder / "six.wav", 6), 60: make_long_wav(folder / "sixty.wav", 60)}
    out = folder / "crop.wav"
    sox = shutil.which("sox")

    for minutes, path in files.items():
        start = START if minutes == 60 else 170.0
        ours, theirs = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            export_region(path, start, start + 10.0, out, context=CONTEXT)
            ours.append(time.perf_counter() - t)
            if sox:
                t = time.perf_counter()
                subprocess.run([sox, str(path), str(folder / "sox.wav"), "trim", str(start - CONTEXT),
                                str(10.0 + 2 * CONTEXT)], check=True)
                theirs.append(time.perf_counter() - t)
        tracemalloc.start()
        export_region(path, start, start + 10.0, out, context=CONTEXT)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{minutes:>2}-minute file: export {describe(ours)}; peak allocated {peak / 2**20:.1f} MiB")
        if theirs:
            print(f"{'':>14}sox trim {describe(theirs)}; ratio ours/sox (medians) "
                  f"{statistics.median(ours) / statistics.median(theirs):.2f}")
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
