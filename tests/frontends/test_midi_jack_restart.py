"""A producer changes the buffer size in QjackCtl while the daemon runs: the JACK server stops and a new one starts
under the same name. The pads must work again on the new server without restarting the daemon.

The story runs in a child process (libjack keeps per-process state about a server that went away, and the pytest
process goes on to host other tests' JACK clients), and the pad controller in a process of its own, as a hardware
controller's ports belong to another JACK client (a2jmidid, or jackd's own ALSA bridge).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import ROOT, daemon_environment, end_by_closing_stdin, require_tool
from tests.frontends.jack import JackServer
from tests.frontends.test_midi import DONE, rig, until

# The controller process: "join" waits until the frontend is joined to both its ports, "note N C" presses a pad,
# "leds N" answers the values that pad's LED was sent; each command is answered with one JSON line.
CONTROLLER = """\
import json, sys
from tests.frontends.jack import Controller
pads = Controller("padbox")
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    command, *numbers = line.split()
    if command == "join":
        pads.wait_joined()
        print(json.dumps("joined"), flush=True)
    elif command == "note":
        pads.note(*map(int, numbers))
        print(json.dumps("pressed"), flush=True)
    elif command == "leds":
        print(json.dumps(pads.led_values(int(numbers[0]))), flush=True)
pads.close()
"""


class ControllerProcess:
    """The pad controller plugged in, in a process of its own; ``close()`` unplugs it."""

    def __init__(self, server: JackServer):
        # stderr: libjack in the controller prints its own lines when the server goes away
        self.proc = subprocess.Popen([sys.executable, "-c", CONTROLLER], cwd=ROOT, env=server.env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     preexec_fn=ask_to_die_with_parent)
        assert self._answer() == "ready"

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the controller process ended ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    async def leds(self, note: int, expected: list[int]) -> list[int]:
        """The values the pad's LED was sent, once it has been sent at least ``len(expected)``."""
        await until(lambda: len(self.ask(f"leds {note}")) >= len(expected), what=f"LED {note} to show {expected}")
        await asyncio.sleep(0.05)  # anything extra would show up now
        return self.ask(f"leds {note}")

    def close(self) -> None:
        end_by_closing_stdin(self.proc)
        self.proc.stdout.close()


def stop(server: JackServer) -> None:
    """Stop jackd; this process stays pointed at its name (``JackServer.stop`` points it back where it was)."""
    server.stop()
    os.environ.update(JACK_DEFAULT_SERVER=server.name, JACK_NO_START_SERVER="1")


def restart(server: JackServer) -> JackServer:
    """A new jackd under the stopped one's name (stopped first if it still runs), as QjackCtl restarts it."""
    stop(server)
    restarted = JackServer(server.log.parent)
    restarted.name = server.name
    return restarted.start()


def restart_story(folder: Path, song: Path) -> None:
    """Pads on a JACK server, the server restarted under the same name, pads on the new one; raises AssertionError
    when something is off."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = JackServer(folder).start()
    pads = None

    async def press_and_see(r, jobs: int) -> list[int]:
        await until(lambda: r.frontend.input is not None and r.frontend.output is not None, 10,
                    "the controller's ports to be opened")
        assert pads.ask("join") == "joined"
        assert pads.ask("note 36 10") == "pressed"
        await until(lambda: len(r.jobs()) == jobs, what="the pad's job")
        await r.service.drain()
        return await pads.leds(36, [127] + DONE)

    async def story():
        nonlocal server, pads
        async with rig(folder, song) as r:
            pads = ControllerProcess(server)
            assert await press_and_see(r, 1) == [127] + DONE
            stop(server)  # the producer restarts JACK: its clients (the controller's too) go with it...
            await until(lambda: r.frontend.input is None and r.frontend.output is None, 10,
                        "the frontend to let go of the dead server's ports")
            pads.close()
            server = restart(server)
            pads = ControllerProcess(server)  # the controller joins the new server under the same name
            assert await press_and_see(r, 2) == [127] + DONE
            pads.close()  # unplugged; then JACK restarts while the frontend waits for it
            await until(lambda: r.frontend.input is None, 10, "the frontend to let go of the unplugged controller")
            server = restart(server)
            pads = ControllerProcess(server)
            assert await press_and_see(r, 3) == [127] + DONE
            pads.close()
            return r.jobs()

    try:
        jobs = asyncio.run(story())
    finally:
        if pads is not None:
            pads.close()
        server.stop()
    assert len(jobs) == 3 and all(job.origin["kind"] == "midi" for job in jobs)


def test_after_the_jack_server_restarts_the_pads_work_again_without_restarting_the_daemon(tmp_path, demo_song_path):
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    story = ("import sys; from pathlib import Path; from tests.frontends.test_midi_jack_restart import restart_story; "
             "restart_story(Path(sys.argv[1]), Path(sys.argv[2]))")
    child = subprocess.run([sys.executable, "-c", story, str(tmp_path), str(demo_song_path)], cwd=ROOT,
                           env=daemon_environment(), capture_output=True, text=True, timeout=180, check=False,
                           preexec_fn=ask_to_die_with_parent)
    log = child.stderr
    assert child.returncode == 0, log[-4000:]
    assert log.count("the MIDI server went away") == 2, log[-4000:]  # once per restart
    assert log.count("the MIDI server is back") == 2, log[-4000:]
