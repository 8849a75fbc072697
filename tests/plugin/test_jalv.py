"""The LV2 in jalv under a JACK dummy server, the transport rolled by a JACK client that is timebase master.

A producer's story: the song plays from 10 s for a while, then from 2 s; the plugin passes every sample through
untouched and its capture holds exactly the frames that played, each at its timeline position.

The source client plays a fixed noise indexed by the transport frame, so what belongs at timeline frame F is known
without aligning anything: NOISE[F].
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.frontends.osc_wire import decode

from .conftest import PERIOD, only_capture
from .jackhost import NOISE, RATE, Jalv, Song, hosted, jack


def play_a_song(server: str, bundle: Path, folder: Path, daemon: socket.socket, extra_env: dict | None = None,
                commands: tuple[str, ...] = ()) -> tuple[Song, Jalv]:
    """Roll from 10 s for 1.5 s, then from 2 s for 1 s, with the plugin between `song` and `tape`; all stopped after."""
    with hosted(server, bundle, folder, extra_env) as (plugin, song):
        plugin.command(f"set port {daemon.getsockname()[1]}")
        time.sleep(0.3)  # connections in place before anything is measured
        song.recording = True
        song.roll(10 * RATE, 1.5)
        for line in commands:
            plugin.command(line)
            time.sleep(0.05)  # one command per block or two: the range is in place before the trigger
        song.roll(2 * RATE, 1.0)
    assert plugin.exit_status == 0, plugin.log.read_text()
    return song, plugin


class LateSong(Song):
    """A song whose JACK client is late once, mid-roll, as a loaded machine's scheduler (or the GIL) makes it: it
    writes its cycle's samples, then takes a period and a half to return."""

    def __init__(self, *args):
        super().__init__(*args)
        self.cycles_before_late = 20

    def _play(self, frames: int) -> None:
        super()._play(frames)
        if self.recording and self.song.transport_state == jack.ROLLING:
            self.cycles_before_late -= 1
            if self.cycles_before_late == 0:
                time.sleep(1.5 * frames / RATE)


def assert_holds_what_played(capture, rolled: list[tuple[int, int]]) -> None:
    """Every frame the capture holds, as the daemon reads it, is the one played there; it misses 2 cycles at most.

    A cycle jalv runs late (after the server began the next one) is told the next cycle's transport position, which
    is all JACK tells it then, with the late cycle's samples: the plugin stores them a period on, and its next block,
    which has that same position, stores the right ones there again. Readers take the newer take where spans overlap
    (bridge/captures.py), so the capture is checked as they read it, not span by span."""
    assert all(span["sample_rate"] == RATE for span in capture.spans)
    first, audio, held = capture.as_read()
    assert held.sum() >= sum(m for _, m in rolled) - 2 * PERIOD, (capture.spans, rolled)
    wrong = np.nonzero(held & np.any(audio != NOISE[first:first + len(audio)], axis=1))[0]
    assert not len(wrong), f"{len(wrong)} held frames from timeline frame {first + wrong[0]} on are not what played"


def test_jalv_passes_audio_through_captures_exactly_the_played_frames_and_sends_the_trigger(
        jack_server, bundles, tmp_path, daemon_port):
    song, plugin = play_a_song(jack_server, bundles / "DawBridge.lv2", tmp_path, daemon_port,
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
    # from 10 s, then from 2 s. On a loaded machine a JACK xrun can skip a cycle of the transport (splitting a
    # stretch) or of the plugin alone (the capture then lacks that cycle): the capture holds the played frames, each
    # at its timeline position, short of a couple of cycles at most
    assert rolled[0][0] == 10 * RATE and 2 * RATE in [s[0] for s in rolled]
    held = [(s["timeline_start_frame"], s["frames"]) for s in capture.spans]
    assert all(any(a <= f and f + n <= a + m for a, m in rolled) for f, n in held), (held, rolled)
    assert_holds_what_played(capture, rolled)
    # the trigger went to the daemon's port as an OSC command naming this capture, from the instance's reply port
    request_id = f"{capture.folder.name}-r1"
    assert capture.index["requests"] == [{"operation": "inpaint", "start": 12.5, "end": 20.0,
                                          "request_id": request_id, "preset": 0}]
    datagram, sender = daemon_port.recvfrom(65536)
    assert decode(datagram) == [("/bridge/inpaint", [None, 12.5, 20.0, "", "capture", capture.folder.name,
                                                     "reply_port", capture.index["reply_port"],
                                                     "request_id", request_id])]
    assert sender == ("127.0.0.1", capture.index["reply_port"])
    # nobody answered (the stand-in daemon is silent): the instance says it is waiting
    assert capture.index["job"]["state"] == "sent"


def test_a_cycle_the_song_is_late_for_is_captured_as_played(jack_server, bundles, tmp_path):
    """The song's client returns late once mid-roll (an xrun): whatever jalv and JACK make of that cycle, the capture
    as read holds only what played at each timeline frame (see assert_holds_what_played)."""
    with hosted(jack_server, bundles / "DawBridge.lv2", tmp_path, song_type=LateSong) as (plugin, song):
        time.sleep(0.3)  # connections in place before anything is measured
        song.recording = True
        song.roll(10 * RATE, 1.0)
    assert plugin.exit_status == 0, plugin.log.read_text()
    assert song.cycles_before_late < 0  # it was late, and rolled on after
    capture = only_capture(plugin.captures)
    assert min(span["timeline_start_frame"] for span in capture.spans) == 10 * RATE
    assert_holds_what_played(capture, song.rolled_frames())


@pytest.mark.parametrize("self_test", [False, True], ids=["plugin", "counter-self-test"])
def test_run_allocates_nothing_while_capturing(jack_server, rtcheck_bundles, tmp_path, daemon_port, self_test):
    """The test build counts operator new calls made inside run(); the self-test allocates once per block there,
    proving the counter sees what it must."""
    env = {"DAW_BRIDGE_RT_CHECK_SELFTEST": "1"} if self_test else {}
    song, plugin = play_a_song(jack_server, rtcheck_bundles / "DawBridge.lv2", tmp_path, daemon_port, env,
                               commands=("set extend 1",))
    capture = only_capture(plugin.captures)
    assert sum(span["frames"] for span in capture.spans) > 2 * RATE  # it captured while being counted
    if self_test:
        assert capture.index["rt_allocations"] > 100  # one per block: ~1 s per 21 blocks, plus stopped blocks
    else:
        assert capture.index["rt_allocations"] == 0
