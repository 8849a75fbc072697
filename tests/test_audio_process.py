"""The daemon's audio devices open in processes of their own (bridge.audio_process): what they have to say reaches
the daemon's log as the daemon's own lines do."""

from __future__ import annotations

import re

from bridge.client import BridgeClient
from bridge.demo_song import make_song
from bridge.frontends.osc_wire import encode
from tests.conftest import DaemonProcess, Project, require_tool
from tests.frontends.jack import JackServer

RATE = 48000


def test_a_port_the_audition_cannot_join_is_said_in_the_daemons_log(tmp_path):
    # The output's process had no logging set up: its warning came out bare on stderr (no time, no level, no
    # logger), and its info lines (why JACK was not used) were lost.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    jack = JackServer(tmp_path, period=1024, rate=RATE).start()
    project = Project(tmp_path / "project", make_song(tmp_path / "song.wav", seconds=40.0, sample_rate=RATE))
    project.write_config(f'[audition]\njack_server = "{jack.name}"\njack_ports = ["nobody-here:in_1"]\n')
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=16.0, end=20.0, prompt="",
                                        backend="local", num_outputs=1, timeout=120)
            assert outcome.name == "done", outcome
            client.send_raw(encode("/bridge/audition", [outcome.args[0], "variant"]))
            reply = client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=60)
        assert reply is not None and reply.name == "auditioning", reply
    finally:
        daemon.stop()
        jack.stop()
    said = [line for line in daemon.log.read_text().splitlines() if "cannot connect" in line]
    line_of_the_log = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ WARNING bridge\.audition\.output: audition: cannot connect "
                                 r"daw-bridge-audition:out_\d to nobody-here:in_1: ")
    assert said and all(line_of_the_log.match(line) for line in said), said
