"""``daw-bridge send`` and ``daw-bridge jobs`` where an outsider found them wanting: times sent inexactly (or not at
all) over OSC, and a journal on a read-only disk called damaged, then a traceback.

The read-only state folder is a read-only bind mount (the suite runs as root, which file modes do not stop): it needs
``mount``, skips without it, and fails under CI=true.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from bridge.audio.region import probe
from bridge.core.journal import Journal
from bridge.exceptions import JournalError
from bridge.frontends.osc_wire import decode, encode
from bridge.lifeline import ask_to_die_with_parent
from bridge.models import JobRecord, JobSpec, State
from tests.adversarial.support import read_only
from tests.conftest import ROOT, daemon_environment
from tests.test_cli import sent_to_a_stand_in


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120,
                          env=daemon_environment(), cwd=ROOT, preexec_fn=ask_to_die_with_parent, check=False)


def test_send_carries_a_daws_times_exactly_and_a_huge_one_to_the_daemon_to_refuse(project):
    # As 32-bit floats: position=1234567.891 arrived 16 ms off, start=10.123457 as 10.123456954956055, and end=1e39
    # ended the command in 'OverflowError: float too large to pack with f format'. docs/osc.md asks for doubles.
    with sent_to_a_stand_in(project, "inpaint", f"source={project.song}", "start=10.123457", "end=1e39",
                            "position=1234567.891", "prompt=brass") as (stand_in, process):
        try:
            datagram, sender = stand_in.recvfrom(65536)
        except TimeoutError:
            process.kill()
            pytest.fail(f"nothing was sent: {process.communicate()}")
        stand_in.sendto(encode("/bridge/error", ["/bridge/inpaint", "", "end", "end: past the end of the source"]),
                        sender)
        stdout, stderr = process.communicate(timeout=60)
    [(address, args)] = decode(datagram)
    assert address == "/bridge/inpaint" and args[:3] == [str(project.song), 10.123457, 1e39], args
    assert args[args.index("position") + 1] == 1234567.891, args
    assert b",sdds" in datagram  # the type tags: source, start, end as doubles, then the prompt
    assert process.returncode == 1 and stderr == "", stderr  # the daemon's refusal, said as the daemon said it
    assert stdout.splitlines() == ["/bridge/error /bridge/inpaint  end 'end: past the end of the source'"], stdout


def _journal_with_a_delivered_job(path, song) -> None:
    journal = Journal(path)
    spec = JobSpec(job_id="j-20261202-120000-abcdef", operation="inpaint", source=song, source_info=probe(song),
                   backend="local", start=1.0, end=2.0, prompt="brass")
    journal.insert(JobRecord(job_id=spec.job_id, request_id="r1", origin={"kind": "test"}, spec=spec,
                             state=State.DELIVERED))
    journal.close()


def test_jobs_on_a_read_only_state_folder_names_the_folder_and_calls_no_good_journal_damaged(project):
    """A state folder on a disk gone read-only (ext4 remounts itself so after an error): 'daw-bridge jobs' and
    'jobs show' called the healthy journal damaged (SQLite's "unable to open database file": it cannot make its
    write-ahead log's index there), then failed to copy it beside itself and printed a traceback. The producer must
    hear that the folder is read-only, in one line, and never be told to move a good journal away."""
    journal = project.state / "journal.sqlite"
    _journal_with_a_delivered_job(journal, project.song)
    config = ("--config", str(project.config))
    with read_only(project.state):
        listing = _run("jobs", *config)
        shown = _run("jobs", "show", "j-20261202-120000-abcdef", *config)
        others = [_run("inpaint", str(project.song), "--start", "3", "--end", "6", *config), _run("serve", *config)]
    for refused in others:  # as they already were: the folder named, in one line
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        [line] = refused.stderr.splitlines()
        assert f"the state folder {project.state} cannot be used" in line and "Read-only file system" in line, line
    said = (f"daw-bridge jobs: the job journal {journal} cannot be opened (unable to open database file): its folder "
            f"{project.state}: Read-only file system")
    assert listing.returncode == 2 and listing.stderr.splitlines() == [said], listing.stderr
    assert listing.stdout == "no jobs in a journal that can be read\n", listing.stdout
    assert shown.returncode == 2 and shown.stderr.splitlines() == [said], shown.stderr
    assert shown.stdout == "daw-bridge jobs: no job j-20261202-120000-abcdef in the journal that can be read\n"
    assert sorted(p.name for p in project.state.iterdir()) == ["journal.sqlite"]  # no "damaged" copy anywhere
    writable = _run("jobs", *config)  # the same journal, once the disk takes writes again
    assert writable.returncode == 0 and "j-20261202-120000-abcdef" in writable.stdout, writable.stderr


def test_a_damaged_journal_on_a_read_only_state_folder_is_named_without_a_copy_or_a_traceback(project):
    # Damage is still called damage; the copy that cannot be kept beside it (OSError: Read-only file system) ended
    # 'daw-bridge jobs' in a traceback
    journal = project.state / "journal.sqlite"
    project.state.mkdir()
    journal.write_bytes(b"not a database" * 100)
    with read_only(project.state):
        listing = _run("jobs", "--config", str(project.config))
    assert listing.returncode == 2 and listing.stderr.splitlines() == [
        f"daw-bridge jobs: the job journal {journal} is damaged (file is not a database); no copy could be kept "
        "beside it (Read-only file system): copy it elsewhere first. Move the journal away to start with an empty "
        "one."], listing.stderr
    assert sorted(p.name for p in project.state.iterdir()) == ["journal.sqlite"]


def test_a_journal_another_program_holds_locked_is_not_called_damaged(tmp_path):
    """A journal held locked by another program (an sqlite3 shell, a backup tool) is healthy: it was called damaged,
    and a copy of it was kept as if it were, telling the producer to move a good journal away."""
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO meta VALUES ('holder', 'x')")  # takes the lock, kept until the end
        started = time.monotonic()
        with pytest.raises(JournalError) as refused:
            Journal(path)
        assert time.monotonic() - started < 30
    finally:
        holder.close()
    assert str(refused.value) == f"the job journal {path} cannot be opened (database is locked)"
    assert not list(tmp_path.glob("*.corrupt-*"))
    Journal(path).close()  # free again: the same journal opens
