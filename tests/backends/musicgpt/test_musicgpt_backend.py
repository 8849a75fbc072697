"""A producer's jobs through the MusicGPT backend, end to end against the fake service over real HTTP."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import read_region
from bridge.exceptions import AuthError, BackendError, CreditError, SubmissionUnknown, TransientError
from bridge.models import Rendered
from tests.backends.musicgpt.support import make_backend, make_spec, run, run_job, run_one_job


def _span(rendered: Rendered) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(rendered.path, dtype="float32", always_2d=True)
    return audio, rate


def test_inpaint_a_selection_and_get_two_variants_that_line_up_with_the_song(fake, song, tmp_path):
    fake.shift_s, fake.output_rate, fake.output_gain = 0.25, 48000, 0.5  # late, resampled and quieter
    spec = make_spec(song, start=18.0, end=24.0, handle=1.0, lyrics="la la", gender="male")

    prepared, receipt, rendered = run_one_job(fake, spec, tmp_path)
    assert [r.variant for r in rendered] == [1, 2]
    source, rate = read_region(song, 0, 60)
    for item in rendered:
        audio, span_rate = _span(item)
        assert span_rate == rate and audio.shape[1] == source.shape[1]
        assert item.span_start == pytest.approx(17.0) and len(audio) == 8 * rate  # range plus a 1 s handle each side
        first = int(round(item.span_start * rate))
        original = source[first:first + len(audio)]
        handle_clear = int(0.9 * rate)  # the handle minus its 0.1 s crossfade
        np.testing.assert_array_equal(audio[:handle_clear], original[:handle_clear])
        np.testing.assert_array_equal(audio[-handle_clear:], original[-handle_clear:])
        middle = audio[2 * rate:6 * rate]
        assert np.abs(middle - original[2 * rate:6 * rate]).max() > 0.1  # the range really was replaced
        alignment = item.splice["alignment"]
        assert alignment["found"] and alignment["offset_s"] == pytest.approx(0.25, abs=1 / rate)
        assert item.splice["gain_db"] == pytest.approx(6.02, abs=0.1)  # loudness matched on the untouched context
        assert item.splice["resampled_from"] == 48000
        assert [j["at"] for j in item.splice["joins"]] == [pytest.approx(18.0), pytest.approx(24.0)]
        assert item.notes["title"] == f"Fake Song ({item.variant})"
        assert item.notes["lyrics_timestamped"] == [{"start": 0, "end": 1500, "text": "la la", "index": 0}]
        assert item.notes["task_id"] == receipt["task_id"] and item.notes["credit_estimate"] == 42.0
        json.dumps(item.to_json())  # goes into the journal and the manifest as is
    assert receipt["credit_estimate"] == 42.0 and len(receipt["conversion_ids"]) == 2
    assert fake.total_submits == 1 and fake.by_id_calls[receipt["task_id"]] == 1


def test_the_upload_is_the_region_with_its_context_and_times_relative_to_it(fake, song, tmp_path):
    spec = make_spec(song, start=18.0, end=24.0)

    async def go(context_s):
        backend = make_backend(fake, tmp_path / "state", context_s=context_s, dry_run=True)
        try:
            return await backend.prepare(spec, tmp_path / f"work-{context_s}")
        finally:
            await backend.close()

    (tmp_path / "work-5.0").mkdir()
    (tmp_path / "work-None").mkdir()
    cropped, whole = run(go(5.0)), run(go(None))
    assert (cropped["crop_start"], cropped["crop_end"]) == (13.0, 29.0)
    assert cropped["fields"]["replace_start_at"] == "5" and cropped["fields"]["replace_end_at"] == "11"
    assert sf.info(cropped["upload"]).duration == pytest.approx(16.0)
    assert (whole["crop_start"], whole["fields"]["replace_start_at"]) == (0.0, "18")
    assert sf.info(whole["upload"]).duration == pytest.approx(40.0)
    assert cropped["upload_bytes"] < whole["upload_bytes"] / 2


def test_extend_continues_the_song_from_the_extension_point(fake, song, tmp_path):
    fake.shift_s, fake.extend_s = -0.1, 12.0  # the service trimmed a little from the start
    spec = make_spec(song, operation="extend", start=None, end=None, extend_after=30.0, duration=8.0,
                     prompt="", lyrics_section="and so it ends", num_outputs=1)

    prepared, receipt, rendered = run_one_job(fake, spec, tmp_path, context_s=10.0)
    task = fake.tasks[receipt["task_id"]]
    assert task.fields == {"extend_after": "10", "lyrics_section_to_extend": "and so it ends", "num_outputs": "1"}
    assert prepared["crop_start"] == 20.0 and prepared["crop_end"] == 30.0
    [item] = rendered
    audio, rate = _span(item)
    assert item.span_start == pytest.approx(29.0) and len(audio) == 9 * rate
    source, _ = read_region(song, 29.0, 29.9)
    np.testing.assert_array_equal(audio[:len(source)], source)
    assert item.splice["alignment"]["offset_s"] == pytest.approx(-0.1, abs=1 / rate)
    assert item.splice["extension_seconds"] == pytest.approx(8.0)


def test_without_wav_the_mp3_is_decoded_and_still_lines_up(fake, song, tmp_path):
    fake.missing_wav, fake.wav_as_null, fake.shift_s = True, True, 0.05
    spec = make_spec(song, num_outputs=1)

    _, _, [item] = run_one_job(fake, spec, tmp_path)
    assert item.notes["downloaded"] == "mp3"
    assert item.splice["alignment"]["offset_s"] == pytest.approx(0.05, abs=0.001)
    assert item.splice["alignment"]["confidence"] > 0.9


def test_an_expired_wav_link_falls_back_to_the_mp3(fake, song, tmp_path):
    fake.inject("download", "403")  # WAV files are kept 7 days, MP3 90

    _, _, [item] = run_one_job(fake, make_spec(song, num_outputs=1), tmp_path)
    assert item.notes["downloaded"] == "mp3"
    assert [name.rsplit(".", 1)[1] for name in fake.file_requests] == ["wav", "mp3"]  # a 4xx is not retried


def test_a_restart_resumes_polling_the_known_task_and_pays_nothing_more(fake, song, tmp_path):
    spec = make_spec(song, num_outputs=1)
    work = tmp_path / "work"
    work.mkdir()

    async def before_the_crash():
        backend = make_backend(fake, tmp_path / "state")
        prepared = await backend.prepare(spec, work)
        receipt = await backend.submit(spec, prepared)
        await backend.close()
        return json.loads(json.dumps(prepared)), json.loads(json.dumps(receipt))  # as the journal keeps them

    async def after_the_restart(prepared, receipt):
        backend = make_backend(fake, tmp_path / "state")
        try:
            return await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
        finally:
            await backend.close()

    prepared, receipt = run(before_the_crash())
    rendered = run(after_the_restart(prepared, receipt))
    assert len(rendered) == 1 and fake.total_submits == 1
    # A job the producer resolved by hand carries nothing but the task id: that is enough.
    rendered = run(after_the_restart(prepared, {"task_id": receipt["task_id"], "resolved": True}))
    assert rendered[0].notes["task_id"] == receipt["task_id"] and fake.total_submits == 1


def test_a_lost_submit_answer_is_left_to_the_producer_never_resubmitted(fake, song, tmp_path):
    fake.inject("submit", "drop_after_accept")
    spec = make_spec(song)

    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            (tmp_path / "work").mkdir()
            prepared = await backend.prepare(spec, tmp_path / "work")
            with pytest.raises(SubmissionUnknown):
                await backend.submit(spec, prepared)
            return backend.spend.entries(spec.job_id), backend.resubmit_safe
        finally:
            await backend.close()

    entries, resubmit_safe = run(go())
    assert resubmit_safe is False
    assert [e["state"] for e in entries] == ["unknown"]  # still counted against the spend limits
    assert fake.submit_requests["inpaint"] == 1 and fake.total_submits == 1


def test_the_ledger_tells_whether_an_interrupted_submit_can_have_left(fake, song, tmp_path):
    async def go():
        # accepted jobs keep their slots here (nothing waits for them); a 429 holds back for 2.5 to 5 s
        backend = make_backend(fake, tmp_path / "state", concurrency=4, retry_base_s=1.0, rate_limit_backoff_s=5.0)
        states = {"never submitted": backend.submission_state("j-none")}
        try:
            for job_id, fault in (("j-lost", "drop_after_accept"), ("j-ok", None)):
                if fault:
                    fake.inject("submit", fault)
                work = tmp_path / job_id
                work.mkdir()
                spec = make_spec(song, job_id=job_id)
                try:
                    await backend.submit(spec, await backend.prepare(spec, work))
                except SubmissionUnknown:
                    pass
                states[job_id] = backend.submission_state(job_id)
            fake.inject("submit", "429")  # then the daemon stops while the job waits out the 429
            spec = make_spec(song, job_id="j-stopped")
            (tmp_path / "j-stopped").mkdir()
            prepared = await backend.prepare(spec, tmp_path / "j-stopped")
            submitting = asyncio.ensure_future(backend.submit(spec, prepared))
            while fake.submit_requests["inpaint"] < 3:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            submitting.cancel()
            await asyncio.gather(submitting, return_exceptions=True)
            states["stopped during a 429 backoff"] = backend.submission_state("j-stopped")
            return states
        finally:
            await backend.close()

    assert run(go()) == {"never submitted": "not_sent", "j-lost": "unknown", "j-ok": "accepted",
                         "stopped during a 429 backoff": "not_sent"}


def test_a_failed_download_keeps_the_task_and_a_retry_fetches_it_without_paying(fake, song, tmp_path):
    spec = make_spec(song, num_outputs=1)
    work = tmp_path / "work"

    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            work.mkdir()
            prepared = await backend.prepare(spec, work)
            receipt = await backend.submit(spec, prepared)
            fake.inject("download", "500", times=8)  # WAV and MP3 both fail, every attempt
            with pytest.raises(TransientError, match="could not be downloaded.*retry the job") as caught:
                await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
            rendered = await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
            return caught.value, rendered
        finally:
            await backend.close()

    error, rendered = run(go())
    assert error.code == "download_failed"
    assert len(rendered) == 1 and fake.total_submits == 1


def test_every_output_musicgpt_made_is_delivered_even_past_the_number_asked_for(fake, song, tmp_path):
    fake.outputs_made = 2  # a server that ignores num_outputs=1: it bills per output, so both were paid for

    prepared, receipt, rendered = run_one_job(fake, make_spec(song, num_outputs=1), tmp_path)
    assert prepared["fields"]["num_outputs"] == "1"
    assert [r.variant for r in rendered] == [1, 2] and fake.total_submits == 1
    assert [r.notes["conversion_id"] for r in rendered] == receipt["conversion_ids"]


def test_numbers_answered_as_text_still_time_the_polls_count_the_credit_and_check_the_downloads(fake, song, tmp_path):
    fake.numbers_as_text = True  # "eta": "20", "credit_estimate": "42.0", "conversion_duration_1": "22.0"
    fake.inject("download", "truncate_no_length")  # half a WAV, no length to tell: only the duration can

    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            return (*await run_job(backend, make_spec(song), tmp_path / "work"), backend.spend.totals())
        finally:
            await backend.close()

    prepared, receipt, rendered, spent = run(go())
    assert receipt["eta"] == 20 and receipt["credit_estimate"] == 42.0 and spent["credit_estimate_last_hour"] == 42.0
    assert fake.by_id_calls[receipt["task_id"]] == 1  # first polled at the eta, not at once and again
    first = f"{receipt['conversion_ids'][0]}.wav"
    assert fake.file_requests.count(first) == 2 and fake.downloads[first] == 1  # the half file was fetched again
    assert [r.variant for r in rendered] == [1, 2]


@pytest.mark.parametrize("outcome", ["ERROR", "FAILED"])
def test_a_task_that_fails_at_musicgpt_fails_the_job_with_its_message(fake, song, tmp_path, outcome):
    fake.outcome = outcome

    with pytest.raises(BackendError, match=f"status {outcome}: Generation failed") as caught:
        run_one_job(fake, make_spec(song), tmp_path)
    assert caught.value.code == "generation_failed"


def test_a_failed_tasks_message_reaches_the_producer_as_one_line(fake, song, tmp_path):
    fake.outcome, fake.failure_message = "FAILED", "Generation failed:\n  GPU worker lost\r\n" + "retry later " * 60

    with pytest.raises(BackendError, match="status FAILED: Generation failed: GPU worker lost retry later") as caught:
        run_one_job(fake, make_spec(song), tmp_path)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value) and len(str(caught.value)) < 400


def test_a_failed_tasks_message_never_shows_the_key_or_a_signed_url(fake, song, tmp_path):
    signed = "https://cdn.example/out.wav?X-Amz-Credential=AKIAFAKE&X-Amz-Signature=abc123"
    fake.outcome, fake.failure_message = "FAILED", f"bad request for key {fake.api_key}, input {signed}"

    with pytest.raises(BackendError, match="status FAILED: bad request for key <redacted>, input ") as caught:
        run_one_job(fake, make_spec(song), tmp_path)
    assert fake.api_key not in str(caught.value) and "abc123" not in str(caught.value), caught.value


def test_slow_tasks_and_unknown_statuses_are_waited_out_with_backoff(fake, song, tmp_path):
    fake.slow_factor, fake.unknown_statuses = 4.0, ["RENDERING_STEMS", "MASTERING"]
    notes: list = []

    _, receipt, rendered = run_one_job(fake, make_spec(song, num_outputs=1), tmp_path, notes)
    calls = fake.by_id_calls[receipt["task_id"]]
    assert len(rendered) == 1
    # finished at 4x its eta: polls at eta, then every 0.05, 0.075, 0.11, ... s; far fewer than polling every 0.05 s
    assert 2 <= calls <= 9
    assert any("rendering stems" in note for _, note in notes)


def test_the_wait_is_bounded_and_the_task_kept_for_later(fake, song, tmp_path):
    fake.slow_factor = 50.0

    with pytest.raises(TransientError, match="had not finished.*retry the job") as caught:
        run_one_job(fake, make_spec(song), tmp_path, max_wait_s=0.5)
    assert caught.value.code == "generation_timeout" and fake.total_submits == 1


def test_the_account_concurrency_limit_queues_jobs_instead_of_failing_them(fake, song, tmp_path):
    fake.concurrency_limit = 1

    async def go(concurrency):
        backend = make_backend(fake, tmp_path / f"state-{concurrency}", concurrency=concurrency)
        try:
            jobs = [run_job(backend, make_spec(song, job_id=f"j-{concurrency}-{n}", num_outputs=1),
                            tmp_path / f"work-{concurrency}-{n}") for n in range(2)]
            return await asyncio.gather(*jobs)
        finally:
            await backend.close()

    results = run(go(1))  # the backend knows the plan: jobs wait their turn, the server never says 429
    assert all(len(rendered) == 1 for _, _, rendered in results)
    assert fake.total_submits == 2 and fake.submit_requests["inpaint"] == 2
    results = run(go(2))  # the backend thinks it may run 2: the server's 429s are waited out, not failed
    assert all(len(rendered) == 1 for _, _, rendered in results)
    assert fake.total_submits == 4 and fake.submit_requests["inpaint"] > 4


def test_payment_and_key_problems_fail_the_job_clearly_and_leave_the_backend_working(fake, song, tmp_path):
    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            fake.inject("submit", "402", required=45, available=3)
            with pytest.raises(CreditError, match="needs 45 credits and the account has 3"):
                await run_job(backend, make_spec(song, job_id="j-a"), tmp_path / "work-a")
            _, receipt, _ = await run_job(backend, make_spec(song, job_id="j-b", num_outputs=1),
                                          tmp_path / "work-b")
            fake.api_key = "rotated-key"  # the key was revoked while a job was waiting
            prepared = await backend.prepare(make_spec(song, job_id="j-c"), tmp_path / "work-b")
            with pytest.raises(AuthError, match="refused the API key"):
                await backend.wait(make_spec(song, job_id="j-c"), prepared, receipt, tmp_path / "work-b",
                                   lambda f, n="": None)
            return backend.spend.entries()
        finally:
            await backend.close()

    entries = run(go())
    assert [e["state"] for e in entries] == ["refused", "accepted"]


def test_requests_musicgpt_would_refuse_are_refused_before_anything_is_sent(fake, song, tmp_path):
    cases = [(dict(lyrics="x" * 3001), "lyrics='xxxx"), (dict(gender="robot"), "gender='robot'"),
             (dict(prompt=""), "inpaint needs a prompt"), (dict(num_outputs=3), "num_outputs=3")]

    async def go(fields):
        backend = make_backend(fake, tmp_path / "state")
        try:
            await backend.prepare(make_spec(song, **fields), tmp_path)
        finally:
            await backend.close()

    for fields, message in cases:
        with pytest.raises(BackendError, match=message) as caught:
            run(go(fields))
        assert caught.value.code == "invalid_argument"
    assert sum(fake.submit_requests.values()) == 0


def test_progress_is_reported_while_waiting(fake, song, tmp_path):
    fake.slow_factor = 2.0
    notes: list = []

    run_one_job(fake, make_spec(song, num_outputs=1), tmp_path, notes)
    fractions = [f for f, _ in notes]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(note.startswith("MusicGPT: processing") or note.startswith("MusicGPT: in queue") for _, note in notes)
