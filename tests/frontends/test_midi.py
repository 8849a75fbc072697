"""A producer presses pads on a MIDI controller: the current selection is inpainted or extended, LEDs show how it went.

MIDI travels through a real JACK server (``jackd --no-realtime -d dummy``) between real JACK clients; DAW feedback
arrives over real UDP, from ``oscsend`` (liblo) for REAPER and from a stand-in that answers like AbletonOSC.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import mido
import pytest
from pythonosc.osc_packet import OscPacket

from bridge.audio.region import read_region
from bridge.audio.wavio import write_atomic
from bridge.backends.base import Backend
from bridge.client import BridgeClient
from bridge.commands.midi import add_arguments, context_lines, midi
from bridge.config import Config, ConfigError
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.daemon import make_backends
from bridge.decisions import Decisions
from bridge.exceptions import TransientError
from bridge.frontends.ableton import AbletonClient, AbletonSettings
from bridge.frontends.bars import Transport
from bridge.frontends.daw_feedback import AbletonFeedback
from bridge.frontends.midi import MidiFrontend, MidiSettings, match_port, midi_backend
from bridge.frontends.midi_mapping import MappingError, load_mapping, parse_mapping
from bridge.frontends.osc import OscFrontend, encode
from bridge.models import Rendered, State
from tests.conftest import DaemonProcess, Project, free_udp_port, fuse_share, require_tool
from tests.frontends.jack import Controller, jack  # noqa: F401  (jack is a fixture)

ROOT = Path(__file__).resolve().parents[2]

MAPPING = """\
[presets.guitar]
prompt = "soft guitar solo"
num_outputs = 1

[[pad]]
name = "inpaint"
note = 36
channel = 10
command = "inpaint"
preset = "guitar"

[[pad]]
note = 37
command = "extend"
duration = 10
num_outputs = 1

[[pad]]
cc = 20
command = "inpaint"
num_outputs = 1

[[pad]]
program = 3
command = "inpaint"
num_outputs = 1

[[pad]]
note = 40
action = "cancel"

[[pad]]
note = 41
action = "retry"

[[pad]]
note = 42
action = "rerun_other_backend"
"""
DONE = [127, 0, 127, 0, 0]  # two flashes, then off
FAILED = [127, 0] * 5 + [0]  # five flashes, then off


class HeldBackend(Backend):
    """Hands back the source's own audio as the "generated" span once the test lets it go (or fails on request)."""

    resubmit_safe = True

    def __init__(self, name: str):
        self.name = name
        self.gate: asyncio.Event | None = None  # not "release": that is Backend.release(job_id)
        self.fail_next = 0
        self.submits = 0

    async def submit(self, spec, prepared):
        self.submits += 1
        return {"task_id": f"{self.name}-{self.submits}"}

    async def wait(self, spec, prepared, receipt, workdir, progress):
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("the generator is unavailable (HTTP 503)")
        start = max(0.0, spec.edit_start - spec.handle)
        end = min(spec.edit_end + spec.handle, spec.source_info.duration)
        audio, sr = read_region(spec.source, start, end)
        path = write_atomic(workdir / "v1.wav", audio, sr, subtype="FLOAT")
        return [Rendered(1, path, start, {"handle": spec.handle, "joins": []}, {})]


@dataclass
class Rig:
    service: JobService
    frontend: MidiFrontend
    backends: dict
    song: Path
    config: Config

    def jobs(self):
        return sorted(self.service.journal.recent(), key=lambda r: r.created)


@asynccontextmanager
async def rig(tmp_path: Path, song: Path, midi: dict | None = None, mapping: str = MAPPING, selection=True,
              engine: bool = False, ableton=None, decisions: bool = False, captures: Path | None = None):
    """An in-process daemon core (as bridge/daemon.py builds it) with the OSC and MIDI frontends started on it.

    ``engine``: the daemon's own backends (the embedded engine) instead of two held stand-ins; ``decisions``: the
    choose/keep/discard pads work; ``captures``: the plugin's captures folder, inside ``tmp_path/"project"``.
    """
    project = tmp_path / "project"
    (project / "audio").mkdir(parents=True)
    copy = project / "audio" / "mix.wav"
    shutil.copy(song, copy)
    (project / "pads.toml").write_text(mapping, encoding="utf-8")
    config = Config(state_dir=tmp_path / "state", project_roots=(project,), drop_folder=project / "daw-bridge",
                    inbox=tmp_path / "inbox", backend="local", osc_port=free_udp_port(), captures_dir=captures)
    journal = Journal(config.journal_path)
    backends = make_backends(config) if engine else {"local": HeldBackend("local"), "musicgpt": HeldBackend("musicgpt")}
    service = JobService(config, journal, backends)
    table = {"port": "padbox-pads*", "output_port": "padbox-leds*", "mapping": str(project / "pads.toml"),
             "api": "UNIX_JACK", "poll_interval": 0.1, **(midi or {})}
    osc = OscFrontend(service, config)
    frontend = None
    try:
        await osc.start()
        frontend = MidiFrontend(service, replace(config, midi=table), ableton=ableton,
                                decisions=Decisions(service) if decisions else None)
        await frontend.start()
        if selection:  # as a DAW script's /bridge/context would
            service.set_context({"source": str(copy), "start": 5.0, "end": 8.0})
        yield Rig(service, frontend, backends, copy, config)
    finally:
        if frontend is not None:
            frontend.close()
        osc.close()
        await service.close()
        for backend in backends.values():
            await backend.close()
        journal.close()


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return value


