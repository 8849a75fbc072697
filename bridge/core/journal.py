"""The job journal: one SQLite row per job, written before each step has effects outside the process.

The database runs in WAL mode with ``synchronous=NORMAL``: a commit survives the daemon being killed (it is in the
operating system's hands), but only a synced commit survives a power cut. The two transitions money depends on,
the intent to submit and the task id that came back, are written ``durable=True`` (synced before the step they
announce begins); the others are not, so a burst of jobs does not wait on the disk dozens of times.

Finished jobs are read only when asked for: a start checks the unfinished ones (those it is about to resume), so a
long history costs a start nothing and a damaged old row is reported when someone reads it, as a JournalError. The
history is kept bounded by ``prune_finished`` (see ``bridge.core.retention``), which like ``count`` and the other
methods marked "any thread" uses a connection of its own, so it can run off the event loop.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import closing
from pathlib import Path

from bridge.exceptions import JournalError
from bridge.models import JobRecord, JobSpec, State

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_FINISHED = tuple(s.value for s in State if s.finished)
_NOT_FINISHED = f"state NOT IN ({','.join('?' * len(_FINISHED))})"
_IS_FINISHED = f"state IN ({','.join('?' * len(_FINISHED))})"
_BATCH = 200  # rows deleted per transaction: the event loop's writes never wait long behind a prune

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    origin      TEXT NOT NULL,          -- JSON: where replies go (osc address, status file, cli)
    spec        TEXT NOT NULL,          -- JSON JobSpec
    state       TEXT NOT NULL,
    progress    REAL NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    prepared    TEXT,                   -- JSON from Backend.prepare
    receipt     TEXT,                   -- JSON from Backend.submit (task ids: what must never be paid for twice)
    rendered    TEXT,                   -- JSON list of Rendered
    manifests   TEXT,                   -- JSON list of manifest paths
    error_code  TEXT,
    error_message TEXT,
    created     REAL NOT NULL,
    updated     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_request ON jobs(request_id);
"""


