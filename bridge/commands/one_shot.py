"""``daw-bridge inpaint`` / ``extend``: one job in this process, no daemon, with a progress bar."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import osc_schema
from bridge import threads
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.daemon import make_backends
from bridge.exceptions import BridgeError
from bridge.lifeline import end_resource_tracker
from bridge.models import JobRecord, State
from bridge.statelock import downgrade, hold
from osc_schema import ValidationError


def request_of(args) -> dict:
    """The CLI's flags as a request, so the one-shot path validates exactly like OSC and request files."""
    data = {"command": args.operation, "source": str(args.source.expanduser().absolute())}
    if args.operation == "inpaint":
        data.update(start=args.start, end=args.end, prompt=args.prompt)
        section_key = "lyrics_section_to_replace"
    else:
        data.update(extend_after=args.after, duration=args.duration, prompt=args.prompt)
        section_key = "lyrics_section_to_extend"
    data.update({"lyrics": args.lyrics, section_key: args.section_lyrics, "gender": args.gender,
                 "num_outputs": args.num_outputs, "backend": args.backend, "delivery": args.delivery,
                 "drop_folder": str(args.out.expanduser().absolute()) if args.out else None})
    return {k: v for k, v in data.items() if v is not None}


ONE_SHOT_LOCK = "one-shot.lock"


def one_shot(config: Config, args) -> int:
    folders = [args.source.expanduser().absolute().parent] + ([args.out.expanduser().absolute()] if args.out else [])
    try:
        command = osc_schema.parse_request(request_of(args))
        # the folders it was granted are kept with the job, so settling it later grants no more than this command
        origin = {"kind": "cli", "folders": [str(folder) for folder in folders]}
        return threads.run(_run(config, folders, lambda service: service.submit(command, origin)))
    except (ValidationError, BridgeError) as exc:
        print(f"daw-bridge {args.operation}: {exc}", file=sys.stderr)
        return 2


def settle_one_shot(config: Config, action: str, job_id: str, task_id: str | None = None) -> int | None:
    """``daw-bridge jobs resolve`` / ``retry`` for a job a one-shot command left unfinished (a submission of unknown
    fate, or a task named and then cancelled or failed): run here, as the daemon does for its own; None when no
    one-shot job has that id (it is the daemon's)."""
    try:
        record = lookup(config.one_shot_journal_path, job_id)
    except BridgeError as exc:  # damaged: a job the daemon holds is still the daemon's to settle
        with contextlib.suppress(BridgeError):
            if lookup(config.journal_path, job_id) is not None:
                return None
        print(f"daw-bridge jobs {action}: {exc}", file=sys.stderr)
        return 2
    if record is None:
        return None
    folders = [Path(folder) for folder in record.origin.get("folders", [record.spec.source.parent])]
    resume = not (record.state.finished or record.state.waiting_for_producer)
    guard = None
    if resume:  # left mid-flight: its command was killed, unless a one-shot command still runs (it may be that one)
        guard = hold(config.state_dir / ONE_SHOT_LOCK, exclusive=True)
        if guard is None:
            print(f"daw-bridge jobs {action}: job {job_id} is {record.state.value} and a one-shot command is still "
                  "running (it may be this job's): try again once it has ended", file=sys.stderr)
            return 2

    def start(service: JobService) -> JobRecord | None:
        if resume:
            return service.resume_job(job_id)
        return service.resolve_submission(job_id, task_id) if action == "resolve" else service.retry(job_id)

    try:
        return threads.run(_run(config, folders, start, guard))
    except (ValidationError, BridgeError) as exc:
        print(f"daw-bridge jobs {action}: {exc}", file=sys.stderr)
        return 2


def lookup(path: Path, job_id: str) -> JobRecord | None:
    """The job of that id in the journal at ``path`` (None: no such job, or no journal); BridgeError when damaged."""
    if not path.exists():
        return None
    journal = Journal(path)
    try:
        return journal.get(job_id)
    finally:
        journal.close()