def presses(r, caplog) -> list[str]:
    """The pads heard pressing, by what they did: the jobs they started, then the presses that asked again what the
    pad's running job asks (logged, nothing new started; ``caplog`` at INFO for "bridge")."""
    again = re.findall(r"pad (.+): the same request is still running as job", caplog.text)
    return [j.origin["pad"] for j in r.jobs()] + again


async def leds(controller: Controller, note: int, expected: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until a pad's LED has been sent ``expected`` (in order); return what it was sent."""
    await asyncio.to_thread(controller.wait_for_leds, lambda c: len(c.led_values(note)) >= len(expected), timeout)
    await asyncio.sleep(0.05)  # anything extra would show up now
    return controller.led_values(note)


@pytest.fixture
def controller(jack):  # noqa: F811
    pads = Controller("padbox")
    yield pads
    pads.close()


@pytest.fixture
def no_midi_server(monkeypatch):
    """Point MIDI at a JACK server that does not exist: the daemon must run on without it."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"dawbridge-absent-{time.time_ns()}")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")


# -- mapping files -------------------------------------------------------------------------------------------------

BAD_MAPPINGS = [  # (story, mapping text, the line the error must point at, the reason it must give)
    ("variants out of range", MAPPING.replace("num_outputs = 1\n\n[[pad]]\nname", "num_outputs = 3\n\n[[pad]]\nname"),
     "num_outputs = 3", "preset 'guitar': num_outputs: 3 must be in range 1..2"),
    ("misspelt argument", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "extend"\npromt = "x"\n', 'promt = "x"',
     "did you mean 'prompt'?"),
    ("note past 127", MAPPING + '\n[[pad]]\nnote = 128\ncommand = "extend"\n', "note = 128",
     "note: 128 must be in range 0..127"),
    ("channel 0", MAPPING + '\n[[pad]]\nnote = 50\nchannel = 0\ncommand = "extend"\n', "channel = 0",
     "channel: 0 must be in range 1..16"),
    ("same pad twice", MAPPING + '\n[[pad]]\nnote = 36\nchannel = 10\naction = "cancel"\n', "[[pad]]",
     "note 36 on channel 10 is already mapped by the pad at line 5"),
    ("note and cc", MAPPING + '\n[[pad]]\nnote = 50\ncc = 3\naction = "cancel"\n', "cc = 3",
     "needs exactly one of note, cc"),
    ("unknown action", MAPPING + '\n[[pad]]\nnote = 50\naction = "explode"\n', 'action = "explode"',
     "action: 'explode' must be one of cancel, retry, rerun_other_backend"),
    ("unknown command", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "ping"\n', 'command = "ping"',
     "must be one of inpaint, extend"),
    ("reversed range", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "inpaint"\nstart = 5.0\nend = 2.0\n', "end = 2.0",
     "end: 2.0 must be greater than start (5.0)"),
    ("unknown preset", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "inpaint"\npreset = "piano"\n', 'preset = "piano"',
     "preset: 'piano' is not a [presets.NAME] table (presets: guitar)"),
    ("argument on an action", MAPPING + '\n[[pad]]\nnote = 50\naction = "retry"\nprompt = "x"\n', 'prompt = "x"',
     "an action pad takes no command arguments"),
    ("request id preset", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "extend"\nrequest_id = "x"\n',
     'request_id = "x"', "set by the MIDI frontend"),
    ("no trigger", MAPPING + '\n[[pad]]\ncommand = "extend"\n', "[[pad]]", "needs exactly one of note, cc, program"),
    ("LED value", MAPPING + "\n[leds]\non = 200\n", "on = 200", "on: 200 must be in range 0..127"),
    ("length on a bars pad", MAPPING + '\n[[pad]]\nnote = 50\ncommand = "extend"\nanchor = "next"\nbars = 2\n'
     'duration = 8.0\n', "duration = 8.0", "'duration': a pad with bars takes its range from them"),
    ("length from a bars pad's preset", '[presets.outro]\nduration = 8.0\n\n' + MAPPING + '\n[[pad]]\nnote = 50\n'
     'command = "extend"\npreset = "outro"\nanchor = "next"\nbars = 2\n', "duration = 8.0",
     "'duration': a pad with bars takes its range from them"),
    ("stray key", "tempo = 120\n" + MAPPING, "tempo = 120", "unknown table or key"),
    # a program change has no release: the talk pad's take never ended, and nothing said was ever decoded
    ("talk on a program change", MAPPING + '\n[[pad]]\nprogram = 5\naction = "talk"\n', 'action = "talk"',
     "action: 'talk' records while the pad is held, and a program change is never let go: map it to a note or a "
     "cc, or use 'listen' (3 s from the press)"),
]


def line_of(text: str, line: str) -> int:
    """The 1-based number of the last line of ``text`` that reads ``line``."""
    return max(number for number, found in enumerate(text.splitlines(), start=1) if found == line)


@pytest.mark.parametrize("story,text,line,reason", BAD_MAPPINGS, ids=[b[0] for b in BAD_MAPPINGS])
def test_a_bad_mapping_is_refused_with_its_line_and_reason(story, text, line, reason):
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "pads.toml")
    message = str(caught.value)
    assert message.startswith(f"pads.toml, line {line_of(text, line)}: "), message
    assert reason in message


def test_text_that_is_not_toml_is_refused_with_tomllibs_position():
    with pytest.raises(MappingError, match=r"pads.toml: not valid TOML: .*line 2"):
        parse_mapping('[[pad]]\nnote = \n', "pads.toml")


def test_a_prompt_that_mentions_a_table_header_does_not_shift_the_lines():
    text = ('[[pad]]\nnote = 1\ncommand = "extend"\nprompt = """\n[[pad]]\nlike this\n"""\n\n'
            '[[pad]]\nnote = 2\ncommand = "extend"\nduration = -1\n')
    with pytest.raises(MappingError, match=r"line 12: .*duration: -1 must be greater than 0"):
        parse_mapping(text, "pads.toml")


def test_the_example_mapping_in_the_docs_is_valid():
    mapping = load_mapping(ROOT / "docs" / "midi-mapping.example.toml")
    assert {pad.action for pad in mapping.pads} >= {"cancel", "retry", "rerun_other_backend"}
    assert {pad.trigger.kind for pad in mapping.pads} == {"note", "cc", "program"}


def test_the_daemon_refuses_to_start_the_midi_frontend_on_a_bad_mapping(tmp_path, demo_song_path, no_midi_server):
    async def story():
        async with rig(tmp_path, demo_song_path, mapping=MAPPING + '\n[[pad]]\nnote = 99\ncommand = "inpaint"\n'
                                                                 'num_outputs = 5\n'):
            pass

    line = line_of(MAPPING, 'action = "rerun_other_backend"') + 5
    expected = rf"pads.toml, line {line}: pad 8 \(note 99 on any channel\): num_outputs: 5"
    with pytest.raises(MappingError, match=expected):
        asyncio.run(story())


@pytest.mark.parametrize("table,message", [
    ({"output_port": "x"}, "[midi] port: required: name the controller's MIDI port"),
    ({"port": "x", "poll": 1}, "[midi] poll = 1: unknown key"),
    ({"port": "x", "poll_interval": 0}, "[midi] poll_interval = 0: must be in range 0.1..10 seconds"),
    ({"port": "x", "daw": {"host": "0.0.0.0", "reaper_port": 9011}},
     '[midi.daw] host = "0.0.0.0": must be a loopback address'),
    ({"port": "x", "daw": {"reaper_port": 70000}}, "[midi.daw] reaper_port = 70000: must be in range 1..65535"),
], ids=["no port", "unknown key", "poll interval", "feedback beyond loopback", "bad port"])
def test_midi_settings_are_checked_with_the_key_named(table, message):
    with pytest.raises(ConfigError) as caught:
        MidiSettings.from_table(table, Path("/home/me/.config/daw-bridge/config.toml"))
    assert message in str(caught.value)


def test_an_api_that_python_rtmidi_lacks_is_refused_with_the_ones_it_has():
    with pytest.raises(ConfigError, match=r"\[midi\] api 'COREMIDI' is not built into python-rtmidi here "
                                          r"\(available: .*UNIX_JACK"):
        midi_backend("COREMIDI")


def test_a_relative_mapping_path_is_read_beside_the_config_file():
    settings = MidiSettings.from_table({"port": "x", "mapping": "pads.toml"}, Path("/studio/daw-bridge.toml"))
    assert settings.mapping == Path("/studio/pads.toml")


def test_ports_match_by_name_glob_or_part_and_never_our_own():
    names = ["RtMidiIn Client:RtMidi input", "nanoPAD2:nanoPAD2 MIDI 1 20:0", "padbox-pads:pads"]
    assert match_port("padbox-pads:pads", names) == "padbox-pads:pads"
    assert match_port("nanopad2*", names) == "nanoPAD2:nanoPAD2 MIDI 1 20:0"
    assert match_port("MIDI 1", names) == "nanoPAD2:nanoPAD2 MIDI 1 20:0"
    assert match_port("RtMidi", names) is None
    assert match_port("launchpad", names) is None


# -- session context -----------------------------------------------------------------------------------------------

def test_a_pad_acts_on_reaper_loop_points_mapped_through_the_item_position(tmp_path, demo_song_path, no_midi_server):
    oscsend = require_tool("oscsend")
    reaper_port = free_udp_port()

    def reaper(address: str, seconds: float) -> None:  # what REAPER's native OSC sends when the loop moves
        subprocess.run([oscsend, "127.0.0.1", str(reaper_port), address, "f", str(seconds)], check=True)

    async def story():
        async with rig(tmp_path, demo_song_path, midi={"daw": {"reaper_port": reaper_port}}, selection=False) as r:
            context, service = r.frontend.context, r.service
            daw_script = BridgeClient("127.0.0.1", r.config.osc_port)
            daw_script.send("context", source=str(r.song), position=10.0)  # the item sits at 10 s
            await until(lambda: service.context.get("position") == 10.0, what="the /bridge/context message")
            reaper("/loop/start/time", 15.0)
            reaper("/loop/end/time", 18.5)
            await until(lambda: service.context.get("end") == 8.5, what="the loop end")
            assert (service.context["start"], context.range_from) == (5.0, "reaper")

            daw_script.send("context", position=12.0)  # the producer moved the item: the same loop maps anew
            await until(lambda: service.context.get("position") == 12.0, what="the new position")
            assert (context.selection()["start"], context.selection()["end"]) == (3.0, 6.5)

            daw_script.send("inpaint", source=str(r.song), start=1.0, end=2.0, prompt="", position=12.0,
                            item_id="{ITEM}")
            await until(lambda: context.range_from == "job", what="the command")
            assert context.selection()["start"] == 1.0  # the last command wins
            assert context.selection()["item_id"] == "{ITEM}"

            reaper("/loop/end/time", 32.0)  # ...until the loop moves again
            await until(lambda: service.context.get("end") == 20.0, what="the moved loop")
            r.frontend.received(mido.Message("note_on", note=36, channel=9, velocity=90))
            await until(lambda: len(r.jobs()) == 2, what="the pad's job")  # admitted in a thread
            pressed = r.jobs()[-1].job_id
            await service.drain()
            daw_script.close()
            return service.get(pressed), r.config

    pressed, config = asyncio.run(story())
    assert pressed.origin["kind"] == "midi" and pressed.state is State.DELIVERED
    assert (pressed.spec.start, pressed.spec.end, pressed.spec.position) == (3.0, 20.0, 12.0)
    assert pressed.spec.ids == {"item": "{ITEM}"} and pressed.spec.prompt == "soft guitar solo"
    shown = context_lines(config)
    assert shown[0].startswith("pads act on: mix.wav 3.00-20.00 s, item at 12.00 s on the timeline")
    assert "range from REAPER's loop points" in shown[1]


class FakeAbletonOSC:
    """Answers like AbletonOSC: getters reply to the asker's host on the reply port; listeners push every change."""

    def __init__(self, reply_port: int, **song):
        self.song = dict(song)
        self.reply_port = reply_port
        self.asked: list[str] = []
        self.listening: set[str] = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._host = None
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                data, (host, _) = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self._host = host
            message = OscPacket(data).messages[0].message
            self.asked.append(message.address)
            prop = message.address.rsplit("/", 1)[-1]
            if message.address.startswith(("/live/song/get/", "/live/song/start_listen/")):
                if "start_listen" in message.address:
                    self.listening.add(prop)
                if prop in self.song:  # a property the story does not set (the transport) goes unanswered
                    self._send(f"/live/song/get/{prop}", [self.song[prop]])

    def _send(self, address: str, args: list):
        self.sock.sendto(encode(address, args), (self._host, self.reply_port))

    def change(self, prop: str, value: float):
        """The producer drags the loop brace or changes the tempo in Live."""
        self.song[prop] = value
        if prop in self.listening:
            self._send(f"/live/song/get/{prop}", [value])

    def restart(self):
        """Live restarted: listeners are gone until the client asks again."""
        self.listening.clear()
        self._send("/live/startup", [])

    def close(self):
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("port", ["own", "shared with [ableton]"])
def test_abletons_loop_brace_in_beats_becomes_a_range_in_seconds(tmp_path, demo_song_path, no_midi_server, port):
    reply_port = free_udp_port()
    live = FakeAbletonOSC(reply_port, loop_start=16.0, loop_length=8.0, tempo=120.0, current_song_time=26.0,
                          signature_numerator=3.0)

    async def story():
        client = None
        if port != "own":  # the [ableton] frontend holds AbletonOSC's reply port; the pads follow Live through it
            client = AbletonClient(AbletonSettings(enabled=True, port=live.port, reply_port=reply_port))
            await client.start()
        daw = {"ableton": True, "ableton_port": live.port, "ableton_reply_port": reply_port, "ableton_interval": 5}
        try:
            async with rig(tmp_path, demo_song_path, midi={"daw": daw}, selection=False, ableton=client) as r:
                service = r.service
                service.set_context({"source": str(r.song)})
                await until(lambda: service.context.get("end") == 12.0, what="the loop brace")
                assert service.context["start"] == 8.0 and r.frontend.context.range_from == "ableton"
                await until(lambda: r.frontend.context.transport == Transport("ableton", 13.0, 120.0, 3.0),
                            what="the play cursor (26 beats) and the signature")
                live.change("tempo", 60.0)  # the same beats last twice as long
                await until(lambda: service.context.get("end") == 24.0, what="the new tempo")
                assert r.frontend.context.transport.cursor == 26.0
                live.restart()
                await until(lambda: live.listening == set(AbletonFeedback.PROPERTIES), what="listeners again")
                live.change("loop_start", 4.0)
                await until(lambda: service.context.get("start") == 4.0, what="the moved brace")
                assert service.context["end"] == 12.0
        finally:
            if client is not None:
                client.close()

    try:
        asyncio.run(story())
    finally:
        live.close()
    assert "/live/song/start_listen/loop_start" in live.asked and "/live/song/get/tempo" in live.asked


def test_the_context_survives_a_restart_and_the_daemon_runs_without_a_midi_server(tmp_path, demo_song_path,
                                                                                    no_midi_server, caplog):
    async def first():
        async with rig(tmp_path, demo_song_path) as r:
            assert r.frontend.input is None  # no MIDI server at all: the daemon runs on
            r.frontend.context.publish()

    asyncio.run(first())
    assert "MIDI ports cannot be listed" in caplog.text
    saved = json.loads((tmp_path / "state" / "context.json").read_text())
    assert (saved["context"]["start"], saved["context"]["end"], saved["range_from"]) == (5.0, 8.0, "osc")
    shutil.rmtree(tmp_path / "project")

    async def second():
        async with rig(tmp_path, demo_song_path, selection=False) as r:
            return r.frontend.context.selection(), r.frontend.context.range_from

    selection, range_from = asyncio.run(second())
    assert (selection["start"], selection["end"], range_from) == (5.0, 8.0, "restored")


# -- pads through JACK ---------------------------------------------------------------------------------------------

def test_a_pad_inpaints_the_selection_and_its_led_follows_the_job(tmp_path, demo_song_path, controller):
    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            r.backends["local"].gate = asyncio.Event()
            assert r.frontend.input is not None and r.frontend.output is not None
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=1)  # the right note on the wrong channel: nothing
            controller.note(36, channel=10)
            record = await until(lambda: r.service.active() and r.service.active()[0], what="the job")
            assert await leds(controller, 36, [127]) == [127]  # lit while it runs
            r.backends["local"].gate.set()
            await r.service.drain()
            assert await leds(controller, 36, [127] + DONE) == [127] + DONE
            channels = {m.channel for _, m in controller.leds}
            return record, r.jobs(), channels

    record, jobs, channels = asyncio.run(story())
    assert len(jobs) == 1 and record.state is State.DELIVERED
    spec = record.spec
    assert (spec.operation, spec.start, spec.end, spec.num_outputs) == ("inpaint", 5.0, 8.0, 1)
    assert spec.prompt == "soft guitar solo" and spec.backend == "local" and record.origin["kind"] == "midi"
    assert record.request_id.startswith("midi-") and len(record.manifests) == 1 and Path(record.manifests[0]).exists()
    assert channels == {9}  # the LED answers on the pad's own channel (10, zero-based 9)


