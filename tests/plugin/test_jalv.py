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
from .jackhost import NOISE, RATE, Jalv, Song, hosted


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
    assert sum(n for _, n in held) >= sum(m for _, m in rolled) - 2 * PERIOD, (held, rolled)
    for span in capture.spans:
        first = span["timeline_start_frame"]
        assert span["sample_rate"] == RATE
        assert np.array_equal(capture.audio(span), NOISE[first:first + span["frames"]])
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
