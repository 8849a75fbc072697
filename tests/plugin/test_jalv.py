"""The LV2 in jalv under a JACK dummy server, the transport rolled by a JACK client that is timebase master.

A producer's story: the song plays from 10 s for a while, then from 2 s; the plugin passes every sample through
untouched and its capture holds exactly the frames that played, each at its timeline position.

The source client plays a fixed noise indexed by the transport frame, so what belongs at timeline frame F is known
without aligning anything: noise[F].
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_tool

from .conftest import URI, only_capture

jack = pytest.importorskip("jack")  # JACK-Client, in the test extra

RATE, PERIOD = 48000, 1024  # -p 1024: no xruns on 2 shared cores without real-time priority
NOISE = np.random.default_rng(7).uniform(-1, 1, (700_000, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def jack_server():
    """A private JACK dummy server: its own name, so no other test's server is touched."""
    jackd = require_tool("jackd")
    require_tool("jalv")
    name = f"dawbridge-plugin-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    server = subprocess.Popen([jackd, "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p",
                               str(PERIOD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        waited = subprocess.run(["jack_wait", "-w", "-t", "10", "-s", name], capture_output=True, text=True)
        assert waited.stdout.strip() == "server is available", (waited.stdout, waited.stderr)
        yield name
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Jalv:
    """jalv hosting the plugin; it reads console commands on stdin and exits (cleanly) when stdin closes."""

    def __init__(self, server: str, bundle: Path, folder: Path, extra_env: dict | None = None):
        (folder / "lv2").mkdir(parents=True)
        (folder / "lv2" / "DawBridge.lv2").symlink_to(bundle)  # LV2_PATH: a folder holding only this bundle
        self.captures = folder / "captures"
        self.log = folder / "jalv.log"
        self.name = f"dawbridge-{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "JACK_DEFAULT_SERVER": server, "LV2_PATH": str(folder / "lv2"),
               "DAW_BRIDGE_CAPTURE_DIR": str(self.captures), **(extra_env or {})}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["jalv", "-n", self.name, URI], stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)

    def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Song:
    """Two JACK clients: `song` plays noise[transport frame] into the plugin, `tape` records the plugin's output.

    `song` is the timebase master (120 bpm, 4/4) and drives the transport. Each keeps one entry per JACK cycle,
    keyed by the cycle's frame time, so the two sides line up without any guessing.
    """

    def __init__(self, server: str):
        self.song = jack.Client("song", servername=server, no_start_server=True)
        self.tape = jack.Client("tape", servername=server, no_start_server=True)
        self.outs = [self.song.outports.register(f"out_{i}") for i in (1, 2)]
        self.ins = [self.tape.inports.register(f"in_{i}") for i in (1, 2)]
        self.played: dict[int, tuple[bool, int, np.ndarray]] = {}
        self.heard: dict[int, np.ndarray] = {}
        self.recording = False  # only while the plugin is connected and running: before and after, tape hears 0
        self.song.set_process_callback(self._play)
        self.tape.set_process_callback(self._record)
        self.song.set_timebase_callback(self._timebase)

    def _play(self, frames: int) -> None:
        state, position = self.song.transport_query()
        start = position["frame"]
        block = np.zeros((frames, 2), np.float32)
        piece = NOISE[start:start + frames]
        block[:len(piece)] = piece
        for channel, port in enumerate(self.outs):
            port.get_array()[:] = block[:, channel]
        if self.recording:
            self.played[self.song.last_frame_time] = (state == jack.ROLLING, start, block)

    def _record(self, frames: int) -> None:
        if self.recording:
            self.heard[self.tape.last_frame_time] = np.stack([port.get_array().copy() for port in self.ins], axis=1)

    @staticmethod
    def _timebase(state, blocksize, pos, new_pos) -> None:
        beats = pos.frame / RATE * 2.0  # 120 bpm
        pos.valid = jack.POSITION_BBT
        pos.beats_per_bar, pos.beat_type, pos.ticks_per_beat, pos.beats_per_minute = 4.0, 4.0, 1920.0, 120.0
        pos.bar, pos.beat = int(beats // 4) + 1, int(beats % 4) + 1
        pos.tick = int((beats % 1) * 1920)
        pos.bar_start_tick = (pos.bar - 1) * 4 * 1920.0

    def connect(self, plugin: str) -> None:
        self.song.activate()
        self.tape.activate()
        deadline = time.monotonic() + 10
        while len(self.song.get_ports(f"{plugin}:", is_audio=True)) < 4:
            assert time.monotonic() < deadline, "the plugin's JACK ports did not appear"
            time.sleep(0.05)
        for i in (1, 2):
            self.song.connect(f"song:out_{i}", f"{plugin}:lv2_audio_in_{i}")
            self.song.connect(f"{plugin}:lv2_audio_out_{i}", f"tape:in_{i}")

    def roll(self, from_frame: int, seconds: float) -> None:
        self.song.transport_frame = from_frame
        time.sleep(0.2)
        self.song.transport_start()
        time.sleep(seconds)
        self.song.transport_stop()
        time.sleep(0.2)

    def close(self) -> None:
        for client in (self.song, self.tape):
            client.deactivate()
            client.close()

    def rolled_frames(self) -> list[tuple[int, int]]:
        """The timeline stretches the transport rolled over, as (first frame, frame count), in play order."""
        stretches: list[list[int]] = []
        for _, (rolling, start, block) in sorted(self.played.items()):
            if not rolling:
                continue
            if stretches and stretches[-1][0] + stretches[-1][1] == start:
                stretches[-1][1] += len(block)
            else:
                stretches.append([start, len(block)])
        return [tuple(s) for s in stretches]


def play_a_song(server: str, bundle: Path, folder: Path, extra_env: dict | None = None,
                commands: tuple[str, ...] = ()) -> tuple[Song, Jalv]:
    """Roll from 10 s for 1.5 s, then from 2 s for 1 s, with the plugin between `song` and `tape`; all stopped after."""
    plugin = Jalv(server, bundle, folder, extra_env)
    song = Song(server)
    try:
        song.connect(plugin.name)
        time.sleep(0.3)  # connections in place before anything is measured
        song.recording = True
        song.roll(10 * RATE, 1.5)
        for line in commands:
            plugin.command(line)
        song.roll(2 * RATE, 1.0)
    finally:
        song.recording = False
        exit_status = plugin.stop()  # the plugin's capture thread writes what is left before jalv exits
        song.close()
    assert exit_status == 0, plugin.log.read_text()
    return song, plugin


def test_jalv_passes_audio_through_and_captures_exactly_the_played_frames(jack_server, bundles, tmp_path):
    song, plugin = play_a_song(jack_server, bundles / "DawBridge.lv2", tmp_path,
                               commands=("set start 12.5", "set end 20", "set inpaint 1"))

    common = sorted(set(song.played) & set(song.heard))
    assert len(common) > 80  # ~3 s of cycles
    different = [cycle for cycle in common if not np.array_equal(song.played[cycle][2], song.heard[cycle])]
    assert not different, f"{len(different)} of {len(common)} cycles were not passed through bit for bit"

    capture = only_capture(plugin.captures)
    assert capture.index["format"] == "daw-bridge.capture/1"
    assert capture.index["plugin_format"] == "LV2"
    assert capture.index["dropped_blocks"] == 0
    rolled = song.rolled_frames()
    assert [s[0] for s in rolled] == [10 * RATE, 2 * RATE]
    assert [(s["timeline_start_frame"], s["frames"]) for s in capture.spans] == rolled
    for span in capture.spans:
        first = span["timeline_start_frame"]
        assert span["sample_rate"] == RATE
        assert np.array_equal(capture.audio(span), NOISE[first:first + span["frames"]])
    # the trigger reached the capture thread with the range set before it; sending it is phase 2
    assert capture.index["requests"] == [{"operation": "inpaint", "start": 12.5, "end": 20.0}]


@pytest.mark.parametrize("self_test", [False, True], ids=["plugin", "counter-self-test"])
def test_run_allocates_nothing_while_capturing(jack_server, rtcheck_bundles, tmp_path, self_test):
    """The test build counts operator new calls made inside run(); the self-test allocates once per block there,
    proving the counter sees what it must."""
    env = {"DAW_BRIDGE_RT_CHECK_SELFTEST": "1"} if self_test else {}
    song, plugin = play_a_song(jack_server, rtcheck_bundles / "DawBridge.lv2", tmp_path, env,
                               commands=("set extend 1",))
    capture = only_capture(plugin.captures)
    assert sum(span["frames"] for span in capture.spans) > 2 * RATE  # it captured while being counted
    if self_test:
        assert capture.index["rt_allocations"] > 100  # one per block: ~1 s per 21 blocks, plus stopped blocks
    else:
        assert capture.index["rt_allocations"] == 0
