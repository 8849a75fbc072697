"""A private JACK server for MIDI tests and benchmarks: ``jackd --no-realtime -d dummy`` under a unique name.

JACK clients find their server through ``JACK_DEFAULT_SERVER``; a name of our own keeps parallel runs (and a
producer's own JACK) apart. ``JACK_NO_START_SERVER`` stops a client from starting a default server behind our back.

Two things keep MIDI lossless on a loaded test machine, where the server runs without realtime scheduling:
- sync mode (``-S``): each cycle waits for every client, instead of skipping one that is late and dropping the
  events it would have read (measured: 25 of 1000 notes lost with both cores busy in the default async mode, none
  with ``-S``);
- a new connection is used from a later cycle than the one that made it, so a note sent at once can still be lost
  (5 of 100 under load): ``Controller.wait_joined`` waits until JACK lists the connection and a few cycles more.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from bridge.lifeline import ask_to_die_with_parent


class JackServer:
    def __init__(self, log_dir: Path, period: int = 256, rate: int = 48000, sync: bool = True,
                 port_max: int | None = None):
        self.name = f"dawbridge-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.period = period
        self.rate = rate
        self.sync = sync  # False: a producer's default server, where a client late in a cycle is an xrun
        self.port_max = port_max  # --port-max: 5 leaves no room beside the dummy driver's four ports, 6 room for one
        self.log = Path(log_dir) / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self._saved: dict[str, str | None] = {}

    @property
    def env(self) -> dict:
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")

    def start(self, timeout: float = 15.0) -> "JackServer":
        """Start jackd and return once a client can connect; this process's own clients use it too."""
        with open(self.log, "w") as log:
            command = ["jackd", *(["-S"] if self.sync else []), "--no-realtime",
                       *(["--port-max", str(self.port_max)] if self.port_max else []), "-d", "dummy",
                       "-r", str(self.rate), "-p", str(self.period)]
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         preexec_fn=ask_to_die_with_parent)
        for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER"):
            self._saved[key] = os.environ.get(key)
            os.environ[key] = self.env[key]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if subprocess.run(["jack_lsp"], env=self.env, capture_output=True).returncode == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jackd did not come up within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()

    def connect(self, source: str, destination: str) -> None:
        """Join two ports with the ``jack_connect`` tool, as a producer (or their session manager) would."""
        subprocess.run(["jack_connect", source, destination], env=self.env, check=True, capture_output=True)

    def connections(self) -> dict[str, list[str]]:
        """Every port and the ports it is joined to (``jack_lsp -c``)."""
        out = subprocess.run(["jack_lsp", "-c"], env=self.env, check=True, capture_output=True, text=True).stdout
        found: dict[str, list[str]] = {}
        port = None
        for line in out.splitlines():
            if line.startswith((" ", "\t")):
                found.setdefault(port, []).append(line.strip())
            else:
                port = line.strip()
                found.setdefault(port, [])
        return found


def opened(make, attempts: int = 4, pause: float = 0.5):
    """``make()``, tried again when JACK refuses a new client: a server without realtime scheduling on a loaded
    machine can miss the handshake's deadline (CI saw ``MidiInJack::initialize: JACK server not running?`` from a
    server that had just answered ``jack_lsp``), as a controller plugged in at a busy moment would be retried."""
    for attempt in range(attempts):
        try:
            return make()
        except Exception:  # rtmidi raises SystemError/RuntimeError, JACK-Client jack.JackOpenError
            if attempt == attempts - 1:
                raise
            time.sleep(pause)


class Controller:
    """A hardware pad controller stand-in: one JACK client whose pads send, another whose LEDs listen.

    Closing it is unplugging it: its ports vanish from the JACK graph.
    """

    def __init__(self, name: str = "padbox"):
        import mido

        self.name = name
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", use_environ=False)
        self.leds: list[tuple[float, object]] = []
        self._lock = threading.Condition()
        self.pads = opened(lambda: backend.open_output("pads", client_name=f"{name}-pads"))
        self.led_port = opened(lambda: backend.open_input("leds", client_name=f"{name}-leds", callback=self._lit))

    def _lit(self, message) -> None:
        with self._lock:
            self.leds.append((time.monotonic(), message))
            self._lock.notify_all()

    def note(self, note: int, channel: int = 1, velocity: int = 100) -> None:
        """Press a pad that sends a note (channel 1..16)."""
        import mido

        self.pads.send(mido.Message("note_on", note=note, channel=channel - 1, velocity=velocity))
        self.pads.send(mido.Message("note_off", note=note, channel=channel - 1))

    def send(self, message) -> None:
        self.pads.send(message)

    def led_values(self, note: int) -> list[int]:
        """The values the LED of a note pad was sent, in order."""
        with self._lock:
            return [m.velocity for _, m in self.leds if m.type == "note_on" and m.note == note]

    def wait_for_leds(self, predicate, timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (checked on each LED message); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def wait_joined(self, timeout: float = 10.0) -> None:
        """Block until something is connected to both the pads and the LEDs (as JACK lists it), plus a few cycles."""
        ports = (f"{self.name}-pads:pads", f"{self.name}-leds:leds")
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout.splitlines()
            joined = {port for port, nxt in zip(out, out[1:] + [""]) if port in ports and nxt.startswith((" ", "\t"))}
            if joined == set(ports):
                time.sleep(0.05)
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{ports} not both connected: {out}")
            time.sleep(0.01)

    def close(self) -> None:
        self.pads.close()
        self.led_port.close()


@pytest.fixture(scope="module")
def jack(tmp_path_factory):
    """A JACK server of this module's own, with this process pointed at it."""
    from tests.conftest import require_tool

    for tool in ("jackd", "jack_lsp", "jack_connect"):
        require_tool(tool)
    server = JackServer(tmp_path_factory.mktemp("jack")).start()
    yield server
    server.stop()
