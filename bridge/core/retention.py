"""Retention: what a long-running daemon deletes, so its state folder and inbox stay bounded.

Finished jobs (delivered, failed, cancelled) leave the journal after ``[retention] jobs_days`` (a day at least
beside a spend ledger, which keeps its last day); leftover work folders (of finished jobs, or of no job the journals
know) and the inbox's answered requests, error files and status files go after ``files_days``; settled rows of a
spend ledger go after ``jobs_days``, once their job has left the journals. 0 keeps forever.

Nothing that money may hang on is deleted at any age: unfinished jobs (submission_unknown included) and their work
folders and status files stay, a finished job whose paid submit the ledger never settled stays, the ledger keeps its
intents, unknown submits and last 24 hours (see ``SpendGuard.prune``), and every row of a job a journal still holds:
a job stopped between MusicGPT's answer and its journal's next step has its paid task only there. The one-shot
commands' journal (``daw-bridge inpaint|extend``) shares the state folder, the work folders and the ledgers, so it
is read too: its jobs are held like the daemon's own.

A pass runs when the daemon starts and then every hour, in a worker thread: the journal's pruning uses its own
connection and short transactions, so the event loop goes on answering meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridge.core.journal import Journal, states_at
from bridge.models import State

log = logging.getLogger(__name__)

DAY = 86400.0
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Retention:
    """How long finished jobs and leftover files are kept, in days; 0 keeps them forever."""

    jobs_days: float = 30.0
    files_days: float = 7.0

    @classmethod
    def from_config(cls, config) -> Retention:
        """The config's [retention] table; the one place holding the defaults until the settings schema does."""
        table = config.retention
        return cls(jobs_days=float(table.get("jobs_days", cls.jobs_days)),
                   files_days=float(table.get("files_days", cls.files_days)))

    @staticmethod
    def cutoff(now: float, days: float) -> float | None:
        """The time before which things of this kind go, or None when they are kept forever."""
        return now - days * DAY if days > 0 else None


class Ledger(Protocol):
    """What a backend keeps of paid submits (``Backend.prune`` and ``unsettled_jobs``; MusicGPT: its spend ledger)."""

    def prune(self, before: float, keep: Collection[str] = ()) -> int: ...

    def unsettled_jobs(self) -> set[str]: ...

    def paid_jobs(self) -> dict[str, str | None]: ...


class Inbox(Protocol):
    """The inbox frontend's answered files (``InboxFrontend``)."""

    def prune(self, before: float, keep: Collection[Path] = ()) -> tuple[int, int]: ...


@dataclass
class Pruned:
    """What one pass deleted."""

    jobs: int = 0
    work_folders: int = 0
    inbox_files: int = 0
    ledger_rows: int = 0
    freed_bytes: int = 0
    kept_jobs: int = 0

    def line(self) -> str:
        return (f"retention: removed {self.jobs} finished job(s) from the journal, {self.work_folders} work "
                f"folder(s), {self.inbox_files} inbox file(s), {self.ledger_rows} spend ledger row(s); "
                f"{self.freed_bytes / 1e6:.1f} MB of files freed; {self.kept_jobs} job(s) kept")