def test_a_pad_that_bounces_while_its_job_runs_starts_no_second_job(tmp_path, demo_song_path, controller, caplog):
    """A worn pad sends its note twice in a few milliseconds: on a paid backend that was two paid jobs. A press that
    asks again what the pad's running job asks starts nothing; once the job is done, the next press is a new one."""
    caplog.set_level(logging.INFO, logger="bridge")

    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            r.backends["local"].gate = asyncio.Event()
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            controller.note(36, channel=10)
            await until(lambda: "nothing new started" in caplog.text, what="the second press heard")
            # the first press's job admitted (in a thread): until then a press is the same one being admitted, and
            # drain() has no job to wait for
            await until(lambda: r.jobs(), what="the first press's job")
            running = len(r.jobs())
            r.backends["local"].gate.set()
            await r.service.drain()
            controller.note(36, channel=10)
            await until(lambda: len(r.jobs()) == 2, what="a new job once the first is done")
            await r.service.drain()
            return running, r.jobs()

    running, jobs = asyncio.run(story())
    assert running == 1 and [j.state for j in jobs] == [State.DELIVERED] * 2


def test_a_press_without_a_selection_starts_nothing_and_flashes_failure(tmp_path, demo_song_path, controller, caplog):
    async def story():
        async with rig(tmp_path, demo_song_path, selection=False) as r:
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            return await leds(controller, 36, FAILED), r.jobs()

    flashed, jobs = asyncio.run(story())
    assert flashed == FAILED and jobs == []
    assert "source: is not known yet" in caplog.text


