"""The daemon's audition with a real job service and real JACK servers: "last" finds the job delivered last, and
after the producer restarts JACK the next press opens the output again instead of playing into a dead client.

The story runs in a child process: libjack keeps per-process state about a server that went away, and this test
process goes on to host other tests' JACK clients.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bridge.audition import Audition
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.models import State
from bridge.settings_schema import defaults
from tests.audition.jobs import RATE, delivered_job
from tests.audition.tape import Tape
from tests.conftest import ROOT, daemon_environment, require_tool
from tests.frontends.jack import JackServer


def heard_sound(tape: Tape, since: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(block.any() for _, _, block in tape.blocks[since:]):
            return True
        time.sleep(0.05)
    return False


def restart_story(folder: Path) -> None:
    """Audition, restart JACK under the same name, audition again; raises AssertionError when something is off."""
    record = delivered_job(folder, tempo=120.0)
    config = Config(state_dir=folder / "state", project_roots=(folder,))
    journal = Journal(config.journal_path)
    journal.insert(record)
    journal.update(record, state=State.DELIVERED, manifests=record.manifests)
    server = JackServer(folder, period=1024, rate=RATE).start()
    name = f"tape-{uuid.uuid4().hex[:6]}"
    tape = Tape(name)
    settings = {**defaults("audition"), "jack_server": server.name, "jack_ports": (f"{name}:in_1", f"{name}:in_2")}

    async def story() -> None:
        nonlocal server, tape
        service = JobService(config, journal, {})
        audition = Audition(service, settings)
        try:
            playing = await audition.act("last", "variant")
            assert (playing.job_id, playing.playing, playing.variant) == ("j-1", "variant", 1)
            assert await asyncio.to_thread(heard_sound, tape, 0)

            tape.close()
            tape = None
            server.stop()  # the producer restarts JACK (same server name)
            restarted = JackServer(folder, period=1024, rate=RATE)
            restarted.name = server.name
            server = restarted.start()
            playing = await audition.act("last", "original")
            assert (playing.job_id, playing.playing) == ("j-1", "original")
            tape = Tape(name)  # after the audition reopened: libjack keeps a dead client's state per process
            for n in (1, 2):
                tape.client.connect(f"{playing.output}:out_{n}", f"{name}:in_{n}")
            assert await asyncio.to_thread(heard_sound, tape, 0), "the reopened output plays into the new server"
        finally:
            await audition.close()
            await service.close()

    try:
        asyncio.run(story())
    finally:
        if tape is not None:
            tape.close()
        server.stop()
        journal.close()


def test_after_the_jack_server_restarts_the_next_press_plays_again(tmp_path):
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    story = ("import sys; from pathlib import Path; from tests.audition.test_player import restart_story; "
             "restart_story(Path(sys.argv[1]))")
    child = subprocess.run([sys.executable, "-c", story, str(tmp_path)], cwd=ROOT, env=daemon_environment(),
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr[-3000:]
