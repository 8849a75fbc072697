"""Bars from the plugin host's play cursor, with real programs: jalv hosting the plugin under a private JACK server
whose timebase master rolls a song in 3/4 at 100 BPM (a bar is 1.8 s), and a real daemon with no DAW feedback.

A producer's story: the plugin is on the track and nothing else tells the daemon where the cursor is. The song plays
once; while it plays again they ask for "the last two bars", and the daemon names the bars the host's cursor had just
left, counted at the host's tempo, and inpaints them on the plugin's capture. Stopped, the cursor still counts. After
the song's tempo changed to 150 BPM from 16 s, bars counted at the new tempo are refused with where it changed.
"""

from __future__ import annotations

import math
import time

import pytest

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.conftest import DaemonProcess, Project

from .conftest import only_capture
from .jackhost import NOISE, RATE, Song, hosted, jack, play_the_gaps_again

BEATS_PER_BAR = 3.0


class TempoSong(Song):
    """The song's timebase master at a tempo the test sets (3/4); the beats count from the timeline's start."""

    tempo = 100.0

    def _timebase(self, state, blocksize, pos, new_pos) -> None:
        beats = pos.frame / RATE * self.tempo / 60.0
        pos.valid = jack.POSITION_BBT
        pos.beats_per_bar, pos.beat_type, pos.ticks_per_beat = BEATS_PER_BAR, 4.0, 1920.0
        pos.beats_per_minute = self.tempo
        pos.bar, pos.beat = int(beats // BEATS_PER_BAR) + 1, int(beats % BEATS_PER_BAR) + 1
        pos.tick = int((beats % 1) * 1920)
        pos.bar_start_tick = (pos.bar - 1) * BEATS_PER_BAR * 1920.0

    def cursor(self) -> float:
        """The transport's position now, in timeline seconds."""
        return self.song.transport_query()[1]["frame"] / RATE


def transport(captures) -> dict:
    return only_capture(captures).index.get("transport") or {}


def until(condition, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def bars(client: BridgeClient, *params) -> tuple[str, list]:
    """/bridge/bars, and its first answer: /bridge/selected, or /bridge/error."""
    client.send_raw(encode("/bridge/bars", list(params)))
    reply = client.wait_for(lambda r: r.name in ("selected", "error"), timeout=10)
    assert reply is not None, "no answer to /bridge/bars"
    return reply.name, reply.args


def bar_of(seconds: float, bar_seconds: float) -> int:
    """The 1-based bar a timeline second lies in."""
    return math.floor(seconds / bar_seconds) + 1


@pytest.fixture
def session(jack_server, bundles, tmp_path, demo_song_path):
    """The daemon (no [midi], no DAW feedback: only the plugin tells it the transport) and jalv with the song."""
    project = Project(tmp_path / "project", demo_song_path)
    captures = project.root / "captures"
    project.write_config(f'captures_dir = "{captures}"\n[local]\nwarm_up = false\n')
    daemon = DaemonProcess(project).start()
    try:
        with hosted(jack_server, bundles / "DawBridge.lv2", tmp_path / "host", {"DAW_BRIDGE_CAPTURE_DIR": str(captures)},
                    NOISE, TempoSong) as (plugin, song):
            plugin.command(f"set port {project.port}")
            with BridgeClient("127.0.0.1", project.port) as client:
                yield captures, song, client
    finally:
        daemon.stop()


def test_bars_count_from_the_plugin_hosts_cursor_at_its_tempo(session):
    captures, song, client = session
    bar = BEATS_PER_BAR * 60.0 / 100.0
    song.roll(0, 16.5)  # played once: the capture holds the bars (and the handles) asked for below
    play_the_gaps_again(song, captures, 16 * RATE)
    index = only_capture(captures).index
    assert index["transport"]["tempo"] == 100.0 and index["transport"]["beats_per_bar"] == BEATS_PER_BAR
    assert index["transport"]["heard"][0][:1] == [0.0]  # played from the top at 100 BPM in 3/4
    assert index["transport"]["heard"][-1][2:] == [100.0, BEATS_PER_BAR]

    # rolling: the cursor moves on between the host's report and the press, and the daemon moves it on too
    song.song.transport_frame = round(7.5 * RATE)
    time.sleep(0.2)
    song.song.transport_start()
    try:
        for _ in range(5):  # a press whose round trip straddles a bar line cannot say which bar was meant: again
            time.sleep(0.5)
            before = song.cursor()
            answer, args = bars(client, "inpaint", "last", 2)
            after = song.cursor()
            if bar_of(before - 0.05, bar) == bar_of(after + 0.05, bar):
                break
        else:
            pytest.fail("every press straddled a bar line")
    finally:
        song.song.transport_stop()
    assert answer == "selected", args
    current = bar_of(before, bar)
    first = current - 2
    assert args == [f"bars {first}-{first + 1} ({(first - 1) * bar:.3f}-{(first + 1) * bar:.3f} s)",
                    pytest.approx((first - 1) * bar), pytest.approx((first + 1) * bar), 100.0, BEATS_PER_BAR]
    accepted = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
    assert accepted.name == "accepted", accepted.args  # on the plugin's capture: the only instance, no source chosen

    # stopped: the cursor where the producer put it, 13 s, is in bar 8 (12.6-14.4 s)
    song.song.transport_frame = 13 * RATE
    until(lambda: not transport(captures)["playing"] and transport(captures)["position"] == 13.0,
          "the plugin never reported the located, stopped transport")
    assert bars(client, "inpaint", "this", 1) == ("selected", ["bar 8 (12.600-14.400 s)", pytest.approx(12.6),
                                                            pytest.approx(14.4), 100.0, BEATS_PER_BAR])
    assert client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10).name == "accepted"

    # the song's tempo changed: 150 BPM from 16 s on. Bars counted at 150 from the song's start are not its bars
    song.tempo = 150.0
    song.roll(16 * RATE, 3.0)
    until(lambda: transport(captures)["tempo"] == 150.0 and not transport(captures)["playing"],
          "the plugin never reported the new tempo")
    answer, args = bars(client, "inpaint", "last", 2)
    assert answer == "error"
    assert args[2] == "bars" and "tempo changes" in args[3] and "(100 → 150 BPM at 16.0 s)" in args[3], args