async def _run(config: Config, folders: list[Path], start: Callable[[JobService], JobRecord],
               guard: int | None = None) -> int:
    """Start one job (``start``) in this process and see it to its end. The job's own folders join the project
    roots: naming a song on the command line is permission enough to read it and write beside it. A separate
    journal: a daemon running at the same time must not pick this job up as its own. The one-shot lock is held
    shared meanwhile (``guard``: this process's exclusive hold, shared from now on), so a later command can tell a
    job left mid-flight from one still running."""
    if guard is None:
        try:
            guard = hold(config.state_dir / ONE_SHOT_LOCK, exclusive=False)
        except OSError as exc:  # the journal could not be kept there either
            raise BridgeError(f"the state folder {config.state_dir} cannot be used ({exc.strerror})") from None
    else:
        downgrade(guard)
    try:
        return await _see_through(replace(config, project_roots=config.project_roots + tuple(folders)), start)
    finally:
        os.close(guard)


async def _see_through(config: Config, start: Callable[[JobService], JobRecord]) -> int:
    backends = make_backends(config)
    journal = Journal(config.one_shot_journal_path)
    service = JobService(config, journal, backends)
    bar = _ProgressBar()
    service.subscribe(bar.update)
    service_log = logging.getLogger("bridge.core.service")
    if not service_log.isEnabledFor(logging.DEBUG):  # this command's last line says how the job ended: not the log too
        service_log.setLevel(logging.ERROR)
    try:
        record = start(service)
        # Ctrl-C, a kill or the terminal closing cancels the job: its delivery removes what it staged (a kill
        # mid-delivery left a hidden half file in the drop folder, which no later run cleans up), and a paid
        # request in flight is seen through.
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
            with contextlib.suppress(NotImplementedError):  # Windows' event loops take no signal handlers
                asyncio.get_running_loop().add_signal_handler(signum, _cancel, service, record.job_id)
        await service.drain()
    finally:
        await service.close()
        for backend in backends.values():
            await backend.close()
        journal.close()
        end_resource_tracker()  # the engine's pool is shut down: its tracker ends before this command does
        bar.finish()  # before any message: a refusal or a failure is a line of its own
    if record.state is not State.DELIVERED:
        # Not only "failed": a paid submit whose fate is unknown ends here too, and its reason is in the message.
        reason = f"{record.error_code}: {record.error_message}" if record.error_code else record.message
        print(f"{record.state.value} ({record.job_id}): {reason}", file=sys.stderr)
        if record.state is State.SUBMISSION_UNKNOWN:
            print(f"look for the task in your MusicGPT account, then 'daw-bridge jobs resolve {record.job_id} "
                  "--task-id ID' brings its results in (nothing is paid again), or '--not-submitted' if there is "
                  "none", file=sys.stderr)
        elif (record.receipt or {}).get("task_id"):  # paid for: no daemon holds the job to retry it
            print(f"'daw-bridge jobs retry {record.job_id}' takes it up again from MusicGPT task "
                  f"{record.receipt['task_id']} (nothing is paid again)", file=sys.stderr)
        return 1
    for manifest in record.manifests:
        print(manifest)
    return 0


def _cancel(service: JobService, job_id: str) -> None:
    with contextlib.suppress(ValidationError):  # being published already: it ends delivered
        service.cancel(job_id)


class _ProgressBar:
    width = 30

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = ""
        self.state = None

    def update(self, record: JobRecord, event: str) -> None:
        filled = int(record.progress * self.width)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {record.progress * 100:3.0f}% {record.state.value}"
        if record.message:
            line += f" - {record.message}"
        if line == self.last:
            return
        self.last = line
        if self.tty:
            sys.stderr.write("\r" + line[:100].ljust(100))
        elif record.state.value != self.state:  # a log, not a terminal: one line per state
            sys.stderr.write(line + "\n")
        self.state = record.state.value
        sys.stderr.flush()

    def finish(self) -> None:
        if self.tty and self.last:  # a bar drawn and not ended (a refusal before the first draw drew none)
            sys.stderr.write("\n")
            self.last = ""
