"""The daemon's default executor: a call that never returns (a file call on a share that does not answer, stood for
here by a wait on an event the test sets at its end) holds up neither the calls after it nor the executor's end."""

from __future__ import annotations

import asyncio
import logging
import threading

from bridge.threads import LeavingExecutor, run


def test_a_call_stuck_past_its_time_no_longer_holds_up_the_calls_after_it():
    executor = LeavingExecutor(max_workers=1, grace=0.1, stuck_after=0.2)
    share = threading.Event()
    try:
        stuck = executor.submit(share.wait)
        assert executor.submit(sum, [1, 2]).result(timeout=30) == 3  # Python's own: never, with one worker
        assert not stuck.done()
    finally:
        share.set()
        executor.shutdown(wait=True)
    assert stuck.result(timeout=30) is True


def test_the_end_leaves_a_stuck_call_behind_and_says_so_once(caplog):
    share = threading.Event()
    started = threading.Event()
    left: list[threading.Thread] = []

    def look_at_the_share() -> None:
        left.append(threading.current_thread())
        started.set()
        share.wait()

    async def daemon() -> int:
        asyncio.get_running_loop().run_in_executor(None, look_at_the_share)
        await asyncio.to_thread(started.wait)
        return await asyncio.to_thread(sum, [1, 2])

    try:
        with caplog.at_level(logging.WARNING, logger="bridge.threads"):
            assert run(daemon()) == 3  # asyncio.run: waits for look_at_the_share for good
        assert left[0].is_alive() and left[0].daemon  # not joined at the interpreter's exit either
    finally:
        share.set()
        for thread in left:
            thread.join(timeout=30)
    said = [record.getMessage() for record in caplog.records if record.name == "bridge.threads"]
    assert len(said) == 1 and "1 call(s) in threads did not end within 5 s" in said[0], said
