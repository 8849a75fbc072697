"""The range from the host's position: Mark in / Mark out pressed in jalv under JACK, with a stand-in daemon.

DPF 1.6 gives a plugin no loop or cycle range (its TimePosition holds only playing, frame and BBT), so a producer
marks the range with two trigger parameters, mapped to pads or keys by the DAW's MIDI learn: the host's position at
each press becomes the range's start or end.

A producer's story: with the transport stopped at 12 s they press Mark in, at 15.5 s Mark out, choose preset 2 and
press Inpaint: the daemon receives 12.0-15.5 s and the capture's index says preset 2. Then, while the song rolls,
they press Mark in and Mark out again: the range is where the song was at each press. Typing a range into the Range
start/end parameters afterwards wins over the marks (the range set last is the one sent), until both marks are
pressed anew.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from bridge.frontends.osc_wire import decode

from .conftest import PERIOD, only_capture
from .jackhost import RATE, Jalv, Song, hosted


def press(plugin: Jalv, trigger: str) -> None:
    """A trigger press as a host sends it: the value goes to 1 (jalv sends only changes, so back to 0 first)."""
    plugin.command(f"set {trigger} 0")
    time.sleep(0.05)
    plugin.command(f"set {trigger} 1")
    time.sleep(0.15)  # a few cycles: run() has read the host's position for this press


def inpaint_range(plugin: Jalv, daemon: socket.socket) -> tuple[float, float]:
    press(plugin, "inpaint")
    [(address, args)] = decode(daemon.recvfrom(65536)[0])
    assert address == "/bridge/inpaint"
    return args[1], args[2]


def locate(song: Song, frame: int) -> None:
    song.song.transport_frame = frame
    time.sleep(0.2)


def test_mark_in_and_out_take_the_hosts_position_at_each_press(jack_server, bundles, tmp_path, daemon_port):
    daemon = daemon_port
    with hosted(jack_server, bundles / "DawBridge.lv2", tmp_path) as (plugin, song):
        plugin.command(f"set port {daemon.getsockname()[1]}")
        locate(song, 12 * RATE)
        press(plugin, "markin")
        locate(song, int(15.5 * RATE))
        press(plugin, "markout")
        plugin.command("set preset 2")
        stopped = inpaint_range(plugin, daemon)

        song.recording = True
        locate(song, 20 * RATE)
        song.song.transport_start()
        time.sleep(0.4)
        press(plugin, "markin")
        time.sleep(0.6)
        press(plugin, "markout")
        song.song.transport_stop()
        time.sleep(0.2)
        song.recording = False
        rolling = inpaint_range(plugin, daemon)
        plugin.command("monitors")

        plugin.command("set start 3")
        plugin.command("set end 4.5")
        time.sleep(0.1)
        typed = inpaint_range(plugin, daemon)
        press(plugin, "markin")  # one mark alone does not take the range back: both are pressed anew
        still_typed = inpaint_range(plugin, daemon)
        time.sleep(0.2)
    assert plugin.exit_status == 0, plugin.log.read_text()

    assert stopped == (12.0, 15.5)  # exactly where the transport stood at each press
    # while rolling: the position of the cycle each press arrived in, one whole cycle apart or more, inside the roll
    start, end = (round(seconds * RATE) for seconds in rolling)
    assert rolling == (start / RATE, end / RATE)
    # one roll, recorded from 20 s: a cycle the song's client missed on a loaded machine (a JACK xrun; the
    # transport rolls on) splits it in two stretches, a cycle apart, and a press may fall on either side
    rolled = song.rolled_frames()
    assert rolled[0][0] <= start and end < rolled[-1][0] + rolled[-1][1], (rolling, rolled)
    assert (start - 20 * RATE) % PERIOD == 0 and (end - start) % PERIOD == 0
    assert 0.2 * RATE < end - start < 2.0 * RATE  # presses ~0.6 s apart on a loaded machine
    shown = [line.lstrip("> ") for line in plugin.log.read_text().splitlines()]
    # the host shows the marked range (output parameters are 32-bit floats)
    assert f"marked_start = {np.float32(start / RATE):.6f}" in shown
    assert f"marked_end = {np.float32(end / RATE):.6f}" in shown
    assert typed == still_typed == (3.0, 4.5)  # the parameters changed after the marks: they are the range now

    requests = only_capture(plugin.captures).index["requests"]
    assert [(r["start"], r["end"], r["preset"]) for r in requests] == [
        (12.0, 15.5, 2), (pytest.approx(start / RATE, abs=1e-6), pytest.approx(end / RATE, abs=1e-6), 2),
        (3.0, 4.5, 2), (3.0, 4.5, 2)]
