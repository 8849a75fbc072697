"""``LocalBackend``: the embedded engine behind the Backend interface, working in a process pool.

The heavy work (analysis, search, rendering) runs in worker processes started with ``spawn`` (the daemon has
watchdog and socket threads, which ``fork`` would copy half-held), so the event loop keeps answering OSC while a
song is analysed. Progress is reported from the event loop between the two worker calls of a job. The workers
die with the daemon, even when it is killed (see ``bridge.lifeline``). The daemon itself never imports the engine
(numpy's and scipy's signal modules are ~70 MB resident): it names the engine's functions, and the worker calls
them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from pathlib import Path

from bridge.backends.base import Backend
from bridge.lifeline import LifelineContext
from bridge.models import JobSpec, Progress, Rendered
from bridge.settings_schema import defaults
from osc_schema import ValidationError

_DEFAULTS = defaults("local")  # [local], declared and checked by the settings schema
DEFAULT_MIN_CONFIDENCE = _DEFAULTS["min_confidence"]
# An extension's first join is judged on this much music before the point (the engine's inpaint.JOIN_SECONDS; the
# daemon does not import the engine). With less, nothing says how well it fits: after 0 s it was sure, at 1.0.
LEAD_IN_SECONDS = 1.5


class LocalBackend(Backend):
    """The default generator: offline, free, re-uses the song's own passages."""

    name = "local"
    resubmit_safe = True

    def __init__(self, cache_dir: Path, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                 workers: int = _DEFAULTS["workers"], executor: concurrent.futures.Executor | None = None):
        """``min_confidence`` and ``workers`` as the settings schema checked them (``[local]``)."""
        self.cache_dir = Path(cache_dir)
        self.min_confidence = float(min_confidence)
        self.workers = workers
        self._executor = executor
        self._owns_executor = executor is None
        self._lifeline: LifelineContext | None = None

    def _pool(self) -> concurrent.futures.Executor:
        if self._executor is None:
            self._lifeline = LifelineContext()
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=self._lifeline,
                initializer=functools.partial(_engine, "warm_up"))
        return self._executor

    def check(self, spec: JobSpec) -> None:
        """An extension needs music before the point to continue."""
        if spec.operation == "extend" and spec.extend_after < LEAD_IN_SECONDS:
            raise ValidationError("extend_after", spec.extend_after,
                                  f"leaves less than {LEAD_IN_SECONDS} s of music before the point: the embedded "
                                  f"engine continues the music it hears there")

    async def warm_up(self) -> None:
        """Start the workers now (imports and JIT caches take a few seconds), instead of on the first job."""
        await asyncio.get_running_loop().run_in_executor(self._pool(), _engine, "warm_up")

    async def submit(self, spec: JobSpec, prepared: dict) -> dict:
        return {}  # nothing to pay for, nothing to poll: wait() does the work

    async def wait(self, spec: JobSpec, prepared: dict, receipt: dict, workdir: Path,
                   progress: Progress) -> list[Rendered]:
        loop = asyncio.get_running_loop()
        pool = self._pool()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        progress(0.05, "analysing the song")
        summary = await loop.run_in_executor(pool, _engine, "analyse_source", str(spec.source), str(self.cache_dir))
        progress(0.5, "choosing passages" if summary["cached"] else "analysed; choosing passages")
        results = await loop.run_in_executor(pool, _engine, "render_job", spec.to_json(), str(workdir),
                                             str(self.cache_dir), self.min_confidence)
        progress(1.0, f"rendered {len(results)} variant{'s' if len(results) != 1 else ''}")
        return [Rendered.from_json(item) for item in results]

    async def describe(self) -> dict:
        return {"name": self.name, "engine": "embedded", "min_confidence": self.min_confidence,
                "workers": self.workers, "cache_dir": str(self.cache_dir)}

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None and self._owns_executor:
            # A job still running is journaled where it stood and resumes at the next start: its worker is ended
            # now rather than waited for (an analysis takes seconds), so the daemon stops at once.
            self._lifeline.cut()
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: executor.shutdown(wait=True, cancel_futures=True))


def _engine(function: str, *args):
    """Run in a worker: call one of :mod:`bridge.backends.local.engine`'s functions (imported there, not here),
    then give the memory it freed back to the system, so an idle worker holds no job's peak."""
    from bridge.backends.local import engine

    try:
        return getattr(engine, function)(*args)
    finally:
        engine.release_memory()
