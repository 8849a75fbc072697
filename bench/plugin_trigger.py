"""Trigger -> variant audible in place: a 10 s inpaint on the embedded engine in a 4-minute capture, in a real host.

jalv hosts the plugin's LV2 under a private JACK dummy server (the plugin tests' harness, tests/plugin/jackhost.py:
a JACK client plays a generated 4-minute 48 kHz song, with a -80 dB noise floor, as the transport's timebase master,
another records the plugin's output); a real daemon (`daw-bridge serve`, embedded engine) reads the plugin's
capture. The song is rolled once from the top in real time (JACK's dummy driver runs at the sample rate whatever its
period: its `-w` sets the period, not the speed), so the capture holds 4 minutes; stretches an xrun skipped are rolled
again. Then, for each trigger, the transport loops over a 10 s range with a second either side (a DAW's cycle) and
the Inpaint parameter is pressed, anywhere in the loop, with Variant at 1 (the producer's choice stays on 1 from job
to job); the times taken:

- press -> the plugin's /bridge/inpaint out, -> /bridge/accepted, the daemon's steps (export from the capture,
  engine, delivery) -> /bridge/done, seen by a relay on loopback between the plugin and the daemon that notes when
  each message passes (the plugin's commands go on with the relay's port as their reply_port: a few tens of µs);
- /bridge/done -> the plugin reports the variants loaded (its State output ready, as its capture index publishes it,
  polled every 2 ms): the pure load time;
- -> the first output block that carries the variant, sample for sample, over its span where it is not the song
  (the recording client's time for that JACK cycle): audible. The range loops, so the playhead is inside the span
  most of the time; when it is not, "ready -> first block heard" includes the wait for the playhead.

Baseline, in the same process against the same daemon, right after each trigger with the transport still looping:
the same inpaint over OSC (`BridgeClient.run_job`) on a WAV of the song, send -> /bridge/done. Each WAV's samples
differ by a part in a million, so its analysis is as uncached as each capture export's (whose context differs).

    python bench/plugin_trigger.py [--triggers 5]
"""

from __future__ import annotations

import argparse
import json
import select
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import jack
import numpy as np
import soundfile as sf
from _common import BenchDaemon, describe  # (puts the repository on sys.path)

from bridge.client import BridgeClient
from bridge.demo_song import make_song_array
from bridge.frontends.osc_wire import decode, encode
from tests.plugin.conftest import build, only_capture, private_jack_server
from tests.plugin.jackhost import RATE, Song, gaps, hosted, play_the_gaps_again

SONG_SECONDS, RANGE_SECONDS, LOOP_HANDLE = 240.0, 10.0, 1.0
FADE = int(RATE * 0.005)  # the plugin's fade at the span's edges
STEPS = ("exporting", "generating", "delivering")  # the daemon's /bridge/state steps between accepted and done


class LoopingSong(Song):
    """The harness's song and tape, with a cycle (the transport jumps back to its start from its end, in the JACK
    callback) and the wall time at which each recorded cycle reached the tape."""

    def __init__(self, server: str, material: np.ndarray):
        super().__init__(server, material)
        self.loop: tuple[int, int] | None = None
        self.heard_at: dict[int, float] = {}

    def _play(self, frames: int) -> None:
        super()._play(frames)
        state, position = self.song.transport_query()
        if self.loop and state == jack.ROLLING and position["frame"] + frames >= self.loop[1]:
            self.song.transport_frame = self.loop[0]

    def _record(self, frames: int) -> None:
        super()._record(frames)
        if self.recording:
            self.heard_at[self.tape.last_frame_time] = time.monotonic()

    def clear(self) -> None:
        self.recording = False
        self.played, self.heard, self.heard_at = {}, {}, {}


class Relay:
    """Between the plugin and the daemon on loopback: notes when each message passes. Commands go on to the daemon
    with the relay's own port as their reply_port, replies go back to the plugin. (Re-encoded: floats go as float32,
    exact for the whole seconds this bench's ranges are.)"""

    def __init__(self, daemon_port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.daemon = ("127.0.0.1", daemon_port)
        self.plugin: tuple[str, int] | None = None
        self.seen: list[tuple[float, str, list]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.sock], [], [], 0.1)[0]:
                continue
            data, sender = self.sock.recvfrom(65536)
            at = time.monotonic()
            messages = decode(data)
            self.seen.extend((at, address, args) for address, args in messages)
            if sender == self.daemon:
                if self.plugin:
                    self.sock.sendto(data, self.plugin)
                continue
            self.plugin = sender
            for address, args in messages:
                if "reply_port" in args:
                    args[args.index("reply_port") + 1] = self.port
                self.sock.sendto(encode(address, args), self.daemon)

    def first(self, address: str, since: float, *matching) -> float:
        """When the first message to ``address`` after ``since`` whose leading arguments are ``matching`` passed."""
        return next(at for at, name, args in list(self.seen)
                    if at > since and name == address and args[:len(matching)] == list(matching))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def roll_from_the_top(song: LoopingSong, seconds: float) -> float:
    """Roll the transport from frame 0 until it has played ``seconds``; the wall time it took."""
    song.song.transport_frame = 0
    time.sleep(0.2)
    began = time.monotonic()
    song.song.transport_start()
    while song.song.transport_query()[1]["frame"] < seconds * RATE:
        time.sleep(0.02)
    song.song.transport_stop()
    return time.monotonic() - began


