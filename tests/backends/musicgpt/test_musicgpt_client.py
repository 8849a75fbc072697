"""The HTTP client against the fake service over real loopback HTTP: fields, answers, and every fault translated."""

from __future__ import annotations

import socket

import httpx
import pytest
import soundfile as sf

from bridge.exceptions import AuthError, BackendError, CreditError, SubmissionUnknown, TransientError
from tests.backends.musicgpt.support import with_client

INPAINT = {"prompt": "a soft guitar solo", "replace_start_at": "4.5", "replace_end_at": "9", "num_outputs": "2"}


@pytest.fixture
def upload(tmp_path, song):
    """A 12 s WAV crop of the song, as the backend would export it."""
    audio, rate = sf.read(song, frames=12 * 44100, dtype="float32", always_2d=True)
    path = tmp_path / "musicgpt-upload.wav"
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


def test_inpaint_submit_carries_every_documented_field_and_the_raw_key(fake, upload):
    fields = dict(INPAINT, lyrics="la la la", lyrics_section_to_replace="new words", gender="female",
                  webhook_url="https://hooks.example.net/musicgpt/abc")

    async def go(client):
        return await client.submit("inpaint", fields, upload)

    answer = with_client(fake.url, fake.api_key, go)
    task = fake.tasks[answer["task_id"]]
    assert task.fields == fields
    assert (task.upload_name, task.upload_type, task.upload_bytes) == (upload.name, "audio/wav", upload.stat().st_size)
    assert answer["conversion_id_1"] == task.conversion_ids[0] and answer["conversion_id_2"] == task.conversion_ids[1]
    assert answer["eta"] == 20 and answer["credit_estimate"] == 42.0
    assert fake.auth_headers == [fake.api_key]  # the raw key, no "Bearer"
    assert fake.submits["inpaint"] == 1


def test_extend_by_audio_url_with_one_output_and_the_newer_answer_fields(fake, song):
    fake.new_fields = True
    fake.hosted["song.wav"] = song.read_bytes()
    fields = {"audio_url": f"{fake.origin}/uploads/song.wav", "extend_after": "35", "prompt": "calm piano outro",
              "lyrics_section_to_extend": "and so it ends", "num_outputs": "1"}

    async def go(client):
        return await client.submit("extend", fields)

    answer = with_client(fake.url, fake.api_key, go)
    assert fake.tasks[answer["task_id"]].fields == fields
    assert answer["status"] == "IN_QUEUE" and answer["is_flagged"] is False and "conversion_id_2" not in answer


def test_a_refused_key_is_reported_clearly_and_never_retried(fake, upload):
    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises(AuthError, match="refused the API key.*Authentication failed"):
        with_client(fake.url, "not-the-key", go)
    assert fake.submit_requests["inpaint"] == 1 and fake.total_submits == 0


def test_insufficient_credit_names_required_and_available(fake, upload):
    fake.credits = (45, 12)

    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises(CreditError, match="needs 45 credits and the account has 12"):
        with_client(fake.url, fake.api_key, go)
    assert fake.submit_requests["inpaint"] == 1


def test_a_422_is_reported_in_the_servers_own_words(fake, upload):
    bad_range = dict(INPAINT, replace_start_at="9", replace_end_at="4.5")

    async def go(client):
        await client.submit("inpaint", bad_range, upload)

    documented = r"HTTP 422\): audio_file or audio_url and valid replace range are required\."
    with pytest.raises(BackendError, match=documented):
        with_client(fake.url, fake.api_key, go)
    fake.inject("submit", "422", text="prompt contains a banned word")
    with pytest.raises(BackendError, match="prompt contains a banned word") as caught:
        with_client(fake.url, fake.api_key, go)
    assert caught.value.code == "rejected_by_service" and fake.total_submits == 0


@pytest.mark.parametrize("fault, options, said", [
    ("422", {"text": "audio_file:\n  field required\n\nreplace_end_at:\n  must be a number"},
     "audio_file: field required replace_end_at: must be a number"),
    ("502", {"html": "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>" + "x" * 900 + "</body>"},
     "<html> <head><title>502 Bad Gateway</title></head> <body>xxx"),
])
def test_the_servers_words_reach_the_producer_as_one_short_line(fake, upload, fault, options, said):
    fake.inject("submit", fault, **options)

    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises((BackendError, SubmissionUnknown)) as caught:
        with_client(fake.url, fake.api_key, go)
    message = str(caught.value)
    assert said in message and "\n" not in message and "\r" not in message and len(message) < 700


def test_429_refusals_are_waited_out_and_the_job_is_paid_once(fake, upload):
    fake.inject("submit", "429", times=2)

    async def go(client):
        return await client.submit("inpaint", INPAINT, upload)

    answer = with_client(fake.url, fake.api_key, go, attempts=3)
    assert answer["task_id"] in fake.tasks
    assert fake.submit_requests["inpaint"] == 3 and fake.total_submits == 1


# Nothing in the contract says a 5xx (or a 404/409) means the task was not created: each is as open as a lost answer.
@pytest.mark.parametrize("fault", ["drop_after_accept", "timeout_after_accept", "drop", "500", "502", "503", "504",
                                   "404", "409"])
def test_a_lost_answer_is_submission_unknown_and_never_sent_again(fake, upload, fault):
    fake.inject("submit", fault, seconds=3)

    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises(SubmissionUnknown, match="NOT sent again"):
        with_client(fake.url, fake.api_key, go, timeout_s=0.5)
    assert fake.submit_requests["inpaint"] == 1  # zero extra submits
    assert fake.total_submits == (1 if "accept" in fault else 0)  # the client cannot tell: neither may it guess


