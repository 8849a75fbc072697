"""What the picture beside each delivered variant costs: time per variant and file size.

Two cases, each delivered through ``bridge.delivery`` exactly as the daemon does it: a 10 s inpaint delivered as a
patch (12 s of audio with the handles) and the same edit delivered as a 4-minute full song. For each, medians
over ``--runs`` runs of:

- *delivery*: the ``deliver`` call for one variant (audio and manifest published: what "done" waits for);
- *WAV*: staging the variant's WAV alone, in the same run (the baseline);
- *picture*: ``add_pictures`` for that variant, drawn in this process: reading the original over the span, drawing
  the PNG, publishing it and re-publishing the manifest (after "done", in the daemon), with its CPU time;
- *render*: ``render_png`` alone.

Then the daemon's way, through a :class:`Painter`: its first picture (the worker process started, matplotlib
imported: what every job pays after the painter went idle) and the next one (a warm worker). The first picture of
this process also pays matplotlib's import; that is reported once, apart. ``--song`` takes a real recording
instead of the generated one (the spectrogram's detail decides the PNG's size). Target: under 300 ms per variant.

    python3 bench/picture.py [--runs 7] [--song PATH] [--save PICTURE.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

import osc_schema  # noqa: E402
from bridge import delivery  # noqa: E402
from bridge.audio import picture  # noqa: E402
from bridge.audio.region import read_frames, read_region  # noqa: E402
from bridge.audio.wavio import discard, stage_audio, write_atomic  # noqa: E402
from bridge.config import Config  # noqa: E402
from bridge.core.admission import admit  # noqa: E402
from bridge.demo_song import make_song  # noqa: E402
from bridge.models import Rendered  # noqa: E402

EDIT = (100.0, 110.0)


def _case(root: Path, song: Path, mode: str):
    config = Config(state_dir=root / "state", project_roots=(root,), backend="paid", drop_folder=root / f"drop-{mode}",
                    inbox=root / "inbox")
    command = osc_schema.parse_request({"command": "inpaint", "source": str(song), "start": EDIT[0], "end": EDIT[1],
                                        "prompt": "", "num_outputs": 1, "delivery": mode})
    spec = admit(command, config, {"paid"})
    start = EDIT[0] - spec.handle
    audio, sr = read_region(song, start, EDIT[1] + spec.handle)
    first, last = int(spec.handle * sr), int((spec.handle + EDIT[1] - EDIT[0]) * sr)
    audio[first:last] = np.roll(audio[first:last], sr // 3, axis=0) * 0.6  # a visibly different result
    path = write_atomic(root / f"work-{mode}.wav", audio, sr, subtype="FLOAT")
    joins = [{"at": EDIT[0], "crossfade": 0.05, "confidence": 0.91}, {"at": EDIT[1], "crossfade": 0.05,
                                                                      "confidence": 0.74}]
    return spec, Rendered(1, path, start, {"handle": spec.handle, "joins": joins}, {})


def _timed(call, cpu: list | None = None) -> tuple[float, object]:
    """Wall time of ``call()`` and its value; with ``cpu``, this process's CPU time is appended to it (on a shared
    machine the wall time also counts other processes' turns)."""
    began, began_cpu = time.perf_counter(), time.process_time()
    value = call()
    if cpu is not None:
        cpu.append(time.process_time() - began_cpu)
    return time.perf_counter() - began, value


def measure(spec, rendered, runs: int) -> dict:
    folder = delivery.drop_folder_for(spec)
    span, sr = delivery._read_rendered(rendered)
    audio = delivery._full_song(spec, span, rendered.span_start) if spec.delivery == "full" else span
    subtype = delivery.lossless_subtype(spec.source_info.format.split("/")[-1])
    first = int(round(rendered.span_start * sr))
    original, _ = read_frames(spec.source, first, first + len(span))
    what = picture.PictureInput(original, span, sr, rendered.span_start, spec.edit_start, spec.edit_end,
                                rendered.splice["joins"], "bench")
    runs_of = {name: [] for name in ("delivery", "wav", "picture", "picture_cpu", "render", "size")}
    for _ in range(runs):
        took, manifests = _timed(lambda: delivery.deliver(spec, [rendered]))
        runs_of["delivery"].append(took)
        took, [png] = _timed(lambda published=manifests: delivery.add_pictures(spec, [rendered], published),
                             runs_of["picture_cpu"])
        runs_of["picture"].append(took)
        runs_of["size"].append(png.stat().st_size)
        took, staged = _timed(lambda: stage_audio(folder / "baseline.wav", audio, sr, subtype=subtype))
        runs_of["wav"].append(took)
        discard([staged])
        runs_of["render"].append(_timed(lambda: picture.render_png(what))[0])
        shutil.rmtree(folder)
    painter = picture.Painter()
    try:
        cold = _timed(lambda: painter.render(what))[0]
        warm = _timed(lambda: painter.render(what))[0]
    finally:
        painter.close()
    return {**{name: statistics.median(values) for name, values in runs_of.items()}, "cold": cold, "warm": warm,
            "frames": len(audio), "sr": sr}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--song", type=Path, help="a recording of at least 4 minutes (default: a generated song)")
    parser.add_argument("--save", type=Path, help="keep the patch case's picture here, to look at")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="daw-bridge-bench-picture-"))
    try:
        song = root / "song.wav"
        if args.song:
            audio, sr = sf.read(str(args.song), dtype="float32", always_2d=True, frames=240 * 48000)
            sf.write(str(song), audio[: 240 * sr], sr, subtype="PCM_16")
        else:
            make_song(song, seconds=240.0)
        info = sf.info(str(song))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"song: {args.song or 'generated'}, {info.duration:.0f} s, {info.samplerate} Hz, {info.channels} ch; "
              f"edit {EDIT[0]:.0f}-{EDIT[1]:.0f} s; medians of {args.runs} runs")
        spec, rendered = _case(root, song, "patch")
        first, (png,) = _timed(lambda: delivery.add_pictures(spec, [rendered],
                                                              delivery.deliver(spec, [rendered])))
        if args.save:
            shutil.copyfile(png, args.save)
        shutil.rmtree(delivery.drop_folder_for(spec))
        print(f"first picture of the process (matplotlib import included): {first * 1000:.0f} ms")
        for mode, label in (("patch", "10 s patch (12 s delivered)"), ("full", "4-minute full delivery")):
            spec, rendered = _case(root, song, mode)
            r = measure(spec, rendered, args.runs)
            print(f"{label}: delivery (to done) {r['delivery'] * 1000:.0f} ms (WAV alone of {r['frames'] / r['sr']:.0f} s "
                  f"in the same run: {r['wav'] * 1000:.0f} ms); after done, the picture {r['picture'] * 1000:.0f} ms "
                  f"per variant ({r['picture_cpu'] * 1000:.0f} ms CPU; render alone {r['render'] * 1000:.0f} ms, "
                  f"ratio to the WAV {r['picture'] / r['wav']:.1f}x); through a Painter: "
                  f"{r['cold'] * 1000:.0f} ms with its process started, {r['warm'] * 1000:.0f} ms warm; "
                  f"PNG {r['size'] / 1024:.0f} KiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
