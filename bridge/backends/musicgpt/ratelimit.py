"""One limiter per process for everything daw-bridge asks of MusicGPT.

Two budgets, both per account and so shared by every job:

- *calls per minute*: the plan's request budget (20 a minute on the free plan). Each call reserves the earliest
  moment at which it keeps the last minute within budget, so concurrent jobs spread out instead of all answering a
  429 together. A 429 pushes every caller back (``penalize``).
- *generation slots*: how many tasks the account may have generating at once (1 free, 3-5 Plus, 10 Pro). A job
  holds a slot from its submit until its outputs are in; a job beyond the limit waits in line instead of failing.

The limiter uses a thread lock and wakes waiters through their own event loop, so it is safe to share between
event loops (the daemon has one; tests start several).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable


class RateLimiter:
    """Calls-per-minute pacing and generation slots for one MusicGPT account."""

    def __init__(self, calls_per_minute: int, concurrency: int, *, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        if calls_per_minute < 1:
            raise ValueError(f"calls_per_minute must be at least 1, got {calls_per_minute}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.calls_per_minute = calls_per_minute
        self.concurrency = concurrency
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: deque[float] = deque()  # reserved call times, ascending
        self._not_before = 0.0  # set by a 429
        self._holders: set[str] = set()
        self._waiters: deque[tuple[str, asyncio.AbstractEventLoop, asyncio.Future]] = deque()

    # -- calls per minute ----------------------------------------------------------------------------------------

    def reserve(self) -> float:
        """Reserve the next call; return how many seconds the caller must wait before making it."""
        with self._lock:
            now = self._clock()
            while self._calls and self._calls[0] <= now - self.window_s:
                self._calls.popleft()
            at = max(now, self._not_before)
            if len(self._calls) >= self.calls_per_minute:
                at = max(at, self._calls[-self.calls_per_minute] + self.window_s)
            self._calls.append(at)
            return at - now

    async def call(self) -> None:
        """Wait for this process's turn to make one API call."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def penalize(self, seconds: float) -> None:
        """After a 429: hold every caller back for ``seconds`` from now."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    # -- generation slots ----------------------------------------------------------------------------------------

    async def acquire_slot(self, owner: str) -> None:
        """Wait in line for a generation slot for ``owner`` (a job id); holding one already returns at once."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if owner in self._holders:
                return
            if len(self._holders) < self.concurrency and not self._waiters:
                self._holders.add(owner)
                return
            future = loop.create_future()
            self._waiters.append((owner, loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                self._waiters = deque(w for w in self._waiters if w[2] is not future)
                handed_over = owner in self._holders
            if handed_over:
                self.release_slot(owner)  # the slot was handed over just as we gave up: pass it on
            raise

    def occupy_slot(self, owner: str) -> None:
        """Count a task that is already generating (found after a restart) without waiting, even over the limit."""
        with self._lock:
            self._holders.add(owner)

    def release_slot(self, owner: str) -> None:
        """Give ``owner``'s slot back and hand it to the next in line; releasing twice is harmless."""
        with self._lock:
            self._holders.discard(owner)
            self._hand_over()

    def _hand_over(self) -> None:
        # Called with the lock held: give free slots to the longest waiting, in their own event loops.
        while self._waiters and len(self._holders) < self.concurrency:
            waiter, loop, future = self._waiters.popleft()
            if future.done():
                continue
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that waiter's event loop has closed: it will never take the slot
                continue
            self._holders.add(waiter)

    def holds_slot(self, owner: str) -> bool:
        """Whether ``owner`` holds a generation slot now."""
        with self._lock:
            return owner in self._holders

    def snapshot(self) -> dict:
        """Current use, for ``daw-bridge doctor``."""
        with self._lock:
            now = self._clock()
            recent = sum(1 for t in self._calls if now - self.window_s < t <= now)
            return {"calls_per_minute": self.calls_per_minute, "calls_last_minute": recent,
                    "concurrency": self.concurrency, "generating": len(self._holders),
                    "queued": len(self._waiters), "held_back_s": max(0.0, round(self._not_before - now, 3))}


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(account: str, calls_per_minute: int, concurrency: int, **kwargs) -> RateLimiter:
    """The one limiter for ``account`` (the base URL) in this process; later callers get the same one, re-budgeted."""
    with _SHARED_LOCK:
        limiter = _SHARED.get(account)
        if limiter is None:
            limiter = _SHARED[account] = RateLimiter(calls_per_minute, concurrency, **kwargs)
        else:
            if calls_per_minute < 1 or concurrency < 1:
                raise ValueError("calls_per_minute and concurrency must be at least 1")
            with limiter._lock:
                limiter.calls_per_minute, limiter.concurrency = calls_per_minute, concurrency
                limiter._hand_over()
        return limiter
