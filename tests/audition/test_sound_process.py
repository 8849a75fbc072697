"""The audition's output process (bridge.audition.sound_process) ends while the daemon runs on: killed by the system
for memory, crashed in its audio library. What the producer's next presses get."""

from __future__ import annotations

import asyncio
import os
import signal

from bridge.audition import Audition
from bridge.core.service import JobService
from bridge.settings_schema import defaults
from tests.audition.test_player import journaled_job


def test_stop_after_the_output_process_ended_is_a_stop_and_the_next_press_plays(jack, tmp_path):
    # Stop sent its word to the ended process and failed with 'the output process ended; press again to open it
    # anew', at every stop press (a stop never opens the output) and in the decision listener (a traceback in the
    # log when the playing job was kept or discarded). Nothing plays there any more: that is a stop.
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
        finally:
            await audition.close()
            await service.close()

    try:
        asyncio.run(story())
    finally:
        journal.close()
