"""The job journal: one SQLite row per job, written before each step has effects outside the process.

The database runs in WAL mode with ``synchronous=NORMAL``: a commit survives the daemon being killed (it is in the
operating system's hands), but only a synced commit survives a power cut. The two transitions money depends on,
the intent to submit and the task id that came back, are written ``durable=True`` (synced before the step they
announce begins); the others are not, so a burst of jobs does not wait on the disk dozens of times.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

from bridge.exceptions import JournalError
from bridge.models import JobRecord, JobSpec, State

SCHEMA_VERSION = 1

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

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            backup = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.copy2(self.path, backup)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():  # committed steps not yet checkpointed live here: the backup needs them too
                shutil.copy2(wal, backup.with_name(backup.name + "-wal"))
            raise JournalError(f"the job journal {self.path} is damaged ({exc}); a copy was kept at {backup}. "
                               f"Move the journal away to start with an empty one.") from None

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
            # SQLite's check cannot see damage inside our JSON columns: read every job now, so a damaged one is
            # refused here, with a backup, instead of failing the daemon half-way through resuming.
            for job in db.execute("SELECT * FROM jobs"):
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
        now = time.time()
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
        record.updated = time.time()
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
        return _record(row) if row else None

    def find_request(self, request_id: str) -> JobRecord | None:
        row = self._db.execute("SELECT * FROM jobs WHERE request_id = ? ORDER BY created DESC LIMIT 1",
                               (request_id,)).fetchone()
        return _record(row) if row else None

    def find_origin_file(self, name: str, digest: str) -> JobRecord | None:
        """The job made from a request file of this name and content, if any."""
        row = self._db.execute("SELECT * FROM jobs WHERE json_extract(origin, '$.kind') = 'file' AND "
                               "json_extract(origin, '$.file') = ? AND json_extract(origin, '$.digest') = ? "
                               "ORDER BY created DESC LIMIT 1", (name, digest)).fetchone()
        return _record(row) if row else None

    def unfinished(self) -> list[JobRecord]:
        finished = tuple(s.value for s in State if s.finished)
        rows = self._db.execute(f"SELECT * FROM jobs WHERE state NOT IN ({','.join('?' * len(finished))}) "
                                "ORDER BY created", finished).fetchall()
        return [_record(r) for r in rows]

    def recent(self, limit: int = 50) -> list[JobRecord]:
        rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [_record(r) for r in rows]


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
