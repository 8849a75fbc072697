"""The one small interface every generator implements.

The core drives a job through four calls, journaling between them::

    prepared = await backend.prepare(spec, workdir)        # free, repeatable: export what will be sent
    receipt  = await backend.submit(spec, prepared)         # may cost money: journaled before and after
    rendered = await backend.wait(spec, prepared, receipt, workdir, progress)
    ...core delivers ``rendered`` into the drop folder...

``prepared`` and ``receipt`` are JSON-serialisable dicts, stored in the journal, so after a crash the core can call
``wait`` again with them (polling a known task instead of paying for a new one).

A job is submitted a second time (after a crash, a retry, a cancel) only when ``submission_state`` says nothing can
have reached the generator ("not_sent": always so for a backend with ``resubmit_safe = True``, which costs nothing
per submit; a paid backend answers from its own ledger). Otherwise it waits on its task, or in
``submission_unknown`` for the producer to resolve.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from pathlib import Path

from bridge.models import JobSpec, Progress, Rendered


class Backend(abc.ABC):
    """A generator. Subclasses set ``name`` and ``resubmit_safe`` and implement the four calls."""

    name: str = ""
    resubmit_safe: bool = False

    def check(self, spec: JobSpec) -> None:
        """Refuse (osc_schema.ValidationError) a request this generator would refuse, when the command comes in: the
        sender hears it at once, in one line, and no job is made of it. Free and quick: nothing is read or sent."""

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

    def submission_state(self, job_id: str, prepared: dict | None = None) -> str:
        """What the backend's own records say of the last submit of a job journaled with ``prepared``: "not_sent"
        (nothing can have reached the generator), "accepted" (a task exists: see ``submitted_receipt``) or "unknown"
        (it may have been paid for).

        The core asks before every submit that is not a job's first (a restart, a retry, a resume), so a paid
        backend must answer from a ledger it writes before and after sending, and answer "unknown" rather than
        "not_sent" when that ledger does not reach back to the job (deleted or replaced since ``prepared`` named
        it): its silence is then no proof."""
        return "not_sent" if self.resubmit_safe else "unknown"

    def submitted_receipt(self, job_id: str) -> dict | None:
        """The receipt of the job's accepted submit, from the backend's own ledger (for a job whose journal missed
        it); None when the backend keeps no such record."""
        return None

    def resolve_submission(self, job_id: str, task_id: str | None) -> None:
        """The producer settled an unknown submission: ``task_id`` is the task they found, None means "nothing was
        sent" (the core will submit again). A paid backend updates its ledger so it allows exactly that."""

    def release(self, job_id: str) -> None:
        """The job no longer runs in this process (delivered, failed, cancelled, waiting, or the daemon stopping):
        free whatever was held for it, such as a generation slot. Called for every run; must be idempotent."""

    def unsettled_jobs(self) -> set[str]:
        """Jobs whose paid submit the backend's ledger has not settled (intent or unknown): retention keeps them."""
        return set()

    def paid_jobs(self) -> dict[str, str | None]:
        """Jobs whose last submit the backend's ledger holds as paid or maybe paid, with their task id if known."""
        return {}

    def prune(self, before: float, keep: Collection[str] = ()) -> int:
        """Forget settled records older than ``before`` (retention), except those of the jobs in ``keep`` (a journal
        still holds them: a resume or retry may need the task id only this record has); return how many went."""
        return 0

    async def cancel(self, spec: JobSpec, receipt: dict) -> None:
        """Stop generation where the backend can; the core marks the job cancelled either way."""

    async def warm_up(self) -> None:
        """Get ready for the first job (start workers, load libraries); the daemon calls it in the background."""

    async def describe(self) -> dict:
        """A short health report for ``daw-bridge doctor``."""
        return {"name": self.name}

    async def close(self) -> None:
        """Release connections and workers."""