def test_control_changes_press_once_per_push_and_program_changes_press_too(tmp_path, demo_song_path, controller,
                                                                              caplog):
    caplog.set_level(logging.INFO, logger="bridge")

    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            await asyncio.to_thread(controller.wait_joined)
            cc = lambda value: controller.send(mido.Message("control_change", control=20, value=value))  # noqa: E731
            for value in (127, 0, 100, 10, 70, 80, 90, 127):  # push, release, push, then a knob swept up once
                cc(value)
            controller.send(mido.Message("program_change", program=3, channel=4))
            await until(lambda: len(presses(r, caplog)) == 4, what="four presses")
            await asyncio.sleep(0.2)  # no fifth
            await r.service.drain()
            return r.jobs(), presses(r, caplog)

    jobs, pressed = asyncio.run(story())
    assert len(pressed) == 4 and all(j.state is State.DELIVERED for j in jobs)


def test_the_cancel_pad_stops_the_running_job_and_its_led_goes_dark(tmp_path, demo_song_path, controller):
    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            r.backends["local"].gate = asyncio.Event()
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            record = await until(lambda: r.service.active() and r.service.active()[0], what="the job")
            await until(lambda: record.state is State.GENERATING, what="generation")
            controller.note(40)
            await r.service.drain()
            return record, await leds(controller, 36, [127, 0]), await leds(controller, 40, DONE)

    record, pad_led, cancel_led = asyncio.run(story())
    assert record.state is State.CANCELLED
    assert pad_led == [127, 0]  # dark at once: a cancel is no failure
    assert cancel_led == DONE  # the cancel pad shows it was heard


