"""What a job costs the real daemon against the song's length: time and peak resident memory, and what stays.

A daemon (``daw-bridge serve``, embedded engine, its worker warmed up as on any start) gets one 10 s inpaint per
song of 4, 15, 30 and 60 minutes (44.1 kHz stereo 24-bit WAV, written to a temporary folder and deleted after),
over loopback OSC as a DAW sends it. Resident memory is summed over the daemon and every process it started
(engine worker, picture worker, resource tracker) and sampled every 20 ms while the job runs; 5 s after each job
it is read again, next to the idle figure measured before the first job. Each song then gets a second job (its
analysis cached). The daemon's first job is on another song of the first length.

Then extensions (``--extend``, seconds; 600 is the longest a producer may ask for), two variants each, after 60 % of
a song (``--extend-song``, a generated 4-minute WAV unless one is named), ``--runs`` times each, the first with the
song's analysis new: median time, peak of the daemon and its workers, and the largest single process's peak (the
engine's worker).

    python bench/engine_memory.py [--minutes 4 15 30 60]
    python bench/engine_memory.py --python /tmp/fresh-venv/bin/python --minutes 4   # a fresh install's first job
    python bench/engine_memory.py --minutes --extend 30 600 --runs 5 \
        --extend-song /usr/share/games/wesnoth/1.16/data/core/music/the_king_is_dead.ogg
    python bench/engine_memory.py --minutes --extend --lossy ogg mp3 --lossy-dir /tmp/lossy-songs

``--lossy`` encodes a generated ``--lossy-minutes`` song (60) with libsndfile's Vorbis or MP3 encoder (kept in
``--lossy-dir`` for the next run: a 60-minute one takes a minute or two), and runs on it ``--runs`` times: a 10 s
inpaint at 55 % with the analysis new and again cached, then a 30 s extension after 60 % new and cached (the
analysis cache is emptied before each first job): median time, peak of the family and of the worker.

With ``--python`` the daemon runs from that interpreter's installed daw-bridge, not from this work tree (or, with
``PYTHONPATH`` set to an exported tree, from that tree: how HEAD and a change are compared in one sitting).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import BenchDaemon
from idle_daemon import cpu_seconds, family, rss_mib

from bridge.client import BridgeClient
from bridge.demo_song import make_song_array

RATE = 44100
PIECE_SECONDS = 240.0  # a long song is 4-minute generated songs of different seeds one after another
SAMPLE_EVERY = 0.02
SETTLE = 5.0  # seconds after a job before its lasting memory is read


LOSSY = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}  # --lossy: libsndfile's own encoders


def write_song(path: Path, minutes: float, pieces: dict[int, np.ndarray], kind: str = "wav") -> Path:
    """A ``minutes`` long song written piece by piece (never whole in this process's memory): a 24-bit WAV, or
    encoded as ``LOSSY[kind]``."""
    total = int(round(minutes * 60 * RATE))
    container, subtype = LOSSY.get(kind, ("WAV", "PCM_24"))
    with sf.SoundFile(str(path), "w", RATE, 2, subtype, format=container) as out:
        written, seed = 0, 0
        while written < total:
            if seed not in pieces:
                pieces[seed] = make_song_array(PIECE_SECONDS, RATE, 2, bpm=100.0 + 7 * (seed % 6), seed=seed)[0]
            piece = pieces[seed][:total - written]
            for at in range(0, len(piece), 1 << 15):  # libsndfile's Vorbis encoder crashes on large writes
                out.write(piece[at:at + (1 << 15)])
            written, seed = written + len(piece), seed + 1
    return path


def family_sum(pid: int, measure) -> float:
    """``measure`` summed over the daemon and its descendants (a process ending mid-read counts as nothing)."""
    total = 0.0
    try:
        pids = family(pid)
    except (FileNotFoundError, ProcessLookupError):
        pids = [pid]
    for one in pids:
        try:
            total += measure(one)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def family_rss(pid: int) -> float:
    """Resident MiB of the daemon and its descendants."""
    return family_sum(pid, rss_mib)


class PeakSampler:
    """Samples the daemon family's resident memory in a thread; ``peak`` is the largest sum seen, ``largest`` the
    largest single process seen (the engine's worker, during a job)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.largest = pid, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            each = []
            try:
                pids = family(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                pids = [self.pid]
            for one in pids:
                try:
                    each.append(rss_mib(one))
                except (FileNotFoundError, ProcessLookupError):
                    continue
            self.peak, self.largest = max(self.peak, sum(each)), max([self.largest] + each)
            self._stop.wait(SAMPLE_EVERY)


def inpaint(client: BridgeClient, pid: int, song: Path, at: float, tag: str) -> tuple[float, float, float, str]:
    """(seconds from sending to the outcome, CPU seconds of the daemon and its workers, peak MiB during the job,
    outcome) of a 10 s inpaint at ``at``. The CPU time does not grow when other programs load the machine."""
    with PeakSampler(pid) as sampler:
        cpu, started = family_sum(pid, cpu_seconds), time.perf_counter()
        outcome, _ = client.run_job("inpaint", source=str(song), start=at, end=at + 10.0, prompt="", num_outputs=2,
                                    request_id=f"mem-{tag}")
        took, cpu = time.perf_counter() - started, family_sum(pid, cpu_seconds) - cpu
    result = outcome.name if outcome.name == "done" else f"{outcome.name} {' '.join(map(str, outcome.args))}"
    return took, cpu, sampler.peak, result


def extend(client: BridgeClient, pid: int, song: Path, after: float, seconds: float,
           tag: str) -> tuple[float, float, float, str]:
    """(seconds from sending to the outcome, peak MiB of the family, peak MiB of its largest process, outcome) of an
    extension by ``seconds`` after ``after``, two variants."""
    with PeakSampler(pid) as sampler:
        started = time.perf_counter()
        outcome, _ = client.run_job("extend", source=str(song), extend_after=after, duration=seconds, prompt="",
                                    num_outputs=2, request_id=f"mem-{tag}", timeout=900.0)
        took = time.perf_counter() - started
    result = outcome.name if outcome.name == "done" else f"{outcome.name} {' '.join(map(str, outcome.args))}"
    return took, sampler.peak, sampler.largest, result


LOSSY_JOBS = ("inpaint 10 s new", "inpaint 10 s cached", "extend 30 s new", "extend 30 s cached")


def lossy_song(args, kind: str, audio: Path, pieces: dict) -> Path:
    """The encoded song, linked into the daemon's project (written to ``--lossy-dir`` the first time)."""
    folder = args.lossy_dir or audio
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"song-{args.lossy_minutes:g}min.{kind}"
    if not kept.exists():
        write_song(kept.with_suffix(".part"), args.lossy_minutes, pieces, kind).rename(kept)
    song = audio / kept.name
    if song != kept:  # the daemon refuses a link that resolves outside its project roots
        try:
            os.link(kept, song)
        except OSError:
            shutil.copy(kept, song)
    return song


def lossy_runs(client: BridgeClient, daemon, song: Path, runs: int) -> list[list[tuple]]:
    """Each run's ``LOSSY_JOBS``: (seconds, family peak MiB, worker peak MiB, outcome)."""
    with sf.SoundFile(str(song)) as f:
        seconds = f.frames / f.samplerate
    pid, done = daemon.proc.pid, []
    for run in range(runs):
        jobs = []
        for k, job in enumerate(LOSSY_JOBS):
            if job.endswith("new"):
                for analysis in daemon.root.rglob("*.npz"):
                    analysis.unlink()
            tag = f"{song.suffix[1:]}-{run}-{k}"
            if job.startswith("inpaint"):
                with PeakSampler(pid) as sampler:
                    took, _, _, result = inpaint(client, pid, song, 0.55 * seconds - 30.0 * (k % 2), tag)
                jobs.append((took, sampler.peak, sampler.largest, result))
            else:
                took, peak, largest, result = extend(client, pid, song, round(0.6 * seconds, 1), 30.0, tag)
                jobs.append((took, peak, largest, result))
            settle_rss(pid)
        done.append(jobs)
    return done


def settle_rss(pid: int) -> float:
    time.sleep(SETTLE)
    return family_rss(pid)


def wait_idle(pid: int, timeout: float = 60.0) -> float:
    """The daemon family's memory once its worker has warmed up (no change above 1 MiB over a second)."""
    deadline, last = time.monotonic() + timeout, -1.0
    while time.monotonic() < deadline:
        now = family_rss(pid)
        if len(family(pid)) > 2 and abs(now - last) < 1.0:
            return now
        last = now
        time.sleep(1.0)
    return family_rss(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[4, 15, 30, 60])
    parser.add_argument("--python", help="run the daemon with this interpreter's installed daw-bridge")
    parser.add_argument("--extend", type=float, nargs="*", default=[30, 600], help="seconds of each extension")
    parser.add_argument("--extend-song", type=Path, help="the song extended (default: a generated 4-minute WAV)")
    parser.add_argument("--runs", type=int, default=3, help="jobs per extension length, runs per lossy song")
    parser.add_argument("--lossy", nargs="*", default=[], choices=sorted(LOSSY), help="lossy songs to run jobs on")
    parser.add_argument("--lossy-minutes", type=float, default=60.0)
    parser.add_argument("--lossy-dir", type=Path, help="where the encoded songs are kept between runs")
    args = parser.parse_args()
    rows, pieces = [], {}
    started = time.perf_counter()
    with BenchDaemon(python=args.python) as daemon, BridgeClient("127.0.0.1", daemon.port) as client:
        up = time.perf_counter() - started
        audio = daemon.root / "audio"
        audio.mkdir()
        idle = wait_idle(daemon.proc.pid)
        print(f"daemon answered OSC {up:.2f} s after start; idle with its warm worker: {idle:.0f} MiB")
        if args.minutes:
            first_song = write_song(audio / "first.wav", args.minutes[0], pieces)
            first = inpaint(client, daemon.proc.pid, first_song, 0.55 * args.minutes[0] * 60, "first")
            print(f"its first job, a new {args.minutes[0]:g} min song: {first[0]:.2f} s (CPU {first[1]:.2f} s), "
                  f"{first[3]}; {settle_rss(daemon.proc.pid):.0f} MiB {SETTLE:.0f} s later")
        for number, minutes in enumerate(args.minutes):
            song = write_song(audio / f"song-{minutes:g}min.wav", minutes, pieces)
            if number == 0:  # a different song than the first job's: same length, new content
                with sf.SoundFile(str(song), "r+") as edit:
                    edit.seek(0)
                    edit.write(np.full((RATE, 2), 0.01, dtype=np.float32))
            at = 0.55 * minutes * 60
            took, cpu, peak, result = inpaint(client, daemon.proc.pid, song, at, f"{minutes:g}")
            after = settle_rss(daemon.proc.pid)
            cached = inpaint(client, daemon.proc.pid, song, at - 30.0, f"{minutes:g}-cached")
            rows.append((minutes, song.stat().st_size / 1e6, took, cpu, peak, after, *cached[:3], result))
            song.unlink()
        lossy = [(kind, lossy_runs(client, daemon, lossy_song(args, kind, audio, pieces), args.runs))
                 for kind in args.lossy]
        extended = []
        if args.extend:
            if args.extend_song:  # a copy in the project: the daemon reads songs inside its project roots only
                song = Path(shutil.copy(args.extend_song, audio / args.extend_song.name))
            else:
                song = write_song(audio / "extend.wav", 4, pieces)
            with sf.SoundFile(str(song)) as f:
                extend_after = round(0.6 * f.frames / f.samplerate, 1)
            for seconds in args.extend:
                runs = [extend(client, daemon.proc.pid, song, extend_after, seconds, f"x{seconds:g}-{run}")
                        for run in range(args.runs)]
                settle_rss(daemon.proc.pid)
                extended.append((seconds, runs))
    if extended:
        print(f"\nextensions of {song.name} after {extend_after:g} s, two variants; peak RSS MiB of the daemon + "
              f"workers, and of its largest process (the worker); median of {args.runs}, the first with a new analysis")
        print(f"{'extend':>8} {'s':>7} {'peak':>6} {'worker':>7}   each run: s / peak / worker   outcome")
        for seconds, runs in extended:
            medians = [statistics.median(run[k] for run in runs) for k in range(3)]
            each = "  ".join(f"{run[0]:.2f}/{run[1]:.0f}/{run[2]:.0f}" for run in runs)
            print(f"{seconds:>6g} s {medians[0]:>7.2f} {medians[1]:>6.0f} {medians[2]:>7.0f}   {each}   "
                  f"{' '.join(sorted({run[3] for run in runs}))}")
    if lossy:
        print(f"\n{args.lossy_minutes:g} min generated song encoded by libsndfile; jobs with the analysis new, then "
              f"cached; median of {args.runs}: s / peak MiB of daemon + workers / of the worker")
        for kind, runs in lossy:
            for k, job in enumerate(LOSSY_JOBS):
                medians = [statistics.median(run[k][m] for run in runs) for m in range(3)]
                each = "  ".join(f"{run[k][0]:.2f}/{run[k][1]:.0f}/{run[k][2]:.0f}" for run in runs)
                print(f"{kind:>4} {job:<18} {medians[0]:>7.2f} {medians[1]:>6.0f} {medians[2]:>7.0f}   {each}   "
                      f"{' '.join(sorted({run[k][3] for run in runs}))}")
    if not rows:
        shutil.rmtree(daemon.root, ignore_errors=True)
        return
    print(f"\n10 s inpaint, two variants, 44.1 kHz stereo 24-bit WAV; memory = daemon + workers, RSS MiB "
          f"(idle {idle:.0f}, sampled every {SAMPLE_EVERY * 1000:.0f} ms)")
    print(f"{'song':>7} {'file MB':>8} {'new s':>7} {'CPU s':>6} {'peak MiB':>9} {f'{SETTLE:.0f} s after':>10} "
          f"{'vs idle':>8} {'cached s':>9} {'CPU s':>6} {'peak':>6}  outcome")
    for minutes, size, took, cpu, peak, after, cached_took, cached_cpu, cached_peak, result in rows:
        print(f"{minutes:>5g} m {size:>8.0f} {took:>7.2f} {cpu:>6.2f} {peak:>9.0f} {after:>10.0f} "
              f"{after - idle:>+8.0f} {cached_took:>9.2f} {cached_cpu:>6.2f} {cached_peak:>6.0f}  {result}")
    shutil.rmtree(daemon.root, ignore_errors=True)


if __name__ == "__main__":
    main()
