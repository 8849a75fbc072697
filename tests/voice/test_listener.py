"""A producer talks to the daemon through a pad: while the talk pad is held, what reaches the daemon's voice input
is decoded and acted on like a pad press; with the pad released, music and talk on the input do nothing; a command
that would spend MusicGPT credits waits for "bridge yes confirm" or the confirm pad. Each take's outcome is
sent as /bridge/heard to the [voice] reply_port. (The studio: tests/voice/studio.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from bridge.client import BridgeClient
from bridge.voice.listener import Take
from osc_schema import DECISIONS_FOLDER
from tests.conftest import ROOT, Project, daemon_environment
from tests.voice.studio import CONFIRM, LISTEN, RATE, TALK, music, speech, studio


def test_a_take_holds_only_what_came_while_armed_and_never_grows():
    take = Take(frames=10)
    take.write(np.ones(4, np.float32))  # before the press: dropped
    take.arm()
    assert len(take.disarm()) == 0  # pressed and let go before the audio callback ran: nothing
    take.arm()
    for value in (1.0, 2.0, 3.0):
        take.write(np.full(4, value, np.float32))  # the third block overflows the buffer: its tail is dropped
    heard = take.disarm()
    take.write(np.full(4, 9.0, np.float32))  # after the release: dropped
    assert heard.tolist() == [1.0] * 4 + [2.0] * 4 + [3.0] * 2
    take.arm()
    take.write(np.full(3, 5.0, np.float32))
    assert take.disarm().tolist() == [5.0] * 3  # a new take starts empty
    assert heard.tolist()[-1] == 3.0  # and the one handed over before is a copy, untouched


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    pytest.importorskip("jack")  # JACK-Client
    pytest.importorskip("pocketsphinx")
    with studio(tmp_path_factory.mktemp("voice")) as running:
        yield running


def test_with_the_talk_pad_released_music_and_talk_on_the_input_do_nothing(room):
    command = speech("bridge audition two", room.folder)
    bed = music(len(command) / RATE + 4.0)
    bed[RATE:RATE + len(command)] += command * 3  # the command well above the music
    heard_before = len(room.tape.blocks)
    room.ear.drain()
    room.mouth.say(bed)
    # Takes are decoded one at a time, in order: once a silent press is answered, anything recorded before it was too.
    assert room.talk(np.zeros(RATE // 2, np.float32)) == "failed"
    assert not room.audition_sounded(heard_before)
    assert sum(room.fake.submit_requests.values()) == 0
    # One take, the silent press's, was heard, and it was rejected: the released pad recorded nothing.
    [silent] = room.ear.drain()
    assert (silent["outcome"], silent["command"]) == ("rejected", "")


def test_a_held_talk_pad_auditions_the_variant_it_names(room):
    heard_before = len(room.tape.blocks)
    room.ear.drain()
    assert room.talk(speech("bridge audition two", room.folder)) == "done"
    assert room.heard_audition(heard_before)
    heard = room.ear.next()  # what a control surface is told
    assert (heard["text"], heard["outcome"]) == ("bridge audition two", "accepted")
    assert json.loads(heard["command"]) == {"command": "audition", "variant": 2}
    assert 0 < heard["confidence"] <= 1
    with BridgeClient("127.0.0.1", room.project.port) as client:
        client.send("audition", job_id="last", what="stop")
        assert client.wait_for(lambda r: r.name == "auditioning", timeout=10) is not None


def test_bridge_keep_keeps_the_delivered_job_as_the_keep_pad_would(room):
    room.ear.drain()
    assert room.talk(speech("bridge keep", room.folder)) == "done"
    assert room.ear.next()["outcome"] == "accepted"
    published = room.project.drop / DECISIONS_FOLDER / f"{room.delivered}.json"
    decision = json.loads(published.read_text(encoding="utf-8"))
    assert (decision["job_id"], decision["decision"]) == (room.delivered, "keep")


def test_the_listen_pad_hears_cancel_and_the_running_job_stops(room):
    with BridgeClient("127.0.0.1", room.project.port) as client:
        client.send("extend", source=str(room.project.song), extend_after=10.0, duration=4.0, prompt="guitar",
                    backend="musicgpt")
        accepted = client.wait_for(lambda r: r.name == "accepted", timeout=30)
    job = accepted.args[1]
    deadline = time.monotonic() + 30
    while room.job_state(job) not in ("submitted", "generating") and time.monotonic() < deadline:
        time.sleep(0.1)
    before = len(room.pads.led_values(LISTEN))
    room.pads.note(LISTEN)  # pressed and let go at once: it listens for a few seconds
    assert room.pads.wait_for_leds(lambda p: len(p.led_values(LISTEN)) > before)
    room.mouth.say(speech("bridge cancel", room.folder))
    assert room.answer(LISTEN, before) == "done"
    assert room.job_state(job) == "cancelled"
    heard = room.ear.drain()
    assert [(h["text"], h["outcome"]) for h in heard] == [("bridge cancel", "accepted")]


def test_a_spoken_preset_name_runs_the_command_with_that_preset(room):
    """The pads' [presets.warm_strings] (prompt "warm strings", the embedded engine) said as "with warm strings"."""
    room.ear.drain()
    assert room.talk(speech("bridge inpaint the last two bars with warm strings", room.folder)) == "done"
    heard = room.ear.next()
    assert heard["outcome"] == "accepted", heard
    assert json.loads(heard["command"]) == {"command": "inpaint", "bars": 2, "anchor": "last", "preset": "warm_strings"}
    job = heard["message"].removeprefix("job ")
    deadline = time.monotonic() + 60
    while room.job_state(job) not in ("delivered", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.2)
    manifests = [json.loads(path.read_text(encoding="utf-8")) for path in room.project.drop.glob("*.json")]
    ours = [m for m in manifests if m.get("job_id") == job]
    assert ours and all(m["request"]["prompt"] == "warm strings" and m["backend"] == "local" for m in ours)
    # The last two whole bars before the cursor (4.0 s at 120 BPM in 4/4: bars of 2 s) are 0-4 s of the song.
    assert (ours[0]["source"]["start"], ours[0]["source"]["end"]) == (0.0, 4.0)


