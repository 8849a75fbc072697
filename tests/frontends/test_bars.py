"""A producer with a guitar in their hands asks for "the last two bars" or "the next bar" from wherever the DAW's
play cursor is: REAPER's transport feedback over real UDP, a real daemon, its reply in bars and seconds."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from bridge.client import BridgeClient
from bridge.frontends.bars import Transport, bar_range
from bridge.frontends.osc_wire import encode
from osc_schema import ValidationError
from tests.conftest import DaemonProcess, Project, daemon_environment, free_udp_port
from tests.frontends.test_midi import rig, until


@pytest.mark.parametrize("cursor, anchor, bars, expected", [
    (13.0, "last", 2, (5, 8.0, 12.0)),  # in bar 7 (12-14 s): bars 5 and 6
    (13.0, "this", 1, (7, 12.0, 14.0)),
    (13.0, "next", 1, (8, 14.0, 16.0)),
    (12.0, "next", 2, (7, 12.0, 16.0)),  # on a bar line: from that line
    (11.9999999, "last", 1, (6, 10.0, 12.0)),  # rounded feedback just before a line stands on it
])
def test_bars_are_counted_from_the_cursor_on_the_bar_grid(cursor, anchor, bars, expected):
    chosen = bar_range(Transport("reaper", cursor, 120.0), anchor, bars)
    assert (chosen.first_bar, chosen.start, chosen.end) == expected


def test_three_four_at_90_bpm_and_too_many_bars_back():
    chosen = bar_range(Transport("ableton", 10.0, 90.0, beats_per_bar=3), "this", 1)
    assert (chosen.first_bar, chosen.start, chosen.end) == (6, 10.0, 12.0)  # a bar is 2 s
    assert chosen.describe() == "bar 6 (10.000-12.000 s)"
    with pytest.raises(ValidationError, match=r"^bars: 6 reach before the song's start: the cursor is in bar 6$"):
        bar_range(Transport("ableton", 10.0, 90.0, beats_per_bar=3), "last", 6)


@pytest.fixture
def daemon_following_reaper(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    reaper_port = free_udp_port()
    (project.root / "pads.toml").write_text("", encoding="utf-8")
    project.write_config(f'[midi]\nport = "no-controller-here"\nmapping = "pads.toml"\napi = "UNIX_JACK"\n'
                         f'[midi.daw]\nreaper_port = {reaper_port}\n')
    daemon = DaemonProcess(project, env={"JACK_DEFAULT_SERVER": f"dawbridge-absent-{time.time_ns()}",
                                         "JACK_NO_START_SERVER": "1"}).start()
    yield project, reaper_port
    daemon.stop()


def context_range(project: Project) -> tuple | None:
    try:
        context = json.loads((project.state / "context.json").read_text())["context"]
    except (OSError, ValueError):
        return None
    return context.get("start"), context.get("end")


def bars(client: BridgeClient, *params) -> list:
    client.send_raw(encode("/bridge/bars", list(params)))
    reply = client.wait_for(lambda r: r.name in ("selected", "error"), timeout=10)
    assert reply is not None
    return [reply.name, *reply.args]


def test_the_last_bars_from_reapers_cursor_become_the_context_and_the_next_bar_is_inpainted(daemon_following_reaper):
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client:
        assert bars(client, "context", "last", 2)[:4] == [
            "error", "/bridge/bars", "", "bars"]  # no transport yet: the reply says to add [midi.daw]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:  # REAPER's feedback, as it sends it
            for address, value in (("/tempo/raw", 120.0), ("/time", 13.0)):
                reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        client.send("context", source=str(project.song), position=4.0)
        deadline = time.monotonic() + 10
        while (answer := bars(client, "context", "last", 2))[0] == "error":
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        assert answer == ["selected", "bars 5-6 (8.000-12.000 s)", 4.0, 8.0, 120.0, 4.0]  # source time: minus 4 s
        while context_range(project) != (4.0, 8.0):  # the context pads act on is bars 5-6 now
            assert time.monotonic() < deadline, context_range(project)
            time.sleep(0.05)
        shown = subprocess.run([sys.executable, "-m", "bridge", "jobs", "--config", str(project.config)],
                               capture_output=True, text=True, env=daemon_environment(), check=True).stdout
        assert ("range from bars 5-6 (8.000-12.000 s) at 120 BPM, 4 beats a bar, from REAPER's play cursor"
                in shown), shown

        client.send_raw(encode("/bridge/bars", ["inpaint", "next", 1, "num_outputs", 1, "request_id", "bars-1"]))
        assert client.wait_for(lambda r: r.name == "selected", 10).args[:3] == ["bar 8 (14.000-16.000 s)", 10.0,
                                                                               12.0]
        done = client.wait_for(lambda r: r.name in ("done", "failed", "error"), 120)
    assert done is not None and done.name == "done", done
    manifest = json.loads(Path(done.args[1]).read_text())
    assert (manifest["source"]["start"], manifest["source"]["end"], manifest["request_id"]) == (10.0, 12.0, "bars-1")


PADS = """\
[[pad]]
note = 36
command = "inpaint"
anchor = "last"
bars = 2

[[pad]]
note = 37
command = "extend"
anchor = "next"
bars = 4
"""


def test_pads_inpaint_the_last_two_bars_and_extend_the_next_four_from_reapers_cursor(tmp_path, demo_song_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"dawbridge-absent-{time.time_ns()}")  # no controller: pressed here
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    reaper_port = free_udp_port()

    async def story() -> list[tuple]:
        async with rig(tmp_path, demo_song_path, midi={"daw": {"reaper_port": reaper_port}}, mapping=PADS) as r:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:  # 100 BPM: a bar is 2.4 s
                for address, value in (("/tempo/raw", 100.0), ("/time", 13.0)):  # in bar 6 (12.0-14.4 s)
                    reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
            await until(lambda: r.frontend.context.transport is not None, what="REAPER's transport")
            for note in (36, 37):
                r.frontend.received(mido.Message("note_on", note=note, velocity=90))
            return [(j.spec.operation, j.spec.start, j.spec.end, j.spec.extend_after, j.spec.duration)
                    for j in r.jobs()]

    assert asyncio.run(story()) == [("inpaint", 7.2, 12.0, None, None), ("extend", None, None, 14.4, 9.6)]
