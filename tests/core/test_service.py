"""The job service's promises, driven in-process with a small paid backend that counts what it is asked."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import osc_schema
from bridge.audio.region import read_region
from bridge.audio.wavio import write_atomic
from bridge.backends.base import Backend
from bridge.core.admission import admit
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.exceptions import TransientError
from bridge.models import JobRecord, Rendered, State
from osc_schema import ValidationError


class PaidBackend(Backend):
    """Returns the source itself as the "generated" span, and counts submits like a billing system would."""

    name = "paid"
    resubmit_safe = False

    def __init__(self, fail_waits: int = 0, hold: asyncio.Event | None = None):
        self.submits = 0
        self.waits = 0
        self.cancels = 0
        self.fail_waits = fail_waits
        self.hold = hold

    async def submit(self, spec, prepared):
        self.submits += 1
        return {"task_id": f"task-{self.submits}"}

    async def wait(self, spec, prepared, receipt, workdir, progress):
        self.waits += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.fail_waits:
            self.fail_waits -= 1
            raise TransientError("the generator is unavailable (HTTP 503)")
        start = max(0.0, spec.edit_start - spec.handle)
        audio, sr = read_region(spec.source, start, spec.edit_end + spec.handle)
        path = write_atomic(workdir / "v1.wav", audio, sr, subtype="FLOAT")
        return [Rendered(1, path, start, {"handle": spec.handle, "joins": []}, {"task": receipt["task_id"]})]

    async def cancel(self, spec, receipt):
        self.cancels += 1


def inpaint(song: Path, **extra) -> osc_schema.Command:
    return osc_schema.parse_request({"command": "inpaint", "source": str(song), "start": 5.0, "end": 8.0,
                                     "prompt": "x", "num_outputs": 1, **extra})


async def run_service(config, backend, body):
    journal = Journal(config.journal_path)
    service = JobService(config, journal, {"paid": backend})
    try:
        return await body(service)
    finally:
        await service.close()
        journal.close()


def test_a_paid_job_interrupted_while_submitting_waits_for_the_producer_and_is_never_resubmitted(setup):
    config, song = setup
    backend = PaidBackend()
    # What the journal holds when the process died between announcing a submit and recording its answer.
    journal = Journal(config.journal_path)
    spec = admit(inpaint(song), config, {"paid"})
    journal.insert(JobRecord(job_id=spec.job_id, request_id="", origin={"kind": "test"}, spec=spec,
                             state=State.SUBMITTING))
    journal.close()
    job_id = spec.job_id

    async def restart(service):
        await service.resume()
        await service.drain()
        assert service.get(job_id).state is State.SUBMISSION_UNKNOWN
        assert "resolve" in service.get(job_id).message
        service.resolve_submission(job_id, "task-found-on-dashboard")
        await service.drain()
        return service.get(job_id)

    record = asyncio.run(run_service(config, backend, restart))
    assert backend.submits == 0
    assert record.state is State.DELIVERED and record.receipt["task_id"] == "task-found-on-dashboard"


def test_a_failed_wait_is_retried_from_the_task_id_without_paying_again(setup):
    config, song = setup
    backend = PaidBackend(fail_waits=1)

    async def story(service):
        record = service.submit(inpaint(song), {"kind": "test"})
        await service.drain()
        assert record.state is State.FAILED and record.error_code == "backend_unavailable"
        service.retry(record.job_id)
        await service.drain()
        return service.get(record.job_id)  # a finished job's record leaves memory: the journal has it

    record = asyncio.run(run_service(config, backend, story))
    assert (backend.submits, backend.waits) == (1, 2)
    assert record.state is State.DELIVERED and len(record.manifests) == 1


def test_cancelling_a_generating_job_tells_the_backend_and_delivers_nothing(setup):
    config, song = setup

    async def story(service):
        backend = service.backends["paid"]
        record = service.submit(inpaint(song), {"kind": "test"})
        while record.state is not State.GENERATING:
            await asyncio.sleep(0.01)
        service.cancel(record.job_id)
        await service.drain()
        return record, backend

    record, backend = asyncio.run(run_service(config, PaidBackend(hold=asyncio.Event()), story))
    assert record.state is State.CANCELLED and record.error_code == "cancelled"
    assert backend.cancels == 1
    assert not (config.drop_folder.exists() and any(config.drop_folder.iterdir()))


def test_events_reach_listeners_in_order(setup):
    config, song = setup
    events = []

    async def story(service):
        service.subscribe(lambda record, event: events.append((event, record.state.value)))
        service.submit(inpaint(song), {"kind": "test"})
        await service.drain()

    asyncio.run(run_service(config, PaidBackend(), story))
    states = [s for e, s in events if e == "state"]
    assert events[0] == ("accepted", "accepted") and events[-1] == ("done", "delivered")
    assert states == ["exporting", "submitting", "submitted", "generating", "delivering", "delivered"]


def test_patch_delivery_is_sample_identical_to_the_source_and_full_delivery_keeps_the_song_length(setup):
    config, song = setup
    source, sr = sf.read(str(song), dtype="float32", always_2d=True)

    async def story(service):
        patch = service.submit(inpaint(song), {"kind": "test"})
        full = service.submit(inpaint(song, delivery="full"), {"kind": "test"})
        await service.drain()
        return patch, full

    patch, full = asyncio.run(run_service(config, PaidBackend(), story))
    patch_audio, _ = sf.read(patch.manifests[0].replace(".json", ".wav"), dtype="float32", always_2d=True)
    first = int(round(4.0 * sr))  # start 5.0 minus the 1.0 s handle
    np.testing.assert_array_equal(patch_audio, source[first:first + len(patch_audio)])
    full_audio, _ = sf.read(full.manifests[0].replace(".json", ".wav"), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(full_audio, source)


def test_a_drop_folder_that_cannot_be_created_fails_the_job_and_leaves_nothing(setup, tmp_path):
    config, song = setup
    blocker = tmp_path / "not-a-folder"
    config = replace(config, drop_folder=blocker / "drop")

    async def story(service):
        record = service.submit(inpaint(song), {"kind": "test"})
        # made after admission, which refuses a drop folder under a file: one made while the job runs
        blocker.write_text("a file where the drop folder should be")
        await service.drain()
        return record

    record = asyncio.run(run_service(config, PaidBackend(), story))
    assert record.state is State.FAILED and record.error_code == "delivery_failed"
    assert "nothing was left there" in record.error_message
    assert blocker.read_text() == "a file where the drop folder should be"


def test_a_submit_the_backend_knows_never_left_is_sent_after_a_restart(setup):
    config, song = setup

    class LedgerBackend(PaidBackend):
        def submission_state(self, job_id, prepared=None):
            return "not_sent"  # e.g. the crash came before the request was written to the socket

    backend = LedgerBackend()
    journal = Journal(config.journal_path)
    spec = admit(inpaint(song), config, {"paid"})
    journal.insert(JobRecord(job_id=spec.job_id, request_id="", origin={"kind": "test"}, spec=spec,
                             state=State.SUBMITTING))
    journal.close()

    async def restart(service):
        await service.resume()
        await service.drain()
        return service.get(spec.job_id)

    record = asyncio.run(run_service(config, backend, restart))
    assert backend.submits == 1 and record.state is State.DELIVERED


def test_a_paid_submits_intent_and_receipt_are_synced_to_disk_and_a_free_jobs_steps_are_not(setup):
    """A power cut after a paid submit must not lose that it was sent: the intent to submit and the task id are
    committed with SQLite's synchronous=FULL (the journal's other writes are only ordered, WAL with NORMAL). A free
    backend's steps are not synced: a resubmit costs nothing, and the two fsyncs a job on the event loop made every
    command's admission 1.6-3.8x slower (bench/osc_latency.py)."""
    config, song = setup

    class FreeBackend(PaidBackend):
        resubmit_safe = True

    def synced_states(backend) -> list[str]:
        statements: list[str] = []

        async def story(service):
            service.journal._db.set_trace_callback(statements.append)
            service.submit(inpaint(song), {"kind": "test"})
            await service.drain()

        asyncio.run(run_service(config, backend, story))
        synced = [after for before, after in zip(statements, statements[1:]) if before == "PRAGMA synchronous=FULL"]
        assert all(statement.startswith("UPDATE jobs SET state = ") for statement in synced), synced
        return [statement.split("'")[1] for statement in synced]

    assert synced_states(PaidBackend()) == ["submitting", "submitted"]
    assert synced_states(FreeBackend()) == []