class Pruner:
    """Deletes what the retention settings say has been kept long enough."""

    def __init__(self, retention: Retention, journal: Journal, work_dir: Path, *, inbox: Inbox | None = None,
                 ledgers: Sequence[Ledger] = (), others: Sequence[Path] = (), clock: Callable[[], float] = time.time):
        self.retention = retention
        self.journal = journal
        self.work_dir = Path(work_dir)
        self.inbox = inbox
        self.ledgers = list(ledgers)
        self.others = [Path(path) for path in others]  # journals other processes keep here (the one-shot commands')
        self._clock = clock
        self._told: set[str] = set()  # paid jobs no journal holds, already named in the log by this process

    def prune(self) -> Pruned:
        """One pass; blocking, so the daemon runs it in a worker thread."""
        now = self._clock()
        pruned = Pruned()
        jobs_before = Retention.cutoff(now, self.retention.jobs_days)
        files_before = Retention.cutoff(now, self.retention.files_days)
        # the ledgers before the journals: a job is journaled before its first submit is written down
        paid = {job: task for ledger in self.ledgers for job, task in ledger.paid_jobs().items()}
        others = self._other_jobs()
        if others is not None:
            self._tell_lost(paid, self.journal.job_ids() | set(others))
        if jobs_before is not None:
            unsettled: set[str] = set()
            for ledger in self.ledgers:
                unsettled |= ledger.unsettled_jobs()
            # A finished job stays while a ledger keeps its rows, their last day at least (SpendGuard.prune): a paid
            # row no journal holds reads as a journal lost, and its request_id as one sent again.
            journal_before = min(jobs_before, now - DAY) if self.ledgers else jobs_before
            pruned.jobs = self.journal.prune_finished(journal_before, keep=unsettled)
            if others is not None:  # else a job of the unreadable journal may hang on any row: keep them all
                held = self.journal.job_ids() | set(others)
                for ledger in self.ledgers:
                    pruned.ledger_rows += ledger.prune(jobs_before, keep=held)
        if files_before is not None and others is not None:
            pruned.work_folders, freed = self._prune_work_folders(files_before, others)
            pruned.freed_bytes += freed
        if files_before is not None and self.inbox is not None:
            keep = {Path(o["status"]) for o in self.journal.unfinished_origins() if o.get("status")}
            pruned.inbox_files, freed = self.inbox.prune(files_before, keep)
            pruned.freed_bytes += freed
        pruned.kept_jobs = self.journal.count()
        return pruned

    async def run(self, every: float = PRUNE_EVERY_S) -> None:
        """Prune now and then every ``every`` seconds, off the event loop, until cancelled; one log line a pass."""
        while True:
            try:
                pruned = await asyncio.to_thread(self.prune)
                log.info("%s", pruned.line())
            except Exception:  # a pass that fails (a locked file, a full disk) must not stop the daemon
                log.exception("retention: pruning failed; trying again in %.0f s", every)
            await asyncio.sleep(every)

    def _tell_lost(self, paid: dict[str, str | None], held: set[str]) -> None:
        """Name, once, the jobs a ledger holds as paid (or maybe paid) that no journal holds: their journal was
        deleted or moved away, so nothing brings their results in or asks the producer about them."""
        lost = {job: task for job, task in paid.items() if job not in held and job not in self._told}
        if lost:
            self._told |= set(lost)
            named = ", ".join(f"{job} ({f'task {task}' if task else 'task unknown'})" for job, task in
                              sorted(lost.items())[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
            log.warning("the MusicGPT spend ledger holds %d paid or maybe paid job(s) that no journal holds (deleted "
                        "or moved away?): %s; their results are not brought in: see your MusicGPT dashboard",
                        len(lost), named)

    def _other_jobs(self) -> dict[str, str] | None:
        """The jobs of the other journals (id -> state); None when one cannot be read (said in the log)."""
        jobs: dict[str, str] = {}
        for path in self.others:
            try:
                jobs.update(states_at(path))
            except sqlite3.Error as exc:
                log.warning("retention: the journal %s cannot be read (%s); no work folder or spend ledger row is "
                            "removed until it can", path, exc)
                return None
        return jobs

    def _prune_work_folders(self, before: float, others: dict[str, str]) -> tuple[int, int]:
        # A job's folder is made after its journal row, so a folder without a row is a leftover (a job pruned from
        # the journal, or one from a journal that was moved away); an unfinished job's folder holds what it resumes
        # from and stays at any age, whichever journal (the daemon's, the one-shot commands') holds it.
        try:
            folders = [entry for entry in os.scandir(self.work_dir) if entry.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return 0, 0
        old = {entry.name: Path(entry.path) for entry in folders if _newest_change(Path(entry.path)) < before}
        states = {**others, **self.journal.states_of(old)}
        removed = freed = 0
        for job_id, folder in old.items():
            state = states.get(job_id)
            if state is not None and not _finished(state):
                continue
            size = folder_size(folder)
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed += 1
                freed += size
        return removed, freed


def _finished(state: str) -> bool:
    try:
        return State(state).finished
    except ValueError:  # a state this version does not know: not ours to judge
        return False


def _newest_change(folder: Path) -> float:
    """The latest change time of a folder and what is directly in it (a job writing into it counts).

    A folder that vanishes meanwhile (a delivered job removes its own) counts as new: there is nothing to do.
    """
    try:
        newest = folder.lstat().st_mtime
        for entry in os.scandir(folder):
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
    except FileNotFoundError:
        return float("inf")
    return newest


def folder_size(folder: Path) -> int:
    """Bytes in the files below ``folder`` (files that vanish meanwhile count nothing)."""
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_size
            except OSError:
                continue
    return total
