"""A thread of its own for the file system calls on one folder that may be a network share.

A hard-mounted NFS share whose server is down, or a FUSE mount whose process stopped, holds a listing or an open
there for good. Made on the event loop, such a call froze the whole daemon (OSC, MIDI, every job); made here, it holds
up only this thread, which the loop awaits. One thread, so the calls run in the order given and a call stuck for
good holds up only the calls queued after it, never more threads. A daemon thread: one stuck at the daemon's stop is
left to end with the process, and whoever waits for its calls is let go, instead of holding the stop up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError

log = logging.getLogger(__name__)


class ShareThread:
    """The thread starts with the first call: a folder nobody asks about costs none."""

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._unfinished: set[Future] = set()
        self._lock = threading.Lock()  # a call is queued before close's end mark, or not at all
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    async def run(self, call: Callable, *args):
        """``submit``, awaited on the event loop: what ``call(*args)`` returned, or what it raised."""
        return await asyncio.wrap_future(self.submit(call, *args))

    def submit(self, call: Callable, *args) -> Future:
        """Run ``call(*args)`` on the thread after the calls already submitted; its future holds what it returned
        (cancelled once the thread is closed)."""
        return self._put(call, args, waited=True)

    def post(self, call: Callable, *args) -> None:
        """``submit`` for a call nobody waits for, so never let go (see close): what it raises is logged."""
        self._put(call, args, waited=False).add_done_callback(_log_failure)

    def _put(self, call: Callable, args: tuple, waited: bool) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                future.cancel()
                return future
            if waited:
                self._unfinished.add(future)
                future.add_done_callback(self._unfinished.discard)
            self._calls.put((future, call, args))
            if self._thread.ident is None:
                self._thread.start()
        return future

    def close(self, timeout: float) -> None:
        """Let the calls submitted so far run, for at most ``timeout`` s. A thread still stuck in a call then is left
        behind, and those waiting for its calls are let go: each one's future raises CancelledError. Posted calls
        still run if it goes on (the inbox's lock is closed, a status file written), unless the process ends first."""
        with self._lock:
            self._closed = True
            if self._thread.ident is None:  # never asked anything
                return
            self._calls.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            for future in list(self._unfinished):
                with contextlib.suppress(InvalidStateError):  # it finished meanwhile
                    if not future.cancel():  # the call it is stuck in
                        future.set_exception(CancelledError())

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            future, call, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call(*args)
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):  # let go at close meanwhile
                    future.set_exception(exc)
            else:
                with contextlib.suppress(InvalidStateError):
                    future.set_result(result)


def _log_failure(future: Future) -> None:
    exc = None if future.cancelled() else future.exception()
    if exc is not None and not isinstance(exc, CancelledError):  # CancelledError: let go at close
        log.error("a file system call on the share failed unexpectedly", exc_info=exc)