def test_a_paid_command_waits_for_confirmation_and_is_dropped_without_it(room):
    posts = sum(room.fake.submit_requests.values())
    extend = speech("bridge extend the next two bars", room.folder)
    room.ear.drain()
    # Not confirmed: the talk pad stays lit a few seconds, then flashes failure, and nothing reached MusicGPT.
    assert room.talk(extend) == "failed"
    assert sum(room.fake.submit_requests.values()) == posts
    waited, dropped = room.ear.drain()
    assert (waited["outcome"], dropped["outcome"], dropped["message"]) == ("waiting", "dropped", "not confirmed in time")
    assert "bridge yes confirm" in waited["message"]
    assert json.loads(waited["command"]) == {"command": "extend", "bars": 2, "anchor": "next"}
    # The confirm pad with nothing waiting says so.
    before = len(room.pads.led_values(CONFIRM))
    room.pads.note(CONFIRM)
    assert room.answer(CONFIRM, before) == "failed"

    # Confirmed by voice: the extension is submitted, once.
    before = room.hold()
    room.mouth.say(extend)
    room.let_go()
    waiting = before + 2  # lit while recording, lit again while the command waits
    assert room.pads.wait_for_leds(lambda p: len(p.led_values(TALK)) >= waiting, timeout=30)
    room.hold()
    room.mouth.say(speech("bridge yes confirm", room.folder))
    room.let_go()
    deadline = time.monotonic() + 30
    while sum(room.fake.submit_requests.values()) == posts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dict(room.fake.submit_requests) == {"extend": posts + 1}
    waited, confirmed = room.ear.drain()
    assert (waited["outcome"], confirmed["outcome"]) == ("waiting", "confirmed")
    assert confirmed["text"] == "bridge extend the next two bars" and confirmed["message"].startswith("job ")


def test_voice_without_pads_is_refused_at_start_in_one_line(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config("[local]\nwarm_up = false\n[voice]\nenabled = true\n")
    done = subprocess.run([sys.executable, "-m", "bridge", "serve", "--config", str(project.config)], cwd=ROOT,
                          env=daemon_environment(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    refusal = [line for line in (done.stdout + done.stderr).splitlines() if "[voice] enabled" in line]
    assert len(refusal) == 1 and refusal[0].endswith("[voice] enabled = true: needs [midi] with a talk or listen pad")
