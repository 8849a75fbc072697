"""The job service: admits commands, drives each job through its states, and tells listeners what happened.

Every transition is journaled before the step it names has effects outside the process, so ``resume`` can pick
up any job after a crash. Frontends talk only to this class's public methods.

Two promises are kept here, at the one place every trigger passes through:

- **A paid job is never submitted twice.** Whether a job may be submitted (again) is decided from the backend's
  own ledger (``Backend.submission_state``), never from the journal alone: a job whose submit may have reached the
  generator can only be *resolved* by the producer, not retried, resumed or resubmitted.
- **Cancel is final.** A cancel is journaled at once and closes the job's delivery gate; the delivery publishes
  its files only through that gate, so nothing of a cancelled job ever appears in the drop folder, and a cancel
  that comes after the gate opened is refused as "already delivered".
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Callable

from bridge import captures, delivery, logs
from bridge.audio import picture
from bridge.audio.wavio import discard
from bridge.backends.base import Backend
from bridge.config import Config
from bridge.core.admission import admit, check_source
from bridge.core.journal import Journal, states_at
from bridge.exceptions import BridgeError, Busy, Cancelled, DeliveryError, SourceError, SubmissionUnknown
from bridge.models import LAST, JobRecord, JobSpec, Rendered, State
from osc_schema import Command, ValidationError

log = logging.getLogger(__name__)

_FINISHED = {state.value for state in State if state.finished}

Listener = Callable[[JobRecord, str], None]
"""listener(record, event) with event one of: accepted, state, done, failed."""

# Share of the progress bar each step owns; generation gets most of it.
_PROGRESS = {State.ACCEPTED: 0.0, State.EXPORTING: 0.02, State.SUBMITTING: 0.08, State.SUBMITTED: 0.1,
             State.GENERATING: 0.1, State.DELIVERING: 0.92, State.DELIVERED: 1.0}

_UNKNOWN_ADVICE = ("check your MusicGPT dashboard, then run 'daw-bridge jobs resolve {job} --task-id ID' or "
                   "'--not-submitted'")
# A job whose backend this daemon lacks (MusicGPT's key not where the service starts) is never failed for it: one that
# may have been paid for would read "failed", and be sent again.
_NOT_HERE = ("ran on backend {backend!r}, which this daemon does not have (MusicGPT needs its API key where the "
             "daemon starts: MUSICGPT_API_KEY, the keyring or the config's api_key); it is kept where it stood "
             "({state}) and resumes when a daemon with that backend starts")
_IN_FLIGHT = ("has a submit still waiting for MusicGPT's answer: nothing can be decided about it before that answer "
              "(or the client's timeout) is in; then 'daw-bridge jobs show {job}' says what to do")


class JobService:
    def __init__(self, config: Config, journal: Journal, backends: dict[str, Backend]):
        self.config = config
        self.journal = journal
        self.backends = backends
        self._listeners: list[Listener] = []
        self._last_delivered: str | None = None  # the job id of the last "done" since this start
        self._tasks: dict[str, asyncio.Task] = {}
        self._posting: set[str] = set()  # jobs whose paid submit is in flight (seen through even when cancelled)
        self._records: dict[str, JobRecord] = {}  # jobs that run or wait for the producer; finished ones leave
        self._unjournaled: set[str] = set()  # finished jobs kept in memory: the journal could not take their end
        self._gates: dict[str, delivery.CommitGate] = {}
        self._painter = picture.Painter()
        self._pictures: set[asyncio.Task] = set()  # delivered jobs' pictures being drawn
        self._drawing: set[str] = set()  # the jobs of those pictures
        self._drawing_turn = asyncio.Lock()  # one job's pictures at a time (see _add_pictures)
        self.deciding: set[str] = set()  # jobs whose decision is being published in a thread (bridge.decisions)
        self._sweeping: asyncio.Task | None = None  # the start's removal of interrupted deliveries' temporaries
        self._slots = asyncio.Semaphore(config.max_jobs)
        self._admitting = 0  # commands whose admission looks at the file system in a thread (see take)
        self.context: dict = {}  # the producer's current selection, for triggers that carry no range (MIDI pads)
        self.inbox: Path | None = None  # the inbox, symlinks resolved, as its frontend last found it (see admit)

    # -- what frontends call -------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(self, command: Command, origin: dict) -> JobRecord:
        """Admit an inpaint/extend command, journal it, start it, and return its record (state accepted).

        A command whose request_id names a job already journaled is the same command sent again (a resent UDP
        datagram, a controller's retry): it returns that job's record (whose ``origin`` is not ``origin``) and
        starts nothing, so a resend can never run, or pay for, a job twice.

        Raises osc_schema.ValidationError or SourceError when the command cannot be admitted; nothing is journaled.
        """
        if (known := self._sent_before(command)) is not None:
            return known
        self._check_room()
        return self._accept(command, admit(command, self.config, set(self.backends), self.inbox), origin)

    async def take(self, command: Command, origin: dict) -> JobRecord:
        """``submit``, with the admission's look at the source and the drop folder in a thread: one on a share that
        does not answer (a project on a NAS whose server is down) holds up this command alone, never the event loop
        (OSC, MIDI, every other job). Until it is answered the command counts against max_jobs + max_queued, so a
        burst of them holds a bounded number of threads."""
        if (known := self._sent_before(command)) is not None:
            return known
        self._check_room()
        self._admitting += 1
        try:
            spec = await asyncio.to_thread(admit, command, self.config, set(self.backends), self.inbox)
        finally:
            self._admitting -= 1
        # The loop ran meanwhile: the same request may have been journaled (a resend admitted first), the room taken.
        if (known := self._sent_before(command)) is not None:
            return known
        self._check_room()
        return self._accept(command, spec, origin)

    def _sent_before(self, command: Command) -> JobRecord | None:
        """The job journaled under the command's request_id, when it is the same command sent again."""
        request_id = command.args.get("request_id")
        if request_id and (known := self.get_request(request_id)) is not None:
            # None: journaled before commands were kept
            if known.origin.get("command") not in (None, _digest(command)):
                # A DAW that counts its ids from 1 again: answering with the old job would hand it another range's
                # results as this one's.
                raise ValidationError("request_id", request_id, f"was already used by another request (job "
                                                                f"{known.job_id}): give each request its own id")
            log.info("request %s was sent again: it is job %s (%s), not a new job", request_id, known.job_id,
                     known.state.value)
            return known
        return None

    def _accept(self, command: Command, spec: JobSpec, origin: dict) -> JobRecord:
        """Journal and start the admitted command's job."""
        self.backends[spec.backend].check(spec)
        # the caller's own dict becomes the record's: frontends tell a resend by identity
        origin["command"] = _digest(command)
        record = JobRecord(job_id=spec.job_id, request_id=spec.request_id, origin=origin, spec=spec,
                           state=State.ACCEPTED)
        self.journal.insert(record)
        self._emit(record, "accepted")
        self._start(record)
        return record

    def _check_room(self) -> None:
        """Refuse a new job (Busy) while max_jobs + max_queued runs are under way. Every admitted job is journaled,
        gets a work folder and exports its region at once (only generation waits for a slot), and is resumed by the
        next start: a script or a controller sending in a loop (2000 commands took 4.5 s over OSC) would otherwise
        queue hours of work, and of MusicGPT's submits, with no end in sight for the producer."""
        limit = self.config.max_jobs + self.config.max_queued
        under_way = len(self._tasks) + self._admitting
        if under_way >= limit:
            raise Busy(f"busy: {under_way} jobs are running or waiting (max_jobs {self.config.max_jobs} + "
                       f"max_queued {self.config.max_queued}); nothing was started: send it again when some have "
                       f"finished ('daw-bridge jobs' lists them)")

    def check(self, command: Command) -> None:
        """Raise what ``submit`` would refuse this command with (a range past the song's end...); start nothing."""
        spec = admit(command, self.config, set(self.backends), self.inbox)
        self.backends[spec.backend].check(spec)

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a job that has not finished; returns its record, or None when there is no such job.

        Raises ValidationError when the job was already delivered (or is being published right now).
        """
        record = self.get(job_id)
        if record is None:
            return None
        gate = self._gates.get(job_id)
        if record.state is State.DELIVERED or (gate is not None and not gate.close()):
            raise ValidationError("job_id", job_id, "was already delivered: its files are in the drop folder")
        if record.state.finished:
            return record
        self._finish(record, State.CANCELLED, Cancelled("cancelled by the producer"))
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()  # _run tells the backend, once whatever must be settled (a paid POST) is settled
        return record

    def retry(self, job_id: str) -> JobRecord | None:
        """Run a failed or cancelled job again, never paying twice for it.

        From its task when one is known (the journal's receipt, or the backend's ledger), from the start when the
        backend's ledger says nothing was sent; refused (ValidationError) when the submit may have been paid for.
        """
        record = self.get(job_id)
        if record is None:
            return None
        if record.state is State.DELIVERED:
            raise ValidationError("job_id", job_id, "was delivered: send the command again for another take")
        if job_id in self._posting:
            raise ValidationError("job_id", job_id, _IN_FLIGHT.format(job=job_id))
        if record.state.waiting_for_producer:
            raise ValidationError("job_id", job_id, "may have been paid for already, so it cannot be retried: "
                                  + _UNKNOWN_ADVICE.format(job=job_id))
        self._backend_of(record)
        if not record.state.finished:
            raise ValidationError("job_id", job_id, f"is still running ({record.state.value})")
        resume_at, receipt = self._restart_point(record)
        if resume_at is State.SUBMISSION_UNKNOWN:
            raise ValidationError("job_id", job_id, "may have been paid for already (its submit was never "
                                  "answered), so it cannot be retried: " + _UNKNOWN_ADVICE.format(job=job_id))
        self.journal.update(record, state=resume_at, receipt=receipt, error_code=None, error_message=None,
                            message="retrying")
        self._start(record)
        return record

    def resolve_submission(self, job_id: str, task_id: str | None) -> JobRecord | None:
        """Settle a job whose submit may have been paid for: with the task id the producer found, or None when the
        producer says nothing was sent (then it is submitted again)."""
        record = self.get(job_id)
        if record is None:
            return None
        if task_id and logs.scrub(task_id) != task_id:  # e.g. the API key, copied from the same dashboard
            raise ValidationError("task_id", shown=logs.scrub(task_id), rule="holds a credential, not a task id: "
                                  "copy the task id from the MusicGPT dashboard")
        # The producer's answer is final: a POST still in flight (a job cancelled meanwhile sees it through) would
        # settle the ledger and the journal after it, undoing it, and a resubmit beside it would pay twice.
        if job_id in self._posting:
            raise ValidationError("job_id", job_id, _IN_FLIGHT.format(job=job_id))
        if job_id in self._tasks:  # its run is ending (a cancel being passed on): a new run must not overlap it
            raise ValidationError("job_id", job_id, "is still stopping: try again in a moment")
        backend = self.backends.get(record.spec.backend)
        stopped = record.state in (State.FAILED, State.CANCELLED)
        open_question = record.state.waiting_for_producer or stopped and (
            not (record.receipt or {}).get("task_id")
            and backend is not None and backend.submission_state(record.job_id, record.prepared) == "unknown"
            # the task the producer named was not the job's (mistyped): another may be named, never a resubmit
            or bool(task_id) and record.task_named_by_producer)
        if not open_question:
            raise ValidationError("job_id", job_id, f"has no unknown submission to resolve ({record.state.value})")
        self._backend_of(record).resolve_submission(job_id, task_id)
        if task_id:
            self.journal.update(record, state=State.SUBMITTED, receipt={"task_id": task_id, "named_by": "producer"},
                                error_code=None, error_message=None, message="waiting for the task the producer named")
        else:
            self.journal.update(record, state=State.EXPORTING, receipt=None, error_code=None, error_message=None,
                                message="resubmitting at the producer's request")
        self._start(record)
        return record

    def set_context(self, values: dict) -> None:
        """Remember the current selection (source, range, ids) sent by a DAW; unset keys keep their value."""
        self.context.update({k: v for k, v in values.items() if v is not None and k != "reply_port"})

    def get(self, job_id: str) -> JobRecord | None:
        return self._records.get(job_id) or self.journal.get(job_id)

    def get_request(self, request_id: str) -> JobRecord | None:
        """The job made from the command with this request_id, if any."""
        known = self.journal.find_request(request_id)
        return self._records.get(known.job_id, known) if known else None

    def active(self) -> list[JobRecord]:
        return [r for r in self._records.values() if not r.state.finished]

    def named(self, job: str) -> JobRecord:
        """The job ``job`` names: its id, or "last" for the job delivered last; a one-line ValidationError (job_id)
        when there is none."""
        record = self.last_delivered() if job == LAST else self.get(job)
        if record is None:
            raise ValidationError("job_id", job, "found no delivered job yet" if job == LAST else "is not a known job")
        return record

    def last_delivered(self) -> JobRecord | None:
        """The job delivered last ("last" to the audition and to decisions): since this start, else the newest
        delivered job in the journal."""
        record = self.get(self._last_delivered) if self._last_delivered else None
        if record is not None and record.state is State.DELIVERED:
            return record
        return next((r for r in self.recent() if r.state is State.DELIVERED), None)

    def recent(self, limit: int = 50) -> list[JobRecord]:
        """The latest jobs, newest first, as the journal holds them."""
        return self.journal.recent(limit)

    def job_from_request_file(self, name: str, digest: str) -> JobRecord | None:
        """The job made from a request file of this name and content, if any (so a file is never run twice)."""
        return self.journal.find_origin_file(name, digest)

    @property
    def backend_names(self) -> list[str]:
        return sorted(self.backends)

    async def resume(self) -> int:
        """Start every unfinished job from the journal where it stood; return how many were picked up.

        Then, in the background, the hidden temporaries deliveries stopped mid-write left in the drop folders go (see
        :meth:`_remove_leftovers`): a drop folder on a network share that does not answer must not hold up the start.
        """
        resumed = sum(self._take_up(record) for record in self.journal.unfinished())
        self._sweeping = asyncio.get_running_loop().create_task(self._remove_leftovers(), name="drop folder leftovers")
        return resumed

    async def _remove_leftovers(self) -> None:
        """Remove the hidden temporaries a delivery (or a decision) killed mid-write left in the drop folders this
        daemon knows: the configured one and every journaled job's.

        A job delivered again removes its own, but a job that never is (cancelled, failed, or gone with a journal
        that was moved away) left its half file there for good. Spared: the temporaries of a job that may be writing
        now, one of this daemon's that has not finished or whose pictures are being drawn, or a one-shot command's
        that its journal says has not finished. Those jobs are read after the folders are listed, so a file listed
        while its job was writing counts as that job's (a delivery is journaled before it writes, and every new
        temporary gets a new name).
        """
        try:
            found = await asyncio.to_thread(self._leftovers)
            if not found:
                return
            try:
                others = await asyncio.to_thread(states_at, self.config.one_shot_journal_path)
            except sqlite3.Error as exc:
                log.warning("left %d hidden temporary file(s) of interrupted deliveries in the drop folders: the "
                            "one-shot commands' journal %s cannot be read (%s), so a job of theirs may still be "
                            "writing one", len(found), self.config.one_shot_journal_path, exc)
                return
            busy = {job_id for job_id, state in others.items() if state not in _FINISHED}
            busy |= {job_id for job_id, record in self._records.items() if not record.state.finished}
            busy |= self._drawing | self.deciding
            suffixes = {job_id.rsplit("-", 1)[-1] for job_id in busy}
            stale = [path for path, suffix in found if suffix not in suffixes]
            # A decision is staged and published in a thread: its job is among the busy ones until it is out, and
            # one that began after the listing stages under new names. Unlinked in a thread: a share that does not
            # answer must not hold up the loop.
            await asyncio.to_thread(discard, stale)
            if stale:
                log.info("removed %d hidden temporary file(s) that interrupted deliveries left in the drop folders",
                         len(stale))
        except (OSError, sqlite3.Error) as exc:  # a convenience: the daemon serves all the same
            log.warning("could not look for what interrupted deliveries left in the drop folders (%s)", exc)

    def _leftovers(self) -> list[tuple[Path, str]]:
        """Every leftover temporary in the drop folders this daemon knows, with its job's suffix (any thread)."""
        places = {self.config.drop_folder} if self.config.drop_folder else set()
        for drop_folder, source in self.journal.destinations():
            if isinstance(source, str) and (drop_folder is None or isinstance(drop_folder, str)):
                places.add(delivery.drop_folder_of(Path(drop_folder) if drop_folder else None, Path(source)))
        return [leftover for place in places for leftover in delivery.leftover_temporaries(place,
                                                                                           self.config.in_project)]

    def resume_job(self, job_id: str) -> JobRecord | None:
        """Start one unfinished job from the journal where it stood (a one-shot command's, after that command died);
        None when the journal has no such unfinished job."""
        record = self.journal.get(job_id)
        if record is None or record.state.finished:
            return None
        self._take_up(record)
        return record

    def _take_up(self, record: JobRecord) -> bool:
        """Hold an unfinished job read from the journal, and start it unless it waits for the producer; one whose
        backend this daemon lacks is left as the journal holds it (see _NOT_HERE)."""
        if record.spec.backend not in self.backends:
            log.warning("job %s is not resumed: it %s", record.job_id,
                        _NOT_HERE.format(backend=record.spec.backend, state=record.state.value))
            return False
        self._records[record.job_id] = record
        if record.state.waiting_for_producer:
            return False
        log.info("resuming job %s from %s", record.job_id, record.state.value)
        self._start(record)
        return True

    async def close(self) -> None:
        """Stop running jobs without marking them: they stay journaled where they stood and resume next start."""
        tasks = list(self._tasks.values()) + ([self._sweeping] if self._sweeping else [])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._painter.close)  # a picture being drawn is left out (its log line says so)
        await asyncio.gather(*self._pictures, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until no job is running and every delivered job's pictures are out (for one-shot use and tests)."""
        while self._tasks or self._pictures:
            await asyncio.gather(*self._tasks.values(), *self._pictures, return_exceptions=True)

    # -- the state machine ---------------------------------------------------------------------------------------

    def _backend_of(self, record: JobRecord) -> Backend:
        """The backend the job ran on; a one-line ValidationError when this daemon does not have it."""
        backend = self.backends.get(record.spec.backend)
        if backend is None:
            raise ValidationError("job_id", record.job_id, _NOT_HERE.format(backend=record.spec.backend,
                                                                           state=record.state.value))
        return backend

    def _restart_point(self, record: JobRecord) -> tuple[State, dict | None]:
        """Where a job that stopped before delivering starts again, and with which receipt.

        The backend's ledger outranks the journal: it is written on the far side of the journal's "submitting"
        mark, so it knows of a task (or of a submit whose answer was lost) that the journal may not.
        """
        if (record.receipt or {}).get("task_id"):
            return State.SUBMITTED, record.receipt
        backend = self.backends[record.spec.backend]
        answer = backend.submission_state(record.job_id, record.prepared)
        if answer == "not_sent":
            return State.ACCEPTED, None
        if answer == "accepted" and (receipt := backend.submitted_receipt(record.job_id)):
            return State.SUBMITTED, receipt
        return State.SUBMISSION_UNKNOWN, None

    def _start(self, record: JobRecord) -> None:
        self._records[record.job_id] = record
        self._unjournaled.discard(record.job_id)
        task = asyncio.get_running_loop().create_task(self._run(record), name=f"job {record.job_id}")
        self._tasks[record.job_id] = task
        # a run that ends after the job's next one started (never, see resolve_submission) must not forget that one
        task.add_done_callback(lambda done: self._tasks.pop(record.job_id) if self._tasks.get(record.job_id) is done
                               else None)

    async def _run(self, record: JobRecord) -> None:
        backend = self.backends[record.spec.backend]
        try:
            await self._check_source(record)
            while not (record.state.finished or record.state.waiting_for_producer):
                await self._step(record)
        except asyncio.CancelledError:
            if record.state is State.CANCELLED:  # the producer's cancel (journaled already), not the daemon stopping
                await self._cancel_backend(record)
            else:
                raise  # the daemon is stopping: the job stays where it stood and resumes on the next start
        except BridgeError as exc:
            log.warning("job %s failed: %s (%s)", record.job_id, exc, exc.code)
            self._fail_unjournaled(record, exc)
        except Exception as exc:
            if _disk_full(exc) and record.state.waiting_for_producer:
                # The journal could not take that the job waits for the producer (a task the spend ledger could not
                # write down either): failed, it would be retried on a full disk's advice, and refused as maybe paid.
                log.warning("job %s: the journal could not record that it waits for the producer (%s): this daemon "
                            "keeps it waiting: %s", record.job_id, exc, record.message)
                self._emit(record, "state")
                return
            if _disk_full(exc):
                # the work files, the analysis cache and the journal all live in the state folder
                error = BridgeError(f"the disk holding the state folder {self.config.state_dir} is full: free some "
                                    f"space, then 'daw-bridge jobs retry {record.job_id}'", code="disk_full")
                log.warning("job %s failed: %s (%s)", record.job_id, error, error.code)
            else:  # a bug or an unforeseen fault: the job fails, the daemon lives on
                log.exception("job %s failed unexpectedly", record.job_id)
                error = BridgeError(f"internal error: {type(exc).__name__}: {exc}", code="internal_error")
            self._fail_unjournaled(record, error)
        finally:
            # Whatever ended this run (delivery, failure, cancel, a journal write that failed between prepare and
            # submit, the daemon stopping), the backend frees what it held for the job: a leaked generation slot
            # would stall every later job.
            backend.release(record.job_id)
            self._gates.pop(record.job_id, None)
            if record.state.finished and record.job_id not in self._unjournaled:
                self._records.pop(record.job_id, None)

    def _fail_unjournaled(self, record: JobRecord, error: BridgeError) -> None:
        """Fail the job, even when the journal cannot take it (a full disk, whether or not it failed the job, holds it).

        Then this daemon keeps the failed job in memory: the journal still says the step it last took (submitting,
        say), which refused a retry or resolve as "still running" until a restart, after the space was freed.
        """
        try:
            self._finish(record, State.FAILED, error)
        except Exception as exc:
            if not _disk_full(exc):
                raise
            self._unjournaled.add(record.job_id)
            log.warning("job %s: the journal could not record that it failed (%s): this daemon keeps it as failed, "
                        "and a restart resumes it from its last journaled step", record.job_id, exc)
            self._emit(record, "failed")

    async def _check_source(self, record: JobRecord) -> None:
        """Each run (the first, a retry, a start after a crash) reads the source the job was admitted for, or nothing
        (see admission.check_source). A job whose task was bought says how to have it without paying again."""
        try:
            await asyncio.to_thread(check_source, self.config, record.spec)
        except SourceError as exc:
            if (task := (record.receipt or {}).get("task_id")) is None:
                raise
            raise SourceError(f"{exc}; with the song put back as it was, 'daw-bridge jobs retry {record.job_id}' "
                              f"delivers task {task} without paying again", code=exc.code) from None

    async def _step(self, record: JobRecord) -> None:
        backend = self.backends[record.spec.backend]
        spec, state = record.spec, record.state
        workdir = self.config.work_dir / record.job_id
        if state in (State.ACCEPTED, State.EXPORTING):
            self._advance(record, State.EXPORTING)
            await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
            if "capture" in spec.ids:  # a plugin's capture: the planned stretch becomes the job's source file
                await asyncio.to_thread(captures.export_job_source, self.config, spec)
            prepared = await backend.prepare(spec, workdir)
            # on disk before a paid backend is asked: a resubmit could pay twice (a free one's costs nothing)
            self._advance(record, State.SUBMITTING, durable=not backend.resubmit_safe, prepared=prepared)
            await self._submit(record, backend, prepared)
        elif state is State.SUBMITTING:
            # We stopped after announcing a submit and before recording its answer: only the backend's ledger
            # knows whether anything left, and a paid job is never sent again on a guess.
            resume_at, receipt = self._restart_point(record)
            if resume_at is State.ACCEPTED:
                await self._submit(record, backend, record.prepared or {})
            elif resume_at is State.SUBMITTED:
                self._advance(record, State.SUBMITTED, durable=True, receipt=receipt)
            else:
                self._advance(record, State.SUBMISSION_UNKNOWN,
                              message="the daemon stopped while submitting: " + _UNKNOWN_ADVICE.format(
                                  job=record.job_id))
        elif state in (State.SUBMITTED, State.GENERATING):
            self._advance(record, State.GENERATING)
            await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
            async with self._slots:
                rendered = await backend.wait(spec, record.prepared or {}, record.receipt or {}, workdir,
                                              lambda fraction, note="": self._progress(record, fraction, note))
            self._advance(record, State.DELIVERING, rendered=[r.to_json() for r in rendered])
        elif state is State.DELIVERING:
            await self._deliver(record, workdir)

    async def _submit(self, record: JobRecord, backend: Backend, prepared: dict) -> None:
        # In flight until the POST's outcome is in the ledger and the journal: a retry or resolve waits for it.
        self._posting.add(record.job_id)
        try:
            await self._submit_once(record, backend, prepared)
        finally:
            self._posting.discard(record.job_id)

    async def _submit_once(self, record: JobRecord, backend: Backend, prepared: dict) -> None:
        # A submit whose fate is unknown (the answer was lost) waits for the producer like one interrupted by a
        # crash: as a failed job it could be retried, and a retry would pay again.
        try:
            receipt = await backend.submit(record.spec, prepared)
        except SubmissionUnknown as exc:
            if record.state is not State.CANCELLED:
                self._advance(record, State.SUBMISSION_UNKNOWN, message=str(exc))
            else:  # it stays cancelled, but the producer must hear that a task may be paid for (and can be resolved)
                log.warning("job %s was cancelled, but %s", record.job_id, exc)
                self.journal.update(record, error_message=f"cancelled by the producer, but {exc}", durable=True)
            return
        if record.state is State.CANCELLED:  # cancelled while the POST was in flight: keep what it bought
            self.journal.update(record, receipt=receipt, durable=True)
        else:
            self._advance(record, State.SUBMITTED, durable=not backend.resubmit_safe, receipt=receipt)
        # A paid backend lets its POST finish even when the job is cancelled meanwhile, so the answer is never
        # lost; the cancellation it held back takes effect now.
        if asyncio.current_task().cancelling():
            raise asyncio.CancelledError

    async def _deliver(self, record: JobRecord, workdir) -> None:
        spec = record.spec
        variants = [Rendered.from_json(r) for r in record.rendered or []]
        await asyncio.to_thread(self._check_drop_folder, spec)  # on a share that may not answer
        gate = self._gates[record.job_id] = delivery.CommitGate()
        try:
            manifests = await asyncio.to_thread(delivery.deliver, spec, variants, gate)
        except DeliveryError:
            # The folder was removed while the files were written (a producer cleaning the project): a delivery that
            # begins a moment later makes it again, so this one, which left nothing there, does the same once.
            folder = delivery.drop_folder_for(spec)
            if await asyncio.to_thread(folder.is_dir):
                raise
            log.info("job %s: the drop folder %s went away while the result was written; writing it again",
                     record.job_id, folder)
            await asyncio.to_thread(self._check_drop_folder, spec)
            manifests = await asyncio.to_thread(delivery.deliver, spec, variants, gate)
        self._advance(record, State.DELIVERED, manifests=[str(m) for m in manifests], message="")
        self._emit(record, "done")
        # The pictures come after "done": drawing them took longer than the rest of a cached job.
        task = asyncio.get_running_loop().create_task(self._add_pictures(spec, variants, manifests, workdir),
                                                      name=f"pictures {record.job_id}")
        self._pictures.add(task)
        self._drawing.add(record.job_id)
        task.add_done_callback(self._pictures.discard)
        task.add_done_callback(lambda _: self._drawing.discard(record.job_id))

    async def _add_pictures(self, spec, variants: list[Rendered], manifests, workdir) -> None:
        try:
            # The painter draws in one process, and a job's pictures wait for it in a thread of the loop's pool:
            # jobs delivered in a row, each waiting its turn there, held every thread of that pool, and the next
            # job's delivery and every command's admission waited behind them. They take their turn here instead.
            async with self._drawing_turn:
                await asyncio.to_thread(delivery.add_pictures, spec, variants, manifests, self._painter.render)
        finally:  # the variants drawn from live in the work folder
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    def _check_drop_folder(self, spec) -> None:
        """Refuse to deliver when the drop folder now resolves out of the roots (a symlink put there mid-job)."""
        folder = delivery.drop_folder_for(spec)
        try:
            resolved = folder.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            raise DeliveryError(f"the drop folder {folder} cannot be resolved ({exc}); nothing was written",
                                code="drop_folder_unwritable") from None
        if not self.config.in_project(resolved):
            raise DeliveryError(f"the drop folder {folder} now leads outside the project roots (to {resolved}); "
                                "nothing was written", code="drop_folder_outside_roots")

    def _advance(self, record: JobRecord, state: State, *, durable: bool = False, **changes) -> None:
        # Journal writes stay on the event loop on purpose: each is atomic with respect to cancel() and the other
        # frontend calls, so no state can be overwritten by a write still in flight. A durable one (the intent to
        # pay, the task id) costs one fsync: 0.26 ms median on this machine's disk.
        self.journal.update(record, state=state, progress=_PROGRESS.get(state, record.progress), durable=durable,
                            **changes)
        if state is State.SUBMISSION_UNKNOWN:  # a task that may be paid for waits for the producer: the log says so
            log.warning("job %s is in submission_unknown: %s", record.job_id, record.message)
        self._emit(record, "state")


    def _progress(self, record: JobRecord, fraction: float, note: str) -> None:
        if record.state.finished:
            return
        start, end = _PROGRESS[State.GENERATING], _PROGRESS[State.DELIVERING]
        record.progress = start + (end - start) * min(max(fraction, 0.0), 1.0)
        record.message = note
        self._emit(record, "state")

    def _finish(self, record: JobRecord, state: State, error: BridgeError) -> None:
        # scrub: an error may quote an address with a token in it; it goes to replies, status files and the CLI
        said = str(error)
        if record.task_named_by_producer:
            said += (f"; if task {record.receipt['task_id']} is not this job's, 'daw-bridge jobs resolve "
                     f"{record.job_id} --task-id ID' names the right one")
        self.journal.update(record, state=state, error_code=error.code, error_message=logs.scrub(said), message="")
        if record.job_id not in self._tasks:
            self._records.pop(record.job_id, None)
        self._emit(record, "failed")

    async def _cancel_backend(self, record: JobRecord) -> None:
        if record.receipt:
            try:
                await self.backends[record.spec.backend].cancel(record.spec, record.receipt)
            except BridgeError as exc:
                log.warning("could not cancel job %s at the backend: %s", record.job_id, exc)

    def _emit(self, record: JobRecord, event: str) -> None:
        if event == "done":
            self._last_delivered = record.job_id
        for listener in self._listeners:
            try:
                listener(record, event)
            except Exception:  # a broken listener must not break the job
                log.exception("listener failed on %s for job %s", event, record.job_id)


def _digest(command: Command) -> str:
    """What a command asked for, to tell the same command sent again from another one under the same request_id."""
    asked = json.dumps({"command": command.name, **command.args}, sort_keys=True, default=str)
    return hashlib.sha256(asked.encode()).hexdigest()[:16]


def _disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: the OS's ENOSPC or EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