def test_retry_resumes_a_failed_job_and_rerun_uses_the_other_backend(tmp_path, demo_song_path, controller):
    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            local, musicgpt = r.backends["local"], r.backends["musicgpt"]
            local.fail_next = 1
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            await until(lambda: r.jobs() and r.jobs()[0].state is State.FAILED, what="the failure")
            assert await leds(controller, 36, [127] + FAILED) == [127] + FAILED
            failed = r.jobs()[0]
            controller.note(41)  # retry: the same job, from its task id
            await until(lambda: r.service.get(failed.job_id).state is State.DELIVERED, what="the retried job")
            assert await leds(controller, 41, [127] + DONE) == [127] + DONE
            controller.note(42)  # the same range and prompt again, on the other generator
            await until(lambda: len(r.jobs()) == 2, what="the rerun")
            await r.service.drain()
            return r.jobs(), local.submits, musicgpt.submits

    (first, rerun), local_submits, musicgpt_submits = asyncio.run(story())
    assert first.state is State.DELIVERED and local_submits == 1  # retried without submitting again
    assert rerun.state is State.DELIVERED and rerun.spec.backend == "musicgpt" and musicgpt_submits == 1
    assert (rerun.spec.start, rerun.spec.end, rerun.spec.prompt) == (first.spec.start, first.spec.end,
                                                                      first.spec.prompt)


