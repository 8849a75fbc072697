"""The daemon's audition with a real job service and real JACK servers: "last" finds the job delivered last, and
after the producer restarts JACK the next press opens the output again instead of playing into a dead client.

The story runs in a child process: libjack keeps per-process state about a server that went away, and this test
process goes on to host other tests' JACK clients.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bridge.audition import Audition
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.models import State
from bridge.settings_schema import defaults
from bridge.threads import STUCK_AFTER, LeavingExecutor
from tests.audition.jobs import RATE, delivered_job
from tests.audition.tape import Tape, cycles_while_held, gil_hold, hold_the_gil
from tests.audition.test_audition_jack import played
from tests.conftest import ROOT, daemon_environment, fuse_share, require_tool, share_down
from tests.frontends.jack import JackServer


def heard_sound(tape: Tape, since: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(block.any() for _, _, block in tape.blocks[since:]):
            return True
        time.sleep(0.05)
    return False


def journaled_job(folder: Path) -> tuple[Config, Journal]:
    """A daemon's config and journal in ``folder``, holding one delivered job (tests.audition.jobs)."""
    record = delivered_job(folder, tempo=120.0)
    config = Config(state_dir=folder / "state", project_roots=(folder,))
    journal = Journal(config.journal_path)
    journal.insert(record)
    journal.update(record, state=State.DELIVERED, manifests=record.manifests)
    return config, journal


def audition_story(folder: Path, settings: dict, story):
    """Run ``await story(audition)`` on an Audition of a job service holding one delivered job in ``folder``
    (``journaled_job``), and close them all afterwards; its result."""
    config, journal = journaled_job(folder)

    async def run():
        service = JobService(config, journal, {})
        audition = Audition(service, settings)
        try:
            return await story(audition)
        finally:
            await audition.close()
            await service.close()

    try:
        return asyncio.run(run())
    finally:
        journal.close()


def restart_story(folder: str) -> None:
    """Audition, restart JACK under the same name, audition again; raises AssertionError when something is off."""
    folder = Path(folder)
    server = JackServer(folder, period=1024, rate=RATE).start()
    name = f"tape-{uuid.uuid4().hex[:6]}"
    tape = Tape(name)
    settings = {**defaults("audition"), "jack_server": server.name, "jack_ports": (f"{name}:in_1", f"{name}:in_2")}

    async def story(audition: Audition) -> None:
        nonlocal server, tape
        playing = await audition.act("last", "variant")
        assert (playing.job_id, playing.playing, playing.variant) == ("j-1", "variant", 1)
        assert await asyncio.to_thread(heard_sound, tape, 0)

        tape.close()
        tape = None
        server.stop()  # the producer restarts JACK (same server name)
        restarted = JackServer(folder, period=1024, rate=RATE)
        restarted.name = server.name
        server = restarted.start()
        playing = await audition.act("last", "original")
        assert (playing.job_id, playing.playing) == ("j-1", "original")
        tape = Tape(name)  # after the audition reopened: libjack keeps a dead client's state per process
        for n in (1, 2):
            tape.client.connect(f"{playing.output}:out_{n}", f"{name}:in_{n}")
        assert await asyncio.to_thread(heard_sound, tape, 0), "the reopened output plays into the new server"

    try:
        audition_story(folder, settings, story)
    finally:
        if tape is not None:
            tape.close()
        server.stop()


