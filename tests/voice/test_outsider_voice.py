"""Voice as an outsider first tries it, where an earlier version broke a promise: a paid command heard while the
song plays, confirmed a few seconds later, must spend on the bars that were asked for when it was said, not on the
bars the moving play cursor stands by at the confirmation. (The frontend is driven with what the listener hands it;
tests/voice/test_listener.py does the same through a real microphone path.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading

import soundfile as sf

from bridge.client import BridgeClient
from bridge.frontends.voice import VoiceFrontend
from bridge.voice.decode import Result
from tests.conftest import fuse_share, require_tool, share_down
from tests.frontends.test_midi import MAPPING, no_midi_server, rig, until  # noqa: F401  (no_midi_server: a fixture)

CLOUD = MAPPING + '\n[presets.cloud]\nbackend = "musicgpt"\nnum_outputs = 1\n\n[[pad]]\nnote = 45\naction = "talk"\n'
TALK = ("note", 45, 1)


@contextlib.asynccontextmanager
async def listening(tmp_path, song):
    """A rig with a paid preset and a voice frontend whose replies to the producer are kept: (rig, voice, told)."""
    async with rig(tmp_path, song, mapping=CLOUD) as r:
        voice = VoiceFrontend(r.frontend, r.config)
        told = []
        voice._tell = lambda result, outcome, message: told.append((outcome, message))
        try:
            yield r, voice, told
        finally:
            await voice.close()


def test_a_confirmed_paid_command_runs_on_the_bars_said_not_where_the_cursor_moved_on(tmp_path, demo_song_path,
                                                                                        no_midi_server):  # noqa: F811
    async def story():
        async with listening(tmp_path, demo_song_path) as (r, voice, _):
            daw = r.frontend.context
            daw.follow_transport("reaper", cursor=9.0, tempo=120.0, beats_per_bar=4.0)  # bars of 2 s
            said = {"command": "extend", "bars": 2, "anchor": "next", "preset": "cloud"}
            voice.heard(Result("bridge extend the next two bars with cloud", said, 0.8), TALK)
            await until(lambda: voice._waiting is not None, what="the go-ahead asked for")
            assert r.jobs() == []  # paid: it waits for the go-ahead
            for cursor in (10.0, 11.0, 12.0, 13.0):  # REAPER plays on while the producer says it
                daw.follow_transport("reaper", cursor=cursor, tempo=120.0, beats_per_bar=4.0)
            voice.heard(Result("bridge yes confirm", {"command": "confirm"}, 0.8), TALK)
            await until(lambda: r.jobs(), what="the confirmed job")
            await r.service.drain()
            return r.jobs(), r.backends["musicgpt"].submits

    jobs, submits = asyncio.run(story())
    assert submits == 1 and len(jobs) == 1
    # the next two bars from 9.0 s: bars 6-7, 10-14 s (at the confirmation the cursor was in bar 7: it would be 14-18)
    assert (jobs[0].spec.backend, jobs[0].spec.extend_after, jobs[0].spec.duration) == ("musicgpt", 10.0, 4.0)
    assert jobs[0].origin["bars"].startswith("bars 6-7 (10.000-14.000 s)"), jobs[0].origin


def test_a_paid_command_that_cannot_be_placed_is_refused_at_once_not_after_the_go_ahead(tmp_path, demo_song_path,
                                                                                         no_midi_server):  # noqa: F811
    async def story():
        async with listening(tmp_path, demo_song_path) as (r, voice, told):
            # no play cursor known (no [midi.daw] feedback): there are no bars to count
            said = {"command": "inpaint", "bars": 4, "anchor": "last", "preset": "cloud"}
            voice.heard(Result("bridge inpaint the last four bars with cloud", said, 0.8), TALK)
            await until(lambda: told, what="the refusal")
            return told, voice._waiting, r.jobs()

    told, waiting, jobs = asyncio.run(story())
    assert waiting is None and jobs == []
    assert [outcome for outcome, _ in told] == ["refused"] and "play cursor" in told[0][1], told


def test_a_paid_command_past_the_songs_end_is_refused_before_asking_for_the_go_ahead(tmp_path, demo_song_path,
                                                                                     no_midi_server):  # noqa: F811
    async def story():
        async with listening(tmp_path, demo_song_path) as (r, voice, told):
            end = sf.info(str(r.song)).duration
            r.frontend.context.follow_transport("reaper", cursor=end - 1.0, tempo=120.0, beats_per_bar=4.0)
            said = {"command": "inpaint", "bars": 2, "anchor": "next", "preset": "cloud"}
            voice.heard(Result("bridge inpaint the next two bars with cloud", said, 0.8), TALK)
            await until(lambda: told, what="the refusal")
            return told, voice._waiting, r.jobs(), end

    told, waiting, jobs, end = asyncio.run(story())
    assert waiting is None and jobs == []
    assert told == [("refused", f"start: {end:.1f} is past the end of the source ({end:.3f} s)")], told


def test_a_paid_command_on_a_song_on_a_share_that_does_not_answer_holds_up_no_ping(tmp_path, demo_song_path,
                                                                                    no_midi_server):  # noqa: F811
    """Before a paid command asks for the go-ahead it is checked as an admission would check it (is the range in the
    song?), and that check looked at the song on the event loop: a song on a share whose server was down (bindfs
    stopped) froze OSC, the pads and every job. The check waits alone; the go-ahead is asked for once it answers."""
    from tests.core.test_service_share import _UNCACHED, wait_for_a_stuck_file_call

    bindfs = require_tool("bindfs")
    nas = tmp_path / "nas"
    nas.mkdir()
    shutil.copy(demo_song_path, nas / "mix.wav")

    async def story(server, mount):
        async with listening(tmp_path, demo_song_path) as (r, voice, told):
            r.service.set_context({"source": str(mount / "mix.wav"), "start": 5.0, "end": 8.0})
            r.frontend.context.follow_transport("reaper", cursor=9.0, tempo=120.0, beats_per_bar=4.0)
            said = {"command": "inpaint", "bars": 2, "anchor": "next", "preset": "cloud"}
            back = threading.Timer(60, server.send_signal, (signal.SIGCONT,))  # the code before: fail, not hang
            try:
                with share_down(server):
                    back.start()
                    voice.heard(Result("bridge inpaint the next two bars with cloud", said, 0.8), TALK)
                    await asyncio.to_thread(wait_for_a_stuck_file_call, os.getpid())
                    with BridgeClient("127.0.0.1", r.config.osc_port) as client:
                        assert await asyncio.to_thread(client.ping, 10)
                    assert told == [] and voice._waiting is None  # not asked before the check is done
            finally:
                back.cancel()
            await until(lambda: told, timeout=60, what="the go-ahead asked for, once the share answers")
            return told, r.jobs()

    (tmp_path / "project").mkdir()
    mount = tmp_path / "project" / "nas"
    mount.mkdir()
    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        told, jobs = asyncio.run(story(server, mount))
    assert [outcome for outcome, _ in told] == ["waiting"] and jobs == [], told
