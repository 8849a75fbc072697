"""A private JACK dummy server, jalv hosting the plugin, and a song/tape pair of JACK clients that roll the transport.

The source client plays a fixed noise indexed by the transport frame, so what belongs at timeline frame F is known
without aligning anything: NOISE[F].
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import end_by_closing_stdin

from .conftest import RATE, URI, only_capture

jack = pytest.importorskip("jack")  # JACK-Client, in the test extra

NOISE = np.random.default_rng(7).uniform(-1, 1, (700_000, 2)).astype(np.float32)


class Jalv:
    """jalv hosting the plugin; it reads console commands on stdin and exits (cleanly) when stdin closes."""

    def __init__(self, server: str, bundle: Path, folder: Path, extra_env: dict | None = None,
                 controls: tuple[str, ...] = ()):
        """``controls``: "symbol=value" pairs jalv sets before the plugin's first block (its -c)."""
        (folder / "lv2").mkdir(parents=True)
        (folder / "lv2" / "DawBridge.lv2").symlink_to(bundle)  # LV2_PATH: a folder holding only this bundle
        self.captures = folder / "captures"
        self.log = folder / "jalv.log"
        self.name = f"dawbridge-{uuid.uuid4().hex[:6]}"
        self.exit_status: int | None = None  # set by hosted() once jalv has exited
        env = {**os.environ, "JACK_DEFAULT_SERVER": server, "LV2_PATH": str(folder / "lv2"),
               "DAW_BRIDGE_CAPTURE_DIR": str(self.captures), **(extra_env or {})}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["jalv", "-n", self.name, *(arg for c in controls for arg in ("-c", c)), URI],
                                         stdin=subprocess.PIPE, stdout=log,
                                         stderr=subprocess.STDOUT, env=env, preexec_fn=ask_to_die_with_parent)

    def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> int:
        return end_by_closing_stdin(self.proc)


class Song:
    """Two JACK clients: `song` plays noise[transport frame] into the plugin, `tape` records the plugin's output.

    `song` is the timebase master (120 bpm, 4/4) and drives the transport. Each keeps one entry per JACK cycle,
    keyed by the cycle's frame time, so the two sides line up without any guessing.
    """

    def __init__(self, server: str, material: np.ndarray = NOISE):
        self.material = material  # what plays at each timeline frame
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
        piece = self.material[start:start + frames]
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
        """Join song -> plugin -> tape once jalv is up. jalv registers its ports before it activates its JACK
        client, and JACK refuses to connect the ports of an inactive client (-1): a loaded machine widens that
        window, so each connection is tried until it is made."""
        self.song.activate()
        self.tape.activate()
        deadline = time.monotonic() + 30
        joins = [(f"song:out_{i}", f"{plugin}:lv2_audio_in_{i}") for i in (1, 2)]
        joins += [(f"{plugin}:lv2_audio_out_{i}", f"tape:in_{i}") for i in (1, 2)]
        for source, destination in joins:
            while True:
                try:
                    self.song.connect(source, destination)
                    break
                except jack.JackErrorCode as refused:  # no such port yet, or its client not active yet
                    if refused.code == errno.EEXIST:  # already joined
                        break
                    assert time.monotonic() < deadline, f"jalv's ports could not be joined: {refused}"
                    time.sleep(0.05)

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

    def rolled_output(self, since: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(first timeline frame, input, output) of every rolling cycle recorded after cycle frame time `since`.

        A cycle JACK skipped for the plugin on a loaded machine (an xrun) reaches the tape as silence while the song
        played sound: such cycles are left out (the plugin never makes exact silence of sound)."""
        return [(start, block, self.heard[cycle]) for cycle, (rolling, start, block) in sorted(self.played.items())
                if rolling and cycle > since and cycle in self.heard
                and (self.heard[cycle].any() or not block.any())]

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


def gaps(captures: Path, until: int) -> list[tuple[int, int]]:
    """Stretches of 0..until (frames) the capture does not hold: a JACK xrun on a loaded machine skips a cycle."""
    held = sorted((s["timeline_start_frame"], s["timeline_start_frame"] + s["frames"])
                  for s in only_capture(captures).spans)
    missing, at = [], 0
    for first, end in held:
        if first > at:
            missing.append((at, first))
        at = max(at, end)
    return missing + ([(at, until)] if at < until else [])


def play_the_gaps_again(song: Song, captures: Path, until: int) -> None:
    """What a producer does when the daemon names a span to play: roll over it once more (a few tries)."""
    for _ in range(5):
        time.sleep(0.3)  # the capture thread has published what was played
        missing = gaps(captures, until)
        if not missing:
            return
        for first, end in missing:
            song.roll(max(0, first - RATE // 4), (end - first) / RATE + 0.5)
    raise AssertionError(f"the capture still misses {gaps(captures, until)}")


@contextmanager
def hosted(server: str, bundle: Path, folder: Path, extra_env: dict | None = None,
           material: np.ndarray = NOISE, song_type: type[Song] = Song,
           controls: tuple[str, ...] = ()) -> Iterator[tuple[Jalv, Song]]:
    """jalv hosting the plugin, `song` (a `song_type`) playing into it and `tape` recording it; all stopped on the
    way out, jalv's exit status (after its capture thread wrote what was left) in ``plugin.exit_status``."""
    plugin = Jalv(server, bundle, folder, extra_env, controls)
    song = song_type(server, material)
    try:
        song.connect(plugin.name)
        yield plugin, song
    finally:
        song.recording = False
        plugin.exit_status = plugin.stop()
        song.close()
