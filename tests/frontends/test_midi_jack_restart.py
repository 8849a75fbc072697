"""A producer changes the buffer size in QjackCtl while the daemon runs: the JACK server stops and a new one starts
under the same name. The pads must work again on the new server without restarting the daemon.

The story runs in a child process (libjack keeps per-process state about a server that went away, and the pytest
process goes on to host other tests' JACK clients), and the pad controller in a process of its own, as a hardware
controller's ports belong to another JACK client (a2jmidid, or jackd's own ALSA bridge).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido

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


def virtual_side(folder: Path, song: Path) -> None:
    """The daemon's side of the virtual-ports story: its MIDI frontend makes "pads in" and "leds out" for a
    controller to be joined to. Each line on stdin is answered with one JSON line: "made" waits until both ports
    exist and answers how many mido ports are open and how many of its threads Python did not start (libjack's);
    "gone" waits until the frontend let go of both; "jobs N" waits until N jobs started and ran, and answers their
    origins."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    def answer(value) -> None:
        print(json.dumps(value), flush=True)

    async def story():
        async with rig(folder, song, midi={"virtual": True, "port": "pads in", "output_port": "leds out"}) as r:
            answer("ready")
            while line := await asyncio.to_thread(sys.stdin.readline):
                command, *numbers = line.split()
                if command == "made":
                    await until(lambda: r.frontend.input is not None and r.frontend.output is not None, 10,
                                "the virtual ports to be made")
                    native = len(os.listdir("/proc/self/task")) - len(threading.enumerate())
                    ports = [o for o in gc.get_objects() if isinstance(o, mido.ports.BasePort) and not o.closed]
                    answer({"ports": len(ports), "threads": native})
                elif command == "gone":
                    await until(lambda: r.frontend.input is None and r.frontend.output is None, 10,
                                "the frontend to let go of the dead server's ports")
                    answer("gone")
                elif command == "jobs":
                    await until(lambda: len(r.jobs()) == int(numbers[0]), what="the pad's job")
                    await r.service.drain()
                    answer([job.origin for job in r.jobs()])

    asyncio.run(story())


def test_after_the_jack_server_restarts_the_virtual_ports_are_made_again_under_their_names(tmp_path, demo_song_path,
                                                                                        monkeypatch):
    """A controller (or a DAW) is joined to the daemon's own ports with jack_connect; after a JACK restart those
    ports must be there again, named as before, so the producer's session manager can join them again."""
    for tool in ("jackd", "jack_lsp", "jack_connect"):
        require_tool(tool)
    server = JackServer(tmp_path)
    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):  # restart() leaves this process pointed at it
        monkeypatch.setenv(key, server.env[key])
    server.start()
    side = ("import sys; from pathlib import Path; from tests.frontends.test_midi_jack_restart import virtual_side; "
            "virtual_side(Path(sys.argv[1]), Path(sys.argv[2]))")
    log = tmp_path / "daemon.log"
    with open(log, "w") as err:
        daemon = subprocess.Popen([sys.executable, "-c", side, str(tmp_path), str(demo_song_path)], cwd=ROOT,
                                  env=dict(daemon_environment(), **server.env), text=True, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=err, preexec_fn=ask_to_die_with_parent)
    pads = None

    def ask(command: str):
        daemon.stdin.write(command + "\n")
        daemon.stdin.flush()
        line = daemon.stdout.readline()
        assert line, f"the daemon's side ended ({daemon.wait()}):\n{log.read_text()[-4000:]}"
        return json.loads(line)

    def ours() -> dict[str, str]:
        """The daemon's virtual ports on the running server, by their port names: their full JACK names; once both
        are there."""
        deadline = time.monotonic() + 10
        while len(found := {name.split(":", 1)[1]: name for name in server.connections()
                            if name.startswith("daw-bridge")}) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def held() -> dict:
        """How many mido ports the daemon's side holds open, and how many threads libjack runs for it (one set a
        client): a dead server's client left open shows in both. Its files are not compared: the engine's workers
        and libjack (the semaphores of whatever clients are in the graph) open and close pipes and files meanwhile."""
        made = ask("made")
        return {"ports": made["ports"], "threads": made["threads"]}

    def settled(expected: dict) -> dict:
        """``held()`` once it is ``expected``, or after 10 s: libjack ends a closed client's threads on its own time,
        and a leak never comes back to what was open before."""
        deadline = time.monotonic() + 10
        while (now := held()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return now

    def press(jobs: int) -> list[dict]:
        """A controller joined to the daemon's ports presses its mapped pad; the origins of the jobs so far."""
        nonlocal pads
        pads = ControllerProcess(server)
        made = ours()
        server.connect("padbox-pads:pads", made["pads in"])
        server.connect(made["leds out"], "padbox-leds:leds")
        assert pads.ask("join") == "joined"
        assert pads.ask("note 36 10") == "pressed"
        origins = ask(f"jobs {jobs}")
        pads.close()
        pads = None
        return origins

    try:
        assert daemon.stdout.readline() == '"ready"\n', log.read_text()[-4000:]
        names = ours()
        assert set(names) == {"pads in", "leds out"}
        assert len(press(1)) == 1
        first = held()  # after a job: what running one leaves open for good is open
        assert first["ports"] == 2

        stop(server)  # the producer restarts JACK: the daemon sees it stopped and lets go of its ports...
        assert ask("gone") == "gone"
        server = restart(server)  # ...and makes them again on the new server, under the same names
        assert ours() == names
        assert settled(first) == first  # the dead server's clients were closed: no ports or threads left
        assert [origin["kind"] for origin in press(2)] == ["midi", "midi"]

        server = restart(server)  # at once this time: the daemon may never see JACK stopped
        assert ours() == names
        assert settled(first) == first
        assert len(press(3)) == 3
    finally:
        if pads is not None:
            pads.close()
        end_by_closing_stdin(daemon, timeout=60)
        daemon.stdout.close()
        server.stop()
    assert daemon.returncode == 0, log.read_text()[-4000:]
    assert log.read_text().count("the MIDI server went away") == 2, log.read_text()[-4000:]
    assert log.read_text().count("the MIDI server is back") == 2, log.read_text()[-4000:]