def test_a_2xx_saying_success_false_without_a_task_is_unknown_and_never_sent_again(fake, upload):
    # Newer servers answer a flagged request with HTTP 200, "success": false, is_flagged and a reason: not one of the
    # contract's refusals before work starts, so a retry must not POST (and perhaps pay) again.
    fake.inject("submit", "200", text="Your request was flagged: lyrics")

    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises(SubmissionUnknown, match=r"HTTP 200 but no task id \(Your request was flagged: lyrics\)"):
        with_client(fake.url, fake.api_key, go)
    assert fake.submit_requests["inpaint"] == 1


def test_an_unreachable_service_is_retried_then_reported_with_nothing_sent(upload):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go(client):
        await client.submit("inpaint", INPAINT, upload)

    with pytest.raises(TransientError, match="cannot be reached.*nothing was sent") as caught:
        with_client(f"http://127.0.0.1:{port}/api/public", "k", go, attempts=2)
    assert caught.value.retryable


def test_by_id_takes_task_id_or_conversion_id_and_the_service_refuses_both(fake, upload):
    async def go(client):
        answer = await client.submit("inpaint", INPAINT, upload)
        by_task = await client.by_id("INPAINT", task_id=answer["task_id"])
        by_conversion = await client.by_id("INPAINT", conversion_id=answer["conversion_id_2"])
        with pytest.raises(ValueError):
            await client.by_id("INPAINT", task_id=answer["task_id"], conversion_id=answer["conversion_id_1"])
        async with httpx.AsyncClient(headers={"Authorization": fake.api_key}) as raw:
            both = await raw.get(fake.url + "/v1/byId", params={
                "conversionType": "INPAINT", "task_id": answer["task_id"],
                "conversion_id": answer["conversion_id_1"]})
        return answer, by_task, by_conversion, both

    answer, by_task, by_conversion, both = with_client(fake.url, fake.api_key, go)
    assert by_task["task_id"] == by_conversion["task_id"] == answer["task_id"]
    assert by_task["status"] in ("IN_QUEUE", "PROCESSING", "COMPLETED")
    assert both.status_code == 400 and both.json() == {"success": False, "message": "Invalid request parameters"}


def test_the_fake_takes_only_audio_file_as_an_upload_and_every_other_field_as_text(fake, upload):
    """So a client that sent a text field as a file part (as some multipart helpers do) would be caught here."""
    async def go(client):
        async with httpx.AsyncClient(headers={"Authorization": fake.api_key}) as raw:
            return [await raw.post(fake.url + "/v1/inpaint", files=[
                ("audio_file", (upload.name, upload.read_bytes(), "audio/wav")),
                *[(name, (as_file, value.encode(), "text/plain") if as_file else (None, value.encode()))
                  for name, value in INPAINT.items()]]) for as_file in ("prompt.txt", None)]

    as_files, as_text = with_client(fake.url, fake.api_key, go)
    assert as_files.status_code == 422 and "must be a form field" in as_files.json()["error"]
    assert as_text.status_code == 200 and fake.total_submits == 1


def test_by_id_rides_out_5xx_and_dropped_connections(fake, upload):
    async def go(client):
        answer = await client.submit("inpaint", INPAINT, upload)
        fake.inject("byId", "500")
        fake.inject("byId", "drop")
        fake.inject("byId", "429")
        return await client.by_id("INPAINT", task_id=answer["task_id"])

    assert with_client(fake.url, fake.api_key, go, attempts=4)["task_id"].startswith("task-inpaint-")


def test_truncated_or_garbled_downloads_are_fetched_again_and_never_carry_the_key(fake, upload, tmp_path):
    fake.time_scale = 0.0  # done at once

    async def go(client):
        answer = await client.submit("inpaint", INPAINT, upload)
        conversion = await client.by_id("INPAINT", task_id=answer["task_id"])
        fake.inject("download", "truncate")
        fake.inject("download", "truncate_no_length")
        fake.inject("download", "corrupt")

        def verify(path):  # the backend's check: decodes, and as long as byId said
            try:
                info = sf.info(path)
            except sf.LibsndfileError:
                raise ValueError("not audio") from None
            if abs(info.frames / info.samplerate - conversion["conversion_duration_1"]) > 0.5:
                raise ValueError("truncated")

        return await client.download(conversion["conversion_path_wav_1"], tmp_path / "v1.wav", verify)

    path = with_client(fake.url, fake.api_key, go, attempts=4)
    assert sf.info(path).duration == pytest.approx(12.0, abs=0.01)
    assert fake.file_requests_with_auth == 0
    assert not list(tmp_path.glob(".*.part"))


def test_downloads_give_up_after_bounded_retries(fake, upload, tmp_path):
    fake.time_scale = 0.0

    async def go(client):
        answer = await client.submit("inpaint", INPAINT, upload)
        conversion = await client.by_id("INPAINT", task_id=answer["task_id"])
        fake.inject("download", "500", times=3)
        await client.download(conversion["conversion_path_wav_1"], tmp_path / "v1.wav")

    with pytest.raises(TransientError, match="failed 3 times") as caught:
        with_client(fake.url, fake.api_key, go, attempts=3)
    assert caught.value.code == "download_failed"
