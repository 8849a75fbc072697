"""What the plugin costs the host's audio thread, the latency it adds, and xruns in a long JACK run.

1. CPU per block at 48 kHz, 128 and 1024 frames: the median time of the host's process() calls (monotonic clock
   around each call; the median leaves out calls the scheduler interrupted), measured in our CLAP test host
   (tests/plugin/hosts/clap_host.c) over 10 s of audio per case, in three cases:
     stopped      the transport stopped: pass-through only
     rolling      the transport rolling: pass-through and capture (the copy into the capture ring)
     playing      rolling over a delivered variant with Variant 1 chosen (a stand-in daemon delivers it)
   as a ratio to an empty DPF pass-through (bench/plugin_empty/, built with the same DPF Makefile and flags) in
   the same case, hosted the same way in the same run; medians over --runs runs, alternating the plugins.
   Target: under 2x. Capturing writes every sample once more, into a ring of ~21 s that is cold in the cache, and
   playing reads the variant from memory too: the "floor" column is the ratio those copies alone give, measured with
   the empty plugin built with COPY_FLOOR=1 (bench/plugin_empty/EmptyPlugin.cpp), hosted the same way in the same
   runs: while rolling it copies the input into a planar ring of the capture's size as well and, for "playing", reads
   its output from a 10 s planar buffer instead of the input.
2. Added latency: what the plugin reports to the CLAP host, and the delay between input and output (bit-exact match).
3. Xruns: jalv hosting the LV2 under a private JACK dummy server (-p 1024, no real-time priority), the transport
   rolling for --seconds (60) with a JACK client playing into the plugin; xruns as JACK reports them to a client,
   and the blocks the plugin's capture dropped; the empty plugin's LV2 on the same server for half that time before
   and half after is the baseline: what the machine's load alone causes. Target: 0.

    python3 bench/plugin_cpu.py [--runs 7] [--seconds 60] [--skip-jack]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from bridge.lifeline import ask_to_die_with_parent
from tests.plugin.hosts.clap import finish_clap_host, run_clap_host, start_clap_host
from tests.plugin.hosts.standin import StandInDaemon

RATE = 48000
FRAMES = 10 * RATE  # per case: fits the capture ring (~21 s), so a host faster than real time drops nothing
CASES = ("stopped", "rolling", "playing")
EMPTY_URI = "urn:daw-bridge:empty"


def make(folder: Path, *options: str) -> None:
    done = subprocess.run(["make", "-j2", "-C", str(folder), *options], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in (done.stderr + done.stdout).splitlines() if "rror" in line] or ["(no message)"]
        sys.exit(f"plugin_cpu: make -C {folder} failed: {errors[0]}")


def capture_index(captures: Path) -> dict:
    [folder] = [p for p in captures.iterdir() if (p / "index.json").exists()]
    return json.loads((folder / "index.json").read_text())


def stop_then_roll(plugin: Path, song: np.ndarray, folder: Path, block: int, env: dict | None = None):
    """ns per block stopped, then rolling, and the output of both."""
    run = run_clap_host(plugin, song, folder, [f"stop:0:{FRAMES}", f"play:0:{FRAMES}"], block=block, env=env)
    (_, stopped), (_, rolling) = run.block_ns
    return stopped, rolling, run.output


def measure_empty(plugin: Path, song: np.ndarray, folder: Path, block: int) -> dict[str, float]:
    """ns per block of the empty plugin, stopped and rolling (it has nothing to play: rolling is its 'playing')."""
    stopped, rolling, output = stop_then_roll(plugin, song, folder, block)
    assert np.array_equal(output, np.concatenate([song, song]))
    return {"stopped": stopped, "rolling": rolling, "playing": rolling}


def measure_floor(plugin: Path, song: np.ndarray, folder: Path, block: int) -> dict[str, float]:
    """ns per block of the copy-floor plugin: the pass-through stopped, with the capture's copy rolling, and with
    the output read from a variant's buffer as well for 'playing'."""
    stopped, rolling, _ = stop_then_roll(plugin, song, folder / "capture", block, {"DAW_BRIDGE_COPY_FLOOR": "capture"})
    _, playing, _ = stop_then_roll(plugin, song, folder / "playing", block, {"DAW_BRIDGE_COPY_FLOOR": "playing"})
    return {"stopped": stopped, "rolling": rolling, "playing": playing}