def test_a_daemon_without_a_jobs_paid_backend_keeps_the_job_where_it_stood(setup):
    """A service started without MusicGPT's key (a systemd unit without the variable, a locked keyring) failed every
    unfinished paid job as "no longer configured": one whose task was bought, or that may have been, then read
    "failed" everywhere, and a producer sends a failed job again. It is left as the journal holds it, retry and
    resolve say why in one line, and it resumes without paying again once a daemon with the backend starts."""
    config, song = setup
    journal = Journal(config.journal_path)
    bought, unknown = (admit(inpaint(song), config, {"paid"}) for _ in range(2))
    for spec, state in ((bought, State.GENERATING), (unknown, State.SUBMISSION_UNKNOWN)):
        record = JobRecord(job_id=spec.job_id, request_id="", origin={"kind": "test"}, spec=spec, state=state)
        journal.insert(record)
        if spec is bought:
            journal.update(record, receipt={"task_id": "task-1"})
    journal.close()

    async def without_the_backend():
        journal = Journal(config.journal_path)
        service = JobService(config, journal, {})
        try:
            resumed = await service.resume()
            refusals = []
            for call in (lambda: service.retry(bought.job_id), lambda: service.resolve_submission(unknown.job_id, "t")):
                with pytest.raises(ValidationError) as refused:
                    call()
                refusals.append(str(refused.value))
            return resumed, [service.get(spec.job_id).state for spec in (bought, unknown)], refusals
        finally:
            await service.close()
            journal.close()

    resumed, states, refusals = asyncio.run(without_the_backend())
    assert resumed == 0 and states == [State.GENERATING, State.SUBMISSION_UNKNOWN]
    assert all("which this daemon does not have" in said and "MUSICGPT_API_KEY" in said for said in refusals), refusals

    async def with_it(service):
        await service.resume()
        await service.drain()
        return [service.get(spec.job_id).state for spec in (bought, unknown)]

    backend = PaidBackend()
    assert asyncio.run(run_service(config, backend, with_it)) == [State.DELIVERED, State.SUBMISSION_UNKNOWN]
    assert backend.submits == 0


