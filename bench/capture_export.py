"""A plugin capture as a job's source: what admission costs the daemon's event loop, and the export it no longer does.

A 4-minute capture at 48 kHz (stereo float WAV spans, as the plugin writes them: 0-100 s, 100-240 s, and a newer
take of 50-70 s); a 10 s inpaint at 120-130 s. Admission (on the event loop) now only checks and plans; the export
of the played stretch plus context (up to 120 s each side, so ~250 s here) runs at the job's export step in a
thread. Figures, medians of --runs: admission, the export, and as a baseline in the same run a plain soundfile
copy of the same number of frames from one WAV (read + write); also the capture's bytes per minute of playback.

    python bench/capture_export.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import describe

import osc_schema
from bridge.captures import export_job_source
from bridge.config import Config
from bridge.core.admission import admit

RATE, CHANNELS = 48000, 2
TAKES = ((0.0, 100.0), (100.0, 240.0), (50.0, 70.0))  # (start, end) s of each span, in play order
INSTANCE = "4242-1"


def make_capture(folder: Path) -> int:
    """The capture's folder as the plugin leaves it; returns its audio bytes."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    spans, size = [], 0
    for number, (start, end) in enumerate(TAKES, 1):
        name = f"span-{number:06d}.wav"
        frames = int((end - start) * RATE)
        sf.write(str(folder / name), (0.1 * rng.standard_normal((frames, CHANNELS))).astype(np.float32), RATE,
                 subtype="FLOAT")
        size += (folder / name).stat().st_size
        spans.append({"file": name, "sample_rate": RATE, "timeline_start_frame": int(start * RATE),
                      "frames": frames})
    (folder / "index.json").write_text(json.dumps({
        "format": "daw-bridge.capture/1", "instance": INSTANCE, "plugin_format": "LV2", "channels": CHANNELS,
        "sample_format": "float32", "spans": spans, "dropped_blocks": 0, "requests": []}))
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capture-export-") as scratch:
        root = Path(scratch)
        size = make_capture(root / "captures" / INSTANCE)
        played = sum(end - start for start, end in TAKES)
        config = Config(project_roots=(root,), captures_dir=root / "captures", state_dir=root / "state")
        command = osc_schema.parse_osc("/bridge/inpaint", [None, 120.0, 130.0, "", "capture", INSTANCE])
        flat = root / "flat.wav"  # the baseline's source: one WAV as long as the whole capture
        sf.write(str(flat), np.zeros((int(max(end for _, end in TAKES) * RATE), CHANNELS), np.float32), RATE,
                 subtype="FLOAT")
        admissions, exports, copies = [], [], []
        copy = root / "copy.wav"
        for _ in range(args.runs):
            started = time.perf_counter()
            spec = admit(command, config, {"local"})
            admitted = time.perf_counter()
            export_job_source(config, spec)
            exported = time.perf_counter()
            frames = spec.source_info.frames
            sf.write(str(copy), sf.read(str(flat), frames=frames, dtype="float32")[0], RATE, subtype="FLOAT")
            copied = time.perf_counter()
            admissions.append(admitted - started)
            exports.append(exported - admitted)
            copies.append(copied - exported)
            spec.source.unlink()
        print(f"capture: {played:.0f} s played, {size / 1e6:.1f} MB of spans = {size / played * 60 / 1e6:.2f} MB "
              f"per minute of playback (float32 stereo at {RATE} Hz)")
        print(f"export: {frames / RATE:.1f} s of timeline (the range, its handles and up to 120 s of context each "
              "side)")
        print(f"admission on the event loop (check + plan): {describe(admissions)}")
        print(f"export at the job's export step (a thread):  {describe(exports)}")
        print(f"baseline, soundfile copy of as many frames:  {describe(copies)}")
        admission, export = statistics.median(admissions), statistics.median(exports)
        print(f"export / baseline: {export / statistics.median(copies):.2f}x; admission now blocks the loop "
              f"{admission / (admission + export) * 100:.1f} % of the time admission + export did")


if __name__ == "__main__":
    main()