def ready_job(captures: Path, request_id: str | None, since: float, timeout: float = 120.0) -> tuple[float, dict]:
    """Poll the plugin's capture index every 2 ms until its job is a new one in a final state; (when seen, job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            job = only_capture(captures).index.get("job", {})
        except (FileNotFoundError, json.JSONDecodeError):
            job = {}
        if job.get("request_id") != request_id and job.get("state") in ("ready", "failed", "refused",
                                                                          "load_failed", "no_answer"):
            return time.monotonic(), job
        time.sleep(0.002)
    raise TimeoutError(f"no job after {time.monotonic() - since:.0f} s")


def first_audible(song: LoopingSong, since: float, first: int, variant: np.ndarray, timeout: float = 30.0) -> float:
    """The tape's time of the first cycle after ``since`` whose output is the variant, sample for sample, over the
    span's unfaded frames in that cycle, where the variant is not the song (its handles are: a cycle there proves
    nothing; a cycle JACK skipped reaches the tape as silence: not counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        heard, played, heard_at = song.heard.copy(), song.played.copy(), song.heard_at.copy()
        for cycle in sorted(c for c, at in heard_at.items() if at > since and c in heard and c in played):
            rolling, start, block = played[cycle]
            k = np.arange(start, start + len(block)) - first
            inside = (k >= FADE) & (k < len(variant) - FADE)
            wanted = variant[k[inside]]
            if rolling and np.array_equal(heard[cycle][inside], wanted) and not np.array_equal(block[inside], wanted):
                return heard_at[cycle]
        time.sleep(0.01)
    raise TimeoutError("the variant was never heard")


def trigger(plugin, song: LoopingSong, relay: Relay, captures: Path, start: float, last_request: str | None) -> dict:
    """One press of Inpaint while the range loops; every step's time after the press, in seconds."""
    plugin.command(f"set start {start}")
    plugin.command(f"set end {start + RANGE_SECONDS}")
    plugin.command("set inpaint 0")  # the pad's release: the next press is a rising edge
    song.clear()
    song.loop = (round((start - LOOP_HANDLE) * RATE), round((start + RANGE_SECONDS + LOOP_HANDLE) * RATE))
    song.song.transport_frame = song.loop[0]
    time.sleep(0.2)
    song.recording = True
    song.song.transport_start()
    time.sleep(1.0 + np.random.default_rng().uniform(0, 2.0))  # the press lands anywhere in the loop

    pressed = time.monotonic()
    plugin.command("set inpaint 1")
    loaded, job = ready_job(captures, last_request, pressed)
    assert job["state"] == "ready", f"{job['state']}: {job['message']}"
    manifest_path = Path(job["manifests"][0])
    manifest = json.loads(manifest_path.read_text())
    variant, _ = sf.read(str(manifest_path.parent / manifest["audio"]), dtype="float32", always_2d=True)
    audible = first_audible(song, loaded - 0.05, round(manifest["timeline"]["position"] * RATE), variant)
    marks = {"sent": relay.first("/bridge/inpaint", pressed),
             "accepted": relay.first("/bridge/accepted", pressed, job["request_id"])}
    for step in STEPS:
        marks[step] = relay.first("/bridge/state", pressed, job["job_id"], step)
    marks.update(done=relay.first("/bridge/done", pressed, job["job_id"]), loaded=loaded, audible=audible)
    return {"request_id": job["request_id"], **{name: at - pressed for name, at in marks.items()}}


def baseline(client: BridgeClient, song: np.ndarray, folder: Path, start: float, run: int) -> dict:
    """The same inpaint over OSC on a WAV of the song: every step's time after the send, in seconds."""
    source = folder / f"song-{run}.wav"
    sf.write(str(source), song * np.float32(1 + 1e-6 * run), RATE, subtype="FLOAT")  # new samples: no cached analysis
    seen: dict[str, float] = {}

    def note(reply) -> None:
        step = reply.args[1] if reply.name == "state" else reply.name
        seen.setdefault(step, time.monotonic())

    sent = time.monotonic()
    outcome, _ = client.run_job("inpaint", source=str(source), start=start, end=start + RANGE_SECONDS, prompt="",
                                timeout=300, on_reply=note)
    assert outcome.name == "done", outcome
    source.unlink()
    return {"sent": 0.0, **{name: seen[name] - sent for name in ("accepted", *STEPS, "done")}}


