"""The last bar, this bar, the next bar, counted on Ardour's own bar lines: the real Ardour GUI (Ardour 7 under
Xvfb) rolls and locates through its OSC surface, and a real daemon, registered with that surface ([midi.daw]
ardour), follows its play cursor and bar count. Ardour's OSC feedback carries no tempo, so the daemon knows the bar
lines its transport rolled through (across a tempo change: they are Ardour's), and says which bars to play for the
others."""

from __future__ import annotations

import json
import re
import time

import pytest

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.conftest import DaemonProcess, Project
from tests.daw_scripts.ardour.conftest import RATE
from tests.daw_scripts.ardour.gui import running_gui, wait_for

# 120 BPM for bars 1-4 (a bar every 2 s), then 90 BPM from bar 5 at 8 s (every 2.667 s): 10.667, 13.333, 16 ...
TEMPO_CHANGE = f"""
local map = Temporal.TempoMap.write_copy()
map:set_tempo(Temporal.Tempo(90, 90, 4), Temporal.timepos_t(8 * {RATE}))
Temporal.TempoMap.update(map)
"""


# A bar line is fitted from Ardour's reports (its time cut to the millisecond) and kept to the millisecond: 10.6667 s
# came out as 10.667 in most runs and 10.666 in one.
MILLISECOND = 1.5e-3


def within_a_millisecond(said: str, expected: str) -> bool:
    """The same words, and each number within a millisecond of the expected one."""
    number = r"\d+\.\d+"
    return re.sub(number, "#", said) == re.sub(number, "#", expected) and all(
        abs(float(a) - float(b)) <= MILLISECOND for a, b in zip(re.findall(number, said), re.findall(number, expected)))


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    with running_gui(ardour, tmp_path_factory.mktemp("gui-bars"), [], setup=TEMPO_CHANGE) as gui:
        yield gui


def test_bars_from_ardours_cursor_on_the_bar_lines_its_transport_rolled_through(gui, tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    (project.root / "pads.toml").write_text("", encoding="utf-8")
    project.write_config(f'[midi]\nport = "no-controller-here"\nmapping = "pads.toml"\napi = "UNIX_JACK"\n'
                         f'[midi.daw]\nardour = true\nardour_port = {gui.osc_port}\n')
    daemon = DaemonProcess(project, env={"JACK_DEFAULT_SERVER": f"dawbridge-absent-{time.time_ns()}",
                                         "JACK_NO_START_SERVER": "1"}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            def bars(*params) -> list:
                client.send_raw(encode("/bridge/bars", list(params)))
                reply = client.wait_for(lambda r: r.name in ("selected", "error"), timeout=10)
                assert reply is not None
                return [reply.name, *reply.args]

            def cursor_bar() -> int:  # the bar Ardour's cursor is in, as the daemon sees it
                answer = bars("context", "this", 1)
                found = re.search(r"^bar (\d+) \(|the cursor is in bar (\d+)\)$", answer[-1 if answer[0] == "error" else 1])
                return int(found.group(1) or found.group(2)) if found else 0

            client.send("context", source=str(project.song), position=0.5)  # the song starts half a second in
            gui.osc("/goto_start", "")
            # registered: Ardour told the daemon its cursor (bar 1, on its line), so only bar 2's line is missing
            wait_for("the daemon to follow Ardour", lambda: "play bar 2 once" in bars("context", "this", 1)[-1], 30,
                     0.3)

            gui.osc("/transport_play", "")
            wait_for("Ardour's cursor in bar 8 (16-18.667 s)", lambda: cursor_bar() >= 8, 60, 0.2)
            gui.osc("/transport_stop", "")

            def located() -> bool:  # stopped at 12 s, in bar 6 on its third beat (sent again: Ardour may be stopping)
                gui.osc("/locate", "ii", 12 * RATE, 0)
                return cursor_bar() == 6

            wait_for("the daemon to see the locate", located, 30, 0.5)
            answer = bars("context", "next", 8)  # bars 7-14: Ardour stopped long before bar 15's line
            assert answer[:4] == ["error", "/bridge/bars", "", "bars"]
            assert answer[4].startswith("bars: need bar lines not seen yet: Ardour reports no tempo, so bars are "
                                        "found as its transport rolls through them: play bars "), answer
            assert answer[4].endswith("-15 once (the cursor is in bar 6)"), answer
            for anchor, count, expected, start, end in (("this", 1, "bar 6 (10.667-13.333 s)", 10.167, 12.833),
                                                        ("last", 5, "bars 1-5 (0.000-10.667 s)", -0.5, 10.167),
                                                        ("last", 2, "bars 4-5 (6.000-10.667 s)", 5.5, 10.167)):
                answer = bars("context", anchor, count)  # across the tempo change: on Ardour's own bar lines
                assert answer[0] == "selected" and within_a_millisecond(answer[1], expected), answer
                assert answer[2:] == pytest.approx([start, end, 0.0, 0.0], abs=MILLISECOND)
        wait_for("the context to hold bars 4-5", lambda: json.loads(
            (project.state / "context.json").read_text())["context"].get("start") == 5.5, 10, 0.1)
        context = json.loads((project.state / "context.json").read_text())
        assert context["context"]["end"] == pytest.approx(10.167, abs=MILLISECOND)
        assert within_a_millisecond(context["bars"], "bars 4-5 (6.000-10.667 s) at Ardour's bar lines, from its play "
                                                     "cursor"), context["bars"]
    finally:
        daemon.stop()
