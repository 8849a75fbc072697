"""Machine faults: a full or read-only drop folder, a source deleted or cut short mid-job, corrupt audio, a corrupt
journal. Each job ends failed with a reason that names the fault (or is delivered whole), nothing partial is left
in the drop folder, the daemon keeps answering, and a damaged journal is refused at start with a copy kept.

Disk full is a 1 MiB tmpfs mounted on the drop folder; "permission denied" is a read-only bind mount (the suite
runs as root, which file modes do not stop). Both need ``mount``: they skip without it, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time

import pytest
import soundfile as sf

from bridge import delivery
from bridge.audio.region import probe
from bridge.client import BridgeClient
from bridge.core.journal import Journal
from bridge.exceptions import DeliveryError, JournalError
from bridge.models import JobRecord, JobSpec, Rendered, State
from tests.adversarial.support import (
    Daemon,
    files_under,
    journal_records,
    musicgpt_table,
    read_only,
    run_to_exit,
    small_tmpfs,
)
from tests.conftest import Project
from tests.fakes.musicgpt import FakeMusicGPT


@pytest.fixture
def running(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    daemon = Daemon(project)
    yield project, daemon
    daemon.stop()


def _run(project: Project, timeout: float = 120.0, on_generating=None, **command):
    """Send an inpaint, call ``on_generating`` when it starts generating; return its outcome reply."""
    values = {"source": str(project.song), "start": 12.0, "end": 16.0, "prompt": "brass", "num_outputs": 2}
    values.update(command)
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", **values)
        accepted = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
        assert accepted is not None and accepted.name == "accepted", accepted
        if on_generating is not None:
            assert client.wait_for(lambda r: r.name == "state" and r.args[1] == "generating", timeout=30)
            on_generating()
        outcome = client.wait_for(lambda r: r.name in ("done", "failed") and r.args[0] == accepted.args[1],
                                  timeout=timeout)
        assert outcome is not None, "no outcome"
        assert client.ping(timeout=5), "the daemon stopped answering"
        return outcome, accepted.args[1]


def _retry(project: Project, job_id: str) -> str:
    """Retry a job (its replies go to the socket that sent it, long closed) and return the state it ends in."""
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("retry", job_id=job_id)
        assert client.wait_for(lambda r: r.name == "state" and r.args[0] == job_id, timeout=10)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = next(r for r in journal_records(project) if r.job_id == job_id)
        if record.state.finished:
            return record.state.value
        time.sleep(0.1)
    raise AssertionError("the retried job never finished")


def test_a_full_drop_folder_fails_the_job_by_name_and_a_retry_after_freeing_space_delivers(running, figures):
    project, daemon = running
    with small_tmpfs(project.drop, "2m"):  # one 6-second 24-bit stereo patch is 1.6 MB: the second one fills it
        daemon.start()
        outcome, job_id = _run(project)
        assert outcome.name == "failed", outcome.args
        assert outcome.args[1] == "disk_full" and "disk is full" in outcome.args[2], outcome.args
        assert files_under(project.drop) == [], "a partial file was left in the full drop folder"
        assert "Traceback" not in daemon.log.read_text(), "a write callback's error went past the log handlers"
        subprocess.run(["mount", "-o", "remount,size=64m", str(project.drop)], check=True)
        again = _retry(project, job_id)
        assert again == "delivered", again
        deadline = time.monotonic() + 60  # the pictures are drawn after "done"; a bound for a loaded machine
        while len(project.visible_drop_files()) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.stop()  # it waits for a picture being published
        assert len(project.visible_drop_files()) == 6 and files_under(project.drop) == project.visible_drop_files()
    figures.setdefault("machine faults", {})["drop folder full (1 MiB tmpfs)"] = \
        f"failed {outcome.args[1]}, nothing left; retry after remount: {again}"


def test_a_read_only_drop_folder_is_refused_with_the_job_and_nothing_is_made(running, figures):
    """Found when the job is sent, before anything is generated (or paid for): the sender is told which folder."""
    project, daemon = running
    with read_only(project.drop):
        daemon.start()
        with BridgeClient("127.0.0.1", project.port) as client:
            client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="")
            reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
            assert client.ping(timeout=5)
        assert reply.name == "error" and reply.args[2] == "drop_folder", reply.args
        assert "cannot be written (Read-only file system)" in reply.args[3], reply.args
        assert files_under(project.drop) == [] and journal_records(project) == []
    outcome, _ = _run(project)  # the mount is gone: the same command goes through
    assert outcome.name == "done", outcome.args
    figures.setdefault("machine faults", {})["drop folder read-only (bind mount)"] = \
        f"refused with the job: {reply.args[3][-40:]}; sent again after unmount: {outcome.name}"


def test_a_drop_folder_made_read_only_while_musicgpt_generates_fails_the_paid_job_by_name_and_a_retry_does_not_pay(
        tmp_path, demo_song_path, figures):
    project = Project(tmp_path / "project", demo_song_path)
    with FakeMusicGPT(time_scale=0.1, eta=20) as fake, contextlib.ExitStack() as mount:
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            outcome, job_id = _run(project, on_generating=lambda: mount.enter_context(read_only(project.drop)))
            assert outcome.name == "failed", outcome.args
            assert outcome.args[1] == "drop_folder_unwritable" and "permission denied" in outcome.args[2], outcome.args
            assert files_under(project.drop) == []
            mount.close()
            again = _retry(project, job_id)
        finally:
            daemon.stop()
    assert again == "delivered", again
    assert fake.total_submits == 1  # the result it paid for was fetched again, not asked for again
    figures.setdefault("machine faults", {})["drop folder made read-only while generating (bind mount)"] = \
        f"failed {outcome.args[1]}, nothing left; retry after unmount: {again}, {fake.total_submits} submit"


def test_a_source_deleted_mid_job_fails_the_job_by_name(running, figures):
    project, daemon = running
    daemon.start()
    outcome, _ = _run(project, on_generating=project.song.unlink, delivery="full")
    assert outcome.name == "failed" and outcome.args[1] == "source_missing", outcome.args
    assert str(project.song) in outcome.args[2]
    assert files_under(project.drop) == []
    figures.setdefault("machine faults", {})["source deleted while generating"] = f"failed {outcome.args[1]}"


def test_a_source_cut_short_mid_job_fails_the_job_and_leaves_nothing(running, figures):
    project, daemon = running
    daemon.start()
    outcome, _ = _run(project, on_generating=lambda: os.truncate(project.song, project.song.stat().st_size // 3))
    assert outcome.name == "failed" and outcome.args[2], outcome.args
    assert files_under(project.drop) == []
    figures.setdefault("machine faults", {})["source truncated while generating"] = \
        f"failed {outcome.args[1]}: {outcome.args[2][:90]}"
    assert outcome.args[1] == "source_changed", outcome.args


def test_corrupt_source_audio_is_refused_at_admission_and_the_daemon_goes_on(running):
    project, daemon = running
    daemon.start()
    cases = {"garbage.wav": b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(4000),
             "empty.wav": b"", "text.wav": b"this is not audio\n" * 100,
             "header-only.wav": project.song.read_bytes()[:44]}
    with BridgeClient("127.0.0.1", project.port) as client:
        for name, content in cases.items():
            (project.audio / name).write_bytes(content)
            client.send("inpaint", source=str(project.audio / name), start=0.5, end=1.0, prompt="")
            reply = client.wait_for(lambda r: r.name in ("error", "accepted"), timeout=10)
            assert reply.name == "error" and reply.args[2] == "source" and name in reply.args[3], (name, reply.args)
        assert client.ping(timeout=5)
    assert journal_records(project) == []


def test_corrupt_audio_from_musicgpt_fails_the_job_with_a_reason_and_leaves_nothing(tmp_path, demo_song_path,
                                                                                   figures):
    project = Project(tmp_path / "project", demo_song_path)
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("download", "corrupt", times=20)
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            outcome, _ = _run(project)
        finally:
            daemon.stop()
    assert outcome.name == "failed" and outcome.args[2], outcome.args
    assert files_under(project.drop) == []
    assert fake.total_submits == 1
    figures.setdefault("machine faults", {})["corrupt audio downloaded from MusicGPT"] = \
        f"failed {outcome.args[1]}: {outcome.args[2][:90]}"


def test_a_variant_that_cannot_be_read_at_delivery_takes_the_delivered_ones_back(tmp_path, demo_song_path):
    """Delivery is all or nothing: variant 1 is written, variant 2's audio turns out corrupt, variant 1 goes again."""
    song = tmp_path / "song.wav"
    song.write_bytes(demo_song_path.read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    audio, rate = sf.read(str(song), frames=4 * 44100, dtype="float32", always_2d=True)
    good = work / "v1.wav"
    sf.write(str(good), audio, rate, subtype="FLOAT")
    corrupt = work / "v2.wav"
    corrupt.write_bytes(good.read_bytes()[:44] + os.urandom(64))  # a header, then garbage where the frames were
    spec = JobSpec(job_id="j-20260101-000000-abcdef", operation="inpaint", source=song, source_info=probe(song),
                   backend="local", start=1.0, end=3.0, drop_folder=tmp_path / "drop")
    with pytest.raises(DeliveryError, match="variant 2's audio .* could not be read .it is gone"):
        delivery.deliver(spec, [Rendered(1, good, 0.0), Rendered(2, work / "missing.wav", 0.0)])
    assert files_under(tmp_path / "drop") == []
    with pytest.raises(DeliveryError, match="variant 2's audio .* could not be read"):  # ... or cannot be decoded
        delivery.deliver(spec, [Rendered(1, good, 0.0), Rendered(2, corrupt, 0.0)])
    assert files_under(tmp_path / "drop") == []


def _journal_with_jobs(path, song, count: int = 300) -> None:
    journal = Journal(path)
    info = probe(song)
    for n in range(count):
        spec = JobSpec(job_id=f"j-{n:06d}", operation="inpaint", source=song, source_info=info, backend="local",
                       start=1.0, end=2.0, prompt="x" * 200)
        journal.insert(JobRecord(job_id=spec.job_id, request_id=f"r{n}", origin={"kind": "test"}, spec=spec,
                                 state=State.DELIVERED if n else State.GENERATING))
    journal.close()


def _corrupt(path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    elif how == "truncated":
        os.truncate(path, path.stat().st_size * 2 // 3)
    elif how == "header smashed":
        data = bytearray(path.read_bytes())
        data[:100] = os.urandom(100)
        path.write_bytes(bytes(data))
    else:
        db = sqlite3.connect(path)
        column, value = {"row with broken JSON": ("spec", "{broken"), "row with unknown state": ("state", "exploded"),
                         "row missing a field": ("spec", json.dumps({"job_id": "j-000000"}))}[how]
        db.execute(f"UPDATE jobs SET {column} = ? WHERE job_id = 'j-000000'", (value,))
        db.commit()
        db.close()


def test_every_reader_of_a_damaged_journal_names_one_copy_of_it(tmp_path):
    # 'daw-bridge jobs' run three times on a damaged journal left three full copies of it beside it
    journal = tmp_path / "journal.sqlite"
    journal.write_bytes(b"not a database" * 100)
    said = set()
    for _ in range(3):
        with pytest.raises(JournalError) as refused:
            Journal(journal)
        said.add(str(refused.value))
    [copy] = tmp_path.glob("journal.sqlite.corrupt-*")
    assert len(said) == 1 and str(copy) in said.pop() and copy.read_bytes() == journal.read_bytes()
    journal.write_bytes(b"damaged otherwise" * 100)  # other damage, in the same second: a copy of its own
    with pytest.raises(JournalError):
        Journal(journal)
    assert sorted(c.read_bytes() for c in tmp_path.glob("journal.sqlite.corrupt-*")) == \
        sorted([b"damaged otherwise" * 100, b"not a database" * 100])


@pytest.mark.parametrize("how", ["garbage", "truncated", "header smashed", "row with broken JSON",
                                 "row with unknown state", "row missing a field"])
def test_a_corrupt_journal_is_refused_at_start_with_a_copy_kept(tmp_path, demo_song_path, how, figures):
    project = Project(tmp_path / "project", demo_song_path)
    journal = project.state / "journal.sqlite"
    _journal_with_jobs(journal, project.song)
    _corrupt(journal, how)
    damaged = journal.read_bytes()
    result = run_to_exit(project)
    assert result.returncode == 2, result.stderr
    said = result.stderr
    assert "journal" in said and "damaged" in said and "copy was kept" in said, said
    backups = list(project.state.glob("journal.sqlite.corrupt-*"))
    assert [b.name for b in backups if not b.name.endswith("-wal")] and \
        next(b for b in backups if not b.name.endswith("-wal")).read_bytes() == damaged
    assert journal.read_bytes() == damaged, "the damaged journal itself was changed"
    assert "Traceback" not in said
    reason = said.split(" is damaged (", 1)[1].split("); a copy was kept", 1)[0]
    figures.setdefault("corrupt journal (refused at start, copy kept)", {})[how] = reason[:120]
