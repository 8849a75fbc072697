"""The one small interface every generator implements.

The core drives a job through four calls, journaling between them::

    prepared = await backend.prepare(spec, workdir)        # free, repeatable: export what will be sent
    receipt  = await backend.submit(spec, prepared)         # may cost money: journaled before and after
    rendered = await backend.wait(spec, prepared, receipt, workdir, progress)
    ...core delivers ``rendered`` into the drop folder...

``prepared`` and ``receipt`` are JSON-serialisable dicts, stored in the journal, so after a crash the core can call
``wait`` again with them (polling a known task instead of paying for a new one).

A job interrupted between intent and receipt is submitted again only when ``submission_state`` says nothing can
have reached the generator ("not_sent": always so for a backend with ``resubmit_safe = True``, which costs nothing
per submit; a paid backend answers from its own ledger). Otherwise it goes to ``submission_unknown`` for the
producer to resolve.
"""

from __future__ import annotations

import abc
from pathlib import Path

from bridge.models import JobSpec, Progress, Rendered


class Backend(abc.ABC):
    """A generator. Subclasses set ``name`` and ``resubmit_safe`` and implement the four calls."""

    name: str = ""
    resubmit_safe: bool = False

    async def prepare(self, spec: JobSpec, workdir: Path) -> dict:
        """Export what ``submit`` will send. Free and repeatable."""
        return {}

    @abc.abstractmethod
    async def submit(self, spec: JobSpec, prepared: dict) -> dict:
        """Start generation; return the receipt (e.g. a task id). Called at most once per job unless resubmit_safe."""

    @abc.abstractmethod
    async def wait(self, spec: JobSpec, prepared: dict, receipt: dict, workdir: Path,
                   progress: Progress) -> list[Rendered]:
        """Wait for the outputs and bring them into ``workdir`` as ready-to-deliver spans."""

    def submission_state(self, job_id: str) -> str:
        """After a crash while submitting: "not_sent" when no request can have reached the generator, else why not."""
        return "not_sent" if self.resubmit_safe else "unknown"

    async def cancel(self, spec: JobSpec, receipt: dict) -> None:
        """Stop generation where the backend can; the core marks the job cancelled either way."""

    async def warm_up(self) -> None:
        """Get ready for the first job (start workers, load libraries); the daemon calls it in the background."""

    async def describe(self) -> dict:
        """A short health report for ``daw-bridge doctor``."""
        return {"name": self.name}

    async def close(self) -> None:
        """Release connections and workers."""
