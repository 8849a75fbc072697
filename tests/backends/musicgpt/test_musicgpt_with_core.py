"""The MusicGPT backend under the real job service and journal: delivered like any other result, never paid twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import osc_schema
from bridge import logs
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.models import State
from osc_schema import ValidationError
from tests.backends.musicgpt.support import make_backend


@pytest.fixture
def project(tmp_path, song):
    copy = tmp_path / "song.wav"
    copy.write_bytes(song.read_bytes())
    config = Config(state_dir=tmp_path / "state", project_roots=(tmp_path,), backend="musicgpt",
                    drop_folder=tmp_path / "drop", inbox=tmp_path / "inbox")
    return config, copy


def inpaint(song: Path, **extra) -> osc_schema.Command:
    return osc_schema.parse_request({"command": "inpaint", "source": str(song), "start": 12.0, "end": 18.0,
                                     "prompt": "brass stabs", "num_outputs": 2, "backend": "musicgpt", **extra})


async def with_service(config, fake, body, **backend_settings):
    backend = make_backend(fake, config.state_dir / "musicgpt", **backend_settings)
    journal = Journal(config.journal_path)
    service = JobService(config, journal, {"musicgpt": backend})
    try:
        return await body(service)
    finally:
        await service.close()
        journal.close()
        await backend.close()


def test_a_musicgpt_inpaint_is_delivered_as_patches_whose_manifests_tell_how_it_was_made(project, fake):
    config, song = project
    fake.shift_s = 0.3
    source, rate = sf.read(song, dtype="float32", always_2d=True)

    async def story(service):
        record = service.submit(inpaint(song), {"kind": "test"})
        await service.drain()
        return record

    record = asyncio.run(with_service(config, fake, story))
    assert record.state is State.DELIVERED, record.error_message
    assert len(record.manifests) == 2 and fake.total_submits == 1
    for path in record.manifests:
        manifest = json.loads(Path(path).read_text())
        assert manifest["backend"] == "musicgpt" and manifest["timeline"]["position"] == pytest.approx(11.0)
        assert manifest["splice"]["alignment"]["offset_s"] == pytest.approx(0.3, abs=1 / rate)
        assert manifest["notes"]["title"].startswith("Fake Song") and manifest["notes"]["lyrics_timestamped"]
        assert manifest["notes"]["task_id"] == record.receipt["task_id"]
        audio, _ = sf.read(Path(path).with_suffix(".wav"), dtype="float32", always_2d=True)
        first = int(round(11.0 * rate))
        clear = int(0.9 * rate)
        # delivered as 24-bit: the handles are the source's own 24-bit samples
        np.testing.assert_array_equal(audio[:clear], source[first:first + clear])
        np.testing.assert_array_equal(audio[-clear:], source[first + len(audio) - clear:first + len(audio)])


@pytest.mark.parametrize("command, said", [
    ({"command": "inpaint", "start": 12.0, "end": 18.0, "prompt": "  "},
     "prompt: '  ' is not accepted by MusicGPT: inpaint needs a prompt describing the replacement"),
    ({"command": "extend", "extend_after": 0.0, "prompt": "a long outro"},
     "extend_after: 0.0 is not accepted by MusicGPT: must lie inside the song (0..40.00 s]"),
    ({"command": "extend", "extend_after": 20.0, "prompt": "a long outro", "lyrics": "la " * 700},
     "lyrics: 'la la la la la la la…' is not accepted by MusicGPT: at most 2000 characters (this one has 2100)"),
])
def test_a_request_musicgpt_would_refuse_is_refused_to_its_sender_and_makes_no_job(project, fake, command, said):
    config, song = project
    request = osc_schema.parse_request({**command, "source": str(song), "backend": "musicgpt"})

    async def story(service):
        with pytest.raises(ValidationError) as checked:
            service.check(request)
        with pytest.raises(ValidationError) as submitted:
            service.submit(request, {"kind": "test"})
        return str(checked.value), str(submitted.value), service.journal.recent()

    checked, submitted, jobs = asyncio.run(with_service(config, fake, story))
    assert checked == submitted == said and jobs == []  # /bridge/error at once, not a job that fails later
    assert sum(fake.submit_requests.values()) == 0


def test_a_daemon_stopped_while_generating_resumes_the_same_task(project, fake):
    config, song = project
    fake.slow_factor = 3.0

    async def before(service):
        record = service.submit(inpaint(song, num_outputs=1), {"kind": "test"})
        while record.state is not State.GENERATING:
            await asyncio.sleep(0.01)
        return record.job_id  # the service closes here, as at logout

    async def after(service):
        assert await service.resume() == 1
        await service.drain()
        return service.get(job_id)

    job_id = asyncio.run(with_service(config, fake, before))
    record = asyncio.run(with_service(config, fake, after))
    assert record.state is State.DELIVERED and fake.total_submits == 1


def test_a_daemon_stopped_mid_submit_asks_the_producer_instead_of_paying_twice(project, fake):
    config, song = project
    fake.inject("submit", "timeout_after_accept", seconds=3)

    async def before(service):
        record = service.submit(inpaint(song, num_outputs=1), {"kind": "test"})
        while not fake.total_submits:  # MusicGPT has accepted (and charged) it; its answer is on its way
            await asyncio.sleep(0.01)
        return record.job_id

    async def after(service):
        await service.resume()
        await service.drain()
        record = service.get(job_id)
        assert record.state is State.SUBMISSION_UNKNOWN and "resolve" in record.message
        task_id = next(iter(fake.tasks))  # what the producer finds on the MusicGPT dashboard
        logs.redact(fake.api_key)  # as the daemon does with the key it was given
        with pytest.raises(ValidationError) as pasted:  # the key copied from the same dashboard: never kept or shown
            service.resolve_submission(job_id, fake.api_key)
        assert fake.api_key not in str(pasted.value) and service.get(job_id).state is State.SUBMISSION_UNKNOWN
        service.resolve_submission(job_id, task_id[:-1] + "x")  # mistyped: MusicGPT knows no such task
        await service.drain()
        mistyped = service.get(job_id)
        assert mistyped.state is State.FAILED and "'daw-bridge jobs resolve" in mistyped.error_message
        with pytest.raises(ValidationError, match="has no unknown submission"):  # never a resubmit now
            service.resolve_submission(job_id, None)
        service.resolve_submission(job_id, task_id)  # corrected: the paid task's results come in after all
        await service.drain()
        return service.get(job_id), service.backends["musicgpt"].spend.entries(job_id)

    job_id = asyncio.run(with_service(config, fake, before))
    record, ledger = asyncio.run(with_service(config, fake, after))
    assert record.state is State.DELIVERED and fake.total_submits == 1 and fake.submit_requests["inpaint"] == 1
    assert [(entry["state"], entry["task_id"]) for entry in ledger] == [("accepted", next(iter(fake.tasks)))]


def test_a_job_waiting_its_turn_when_the_daemon_stops_is_resumed_not_questioned(project, fake):
    config, song = project
    fake.slow_factor = 4.0  # the first job keeps the plan's only generation slot a while

    async def before(service):
        jobs = [service.submit(inpaint(song, num_outputs=1, start=start, end=start + 4.0), {"kind": "test"})
                for start in (12.0, 20.0)]
        while not any(job.state is State.GENERATING for job in jobs):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        # the other one is queued for the slot, before anything is journaled as submitting
        assert sorted(job.state.value for job in jobs) == ["exporting", "generating"]
        return [job.job_id for job in jobs]

    async def after(service):
        await service.resume()
        await service.drain()
        return [service.get(job_id) for job_id in job_ids]

    job_ids = asyncio.run(with_service(config, fake, before, concurrency=1))
    records = asyncio.run(with_service(config, fake, after, concurrency=1))
    assert [r.state for r in records] == [State.DELIVERED, State.DELIVERED]
    assert fake.total_submits == 2 and fake.submit_requests["inpaint"] == 2