def test_a_controller_plugged_in_later_is_picked_up_and_again_after_unplugging(tmp_path, demo_song_path,
                                                                               jack):  # noqa: F811
    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            assert r.frontend.input is None  # the daemon started without the controller
            for plug in range(2):
                pads = Controller("padbox")
                try:
                    await until(lambda: r.frontend.input is not None and r.frontend.output is not None, 5,
                                "the controller to be picked up")
                    await asyncio.to_thread(pads.wait_joined)
                    pads.note(36, channel=10)
                    await until(lambda: len(r.jobs()) == plug + 1, what="the job")
                    await r.service.drain()
                    assert await leds(pads, 36, [127] + DONE) == [127] + DONE
                finally:
                    pads.close()  # unplugged
                await until(lambda: r.frontend.input is None and r.frontend.output is None, 5,
                            "the frontend to let go of the vanished ports")
            return r.jobs()

    jobs = asyncio.run(story())
    assert [j.state for j in jobs] == [State.DELIVERED, State.DELIVERED]


def test_virtual_ports_joined_with_jack_connect(tmp_path, demo_song_path, jack, controller):  # noqa: F811
    async def story():
        async with rig(tmp_path, demo_song_path, midi={"virtual": True, "port": "pads in", "output_port": "leds out"}) \
                as r:
            ours = {name.split(":", 1)[1]: name for name in jack.connections() if name.startswith("daw-bridge")}
            jack.connect("padbox-pads:pads", ours["pads in"])
            jack.connect(ours["leds out"], "padbox-leds:leds")
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            await until(lambda: r.jobs(), what="the job")
            await r.service.drain()
            return await leds(controller, 36, [127] + DONE)

    assert asyncio.run(story()) == [127] + DONE


