"""The event loop's default executor (asyncio.to_thread) for the daemon and the one-shot commands.

A file call on a share that stopped answering (a hard-mounted NFS share whose server is down, a FUSE mount whose
process hangs) holds its thread in the kernel for good, and nothing in the process can end it. asyncio's own executor
made two things of that. Its few threads (6 on 2 cores) were each one stuck call away from none, and every later
call, the stop's own included, waited behind them. And the end of asyncio.run, then the interpreter's exit, joined
every thread with no timeout, so SIGTERM never stopped the daemon (its service manager then killed it -9). Here a
thread whose call has run for ``stuck_after`` s no longer counts against the limit, and the end waits ``grace`` s for
the calls under way, then leaves those still running to end with the process (daemon threads), and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# A stop's budget is the service manager's: systemd kills the daemon 20 s after SIGTERM (service/daw-bridge.service).
GRACE = 5.0
STUCK_AFTER = 5.0  # no file call of a job's takes this long on a disk that answers; a large export is CPU, not I/O


def run(main: Coroutine[object, object, T]) -> T:
    """``asyncio.run(main)``, with the default executor one whose stuck calls cannot hold up the end."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(LeavingExecutor())
        return runner.run(main)


class LeavingExecutor(ThreadPoolExecutor):
    """A thread pool that leaves behind, at its shutdown, the threads still in a call after ``grace`` s.

    A ThreadPoolExecutor to asyncio (which takes no other as the default); none of its own machinery runs.
    """

    def __init__(self, max_workers: int | None = None, *, grace: float = GRACE, stuck_after: float = STUCK_AFTER):
        super().__init__(max_workers=max_workers, thread_name_prefix="daw-bridge")
        self._grace, self._stuck_after = grace, stuck_after
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._began: dict[threading.Thread, float | None] = {}  # each thread: when its call began, None when idle
        self._queued = 0  # calls no thread has taken yet
        self._closing = False
        self._recheck: threading.Timer | None = None
        self._made = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._guard:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._calls.put((future, fn, args, kwargs))
            self._queued += 1
            self._add_threads()
        return future

    def _add_threads(self) -> None:
        """Start what the queued calls need, within the limit that calls stuck past ``stuck_after`` s are out of
        (with the guard held). When the limit holds some back, look again once the oldest call may count as stuck."""
        if self._closing:  # the threads the end knows of take what is queued
            return
        now = time.monotonic()
        idle = sum(began is None for began in self._began.values())
        under_way = [began for began in self._began.values() if began is not None and now - began < self._stuck_after]
        wanted = self._queued - idle
        room = self._max_workers - idle - len(under_way)
        for _ in range(max(0, min(wanted, room))):
            self._made += 1
            thread = threading.Thread(target=self._serve, name=f"daw-bridge_{self._made}", daemon=True)
            self._began[thread] = None
            thread.start()
        if wanted > room and under_way and (self._recheck is None or not self._recheck.is_alive()):
            self._recheck = threading.Timer(min(under_way) + self._stuck_after - now + 0.01, self._look_again)
            self._recheck.daemon = True
            self._recheck.start()

    def _look_again(self) -> None:
        with self._guard:
            self._recheck = None
            self._add_threads()

    def _serve(self) -> None:
        me = threading.current_thread()
        while (item := self._calls.get()) is not None:
            future, fn, args, kwargs = item
            with self._guard:
                self._queued -= 1
                self._began[me] = time.monotonic()
                if self._queued:  # counted as idle when they were queued: their wait starts now
                    self._add_threads()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)
            del item, future, fn, args, kwargs  # what the call held is freed before the thread idles
            with self._guard:
                self._began[me] = None
        with self._guard:
            del self._began[me]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the calls queued so far run; with ``wait``, wait ``grace`` s at most for them, then leave behind the
        threads still in a call, saying so once in the log."""
        with self._guard:
            if self._closing:
                return
            self._closing = True
            if self._recheck is not None:
                self._recheck.cancel()
            if cancel_futures:
                while self._queued:
                    try:
                        future, *_ = self._calls.get_nowait()
                    except queue.Empty:
                        break
                    self._queued -= 1
                    future.cancel()
            threads = list(self._began)
            for _ in threads:
                self._calls.put(None)
        if not wait:
            return
        deadline = time.monotonic() + self._grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if left := sum(thread.is_alive() for thread in threads):
            log.warning("%d call(s) in threads did not end within %g s of the stop (most likely a file call on a "
                        "share that does not answer): ending without them", left, self._grace)
