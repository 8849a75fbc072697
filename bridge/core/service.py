"""The job service: admits commands, drives each job through its states, and tells listeners what happened.

Every transition is journaled before the step it names has effects outside the process, so ``resume`` can pick
up any job after a crash. Frontends talk only to this class.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Callable

from bridge import delivery
from bridge.backends.base import Backend
from bridge.config import Config
from bridge.core.admission import admit, inside
from bridge.core.journal import Journal
from bridge.exceptions import BridgeError, Cancelled, DeliveryError, SubmissionUnknown
from bridge.models import JobRecord, Rendered, State
from osc_schema import Command

log = logging.getLogger(__name__)

Listener = Callable[[JobRecord, str], None]
"""listener(record, event) with event one of: accepted, state, done, failed."""

# Share of the progress bar each step owns; generation gets most of it.
_PROGRESS = {State.ACCEPTED: 0.0, State.EXPORTING: 0.02, State.SUBMITTING: 0.08, State.SUBMITTED: 0.1,
             State.GENERATING: 0.1, State.DELIVERING: 0.92, State.DELIVERED: 1.0}


class JobService:
    def __init__(self, config: Config, journal: Journal, backends: dict[str, Backend]):
        self.config = config
        self.journal = journal
        self.backends = backends
        self._listeners: list[Listener] = []
        self._tasks: dict[str, asyncio.Task] = {}
        self._records: dict[str, JobRecord] = {}
        self._cancelling: set[str] = set()
        self._slots = asyncio.Semaphore(config.max_jobs)
        self.context: dict = {}  # the producer's current selection, for triggers that carry no range (MIDI pads)

    # -- what frontends call -------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(self, command: Command, origin: dict) -> JobRecord:
        """Admit an inpaint/extend command, journal it, start it, and return its record (state accepted).

        Raises osc_schema.ValidationError or SourceError when the command cannot be admitted; nothing is journaled.
        """
        spec = admit(command, self.config, set(self.backends))
        record = JobRecord(job_id=spec.job_id, request_id=spec.request_id, origin=origin, spec=spec,
                           state=State.ACCEPTED)
        self.journal.insert(record)
        self._emit(record, "accepted")
        self._start(record)
        return record

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a job that has not finished; returns its record, or None when there is no such job."""
        record = self.get(job_id)
        if record is None or record.state.finished:
            return record
        task = self._tasks.get(job_id)
        if task is not None:
            self._cancelling.add(job_id)
            task.cancel()
        else:  # waiting for the producer (submission_unknown): nothing runs
            self._finish(record, State.CANCELLED, Cancelled("cancelled by the producer"))
        return record

    def retry(self, job_id: str) -> JobRecord | None:
        """Run a failed or cancelled job again: from its task id when it has one, so a paid job is not paid twice."""
        record = self.get(job_id)
        if record is None or not (record.state.finished or record.state.waiting_for_producer):
            return record
        if record.state is State.DELIVERED:
            return record
        resume_at = State.SUBMITTED if record.receipt else State.ACCEPTED
        self.journal.update(record, state=resume_at, error_code=None, error_message=None, message="retrying")
        self._start(record)
        return record

    def resolve_submission(self, job_id: str, task_id: str | None) -> JobRecord | None:
        """Settle a submission_unknown job: with the task id the producer found, or None when nothing was sent."""
        record = self.get(job_id)
        if record is None or not record.state.waiting_for_producer:
            return record
        if task_id:
            self.journal.update(record, state=State.SUBMITTED, receipt={"task_id": task_id, "resolved": True})
        else:
            self.journal.update(record, state=State.EXPORTING, message="resubmitting at the producer's request")
        self._start(record)
        return record

    def set_context(self, values: dict) -> None:
        """Remember the current selection (source, range, ids) sent by a DAW; unset keys keep their value."""
        self.context.update({k: v for k, v in values.items() if v is not None and k != "reply_port"})

    def get(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id) or self.journal.get(job_id)

    def active(self) -> list[JobRecord]:
        return [r for r in self._records.values() if not r.state.finished]

    async def resume(self) -> int:
        """Start every unfinished job from the journal where it stood; return how many were picked up."""
        count = 0
        for record in self.journal.unfinished():
            if record.spec.backend not in self.backends:
                self._finish(record, State.FAILED, BridgeError(
                    f"backend {record.spec.backend!r} is no longer configured", code="backend_unavailable"))
                continue
            self._records[record.job_id] = record
            if not record.state.waiting_for_producer:
                log.info("resuming job %s from %s", record.job_id, record.state.value)
                self._start(record)
                count += 1
        return count

    async def close(self) -> None:
        """Stop running jobs without marking them: they stay journaled where they stood and resume next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until no job is running (for one-shot use and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    # -- the state machine ---------------------------------------------------------------------------------------

    def _start(self, record: JobRecord) -> None:
        self._records[record.job_id] = record
        task = asyncio.get_running_loop().create_task(self._run(record), name=f"job {record.job_id}")
        self._tasks[record.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.job_id, None))

    async def _run(self, record: JobRecord) -> None:
        try:
            while not (record.state.finished or record.state.waiting_for_producer):
                await self._step(record)
        except asyncio.CancelledError:
            if record.job_id in self._cancelling:
                self._cancelling.discard(record.job_id)
                await self._cancel_backend(record)
                self._finish(record, State.CANCELLED, Cancelled("cancelled by the producer"))
            else:
                raise  # the daemon is stopping: the job stays where it stood and resumes on the next start
        except BridgeError as exc:
            log.warning("job %s failed: %s (%s)", record.job_id, exc, exc.code)
            self._finish(record, State.FAILED, exc)
        except Exception as exc:  # a bug or an unforeseen fault: the job fails, the daemon lives on
            log.exception("job %s failed unexpectedly", record.job_id)
            self._finish(record, State.FAILED, BridgeError(f"internal error: {type(exc).__name__}: {exc}",
                                                           code="internal_error"))

    async def _step(self, record: JobRecord) -> None:
        backend = self.backends[record.spec.backend]
        spec, state = record.spec, record.state
        workdir = self.config.work_dir / record.job_id
        if state in (State.ACCEPTED, State.EXPORTING):
            self._advance(record, State.EXPORTING)
            workdir.mkdir(parents=True, exist_ok=True)
            prepared = await backend.prepare(spec, workdir)
            self._advance(record, State.SUBMITTING, prepared=prepared, durable=True)  # on disk before we pay
            await self._submit(record, backend, prepared)
        elif state is State.SUBMITTING:
            # We crashed after announcing a submit and before recording its answer: only the backend knows whether
            # anything left, and a paid job is never sent again on a guess.
            if backend.submission_state(record.job_id) == "not_sent":
                await self._submit(record, backend, record.prepared or {})
            else:
                self._advance(record, State.SUBMISSION_UNKNOWN,
                              message="the daemon stopped while submitting: check your MusicGPT dashboard, then "
                                      "run 'daw-bridge jobs resolve JOB --task-id ID' or '--not-submitted'")
        elif state in (State.SUBMITTED, State.GENERATING):
            self._advance(record, State.GENERATING)
            workdir.mkdir(parents=True, exist_ok=True)
            async with self._slots:
                rendered = await backend.wait(spec, record.prepared or {}, record.receipt or {}, workdir,
                                              lambda fraction, note="": self._progress(record, fraction, note))
            self._advance(record, State.DELIVERING, rendered=[r.to_json() for r in rendered])
        elif state is State.DELIVERING:
            variants = [Rendered.from_json(r) for r in record.rendered or []]
            self._check_drop_folder(spec)
            manifests = await asyncio.to_thread(delivery.deliver, spec, variants)
            self._advance(record, State.DELIVERED, manifests=[str(m) for m in manifests], message="")
            shutil.rmtree(workdir, ignore_errors=True)
            self._emit(record, "done")

    async def _submit(self, record: JobRecord, backend: Backend, prepared: dict) -> None:
        # A submit whose fate is unknown (the answer was lost) waits for the producer like one interrupted by a
        # crash: as a failed job it could be retried, and a retry would pay again.
        try:
            receipt = await backend.submit(record.spec, prepared)
        except SubmissionUnknown as exc:
            self._advance(record, State.SUBMISSION_UNKNOWN, message=str(exc))
            return
        self._advance(record, State.SUBMITTED, receipt=receipt, durable=True)

    def _check_drop_folder(self, spec) -> None:
        """Refuse to deliver when the drop folder now resolves out of the roots (a symlink put there mid-job)."""
        folder = delivery.drop_folder_for(spec)
        try:
            resolved = folder.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise DeliveryError(f"the drop folder {folder} cannot be resolved ({exc}); nothing was written",
                                code="drop_folder_unwritable") from None
        if not inside(resolved, self.config.project_roots):
            raise DeliveryError(f"the drop folder {folder} now leads outside the project roots (to {resolved}); "
                                "nothing was written", code="drop_folder_outside_roots")

    def _advance(self, record: JobRecord, state: State, *, durable: bool = False, **changes) -> None:
        self.journal.update(record, state=state, progress=_PROGRESS.get(state, record.progress), durable=durable,
                            **changes)
        self._emit(record, "state")

    def _progress(self, record: JobRecord, fraction: float, note: str) -> None:
        start, end = _PROGRESS[State.GENERATING], _PROGRESS[State.DELIVERING]
        record.progress = start + (end - start) * min(max(fraction, 0.0), 1.0)
        record.message = note
        self._emit(record, "state")

    def _finish(self, record: JobRecord, state: State, error: BridgeError) -> None:
        self.journal.update(record, state=state, error_code=error.code, error_message=str(error), message="")
        self._emit(record, "failed")

    async def _cancel_backend(self, record: JobRecord) -> None:
        if record.receipt:
            try:
                await self.backends[record.spec.backend].cancel(record.spec, record.receipt)
            except BridgeError as exc:
                log.warning("could not cancel job %s at the backend: %s", record.job_id, exc)

    def _emit(self, record: JobRecord, event: str) -> None:
        for listener in self._listeners:
            try:
                listener(record, event)
            except Exception:  # a broken listener must not break the job
                log.exception("listener failed on %s for job %s", event, record.job_id)
