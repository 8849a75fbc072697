"""The spend guard: a ledger of paid submits and the producer's limits on them.

Every submit is written down *before* it is sent (``intent``), then settled as ``accepted`` (with the task id and
the server's ``credit_estimate``), ``refused`` (the server said no: nothing was spent) or ``unknown`` (the answer
was lost). Intents, accepted and unknown submits all count against the hourly and daily limits, so a crash or a
lost answer never lets more requests through than the producer allowed. Dry runs are written down too, but cost
nothing and count against nothing.

Each ledger has an identity, made when it is created: a job journaled as submitting names the ledger it was
prepared with, so a ledger that was deleted or replaced since (empty of that job's submit) is never taken for
proof that nothing was sent (see ``MusicGPTBackend.covers``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection
from pathlib import Path

from bridge import logs
from bridge.exceptions import AlreadySubmitted, BridgeError, SpendLimitReached

log = logging.getLogger(__name__)

_COUNTED = ("intent", "accepted", "unknown")
_OPEN_OR_PAID = ("intent", "accepted", "unknown")  # a job whose last submit is one of these must not submit again
_SCHEMA = """
CREATE TABLE IF NOT EXISTS submits (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    credit_estimate REAL,
    note TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS submits_at ON submits (at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SpendGuard:
    """Per-hour and per-day limits on paid submits, backed by a small SQLite ledger in the backend's state folder."""

    def __init__(self, path: Path, *, hourly_limit: int | None = None, daily_limit: int | None = None,
                 clock=time.time):
        for name, value in (("hourly_limit", hourly_limit), ("daily_limit", daily_limit)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be 0 or more (or unset for no limit), got {value}")
        self.path = Path(path)
        self.hourly_limit = hourly_limit
        self.daily_limit = daily_limit
        self._clock = clock
        self._file: tuple[int, int] | None = None  # (device, inode) of the ledger opened
        self._opening = threading.Lock()
        self._open()

    def _open(self) -> None:
        """Open the ledger file, made with its schema and identity if it is new (or was deleted or replaced)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with _Closing(self._sqlite()) as db:
                db.executescript(_SCHEMA)
                if "request_id" not in {row[1] for row in db.execute("PRAGMA table_info(submits)")}:  # older ledger
                    db.execute("ALTER TABLE submits ADD COLUMN request_id TEXT")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('ledger_id', ?)", (uuid.uuid4().hex,))
                self._identity: str = db.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0]
                self._file = _identity_of(self.path)
        except sqlite3.DatabaseError as exc:
            raise BridgeError(f"the MusicGPT spend ledger {self.path} is damaged ({exc}): move it away to start a new "
                              "one; a job it may have paid for then waits for 'daw-bridge jobs resolve'",
                              code="ledger_damaged") from None

    def _sqlite(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @property
    def identity(self) -> str:
        """This ledger's identity (see the module's docstring), of the file there now."""
        self._reopen_if_replaced()
        return self._identity

    def _connect(self) -> "_Closing":
        self._reopen_if_replaced()
        return _Closing(self._sqlite())

    def _elsewhere(self, entry: int) -> bool:
        """Whether intent ``entry`` was written in a ledger deleted or replaced since (where its number may be another
        job's submit, or none). Ask it on a connection just opened."""
        return getattr(entry, "ledger", self._identity) != self._identity

    def _reopen_if_replaced(self) -> None:
        """A ledger deleted or replaced since it was opened (a producer "resetting" the limits while the daemon runs)
        is opened as new, with a new identity, as a restart would: every paid job failed on 'no such table' until
        then. The jobs it cannot vouch for wait for the producer (see ``MusicGPTBackend.submission_state``)."""
        if _identity_of(self.path) != self._file:
            with self._opening:
                if _identity_of(self.path) != self._file:
                    old = self._identity
                    self._open()
                    if self._identity != old:
                        log.warning("the MusicGPT spend ledger %s was deleted or replaced: a new one is kept from now "
                                    "on; a job the old one may have paid for waits for 'daw-bridge jobs resolve'",
                                    self.path)

    def record_intent(self, job_id: str, operation: str, request_id: str = "") -> "Entry":
        """Check the limits and write the intent in one transaction; return its ledger id.

        Raises SpendLimitReached past a limit, and AlreadySubmitted when the job's last submit was accepted or may
        have been (intent or unknown): the ledger itself refuses to let one job pay twice, whatever asks it. The
        same for another job of the same ``request_id``: the journal makes a request sent again the job it already
        is, so two jobs of one request mean the journal that held the first is gone (deleted, or moved away).
        """
        now = self._clock()
        with self._connect() as db:
            _restamp_ahead(db, now)  # committed on its own: a refusal by the limits must not roll it back
            db.execute("BEGIN IMMEDIATE")  # two daemons sharing a state folder must not both pass the check
            try:
                state, task_id = _last_submit(db, job_id)
                if state in _OPEN_OR_PAID:
                    what = f"as task {task_id}" if task_id else "and its answer was never recorded"
                    raise AlreadySubmitted(f"job {job_id} was already submitted to MusicGPT {what}; it is not sent "
                                           "again, so it is not paid for twice")
                marks = ",".join("?" * len(_OPEN_OR_PAID))
                earlier = db.execute(f"SELECT job_id, task_id FROM submits WHERE request_id = ? AND job_id != ? AND "
                                     f"state IN ({marks}) ORDER BY id DESC LIMIT 1",
                                     (request_id, job_id, *_OPEN_OR_PAID)).fetchone() if request_id else None
                if earlier:
                    what = f"task {earlier[1]}" if earlier[1] else "an answer never recorded"
                    raise AlreadySubmitted(f"request {request_id} was already submitted to MusicGPT as job "
                                           f"{earlier[0]} ({what}), which no journal holds any more (moved away or "
                                           "deleted?); it is not sent again, so it is not paid for twice: send the "
                                           "command with a new request_id for another take")
                self._check(db, now)
                cursor = db.execute("INSERT INTO submits (job_id, operation, at, state, request_id) "
                                    "VALUES (?, ?, ?, 'intent', ?)", (job_id, operation, now, request_id or None))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return Entry(cursor.lastrowid, self._identity, job_id, operation, request_id or None)

    def record_accepted(self, entry: int, task_id: str, credit_estimate: float | None) -> str | None:
        """The server accepted the submit: keep its task id and what it said it will cost. Returns what the row
        kept instead when the producer settled it first (see ``_settle``), None otherwise."""
        return self._settle(entry, "accepted", task_id=task_id, credit_estimate=credit_estimate)

    def record_refused(self, entry: int, reason: str) -> str | None:
        """The server refused the submit, so nothing was spent: it no longer counts against the limits."""
        return self._settle(entry, "refused", note=logs.scrub(reason)[:300])

    def record_waiting(self, entry: int, reason: str) -> None:
        """A try of the submit was refused (or never left) and the next waits: until it goes, nothing was sent, so a
        daemon killed meanwhile resumes the job as not sent (``record_resending`` makes it an intent again)."""
        with self._connect() as db:
            if self._elsewhere(entry):  # the new ledger holds nothing of it: a restart finds it unknown, as it may be
                return
            db.execute("UPDATE submits SET state = 'refused', note = ? WHERE id = ? AND state = 'intent'",
                       (logs.scrub(f"{reason}; to be tried again")[:300], entry))

    def record_resending(self, entry: int) -> None:
        """The submit is tried again: an intent once more, within the limits (SpendLimitReached, nothing sent)."""
        now = self._clock()
        with self._connect() as db:
            if self._elsewhere(entry):
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT state FROM submits WHERE id = ?", (entry,)).fetchone() == ("refused",):
                    self._check(db, now)
                    db.execute("UPDATE submits SET state = 'intent', note = NULL WHERE id = ?", (entry,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def record_unknown(self, entry: int, reason: str) -> str | None:
        """The answer was lost: it may have cost money, so it keeps counting."""
        return self._settle(entry, "unknown", note=logs.scrub(reason)[:300])

    def record_not_submitted(self, job_id: str) -> None:
        """The producer found no task behind an unknown submission: it no longer counts, and may be sent again."""
        with self._connect() as db:
            db.execute("UPDATE submits SET state = 'refused', note = 'not submitted, said the producer' "
                       "WHERE job_id = ? AND state IN ('unknown', 'intent')", (job_id,))

    def accepted_task(self, job_id: str) -> str | None:
        """The task id of the job's accepted submit, if its last submit was accepted."""
        with self._connect() as db:
            state, task_id = _last_submit(db, job_id)
        return task_id if state == "accepted" else None

    def job_with_task(self, task_id: str, other_than: str) -> str | None:
        """The job, other than ``other_than``, whose accepted submit is task ``task_id``; None when there is none."""
        with self._connect() as db:
            row = db.execute("SELECT job_id FROM submits WHERE task_id = ? AND job_id != ? AND state = 'accepted' "
                             "ORDER BY id DESC LIMIT 1", (task_id, other_than)).fetchone()
        return row[0] if row else None

    def last_state(self, job_id: str) -> str | None:
        """The state of the job's last real submit (intent, accepted, refused, unknown), None when it has none."""
        with self._connect() as db:
            return _last_submit(db, job_id)[0]

    def record_resolved(self, job_id: str, task_id: str) -> None:
        """The producer found the task behind an unknown submission (or corrected the one they named before): the
        ledger learns its task id."""
        with self._connect() as db:
            db.execute("UPDATE submits SET state = 'accepted', task_id = ?, note = 'resolved by the producer' "
                       "WHERE id = (SELECT MAX(id) FROM submits WHERE job_id = ? AND (state IN ('unknown', 'intent') "
                       "OR note = 'resolved by the producer'))", (task_id, job_id))

    def record_dry_run(self, job_id: str, operation: str) -> None:
        """A dry run: written down for the record, counted against nothing."""
        with self._connect() as db:
            db.execute("INSERT INTO submits (job_id, operation, at, state) VALUES (?, ?, ?, 'dry_run')",
                       (job_id, operation, self._clock()))

    def _settle(self, entry: int, state: str, *, task_id: str | None = None, credit_estimate: float | None = None,
                note: str | None = None) -> str | None:
        """Write the POST's outcome into its intent. A row no longer an intent was settled by the producer while the
        POST was in flight (a resolve from a process that could not know it was): their decision stands, and the
        late outcome is only noted beside it; returns what the row kept then. One exception, money spent being a
        fact: a task MusicGPT accepted turns a "not submitted" back into accepted, so the ledger never drops it."""
        with self._connect() as db:
            if self._elsewhere(entry):  # its intent went with the ledger it was written in: the outcome is a row anew
                db.execute("INSERT INTO submits (job_id, operation, at, state, task_id, credit_estimate, note, "
                           "request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (entry.job_id, entry.operation, self._clock(), state, task_id, credit_estimate,
                            logs.scrub(f"its intent was in a ledger deleted since{f' ({note})' if note else ''}")[:300],
                            entry.request_id))
                return None
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT state, task_id FROM submits WHERE id = ?", (entry,)).fetchone()
                kept = None
                # (a refused row refused again: a try that waited to be made again, see record_waiting)
                if row is None or row[0] == "intent" or state == row[0] == "refused":
                    db.execute("UPDATE submits SET state = ?, task_id = COALESCE(?, task_id), "
                               "credit_estimate = COALESCE(?, credit_estimate), note = COALESCE(?, note) WHERE id = ?",
                               (state, task_id, credit_estimate, note, entry))
                else:
                    late = f"late answer: {state}" + (f" as task {task_id}" if task_id else "")
                    if state == "accepted" and row[0] == "refused":
                        db.execute("UPDATE submits SET state = 'accepted', task_id = ?, credit_estimate = ? "
                                   "WHERE id = ?", (task_id, credit_estimate, entry))
                    elif not (state == "accepted" and row[1] == task_id):  # the same task: nothing to tell
                        kept = f"{row[0]}" + (f" as task {row[1]}" if row[1] else "") + ", as the producer resolved it"
                    if state == "accepted" and row[0] == "accepted":
                        db.execute("UPDATE submits SET credit_estimate = COALESCE(credit_estimate, ?) "
                                       "WHERE id = ?", (credit_estimate, entry))
                    db.execute("UPDATE submits SET note = COALESCE(note || '; ', '') || ? WHERE id = ?",
                               (logs.scrub(late + (f" ({note})" if note else ""))[:300], entry))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return kept

    def _check(self, db: sqlite3.Connection, now: float) -> None:
        for limit, window, name in ((self.hourly_limit, 3600, "hour"), (self.daily_limit, 86400, "day")):
            if limit is None:
                continue
            used = self._count(db, now - window)
            if used >= limit:
                raise SpendLimitReached(
                    f"spend guard: {used} paid MusicGPT requests in the last {name} reach the limit of {limit} "
                    f"(setting {'hourly' if name == 'hour' else 'daily'}_limit); nothing was sent")

    @staticmethod
    def _count(db: sqlite3.Connection, since: float) -> int:
        marks = ",".join("?" * len(_COUNTED))
        return db.execute(f"SELECT COUNT(*) FROM submits WHERE at > ? AND state IN ({marks})",
                          (since, *_COUNTED)).fetchone()[0]

    def totals(self) -> dict:
        """Requests and estimated credit in the last hour and day, for ``daw-bridge doctor`` and the bench."""
        now = self._clock()
        with self._connect() as db:
            _restamp_ahead(db, now)
            out = {}
            for window, name in ((3600, "hour"), (86400, "day")):
                marks = ",".join("?" * len(_COUNTED))
                count, credit = db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(credit_estimate), 0) FROM submits WHERE at > ? AND state IN "
                    f"({marks})", (now - window, *_COUNTED)).fetchone()
                out[f"requests_last_{name}"] = count
                out[f"credit_estimate_last_{name}"] = credit
            out["unknown_submissions"] = db.execute(
                "SELECT COUNT(*) FROM submits WHERE state = 'unknown'").fetchone()[0]
            out.update(hourly_limit=self.hourly_limit, daily_limit=self.daily_limit)
            return out

    def entries(self, job_id: str | None = None) -> list[dict]:
        """The ledger's rows (all, or one job's), oldest first."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            query = "SELECT * FROM submits" + (" WHERE job_id = ?" if job_id else "") + " ORDER BY id"
            return [dict(row) for row in db.execute(query, (job_id,) if job_id else ())]

    def prune(self, before: float, keep: Collection[str] = ()) -> int:
        """Delete settled rows (accepted, refused, dry run) older than ``before``, except those of the jobs in
        ``keep``; return how many went.

        Intents and unknown submits stay whatever their age: they are what tells a producer a job may have been
        paid for. The last 24 hours stay too, whatever ``before`` says, since the hourly and daily limits count them.
        ``keep`` names the jobs a journal still holds: for a job stopped between MusicGPT's answer and its journal's
        next step, the accepted row is the only record of its paid task, and without it a retry sends it again.
        """
        before = min(before, self._clock() - 86400)
        with self._connect() as db:
            old = [row_id for row_id, job_id in db.execute(
                "SELECT id, job_id FROM submits WHERE at < ? AND state NOT IN ('intent', 'unknown')", (before,))
                if job_id not in keep]
            removed = 0
            for at in range(0, len(old), 500):
                batch = old[at:at + 500]
                removed += db.execute(f"DELETE FROM submits WHERE id IN ({','.join('?' * len(batch))}) AND state "
                                      "NOT IN ('intent', 'unknown')", batch).rowcount
            return removed

    def paid_jobs(self) -> dict[str, str | None]:
        """Jobs whose last submit was accepted or may have been (intent, unknown), with the task id when known."""
        marks = ",".join("?" * len(_OPEN_OR_PAID))
        with self._connect() as db:
            return dict(db.execute(f"SELECT job_id, task_id FROM submits AS s WHERE state IN ({marks}) AND id = "
                                   "(SELECT MAX(id) FROM submits WHERE job_id = s.job_id AND state != 'dry_run')",
                                   _OPEN_OR_PAID).fetchall())

    def unsettled_jobs(self) -> set[str]:
        """Jobs with an intent or unknown submit in the ledger: money may hang on them, so their history stays."""
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT job_id FROM submits "
                                                 "WHERE state IN ('intent', 'unknown')")}


def _identity_of(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _restamp_ahead(db: sqlite3.Connection, now: float) -> None:
    """Rows stamped ahead of ``now`` were written under a clock set wrong and since put right: they count as made
    now, for one window, instead of counting until the clock reaches them (a year, for a year typed wrong)."""
    db.execute("UPDATE submits SET at = ? WHERE at > ?", (now, now))


def _last_submit(db: sqlite3.Connection, job_id: str) -> tuple[str | None, str | None]:
    row = db.execute("SELECT state, task_id FROM submits WHERE job_id = ? AND state != 'dry_run' "
                     "ORDER BY id DESC LIMIT 1", (job_id,)).fetchone()
    return (row[0], row[1]) if row else (None, None)


class Entry(int):
    """An intent's number in its ledger, with the ledger and the submit it is: a ledger made anew numbers its rows from
    1 again, so the outcome of an intent written in one deleted since is written as a row of its own."""

    ledger: str
    job_id: str
    operation: str
    request_id: str | None

    def __new__(cls, number: int, ledger: str, job_id: str, operation: str, request_id: str | None) -> "Entry":
        entry = super().__new__(cls, number)
        entry.ledger, entry.job_id, entry.operation, entry.request_id = ledger, job_id, operation, request_id
        return entry


class _Closing:
    """A connection used as ``with``: closes at the end (sqlite3's own ``with`` only commits)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc) -> None:
        self._db.close()