def measure_bridge(plugin: Path, song: np.ndarray, variant: np.ndarray, folder: Path, block: int) -> dict:
    """ns per block of the daw-bridge plugin in the three cases, its reported latency and its input-output delay."""
    captures = folder / "captures"
    with StandInDaemon() as daemon:
        proc, out_file = start_clap_host(plugin, song, folder, [
            f"set:Daemon OSC port:{daemon.port}", f"stop:0:{FRAMES}", f"play:0:{FRAMES}", "sleep:300",
            "set:Inpaint:1", f"stop:0:{block}", "wait:Variants loaded:1", "set:Variant:1", f"play:0:{FRAMES}"],
            block=block, env={"DAW_BRIDGE_CAPTURE_DIR": str(captures)})
        try:
            daemon.answer_inpaint(folder / "drop", [variant], 0.0, RATE)
        finally:
            run = finish_clap_host(proc, out_file)
    (_, stopped), (_, rolling), _, (_, playing) = run.block_ns
    passed, played = run.output[FRAMES:2 * FRAMES], run.output[2 * FRAMES + block:]
    assert np.array_equal(passed, song), "rolling without a variant is not the input, bit for bit, undelayed"
    middle = slice(RATE, FRAMES - RATE)  # away from the variant's 5 ms edge fades
    assert np.array_equal(played[middle], variant[middle]), "the variant did not play in place"
    index = capture_index(captures)
    assert index["dropped_blocks"] == 0, f"the capture dropped {index['dropped_blocks']} blocks: not representative"
    return {"stopped": stopped, "rolling": rolling, "playing": playing, "latency": run.latency}


def cpu_table(runs: int) -> None:
    make(ROOT / "daw_scripts" / "plugin")
    make(ROOT / "bench" / "plugin_empty")
    make(ROOT / "bench" / "plugin_empty", "COPY_FLOOR=1")
    bridge = ROOT / "daw_scripts" / "plugin" / "build" / "DawBridge.clap"
    empty = ROOT / "bench" / "plugin_empty" / "build" / "DawBridgeEmpty.clap"
    floor = ROOT / "bench" / "plugin_empty" / "build" / "copy-floor" / "DawBridgeCopyFloor.clap"
    rng = np.random.default_rng(5)
    song = rng.uniform(-1, 1, (FRAMES, 2)).astype(np.float32)
    variant = (0.5 * rng.uniform(-1, 1, (FRAMES, 2))).astype(np.float32)
    print(f"Time per process() call at {RATE} Hz (CLAP test host, 10 s per case; median call, median of {runs} runs)")
    print(f"{'block':>6} {'case':<8} {'empty ns':>9} {'daw-bridge ns':>14} {'ratio':>6} {'floor':>6} "
          f"{'ns/frame':>9} {'of the block':>12}")
    latencies, copies = set(), []
    with tempfile.TemporaryDirectory(prefix="daw-bridge-plugin-cpu-") as scratch:
        for block in (128, 1024):
            empties, bridges, floors = [], [], []
            for i in range(runs):  # alternating, so a busy spell on the machine hits all alike
                empties.append(measure_empty(empty, song, Path(scratch) / f"e{block}-{i}", block))
                bridges.append(measure_bridge(bridge, song, variant, Path(scratch) / f"b{block}-{i}", block))
                floors.append(measure_floor(floor, song, Path(scratch) / f"f{block}-{i}", block))
            latencies |= {b["latency"] for b in bridges}
            copies.append(f"{block} frames " + ", ".join(
                f"{case} {statistics.median(f[case] for f in floors):.0f}" for case in CASES))
            for case in CASES:
                e = statistics.median(m[case] for m in empties)
                b = statistics.median(m[case] for m in bridges)
                least = statistics.median(f[case] for f in floors)
                budget = block / RATE * 1e9  # the block's duration: the host's deadline for it
                print(f"{block:>6} {case:<8} {e:>9.0f} {b:>14.0f} {b / e:>5.2f}x {least / e:>5.2f}x "
                      f"{b / block:>9.2f} {b / budget:>11.3%}")
    print(f"the copy floor plugin (ns per block, median of {runs} runs): " + "; ".join(copies))
    print(f"added latency: reported {sorted(latencies)} samples; output = input at the same frame (delay 0), "
          "bit for bit, in every rolling run")