def test_virtual_ports_keep_their_names_while_the_audition_plays(tmp_path, demo_song_path, jack):  # noqa: F811
    """After a JACK restart the audition may open its client again before the MIDI frontend makes its ports again (a
    press over OSC at once); the ports must still get the names the producer's patchbay joins."""
    import jack as jack_client

    from bridge.audition.output import CLIENT_NAME

    async def story():
        async with rig(tmp_path, demo_song_path, midi={"virtual": True, "port": "pads in", "output_port": "leds out"}):
            return {name for name in jack.connections() if name.endswith(("pads in", "leds out"))}

    # The audition's client holds its name; without its process callback, which would hold up every MIDI client
    # opening meanwhile (rtmidi opens holding Python's lock, and jackd -S waits for that callback each cycle).
    audition = jack_client.Client(CLIENT_NAME, no_start_server=True)
    try:
        names = asyncio.run(story())
    finally:
        audition.close()
    assert names == {"daw-bridge:pads in", "daw-bridge-01:leds out"}


def test_midi_learn_writes_the_pressed_pad_into_the_mapping(tmp_path, controller, capsys):
    mapping = tmp_path / "pads.toml"
    config = Config(state_dir=tmp_path / "state", midi={"port": "padbox-pads", "api": "UNIX_JACK",
                                                        "mapping": str(mapping)})
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    def learn_while_pressing(*argv: str) -> int:
        result = []
        worker = threading.Thread(target=lambda: result.append(midi(config, parser.parse_args(["learn", *argv]))))
        worker.start()
        while worker.is_alive():  # the producer keeps hitting the pad until the learn says it heard it
            controller.note(45, channel=2)
            worker.join(0.05)
        return result[0]

    assert learn_while_pressing("--set", "prompt=warm pads", "--set", "num_outputs=1", "--name", "warm") == 0
    out = capsys.readouterr().out
    assert "heard note 45 on channel 2" in out
    pad = load_mapping(mapping).find("note", 45, 2)
    assert (pad.command, pad.args, pad.name) == ("inpaint", {"prompt": "warm pads", "num_outputs": 1}, "warm")
    before = mapping.read_text()

    assert learn_while_pressing("--action", "cancel") == 2
    assert "note 45 on channel 2 is already mapped by the pad at line" in capsys.readouterr().out
    assert mapping.read_text() == before  # nothing written for a refused entry

    assert midi(config, parser.parse_args(["ports"])) == 0
    listed = capsys.readouterr().out
    assert "padbox-pads:pads" in listed and "padbox-leds:leds" in listed


def test_a_note_runs_the_embedded_engine_and_the_led_reports_it(tmp_path, demo_song_path, controller):
    async def story():
        async with rig(tmp_path, demo_song_path, engine=True) as r:
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            job_id = (await until(lambda: r.jobs(), what="the job"))[0].job_id
            assert await leds(controller, 36, [127]) == [127]
            await r.service.drain()
            return r.service.get(job_id), await leds(controller, 36, [127] + DONE, timeout=30)

    record, led = asyncio.run(story())
    assert record.state is State.DELIVERED, record.error_message
    assert led == [127] + DONE
    manifest = json.loads(Path(record.manifests[0]).read_text())
    assert (manifest["backend"], manifest["source"]["start"], manifest["source"]["end"]) == ("local", 5.0, 8.0)
    assert manifest["request"]["prompt"] == "soft guitar solo"


# -- the daemon, end to end ----------------------------------------------------------------------------------------

def _daemon_runs_midi() -> bool:
    return "MidiFrontend" in (ROOT / "bridge" / "daemon.py").read_text()


