"""The audition and the voice input both use JACK. The producer restarts the JACK server (QjackCtl does, to change
the buffer size), then presses audition (its dead client is closed, a new one opens) and then talk (the voice's dead
client is closed while the audition's new one is open). The daemon must live on: with libjack that order crashed the
process (a segfault) the next time a client of the new server was closed.

The daemon's side runs in a child process, so that a crash fails the test instead of ending pytest (and libjack keeps
per-process state about the server that went away). The JACK servers stay with the test: a jackd killed with the
child would keep its slot in JACK's server registry, which has room for eight.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bridge.audition import Audition
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.lifeline import ask_to_die_with_parent
from bridge.models import State
from bridge.settings_schema import defaults
from bridge.voice.listener import Listener
from tests.audition.jobs import delivered_job
from tests.conftest import ROOT, daemon_environment, require_tool
from tests.frontends.jack import JackServer


def daemon_side(folder: Path) -> None:
    """Audition and talk pressed, "open" printed; after "restarted" on stdin, audition and talk pressed again (in that
    order), then the daemon stops and "survived" is printed."""
    record = delivered_job(folder, tempo=120.0)
    config = Config(state_dir=folder / "state", project_roots=(folder,))
    journal = Journal(config.journal_path)
    journal.insert(record)
    journal.update(record, state=State.DELIVERED, manifests=record.manifests)

    async def story() -> None:
        service = JobService(config, journal, {})
        audition = Audition(service, defaults("audition"))
        listener = Listener(defaults("voice"), lambda result, key: None)
        try:
            await listener.start()
            await audition.act("last", "variant")
            assert await listener.hold("talk")
            listener.release("talk")
            print("open", flush=True)
            assert await asyncio.to_thread(sys.stdin.readline) == "restarted\n"
            while listener.input.alive:  # its shutdown callback; the test's timeout bounds the wait
                await asyncio.sleep(0.01)
            playing = await audition.act("last", "original")  # audition pressed first: a new client opens
            assert playing.playing == "original"
            assert await listener.hold("talk")  # then talk: the voice's dead client is let go
            listener.release("talk")
        finally:
            await listener.close()
            await audition.close()
            await service.close()

    asyncio.run(story())
    print("survived", flush=True)


def test_audition_and_voice_reopen_after_a_jack_restart_without_crashing_the_daemon(tmp_path):
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path, period=1024).start()
    side = ("import sys; from pathlib import Path; "
            "from tests.audition.test_jack_restart_with_voice import daemon_side; daemon_side(Path(sys.argv[1]))")
    child = None
    try:
        child = subprocess.Popen([sys.executable, "-c", side, str(tmp_path)], cwd=ROOT,
                                 env=dict(daemon_environment(), **server.env), text=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ask_to_die_with_parent)
        assert child.stdout.readline() == "open\n", child.communicate(timeout=60)[1][-4000:]
        server.stop()  # the producer restarts JACK: a new server under the same name
        restarted = JackServer(tmp_path, period=1024)
        restarted.name = server.name
        server = restarted.start()
        out, err = child.communicate("restarted\n", timeout=60)
        assert child.returncode == 0, f"the daemon's side ended with {child.returncode}:\n{err[-4000:]}"
        assert out == "survived\n", err[-4000:]
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.communicate()
        server.stop()