def steps(times: dict) -> dict[str, float]:
    """The durations between the marks (seconds)."""
    between = {"press -> /bridge/inpaint out": ("sent", None), "-> accepted": ("accepted", "sent"),
               "-> exporting": ("exporting", "accepted"), "export (-> generating)": ("generating", "exporting"),
               "engine (-> delivering)": ("delivering", "generating"), "delivery (-> done)": ("done", "delivering"),
               "plugin load (done -> ready)": ("loaded", "done"), "ready -> first block heard": ("audible", "loaded")}
    return {name: times[to] - (times[since] if since else 0.0) for name, (to, since) in between.items()
            if to in times and (since is None or since in times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=5)
    parser.add_argument("--song-seconds", type=float, default=SONG_SECONDS, help="a shorter song for a quick run")
    options = parser.parse_args()
    began = time.monotonic()
    seconds = options.song_seconds
    bundles = build()
    # the demo song repeats itself exactly, so a variant made of its own material is often the song sample for
    # sample: a noise floor at -80 dB, different at every frame, makes every moved sample tell
    song, _ = make_song_array(seconds, RATE)
    song_audio = (song + 1e-4 * np.random.default_rng(5).uniform(-1, 1, song.shape)).astype(np.float32)
    starts = [float(s) for s in np.linspace(20, seconds - 30, options.triggers).round()]
    folder = Path(tempfile.mkdtemp(prefix="daw-bridge-plugin-trigger-"))
    daemon = BenchDaemon()
    captures = daemon.root / "captures"  # inside the project roots, as the daemon requires
    daemon.config.write_text(daemon.config.read_text() + f'captures_dir = "{captures}"\n')
    triggers, baselines = [], []
    with daemon, private_jack_server() as server, BridgeClient("127.0.0.1", daemon.port) as client:
        relay = Relay(daemon.port)
        try:
            with hosted(server, bundles / "DawBridge.lv2", folder / "host", {"DAW_BRIDGE_CAPTURE_DIR": str(captures)},
                        song_audio, LoopingSong) as (plugin, song):
                for line in (f"set port {relay.port}", "set variant 1"):
                    plugin.command(line)
                baseline(client, song_audio, daemon.root, starts[0], 0)  # the engine worker starts and imports
                rolled = roll_from_the_top(song, seconds)
                time.sleep(0.5)  # the capture thread has published what was played
                missing = gaps(captures, round(seconds * RATE))
                print(f"capture: {seconds:.0f} s of song rolled in {rolled:.1f} s of wall time; "
                      f"{len(only_capture(captures).spans)} spans, {len(missing)} gaps of "
                      f"{sum(end - first for first, end in missing) / RATE:.2f} s (JACK xruns), rolled again")
                play_the_gaps_again(song, captures, round(seconds * RATE))
                request = None
                for run, start in enumerate(starts, 1):
                    times = trigger(plugin, song, relay, captures, start, request)
                    request = times.pop("request_id")
                    baselines.append(baseline(client, song_audio, daemon.root, start, run))
                    song.song.transport_stop()
                    song.loop = None
                    triggers.append(times)
                    print(f"range {start:.0f}-{start + RANGE_SECONDS:.0f} s: loaded {times['loaded']:.2f} s, "
                          f"audible {times['audible']:.2f} s after the press; baseline done "
                          f"{baselines[-1]['done']:.2f} s")
        finally:
            relay.close()
            shutil.rmtree(folder, ignore_errors=True)  # the host's plugin copy and jalv's log
    report(triggers, baselines, seconds)
    print(f"whole run: {time.monotonic() - began:.0f} s")


def report(triggers: list[dict], baselines: list[dict], seconds: float) -> None:
    print(f"\n{len(triggers)} triggers of a {RANGE_SECONDS:.0f} s inpaint in a {seconds / 60:.1f}-minute capture "
          f"(jalv, JACK dummy {RATE} Hz, period 1024 = {1024 / RATE * 1000:.1f} ms; embedded engine, default variants)")
    print("plugin, step by step:")
    plugin_steps = [steps(t) for t in triggers]
    for name in plugin_steps[0]:
        print(f"  {name:32} {describe([s[name] for s in plugin_steps])}")
    print("baseline (/bridge/inpaint on a WAV over OSC, same daemon, same range), step by step:")
    base_steps = [steps(b) for b in baselines]
    for step in base_steps:
        del step["press -> /bridge/inpaint out"]  # the client sends it: "-> accepted" is from the send
    for name in base_steps[0]:
        print(f"  {name:32} {describe([s[name] for s in base_steps])}")
    loaded = statistics.median(t["loaded"] for t in triggers)
    audible = statistics.median(t["audible"] for t in triggers)
    done = statistics.median(b["done"] for b in baselines)
    print(f"press -> variants loaded in the plugin:   {describe([t['loaded'] for t in triggers])}")
    print(f"press -> variant audible in place:        {describe([t['audible'] for t in triggers])}")
    print(f"baseline send -> /bridge/done (WAV):      {describe([b['done'] for b in baselines])}")
    print(f"ratios to the baseline: loaded {loaded / done:.2f}x, audible {audible / done:.2f}x")

if __name__ == "__main__":
    main()