def run_story(story: str, *args: str, module: str = __name__) -> None:
    """Run ``story``, a function of ``module``, in a child process with ``args``; fail with its error output.

    The audio devices' processes start the child's multiprocessing resource tracker, which would end only after the
    child, for a moment a process nobody started: the child ends it first, as the daemon does."""
    call = (f"import sys\nfrom bridge.lifeline import end_resource_tracker\nfrom {module} import {story}\n"
            f"try:\n    {story}(*sys.argv[1:])\nfinally:\n    end_resource_tracker()")
    child = subprocess.run([sys.executable, "-c", call, *args], cwd=ROOT, env=daemon_environment(),
                           capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr[-3000:]


def test_after_the_jack_server_restarts_the_next_press_plays_again(tmp_path):
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    run_story("restart_story", str(tmp_path))


def busy_story(folder: str, tape_ports: str) -> None:
    """Audition variant 1 into ``tape_ports`` and, while it plays, hold the GIL (``hold_the_gil``); keep what was
    played in ``folder``/played.npy once it played out."""
    folder = Path(folder)
    # 16 s: the variant plays on through the hold and the same call made apart before it, 2-4 s each
    settings = {**defaults("audition"), "jack_ports": tuple(tape_ports.split(",")), "pre_roll_bars": 6}
    length = gil_hold()

    async def story(audition: Audition) -> None:
        await audition.act("last", "variant")
        hold_the_gil(folder / "held.txt", length)
        program = audition._prepared["j-1"].variants[0]
        np.save(folder / "played.npy", program)
        await asyncio.sleep(program.shape[1] / RATE + 1.0)

    audition_story(folder, settings, story)


def test_the_audition_plays_on_while_the_daemons_python_is_held_up(tmp_path):
    # Its audio callback ran in the daemon's process and needed its GIL in every cycle: a hold of a second (a MIDI
    # port opening, a busy thread) held up the whole server (the producer's DAW too) for as long, and the variant
    # broke up. The audition now plays from a process of its own.
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path, period=1024, rate=RATE, sync=False).start()
    tape = Tape()
    try:
        run_story("busy_story", str(tmp_path), ",".join(tape.ports))
        program = np.load(tmp_path / "played.npy").T
        played(tape, len(program), 0)  # to its end
        # Cycles, not the samples: one cycle the loaded machine loses shifts every sample after it.
        held, apart = cycles_while_held(tape, tmp_path / "held.txt")
        assert held > apart / 2, f"{held:.0f} cycles a second while the daemon's Python was held, {apart:.0f} apart"
    finally:
        tape.close()
        server.stop()


def test_presses_piled_up_while_no_output_opens_are_answered_and_only_the_last_tries(tmp_path, monkeypatch):
    # Each press waited its turn to try the output again (a JACK server that is not there: a process started and
    # ended each time), so a pad held down or a burst of OSC took minutes to answer. The last press wins, as it
    # does for presses waiting for their job's audio.
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    settings = {**defaults("audition"), "output": "jack", "jack_server": "daw-bridge-nobody-here"}

    async def story(audition: Audition) -> list:
        return await asyncio.gather(*(audition.act("last", "variant") for _ in range(12)), return_exceptions=True)

    answers = [str(answer) for answer in audition_story(tmp_path, settings, story)]
    assert answers == ["not played: a later audition request came while the output was opening"] * 11 + [
        "no JACK server daw-bridge-nobody-here to play through"]


def test_presses_on_a_job_on_a_share_that_does_not_answer_leave_the_loops_pool_free(tmp_path, monkeypatch):
    # Each press read the job's decision, and its audio, in a thread of the event loop's pool, which also admits
    # every job: on a share that does not answer (bindfs stopped) each press left a thread stuck there, and a few
    # presses later the next job's admission waited until they counted as stuck (5 s, bridge/threads.py), with one
    # more thread stuck for good a press. The presses queue on the audition's own thread now, and are answered once
    # the share is back (the last one tries the output).
    from tests.core.test_service_share import _UNCACHED, wait_for_a_stuck_file_call

    bindfs = require_tool("bindfs")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    settings = {**defaults("audition"), "output": "jack", "jack_server": "daw-bridge-nobody-here"}
    nas, mount = tmp_path / "nas", tmp_path / "project"
    nas.mkdir()
    mount.mkdir()

    async def story(server, journal, config) -> tuple[bool, list]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(LeavingExecutor(max_workers=4))  # the daemon's, smaller
        service = JobService(config, journal, {})
        audition = Audition(service, settings)
        try:
            with share_down(server), ThreadPoolExecutor(max_workers=1) as watcher:
                presses = [loop.create_task(audition.act("last", "variant")) for _ in range(6)]
                await loop.run_in_executor(watcher, wait_for_a_stuck_file_call, os.getpid())
                try:
                    pool_free = await asyncio.wait_for(asyncio.to_thread(lambda: True), STUCK_AFTER / 2)
                except TimeoutError:
                    pool_free = False
            answers = await asyncio.gather(*presses, return_exceptions=True)
            return pool_free, [str(answer) for answer in answers]
        finally:
            await audition.close()
            await service.close()

    with fuse_share(bindfs, nas, mount, *_UNCACHED) as server:
        record = delivered_job(mount, tempo=120.0)
        config = Config(state_dir=tmp_path / "state", project_roots=(mount,))
        journal = Journal(config.journal_path)
        try:
            journal.insert(record)
            journal.update(record, state=State.DELIVERED, manifests=record.manifests)
            pool_free, answers = asyncio.run(story(server, journal, config))
        finally:
            journal.close()
    assert pool_free, "a thread of the loop's pool was left for the next job's admission"
    assert answers == ["not played: a later audition request came while the output was opening"] * 5 + [
        "no JACK server daw-bridge-nobody-here to play through"], answers