@pytest.mark.skipif(not _daemon_runs_midi(), reason="bridge/daemon.py does not start the MIDI frontend yet")
def test_a_note_runs_the_embedded_engine_in_the_daemon_and_the_led_reports_it(tmp_path, demo_song_path,
                                                                                jack, controller):  # noqa: F811
    project = Project(tmp_path / "project", demo_song_path)
    (project.root / "pads.toml").write_text(MAPPING, encoding="utf-8")
    project.write_config('\n[midi]\nport = "padbox-pads*"\noutput_port = "padbox-leds*"\nmapping = "pads.toml"\n'
                         'api = "UNIX_JACK"\npoll_interval = 0.2\n')
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            client.send("context", source=str(project.song), start=12.0, end=15.0, position=4.0)
            assert client.ping(timeout=5)  # replies come in order: the context is set
        controller.wait_joined(timeout=30)  # the daemon found the controller and joined its ports
        controller.note(36, channel=10)
        assert controller.wait_for_leds(lambda c: c.led_values(36)[-len(DONE):] == DONE, timeout=300), \
            (controller.led_values(36), daemon.log.read_text())
    finally:
        daemon.stop()
    manifests = [json.loads(p.read_text()) for p in project.visible_drop_files() if p.suffix == ".json"]
    assert manifests and all(m["backend"] == "local" for m in manifests)
    placed = {(m["source"]["start"], m["source"]["end"], m["source"]["position"]) for m in manifests}
    assert placed == {(12.0, 15.0, 4.0)}


@asynccontextmanager
async def pressed_while_the_share_is_down(controller, note: int, server, osc_port: int):
    """Press ``note`` with the share of ``server`` (bindfs) stopped: the press's file call stuck there, the daemon
    still answers a ping; the body checks what the press has not done yet, then the share answers again. Where the
    press holds the event loop (the code before), the share answers after a minute, so the test fails instead of
    waiting for good."""
    from tests.conftest import share_down
    from tests.core.test_service_share import wait_for_a_stuck_file_call

    back = threading.Timer(60, server.send_signal, (signal.SIGCONT,))
    try:
        with share_down(server):
            back.start()
            controller.note(note, channel=10)
            await asyncio.to_thread(wait_for_a_stuck_file_call, os.getpid())
            with BridgeClient("127.0.0.1", osc_port) as client:
                assert await asyncio.to_thread(client.ping, 10)
            yield
    finally:
        back.cancel()


def test_a_pad_on_a_song_on_a_share_that_does_not_answer_holds_up_no_ping(tmp_path, demo_song_path, controller):
    """A pad's job was admitted on the event loop, which looked at its song: a song on a share whose server was down
    (bindfs stopped) froze the pads, OSC and every job. The press waits alone; its job runs once the share answers."""
    from tests.core.test_service_share import _UNCACHED

    bindfs = require_tool("bindfs")
    nas = tmp_path / "nas"
    nas.mkdir()
    shutil.copy(demo_song_path, nas / "mix.wav")

    async def story(server, mount):
        async with rig(tmp_path, demo_song_path) as r:
            await asyncio.to_thread(controller.wait_joined)
            r.service.set_context({"source": str(mount / "mix.wav"), "start": 5.0, "end": 8.0})
            async with pressed_while_the_share_is_down(controller, 36, server, r.config.osc_port):
                assert r.jobs() == []
            await until(lambda: r.jobs(), timeout=60, what="the job, once the share answers")
            await r.service.drain()
            assert await leds(controller, 36, [127] + DONE) == [127] + DONE
            return r.jobs()

    (tmp_path / "project").mkdir()
    mount = tmp_path / "project" / "nas"
    mount.mkdir()
    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        jobs = asyncio.run(story(server, mount))
    assert [(j.state, j.spec.source.name) for j in jobs] == [(State.DELIVERED, "mix.wav")]


def test_a_choose_pad_on_a_drop_folder_that_does_not_answer_holds_up_no_ping(tmp_path, demo_song_path, controller):
    """A choose, keep or discard pad read the job's last decision in its drop folder and wrote the new one there on
    the event loop: a drop folder on a share whose server went down after the delivery (bindfs stopped) froze the
    pads, OSC and every job. The press waits alone; the decision is published and the pad lit once it answers."""
    from tests.core.test_service_share import _UNCACHED

    bindfs = require_tool("bindfs")
    nas = tmp_path / "nas"
    nas.mkdir()
    choose = '\n[[pad]]\nnote = 51\naction = "choose_variant_1"\n'

    async def story(server):
        async with rig(tmp_path, demo_song_path, mapping=MAPPING + choose, decisions=True) as r:
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)
            await until(lambda: r.jobs(), what="the job")
            await r.service.drain()
            [job] = r.jobs()
            async with pressed_while_the_share_is_down(controller, 51, server, r.config.osc_port):
                assert not (nas / ".daw-bridge-decisions").exists()  # on the NAS itself: not written yet
            await until(lambda: any(m.type == "note_on" and m.note == 51 and m.velocity == 127
                                    for _, m in controller.leds), timeout=60, what="the chosen take's LED")
            return job.job_id

    mount = tmp_path / "project" / "daw-bridge"
    mount.mkdir(parents=True)
    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        job = asyncio.run(story(server))
    decided = json.loads((nas / ".daw-bridge-decisions" / f"{job}.json").read_text(encoding="utf-8"))
    assert (decided["decision"], decided["choice"], decided["seq"]) == ("choose", 1, 1)
