"""The voice input listens from a process of its own: whatever holds the daemon's Python up, JACK reports no late
cycle to the producer's DAW. (A module of its own: libjack mixes up two servers' ports in one process, and the
listener's stories keep the studio's server running.)"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from bridge import audio_process
from bridge.lifeline import LifelineContext
from bridge.settings_schema import defaults
from bridge.voice.listener import Listener, Take, VoiceInputError, open_input
from tests.audition.tape import Tape, gil_hold, held
from tests.audition.test_player import run_story
from tests.conftest import require_tool, run_pausing
from tests.frontends.jack import JackServer

RATE, PERIOD = 48000, 1024



def listening_story(folder: str) -> None:
    """Open the voice input (JACK) and hold the GIL (``held``) with a take armed; write when, and the frames the
    take recorded meanwhile."""
    voice_input = open_input({**defaults("voice"), "input": "jack"})
    try:
        length = gil_hold()
        voice_input.take.arm()
        began = time.monotonic()  # the same clock in every process here (CLOCK_MONOTONIC)
        held(length)
        ended = time.monotonic()
        frames = len(voice_input.take.disarm())
        (Path(folder) / "take.txt").write_text(f"{began} {ended} {frames}")
    finally:
        voice_input.close()


def test_the_voice_input_records_every_cycle_while_the_daemons_python_is_held_up(tmp_path):
    # Its audio callback runs in every cycle, talk pad held or not, and ran in the daemon's process: whatever held the
    # daemon's GIL (a busy thread, a MIDI port opening) made it miss cycles, which JACK reports to every client as
    # late (a DAW marks them as xruns, and Ardour can stop recording on one), and the take lost what was said
    # meanwhile. The input now listens from a process of its own.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    pytest.importorskip("jack")  # JACK-Client
    server = JackServer(tmp_path, period=PERIOD, rate=RATE, sync=False).start()
    tape = Tape()  # another client of the server: the cycles it ran
    try:
        run_story("listening_story", str(tmp_path), module=__name__)
        began, ended, frames = map(float, (tmp_path / "take.txt").read_text().split())
        ran = sum(began <= heard <= ended for _, heard, _ in tape.blocks) * PERIOD
        assert frames >= 0.8 * ran, f"the take recorded {frames:.0f} frames while the server ran {ran}"
    finally:
        tape.close()
        server.stop()


def test_a_jack_server_with_no_room_for_the_voices_port_is_said_in_one_line(tmp_path):
    # As for the audition's output: JACK-Client's own error killed the input's process with a traceback, and the
    # producer was told 'the audio device's process ended (exit code 1)'.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path, period=1024, port_max=5).start()  # no room for a port of ours
    try:
        with pytest.raises(VoiceInputError) as refused:
            open_input({**defaults("voice"), "input": "jack", "jack_server": server.name})
        assert str(refused.value) == ("the JACK server would not take daw-bridge-voice's ports ('in': port "
                                      "registration failed)")
    finally:
        server.stop()


def test_an_input_whose_process_ended_is_opened_again_and_the_log_says_why(tmp_path, caplog):
    # The log said 'the JACK server went away' whatever had happened: here the input's process was killed (the
    # system short of memory, a crash in its audio library) and the server runs on.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    pytest.importorskip("jack")  # JACK-Client
    caplog.set_level(logging.INFO, "bridge.voice.listener")
    server = JackServer(tmp_path, period=1024, rate=RATE).start()
    listener = Listener({**defaults("voice"), "input": "jack", "jack_server": server.name}, lambda result, key: None)

    async def story() -> None:
        try:
            assert await listener._open()
            ended = listener.input
            os.kill(ended.pid, signal.SIGKILL)
            await asyncio.to_thread(ended._process.join)
            assert await listener._open()
            assert listener.input is not ended and listener.input.alive
        finally:
            await listener.close()

    try:
        asyncio.run(story())
    finally:
        server.stop()
    assert "voice: the input's process ended (killed by signal 9); opening it again" in caplog.messages


TAKE_FRAMES = 4096


def pausing_writer(pipe) -> None:
    """The input process's side of a Take, in a process of its own: write the blocks the test asks for, pausing
    before the given line of ``Take.write`` until the test has looked."""
    take = Take(TAKE_FRAMES, audio_process.received(pipe, Take.size(TAKE_FRAMES), writable=True))
    while True:
        value, pause_at = pipe.recv()
        if value is None:
            return
        run_pausing(pipe, Take.write, pause_at, lambda: take.write(np.full(64, value, np.float32)))
        pipe.send("written")


def test_a_take_let_go_of_as_its_first_block_lands_holds_none_of_the_take_before():
    # The callback marked a new take as taken up before it reset the take's length: a pad let go of in between (the
    # input in another process, on another core) got the previous take's length, and decoded the previous take's
    # audio again (its command ran twice). The release is tried before each line of the callback's first write.
    context = LifelineContext()
    pipe, theirs = context.Pipe()
    writer = context.Process(target=pausing_writer, args=(theirs,), daemon=True)
    writer.start()
    try:
        descriptor = audio_process.anonymous_file(Take.size(TAKE_FRAMES))
        audio_process.send_descriptor(pipe, descriptor, writer.pid)
        take = Take(TAKE_FRAMES, audio_process.mapped(descriptor, Take.size(TAKE_FRAMES), writable=True))
        for pause_at in count():
            take.arm()
            pipe.send((1.0, None))
            assert pipe.recv() == "written"
            assert list(take.disarm()) == [1.0] * 64  # the take before
            take.arm()
            pipe.send((2.0, pause_at))
            if pipe.recv() == "written":  # the write ran through before that line: every line was tried
                break
            heard = take.disarm()
            pipe.send("go")
            assert pipe.recv() == "written"
            assert set(heard.tolist()) <= {2.0}, f"let go of before line {pause_at} of the write: {heard[:4]}..."
        assert pause_at > 5
    finally:
        pipe.send((None, None))
        writer.join(10)
        context.cut()
        writer.join(10)
        pipe.close()
