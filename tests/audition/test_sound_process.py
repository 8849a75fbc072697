"""The audition's output process (bridge.audition.sound_process) ends while the daemon runs on: killed by the system
for memory, crashed in its audio library. What the producer's next presses get."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from bridge.audition import Audition
from bridge.audition.program import AuditionError
from bridge.core.service import JobService
from bridge.settings_schema import defaults
from tests.audition.test_player import journaled_job
from tests.conftest import require_tool
from tests.frontends.jack import JackServer


def test_stop_after_the_output_process_ended_is_a_stop_and_the_next_press_plays(jack, tmp_path, caplog):
    # Stop sent its word to the ended process and failed with 'the output process ended; press again to open it
    # anew', at every stop press (a stop never opens the output) and in the decision listener (a traceback in the
    # log when the playing job was kept or discarded). Nothing plays there any more: that is a stop. The log said
    # 'the JACK server went away' for a process that had ended.
    caplog.set_level(logging.INFO, "bridge.audition.player")
    config, journal = journaled_job(tmp_path)
    settings = {**defaults("audition"), "jack_server": jack.name}

    async def story() -> None:
        service = JobService(config, journal, {})
        audition = Audition(service, settings)
        try:
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
        finally:
            await audition.close()
            await service.close()

    try:
        asyncio.run(story())
    finally:
        journal.close()


def test_a_jack_server_with_no_room_for_the_outputs_ports_is_said_in_one_line(tmp_path):
    # Registering a port the server refused (its port limit reached) raised JACK-Client's own error in the output's
    # process, which died with a traceback on the daemon's stderr; the producer was told 'the audio device's process
    # ended (exit code 1)'.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path, period=1024, port_max=6).start()  # room for one port of ours (out_1)
    config, journal = journaled_job(tmp_path)
    settings = {**defaults("audition"), "output": "jack", "jack_server": server.name}

    async def story() -> None:
        service = JobService(config, journal, {})
        audition = Audition(service, settings)
        try:
            with pytest.raises(AuditionError) as refused:
                await audition.act("last", "variant")
            assert str(refused.value) == ("the JACK server would not take daw-bridge-audition's ports ('out_2': port "
                                          "registration failed)")
        finally:
            await audition.close()
            await service.close()

    try:
        asyncio.run(story())
    finally:
        journal.close()
        server.stop()