class Journal:
    """Jobs on disk. Used from one thread (the daemon's event loop); readers in other processes are fine (WAL)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._clock = clock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (sqlite3.OperationalError, OSError) as exc:  # SQLite could not open or write it: no sign of damage
            raise JournalError(self._unusable(exc)) from None
        except sqlite3.DatabaseError as exc:  # not a database, a failed check, a row that cannot be read
            raise JournalError(self._damaged(exc)) from None

    def _unusable(self, exc: Exception) -> str:
        """One line on a journal that cannot be opened or written (a read-only or full disk, no permission, another
        process holding it locked), with the system's reason where one can be found: SQLite says "unable to open
        database file" whatever stopped it. A journal in that state is no damaged one, and is never called so: its
        producer must not be told to move a good journal away."""
        if isinstance(exc, OSError):
            return f"the job journal {self.path} cannot be opened: {exc.strerror or exc}" + \
                (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.path) else "")
        return f"the job journal {self.path} cannot be opened ({exc})" + self._system_reason()

    def _system_reason(self) -> str:
        """Why the system refuses SQLite the journal or, beside it, its write-ahead log ("": no such reason found).
        Only looked for after SQLite failed; the folder's probe is a file of no name (or one removed at once)."""
        try:
            os.close(os.open(self.path, os.O_RDWR | getattr(os, "O_NONBLOCK", 0)))
        except FileNotFoundError:
            pass  # SQLite makes it: the folder says whether it may
        except OSError as exc:
            where = f"its folder {self.path.parent}" if exc.errno == errno.EROFS else str(self.path)
            return f": {where}: {exc.strerror or exc}"
        try:
            tempfile.TemporaryFile(dir=self.path.parent).close()
        except OSError as exc:
            return f": its folder {self.path.parent}: {exc.strerror or exc}"
        return ""

    def _damaged(self, exc: sqlite3.DatabaseError) -> str:
        """One line on a damaged journal, and where a copy of it was kept (or why none could be)."""
        try:
            kept = f"a copy was kept at {self._keep_copy()}"
        except OSError as error:  # a folder that takes no copy: the producer keeps one before moving it away
            kept = f"no copy could be kept beside it ({error.strerror or error}): copy it elsewhere first"
        return (f"the job journal {self.path} is damaged ({exc}); {kept}. Move the journal away to start with an "
                f"empty one.")

    def _keep_copy(self) -> Path:
        """Copy the damaged journal (and its WAL: committed steps not yet checkpointed live there) beside it. A copy
        kept earlier of the very same bytes is named instead: every command that reads the journal finds it damaged,
        and each would otherwise add a copy."""
        wal = self.path.with_name(self.path.name + "-wal")
        now = [self.path.read_bytes(), wal.read_bytes() if wal.exists() else None]
        for earlier in sorted(self.path.parent.glob(f"{self.path.name}.corrupt-*[0-9]")):
            earlier_wal = earlier.with_name(earlier.name + "-wal")
            if [earlier.read_bytes(), earlier_wal.read_bytes() if earlier_wal.exists() else None] == now:
                return earlier
        stamp = f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
        backup, n = self.path.with_name(stamp), 1
        while backup.exists():  # other damage, kept this very second
            n += 1
            backup = self.path.with_name(f"{stamp}-{n}")
        shutil.copy2(self.path, backup)
        if wal.exists():
            shutil.copy2(wal, backup.with_name(backup.name + "-wal"))
        return backup

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise JournalError(f"the job journal {self.path} was written by a newer daw-bridge "
                                   f"(schema {row[0]}); upgrade daw-bridge to use it")
            # SQLite's check cannot see damage inside our JSON columns: read every job the daemon will resume now,
            # so a damaged one is refused here, with a backup, instead of failing the daemon half-way through
            # resuming. Finished jobs are read when asked for: reading thousands at every start would buy nothing.
            for job in db.execute(f"SELECT * FROM jobs WHERE {_NOT_FINISHED}", _FINISHED):
                try:
                    _record(job)
                except (ValueError, KeyError, TypeError) as exc:
                    raise sqlite3.DatabaseError(f"job {job['job_id']!r} cannot be read ({exc})") from None
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def insert(self, record: JobRecord) -> None:
        now = self._clock()
        record.created = record.updated = now
        self._db.execute(
            "INSERT INTO jobs (job_id, request_id, origin, spec, state, progress, message, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.job_id, record.request_id, json.dumps(record.origin), json.dumps(record.spec.to_json()),
             record.state.value, record.progress, record.message, now, now))

    def update(self, record: JobRecord, *, durable: bool = False, **changes) -> JobRecord:
        """Apply ``changes`` to the record and commit them; ``durable`` also syncs them to disk before returning."""
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated = self._clock()
        columns = {k: _column(v) for k, v in changes.items()}
        columns["updated"] = record.updated
        assignments = ", ".join(f"{k} = ?" for k in columns)
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*columns.values(), record.job_id))
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
        return record

    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return self._read(row) if row else None

    def find_request(self, request_id: str) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE request_id = ? ORDER BY created DESC LIMIT 1",
                               (request_id,)).fetchone()
        return self._read(row) if row else None

    def find_origin_file(self, name: str, digest: str) -> JobRecord | None:
        """The job made from a request file of this name and content, if any."""
        row = self._db.execute("SELECT * FROM jobs WHERE json_extract(origin, '$.kind') = 'file' AND "
                               "json_extract(origin, '$.file') = ? AND json_extract(origin, '$.digest') = ? "
                               "ORDER BY created DESC LIMIT 1", (name, digest)).fetchone()
        return self._read(row) if row else None

    def unfinished(self) -> list[JobRecord]:
        rows = self._db.execute(f"SELECT * FROM jobs WHERE {_NOT_FINISHED} ORDER BY created", _FINISHED).fetchall()
        return [self._read(r) for r in rows]

    def recent(self, limit: int = 50) -> list[JobRecord]:
        """The newest jobs, newest first; a row that cannot be read is left out of the list, with a warning."""
        rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        records = []
        for row in rows:
            try:
                records.append(self._read(row))
            except JournalError as exc:
                log.warning("%s", exc)
        return records

    # -- bounded history: safe from any thread (each call opens its own connection) --------------------------------

    def count(self) -> int:
        """How many jobs the journal holds (any thread)."""
        with closing(self._aside()) as db:
            return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def prune_finished(self, before: float, keep: Collection[str] = ()) -> int:
        """Delete finished jobs (delivered, failed, cancelled) last changed before ``before``; return how many.

        Jobs named in ``keep`` stay whatever their age (e.g. a cancelled job whose paid submit was never settled).
        Unfinished jobs, submission_unknown included, are never deleted. Any thread: the rows go in short
        transactions on a connection of this call's own, and each delete re-checks state and age, so a job retried
        in the meantime stays.
        """
        removed = 0
        with closing(self._aside()) as db:
            old = [row[0] for row in db.execute(f"SELECT job_id FROM jobs WHERE {_IS_FINISHED} AND updated < ?",
                                                (*_FINISHED, before))]
            old = [job_id for job_id in old if job_id not in keep]
            for at in range(0, len(old), _BATCH):
                batch = old[at:at + _BATCH]
                removed += db.execute(f"DELETE FROM jobs WHERE job_id IN ({','.join('?' * len(batch))}) AND "
                                      f"{_IS_FINISHED} AND updated < ?", (*batch, *_FINISHED, before)).rowcount
        return removed

    def job_ids(self) -> set[str]:
        """Every job the journal holds, whatever its state (any thread)."""
        with closing(self._aside()) as db:
            return {row[0] for row in db.execute("SELECT job_id FROM jobs")}

    def states_of(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The state of each of these jobs the journal holds, unparsed (any thread); absent jobs are left out."""
        wanted = list(job_ids)
        states: dict[str, str] = {}
        with closing(self._aside()) as db:
            for at in range(0, len(wanted), _BATCH):
                batch = wanted[at:at + _BATCH]
                states.update(db.execute(f"SELECT job_id, state FROM jobs WHERE job_id IN "
                                         f"({','.join('?' * len(batch))})", batch).fetchall())
        return states

    def destinations(self) -> set[tuple[str | None, str]]:
        """Every (drop_folder, source) pair the journal's jobs name, unparsed (any thread): where they delivered or
        would deliver. A job whose spec is damaged is left out."""
        with closing(self._aside()) as db:
            return set(db.execute("SELECT DISTINCT json_extract(spec, '$.drop_folder'), json_extract(spec, '$.source') "
                                  "FROM jobs WHERE json_valid(spec)").fetchall())

    def unfinished_origins(self) -> list[dict]:
        """Where the unfinished jobs' replies go (any thread): their status files must outlive any retention."""
        origins = []
        with closing(self._aside()) as db:
            for (text,) in db.execute(f"SELECT origin FROM jobs WHERE {_NOT_FINISHED}", _FINISHED):
                try:
                    origins.append(json.loads(text))
                except ValueError:
                    continue  # unreadable: the start refused it, or it was damaged since; nothing to keep by it
        return origins

    def _aside(self) -> sqlite3.Connection:
        # The busy timeout covers the event loop's short write transactions; WAL lets reads run beside them.
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def _read(self, row: sqlite3.Row) -> JobRecord:
        try:
            return _record(row)
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"job {row['job_id']!r} in the journal {self.path} cannot be read ({exc}); the "
                               f"other jobs are unaffected") from None


def states_at(path: Path) -> dict[str, str]:
    """Every job's state, unparsed, in the journal at ``path`` that another process keeps (the one-shot commands'):
    read only, any thread; empty when there is no such file. Raises sqlite3.Error when it cannot be read."""
    if not path.exists():
        return {}
    with closing(sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
        return dict(db.execute("SELECT job_id, state FROM jobs").fetchall())


def _column(value):
    if isinstance(value, State):
        return value.value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _record(data: sqlite3.Row) -> JobRecord:
    load = lambda text: json.loads(text) if text else None  # noqa: E731
    return JobRecord(job_id=data["job_id"], request_id=data["request_id"], origin=json.loads(data["origin"]),
                     spec=JobSpec.from_json(json.loads(data["spec"])), state=State(data["state"]),
                     progress=data["progress"], message=data["message"], prepared=load(data["prepared"]),
                     receipt=load(data["receipt"]), rendered=load(data["rendered"]),
                     manifests=load(data["manifests"]) or [], error_code=data["error_code"],
                     error_message=data["error_message"], created=data["created"], updated=data["updated"])
