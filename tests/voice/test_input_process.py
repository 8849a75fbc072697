"""The voice input listens from a process of its own: whatever holds the daemon's Python up, JACK reports no late
cycle to the producer's DAW. (A module of its own: libjack mixes up two servers' ports in one process, and the
listener's stories keep the studio's server running.)"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from bridge.settings_schema import defaults
from bridge.voice.listener import Listener, VoiceInputError, open_input
from tests.audition.tape import Tape, hold_the_gil, late_while_held
from tests.audition.test_player import run_story
from tests.conftest import require_tool
from tests.frontends.jack import JackServer

RATE = 48000



def listening_story(folder: str) -> None:
    """Open the voice input (JACK), hold the GIL with a take armed (``hold_the_gil``), then let go of the take and
    the input."""
    voice_input = open_input({**defaults("voice"), "input": "jack"})
    try:
        voice_input.take.arm()
        hold_the_gil(Path(folder) / "held.txt")
        voice_input.take.disarm()
    finally:
        voice_input.close()


def test_the_voice_input_makes_no_cycle_late_while_the_daemons_python_is_held_up(tmp_path):
    # Its audio callback runs in every cycle, talk pad held or not, and ran in the daemon's process: whatever held the
    # daemon's GIL (a busy thread, a MIDI port opening) made JACK report late cycles to every client, which a DAW
    # marks as xruns (and Ardour can stop recording on). The input now listens from a process of its own.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    pytest.importorskip("jack")  # JACK-Client
    server = JackServer(tmp_path, period=1024, rate=RATE, sync=False).start()
    tape = Tape()  # stands for the producer's DAW: another client of the server
    try:
        run_story("listening_story", str(tmp_path), module=__name__)
        late, seconds = late_while_held(tape, tmp_path / "held.txt")
        assert late <= seconds, f"{late} late cycles while the daemon's Python was held {seconds:.1f} s"
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
