"""The audition stories' JACK server."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from bridge.demo_song import make_song
from tests.audition.tape import Tape
from tests.conftest import DaemonProcess, Project, require_tool
from tests.frontends.jack import JackServer

RATE, PERIOD = 48000, 1024  # -p 1024: no xruns on 2 busy cores


@pytest.fixture(scope="module")
def jack(tmp_path_factory):
    """A private JACK dummy server per module, with this process pointed at it."""
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path_factory.mktemp("jack"), period=PERIOD, rate=RATE).start()
    yield server
    server.stop()


@contextmanager
def auditioning_daemon(jack: JackServer, folder: Path, tape: Tape | None = None):
    """A daemon on a 40 s song in ``folder`` whose audition plays into a recording JACK client on ``jack`` (``tape``,
    when the story listens to it; it stays open): yields (project, daemon); the daemon is stopped and the recording
    client it opened closed afterwards."""
    project = Project(folder / "project", make_song(folder / "song.wav", seconds=40.0, sample_rate=RATE))
    own_tape = tape is None
    tape = tape or Tape()
    ports = ", ".join(f'"{port}"' for port in tape.ports)
    project.write_config(f'[audition]\njack_server = "{jack.name}"\njack_ports = [{ports}]\n')
    daemon = DaemonProcess(project).start()
    try:
        yield project, daemon
    finally:
        daemon.stop()
        if own_tape:
            tape.close()
