"""A producer's studio for voice stories and the voice bench: a private jackd (dummy driver) carrying the pads' MIDI,
a microphone (a JACK client playing espeak-ng's speech, over planetblupi music if asked) and the audition's output
(a recording JACK client); the daemon as its own process with the fake MusicGPT as its default backend, REAPER's
transport feedback, and an inpaint already delivered by the embedded engine."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bridge.client import BridgeClient
from bridge.demo_song import make_song
from bridge.frontends.osc_wire import decode, encode
from osc_schema import parse_reply
from tests.audition.tape import Tape
from tests.conftest import DaemonProcess, Project, free_udp_port, require_tool
from tests.fakes.musicgpt import FakeMusicGPT
from tests.frontends.jack import Controller, JackServer, opened
from tests.songs import real_music

RATE, PERIOD = 48000, 1024  # -p 1024: no xruns on 2 busy cores
TALK, LISTEN, CONFIRM = 60, 61, 62
PADS = f"""\
[[pad]]
note = {TALK}
action = "talk"

[[pad]]
note = {LISTEN}
action = "listen"

[[pad]]
note = {CONFIRM}
action = "confirm"

[presets.warm_strings]
prompt = "warm strings"
backend = "local"
"""
MUSIC = "music003.ogg"  # planetblupi's (tests.songs.real_music)
KEY = "fake-key-voice-0123456789"
CURSOR, TEMPO = 4.0, 120.0  # REAPER's play cursor (seconds) and tempo: bar 3 starts at the cursor


class Mouth:
    """A microphone stand-in: a JACK client that plays a recording into its one output port, then silence."""

    def __init__(self, name: str):
        import jack

        self.client = opened(lambda: jack.Client(name, no_start_server=True))
        self.port = self.client.outports.register("out")
        self._audio: np.ndarray | None = None
        self._position = 0
        self._done = threading.Event()
        self.client.set_process_callback(self._play)
        self.client.activate()

    def _play(self, frames: int) -> None:
        out, audio = self.port.get_array(), self._audio
        if audio is None:
            out.fill(0.0)
            return
        chunk = audio[self._position:self._position + frames]
        out[:len(chunk)] = chunk
        out[len(chunk):] = 0.0
        self._position += frames
        if self._position >= len(audio):
            self._audio = None
            self._done.set()

    def say(self, audio: np.ndarray) -> None:
        """Play ``audio`` (float32 at the server's rate) and return once it has all been played."""
        self._done.clear()
        self._position = 0
        self._audio = audio
        assert self._done.wait(len(audio) / RATE + 60), "the microphone stand-in was not played"

    def connect_to_portaudio(self, timeout: float) -> None:
        """Connect to the inputs of PortAudio's JACK client (the daemon's default input), once it has opened."""
        deadline = time.monotonic() + timeout
        while not (inputs := self.client.get_ports("PortAudio", is_audio=True, is_input=True)):
            assert time.monotonic() < deadline, "the daemon opened no PortAudio input"
            time.sleep(0.1)
        for port in inputs:
            self.client.connect(self.port, port)

    def wait_listened_to(self, timeout: float) -> None:
        """Wait until the daemon's voice input is connected to the microphone: it has opened, and the recogniser,
        loaded before it, is ready."""
        deadline = time.monotonic() + timeout
        while not self.client.get_all_connections(self.port):
            assert time.monotonic() < deadline, "the daemon's voice input did not open"
            time.sleep(0.05)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def speech(text: str, folder: Path, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    """espeak-ng saying ``text``, at the JACK server's rate, with a breath of silence either side."""
    path = Path(folder) / f"{uuid.uuid4().hex[:6]}.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    audio, rate = sf.read(str(path), dtype="float32")
    path.unlink()
    gap = np.zeros(round(0.3 * RATE), np.float32)
    return np.concatenate([gap, soxr.resample(audio, rate, RATE).astype(np.float32), gap])


def music(seconds: float, start: float = 40.0) -> np.ndarray:
    """planetblupi music, mono, at the server's rate."""
    audio, rate = real_music(MUSIC, seconds, start)
    return soxr.resample(audio.mean(axis=1), rate, RATE).astype(np.float32)


class Ear:
    """Where the daemon sends /bridge/heard ([voice] reply_port): a UDP socket read on demand (no thread)."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    def next(self, timeout: float = 30.0) -> dict | None:
        """The next /bridge/heard's values, or None when none came in ``timeout`` seconds."""
        self.socket.settimeout(timeout)
        try:
            data = self.socket.recv(65536)
        except TimeoutError:
            return None
        [(address, args)] = decode(data)
        name, values = parse_reply(address, args)
        assert name == "heard", name
        return values

    def drain(self) -> list[dict]:
        """Every /bridge/heard already received."""
        found = []
        while (values := self.next(timeout=0.05)) is not None:
            found.append(values)
        return found

    def close(self) -> None:
        self.socket.close()


class Studio:
    def __init__(self, project: Project, pads: Controller, mouth: Mouth, tape: Tape, fake: FakeMusicGPT,
                 folder: Path, delivered: str, ear: Ear):
        self.project, self.pads, self.mouth, self.tape, self.fake, self.folder = (project, pads, mouth, tape, fake,
                                                                                  folder)
        self.ear = ear
        self.delivered = delivered  # the job id of the inpaint the embedded engine delivered

    def hold(self, note: int = TALK) -> int:
        """Press a talk pad and wait until it is lit (recording); the LED values seen before, for ``answer``."""
        import mido

        before = len(self.pads.led_values(note))
        self.pads.send(mido.Message("note_on", note=note, velocity=100))
        assert self.pads.wait_for_leds(lambda p: len(p.led_values(note)) > before), "the talk pad did not light"
        return before

    def let_go(self, note: int = TALK) -> float:
        """Release a talk pad; the time.monotonic() of the release."""
        import mido

        released = time.monotonic()
        self.pads.send(mido.Message("note_off", note=note))
        return released

    def talk(self, audio: np.ndarray, note: int = TALK) -> str:
        """Hold the talk pad, say ``audio`` once it is lit, let go; "done" or "failed" as its LED then flashes."""
        before = self.hold(note)
        self.mouth.say(audio)
        self.let_go(note)
        return self.answer(note, before)

    def answer(self, note: int, before: int) -> str:
        """Wait for a pad's flash to end (its LED off twice in a row: the flash's last off, then settled);
        "done" for two flashes, "failed" for five."""
        def settled(pads) -> bool:
            values = pads.led_values(note)[before:]
            return len(values) >= 3 and values[-2:] == [0, 0]

        assert self.pads.wait_for_leds(settled, timeout=60), str(self.pads.led_values(note)[before:])
        return "done" if self.pads.led_values(note)[before:].count(0) == 3 else "failed"

    def first_light(self, note: int, since: float) -> float:
        """The time.monotonic() of the first LED message a note pad was sent at or after ``since``."""
        return next(t for t, m in list(self.pads.leds) if t >= since and m.type == "note_on" and m.note == note)

    def heard_audition(self, since: int, timeout: float = 30.0) -> bool:
        """Whether the audition output carries sound in a block recorded after block ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.audition_sounded(since):
                return True
            time.sleep(0.05)
        return False

    def audition_sounded(self, since: int) -> bool:
        return any(np.abs(block).max() > 0.01 for _, _, block in self.tape.blocks[since:])

    def job_state(self, job_id: str) -> str:
        with BridgeClient("127.0.0.1", self.project.port) as client:
            client.send("status", job_id=job_id)
            reply = client.wait_for(lambda r: r.name == "state" and r.args[0] == job_id, timeout=10)
        assert reply is not None, f"no state for {job_id}"
        return reply.args[1]


@contextmanager
def studio(root: Path, voice_input: str = "jack"):
    """The studio, torn down in reverse (daemon, fake, JACK clients, jackd) however the story ends. ``voice_input``
    "portaudio": the daemon listens through the system's default input, PortAudio's, which is this JACK server
    (PortAudio's JACK host API, Debian's libportaudio2): the microphone is connected to it once it opens."""
    for tool in ("jackd", "jack_lsp", "espeak-ng"):
        require_tool(tool)
    with ExitStack() as stack:
        server = JackServer(root, period=PERIOD, rate=RATE).start()
        stack.callback(server.stop)
        pads = Controller(f"pads-{server.name[-6:]}")  # before the clients with Python callbacks: see Tape
        stack.callback(pads.close)
        tape = Tape()
        stack.callback(tape.close)
        mouth = Mouth(f"mouth-{server.name[-6:]}")
        stack.callback(mouth.close)
        fake = FakeMusicGPT(api_key=KEY, time_scale=0.01, eta=20).start()
        stack.callback(fake.stop)
        fake.slow_factor = 10000.0  # a paid job runs until it is cancelled
        project = Project(root / "project", make_song(root / "song.wav", seconds=30.0, sample_rate=RATE))
        reaper_port = free_udp_port()
        ear = Ear()
        stack.callback(ear.close)
        (project.root / "pads.toml").write_text(PADS, encoding="utf-8")
        ports = ", ".join(f'"{port}"' for port in tape.ports)
        project.write_config(f'backend = "musicgpt"\n[musicgpt]\nbase_url = "{fake.url}"\n'
                             f'[audition]\njack_server = "{server.name}"\njack_ports = [{ports}]\n'
                             f'[voice]\nenabled = true\nreply_port = {ear.port}\n'
                             + (f'input = "jack"\njack_server = "{server.name}"\njack_port = "{mouth.port.name}"\n'
                                if voice_input == "jack" else 'input = "portaudio"\n') +
                             f'[midi]\nport = "{pads.name}-pads*"\noutput_port = "{pads.name}-leds*"\n'
                             'mapping = "pads.toml"\napi = "UNIX_JACK"\npoll_interval = 0.2\n'
                             f'[midi.daw]\nreaper_port = {reaper_port}\n')
        daemon = DaemonProcess(project, env={"MUSICGPT_API_KEY": KEY}).start()
        stack.callback(daemon.stop)
        pads.wait_joined(timeout=30)  # the daemon's MIDI client may open late on a loaded machine
        if voice_input == "portaudio":
            mouth.connect_to_portaudio(timeout=30)
        else:  # the voice starts after the pads: a story's first press must not come before it listens
            mouth.wait_listened_to(timeout=60)
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="",
                                        backend="local", num_outputs=2, timeout=120)
            assert outcome.name == "done", outcome
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:  # what REAPER's OSC feedback sends
            for address, value in (("/tempo/raw", TEMPO), ("/time", CURSOR)):
                reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        yield Studio(project, pads, mouth, tape, fake, root, outcome.args[0], ear)
