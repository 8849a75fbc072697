"""The last bar, this bar, the next bar, counted on Ardour's own bar lines: the real Ardour GUI (Ardour 7 under
Xvfb) rolls and locates through its OSC surface, and a real daemon, registered with that surface ([midi.daw]
ardour), follows its play cursor and bar count. Ardour's OSC feedback carries no tempo, so the daemon knows the bar
lines its transport rolled through, and says which bars to play for the others."""

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


@pytest.fixture(scope="module")
def gui(ardour, tmp_path_factory):
    with running_gui(ardour, tmp_path_factory.mktemp("gui-bars"), []) as gui:
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

            gui.osc("/transport_play", "")  # Ardour's default tempo map: 120 BPM, 4/4, a bar every 2 s
            wait_for("Ardour's cursor in bar 6 (10-12 s)", lambda: cursor_bar() >= 6, 60, 0.2)
            gui.osc("/transport_stop", "")
            def located() -> bool:  # stopped, in bar 3 on its fourth beat (sent again: Ardour may still be stopping)
                gui.osc("/locate", "ii", round(5.5 * RATE), 0)
                return cursor_bar() == 3

            wait_for("the daemon to see the locate", located, 30, 0.5)

            for anchor, count, expected, start in (("this", 1, "bar 3 (4.000-6.000 s)", 3.5),
                                                   ("last", 2, "bars 1-2 (0.000-4.000 s)", -0.5),
                                                   ("next", 2, "bars 4-5 (6.000-10.000 s)", 5.5)):
                answer = bars("context", anchor, count)
                assert answer[:2] == ["selected", expected], answer
                assert answer[2:] == pytest.approx([start, start + 2.0 * count, 0.0, 0.0], abs=1e-5)
            answer = bars("context", "next", 8)  # bars 4-11: Ardour stopped long before bar 12's line
            assert answer[:4] == ["error", "/bridge/bars", "", "bars"]
            assert answer[4].startswith("bars: need bar lines not seen yet: Ardour reports no tempo, so bars are "
                                        "found as its transport rolls through them: play bars "), answer
            assert answer[4].endswith("-12 once (the cursor is in bar 3)"), answer
        wait_for("the context to hold bars 4-5", lambda: json.loads(
            (project.state / "context.json").read_text())["context"].get("start") == 5.5, 10, 0.1)
        context = json.loads((project.state / "context.json").read_text())
        assert (context["context"]["end"], context["bars"]) == (9.5, ("bars 4-5 (6.000-10.000 s) at Ardour's bar "
                                                                       "lines, from its play cursor"))
    finally:
        daemon.stop()