def jalv_roll(server: str, bundle: Path, uri: str, seconds: float, folder: Path) -> list[float]:
    """Roll the JACK transport for ``seconds`` with jalv hosting ``bundle`` between a player and a recorder client
    (tests/plugin/jackhost.py's Song); the xruns JACK reported meanwhile."""
    # JACK-Client: imported here, so --skip-jack needs none of it
    from tests.plugin.jackhost import Song

    (folder / "lv2").mkdir(parents=True)
    (folder / "lv2" / bundle.name).symlink_to(bundle)
    name = f"bench-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": server, "LV2_PATH": str(folder / "lv2"),
           "DAW_BRIDGE_CAPTURE_DIR": str(folder / "captures")}
    jalv = subprocess.Popen(["jalv", "-n", name, uri], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, preexec_fn=ask_to_die_with_parent)
    material = np.random.default_rng(9).uniform(-1, 1, (int((seconds + 2) * RATE), 2)).astype(np.float32)
    song = Song(server, material)
    xruns: list[float] = []
    song.song.set_xrun_callback(xruns.append)  # before the client is activated (connect)
    try:
        song.connect(name)
        time.sleep(0.5)
        xruns.clear()  # counted while rolling only
        song.roll(0, seconds)
        return list(xruns)
    finally:
        jalv.stdin.close()  # jalv exits when its console input ends
        jalv.wait(timeout=10)
        song.close()


def jack_xruns(seconds: float) -> None:
    make(ROOT / "daw_scripts" / "plugin")
    make(ROOT / "bench" / "plugin_empty")
    name = f"dawbridge-bench-{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", "1024"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
                              preexec_fn=ask_to_die_with_parent)
    print(f"JACK dummy server -p 1024 (no real-time priority), jalv, the transport rolling {seconds:.0f} s per plugin:")
    try:
        subprocess.run(["jack_wait", "-w", "-t", "10", "-s", name], check=True, capture_output=True)
        with tempfile.TemporaryDirectory(prefix="daw-bridge-plugin-xruns-") as scratch:
            empty_bundle = ROOT / "bench" / "plugin_empty" / "build" / "DawBridgeEmpty.lv2"
            # the baseline brackets the run (half before, half after), so a change in the machine's load shows
            empty = jalv_roll(name, empty_bundle, EMPTY_URI, seconds / 2, Path(scratch) / "before")
            bridge = jalv_roll(name, ROOT / "daw_scripts" / "plugin" / "build" / "DawBridge.lv2",
                               "urn:daw-bridge:plugin", seconds, Path(scratch) / "bridge")
            after = jalv_roll(name, empty_bundle, EMPTY_URI, seconds / 2, Path(scratch) / "after")
            print(f"  empty DPF pass-through: {len(empty) + len(after)} xruns ({len(empty)} in the {seconds / 2:.0f} s "
                  f"before, {len(after)} in the {seconds / 2:.0f} s after)")
            index = capture_index(Path(scratch) / "bridge" / "captures")
    finally:
        server.terminate()
        server.wait(timeout=10)
    captured = sum(span["frames"] for span in index["spans"])
    print(f"  daw-bridge:             {len(bridge)} xruns; its capture dropped {index['dropped_blocks']} blocks and "
          f"holds {captured / RATE:.1f} s in {len(index['spans'])} span(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the JACK run")
    parser.add_argument("--skip-jack", action="store_true")
    args = parser.parse_args()
    cpu_table(args.runs)
    if not args.skip_jack:
        jack_xruns(args.seconds)


if __name__ == "__main__":
    main()
