"""The audition's output process (bridge.audition.sound_process): what the producer's presses get once it ended while
the daemon runs on (killed by the system for memory, crashed in its audio library) or could not open, and what its
callback reports to the daemon about what it plays."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from bridge.audition import Audition
from bridge.audition.mixer import Mixer
from bridge.audition.program import AuditionError
from bridge.audition.sound_process import _PLAYING, _SEEN
from bridge.lifeline import LifelineContext
from bridge.settings_schema import defaults
from tests.audition.test_player import audition_story, run_story
from tests.conftest import require_tool, run_pausing
from tests.frontends.jack import JackServer


def test_stop_after_the_output_process_ended_is_a_stop_and_the_next_press_plays(jack, tmp_path, caplog):
    # Stop sent its word to the ended process and failed with 'the output process ended; press again to open it
    # anew', at every stop press (a stop never opens the output) and in the decision listener (a traceback in the
    # log when the playing job was kept or discarded). Nothing plays there any more: that is a stop. The log said
    # 'the JACK server went away' for a process that had ended.
    caplog.set_level(logging.INFO, "bridge.audition.player")

    async def story(audition: Audition) -> None:
        await audition.act("last", "variant")
        ended = audition._output
        os.kill(ended.pid, signal.SIGKILL)
        await asyncio.to_thread(ended._process.join)
        stopped = await audition.act("last", "stop")
        assert stopped.playing == "stopped"
        playing = await audition.act("last", "variant")
        assert (playing.playing, playing.variant) == ("variant", 1)
        assert audition._output is not ended and audition._output.alive
        assert "audition: the output's process ended (killed by signal 9); opening it again" in caplog.messages

    audition_story(tmp_path, {**defaults("audition"), "jack_server": jack.name}, story)


def test_a_jack_server_with_no_room_for_the_outputs_ports_is_said_in_one_line(tmp_path):
    # Registering a port the server refused (its port limit reached) raised JACK-Client's own error in the output's
    # process, which died with a traceback on the daemon's stderr; the producer was told 'the audio device's process
    # ended (exit code 1)'.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path, period=1024, port_max=6).start()  # room for one port of ours (out_1)

    async def story(audition: Audition) -> None:
        with pytest.raises(AuditionError) as refused:
            await audition.act("last", "variant")
        assert str(refused.value) == ("the JACK server would not take daw-bridge-audition's ports ('out_2': port "
                                      "registration failed)")

    try:
        audition_story(tmp_path, {**defaults("audition"), "output": "jack", "jack_server": server.name}, story)
    finally:
        server.stop()


def pausing_callback(pipe, state) -> None:
    """The sound process's Mixer reporting into ``state``: play or stop as the test asks, then render one block,
    pausing before the given line of ``Mixer.render`` until the test has looked."""
    mixer = Mixer(48000)
    mixer.state = np.frombuffer(state, np.int64)[_SEEN:]
    program = np.full((2, 48000), 0.5, np.float32)
    outputs = [np.zeros(256, np.float32) for _ in range(2)]
    while True:
        verb, pause_at = pipe.recv()
        if verb == "end":
            return
        mixer.play(program) if verb == "play" else mixer.stop()
        run_pausing(pipe, Mixer.render, pause_at, lambda: mixer.render(outputs, 256))
        pipe.send("rendered")


def test_a_press_as_the_callback_takes_up_a_request_sees_what_it_plays():
    # The callback reported the request it took up before whether it plays: a press in between (the output in
    # another process, on another core) read the new request as taken up and the old 'playing', so 'next' right
    # after a play started over from variant 1 at the range's start, and a press right after a stop played in
    # place. The press's look is tried before each line of the callback's block.
    context = LifelineContext()
    pipe, theirs = context.Pipe()
    state = context.RawArray("q", 4)
    callback = context.Process(target=pausing_callback, args=(theirs, state), daemon=True)
    callback.start()
    try:
        requests = 0
        for verb, other, playing in (("play", "stop", 1), ("stop", "play", 0)):
            for pause_at in count():
                pipe.send((other, None))  # the other way first, so that the request changes what plays
                assert pipe.recv() == "rendered"
                pipe.send((verb, pause_at))
                requests += 2
                if pipe.recv() == "rendered":
                    break
                seen, said = state[_SEEN], state[_PLAYING]
                pipe.send("go")
                assert pipe.recv() == "rendered"
                assert seen != requests or said == playing, f"{verb}: before line {pause_at}, playing said {said}"
            assert pause_at > 5
    finally:
        pipe.send(("end", None))
        callback.join(10)
        context.cut()
        callback.join(10)
        pipe.close()


def short_of_room_story(folder: str) -> None:
    """Audition the original, then variant 1 with no room to copy it for the output's process (files limited to
    1 MB here: on a memfd as on the temporary file used where there is none), then variant 1 with room again."""
    async def story(audition: Audition) -> None:
        await audition.act("last", "original")
        output = audition._output
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of ending this process
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limits[1]))
        try:
            with pytest.raises(AuditionError) as refused:
                await audition.act("last", "variant")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        assert str(refused.value) == ("the audition could not copy the program for its output's process (File "
                                      "too large)")
        playing = await audition.act("last", "variant")
        assert (playing.playing, playing.variant) == ("variant", 1) and audition._output is output

    audition_story(Path(folder), defaults("audition"), story)


def test_a_program_that_cannot_be_copied_for_the_output_says_so_and_the_output_plays_on(jack, tmp_path):
    # Memory refused for the copy (here its size; no descriptor left, the memory short) reached the producer as an
    # internal error, with a traceback in the log; a write refused (a full disk where the copy is a temporary file,
    # as on macOS) was told as 'the output process ended; press again to open it anew', though it played on.
    run_story("short_of_room_story", str(tmp_path), module=__name__)