def test_a_source_swapped_for_a_link_out_of_the_roots_is_not_read_on_a_restart_or_a_retry(setup, tmp_path_factory):
    """The project roots were checked when a command came in, and never again: a source replaced afterwards by a link
    to a file outside the roots was read by a start after a crash, and by a retry (an outside probe: uploaded to
    MusicGPT and paid for, or delivered from the embedded engine). Each run checks the source first; a job whose
    task was bought says how to have it without paying again once the song is back."""
    config, song = setup
    outside = tmp_path_factory.mktemp("outside") / "private.wav"
    sf.write(outside, np.zeros((48000, 1), dtype=np.float32), 48000)
    original = song.read_bytes()

    def swapped() -> None:
        song.unlink()
        song.symlink_to(outside)

    journal = Journal(config.journal_path)
    spec = admit(inpaint(song), config, {"paid"})  # accepted, then the daemon died before its first step
    journal.insert(JobRecord(job_id=spec.job_id, request_id="", origin={"kind": "test"}, spec=spec,
                             state=State.ACCEPTED))
    journal.close()
    swapped()

    class LedgerBackend(PaidBackend):
        def submission_state(self, job_id, prepared=None):
            return "not_sent" if not self.submits else "accepted"

    backend = LedgerBackend(fail_waits=1)

    async def story(service):
        await service.resume()
        await service.drain()
        restarted = service.get(spec.job_id)
        said = [(restarted.state, restarted.error_code, backend.submits)]
        song.unlink()
        song.write_bytes(original)
        service.retry(spec.job_id)  # now it is paid for, and its wait fails
        await service.drain()
        swapped()
        service.retry(spec.job_id)
        await service.drain()
        retried = service.get(spec.job_id)
        said.append((retried.state, retried.error_code, backend.waits))
        song.unlink()
        song.write_bytes(original)
        service.retry(spec.job_id)
        await service.drain()
        return said, retried.error_message, service.get(spec.job_id).state

    said, message, end = asyncio.run(run_service(config, backend, story))
    assert said == [(State.FAILED, "source_changed", 0), (State.FAILED, "source_changed", 1)]
    assert str(outside) in message and f"jobs retry {spec.job_id}' delivers task task-1 without paying" in message
    assert end is State.DELIVERED and (backend.submits, backend.waits) == (1, 2)
