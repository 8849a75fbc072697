"""Webhooks as untrusted hints: the receiver on loopback, deliveries in any order and twice, confirmation by byId."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from bridge.backends.musicgpt.settings import MusicGPTSettings
from bridge.backends.musicgpt.webhooks import WebhookReceiver, WebhookSettings
from bridge.config import ConfigError
from tests.backends.musicgpt.support import make_backend, make_spec, run


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _webhook_settings() -> WebhookSettings:
    port = _free_tcp_port()
    return WebhookSettings(public_url=f"http://127.0.0.1:{port}", bind_port=port)


def test_the_receiver_routes_by_secret_and_refuses_everything_else():
    async def go():
        receiver = WebhookReceiver(WebhookSettings(public_url="https://hooks.example.net/db"))
        await receiver.start()
        secret = receiver.new_secret()
        hints = receiver.register(secret, "task-1")
        base = f"http://127.0.0.1:{receiver.port}/musicgpt/"
        audio = {"task_id": "task-1", "conversion_id": "c1", "conversion_path": "https://x/c1.mp3"}
        cover = {"task_id": "task-1", "subtype": "album_cover_generation", "image_path": "https://x/c.png"}
        lyrics = {"task_id": "task-1", "conversion_id": "c1", "subtype": "lyrics_timestamped"}
        try:
            async with httpx.AsyncClient() as http:
                answers = {
                    "unknown secret": (await http.post(base + "not-a-job", json=audio)).status_code,
                    "no secret": (await http.post(base, json=audio)).status_code,
                    "GET": (await http.get(base + secret)).status_code,
                    "not JSON": (await http.post(base + secret, content=b"{nope")).status_code,
                    "too large": (await http.post(base + secret, content=b"x" * (2 << 20))).status_code,
                    "other task": (await http.post(base + secret, json=dict(audio, task_id="task-2"))).status_code,
                }
                statuses = [(await http.post(base + secret, json=body)).status_code
                            for body in (cover, audio, lyrics, audio, cover)]
                chunked = await http.post(base + secret, content=_chunks(json.dumps(dict(audio, conversion_id="c2"))))
            woke = await hints.wait(0)
            receiver.retire(secret)
            async with httpx.AsyncClient() as http:
                late = (await http.post(base + secret, json=lyrics)).status_code
            return answers, statuses, chunked.status_code, hints, woke, late, receiver.url_for(secret)
        finally:
            await receiver.close()

    answers, statuses, chunked, hints, woke, late, url = run(go())
    assert answers == {"unknown secret": 404, "no secret": 404, "GET": 405, "not JSON": 400, "too large": 413,
                       "other task": 200}
    assert statuses == [200] * 5 and chunked == 200 and late == 200
    assert [d["subtype"] for d in hints.deliveries] == ["album_cover_generation", "audio", "lyrics_timestamped",
                                                        "audio"]
    assert hints.duplicates == 2 and hints.foreign == 1 and woke
    assert url.startswith("https://hooks.example.net/db/musicgpt/") and len(url.rsplit("/", 1)[1]) >= 32


async def _chunks(text: str):
    data = text.encode()
    for i in range(0, len(data), 7):
        yield data[i:i + 7]


def test_a_webhook_wakes_the_job_which_confirms_through_by_id_once(fake, song, tmp_path):
    fake.eta = 30  # answered eta 30 s: without the webhook the first poll would come after 30 s
    fake.time_scale = 0.01  # ... but the task is done after 0.3 s, and MusicGPT calls back
    fake.webhook_duplicates = 3

    async def go():
        backend = make_backend(fake, tmp_path / "state", eta_scale=1.0, webhook=_webhook_settings())
        work = tmp_path / "work"
        work.mkdir()
        try:
            spec = make_spec(song)
            prepared = await backend.prepare(spec, work)
            receipt = await backend.submit(spec, prepared)
            rendered = await asyncio.wait_for(
                backend.wait(spec, prepared, receipt, work, lambda f, n="": None), timeout=20)
            await asyncio.sleep(0.3)  # let the remaining deliveries arrive after the job has finished
            return receipt, rendered, backend.receiver.url_for(receipt["webhook_secret"])
        finally:
            await backend.close()

    receipt, rendered, url = run(go())
    assert fake.tasks[receipt["task_id"]].fields["webhook_url"] == url
    assert len(rendered) == 2 and fake.by_id_calls[receipt["task_id"]] == 1
    sent = [entry for entry in fake.webhooks_sent if entry[0] == receipt["task_id"]]
    assert len(sent) == 5 + 3 and {status for _, _, status in sent} == {200}
    assert {subtype for _, subtype, _ in sent} == {"audio", "lyrics_timestamped", "album_cover_generation"}


def test_a_forged_webhook_is_only_a_hint_and_changes_nothing(fake, song, tmp_path):
    fake.slow_factor = 3.0

    async def go():
        backend = make_backend(fake, tmp_path / "state", webhook=_webhook_settings())
        work = tmp_path / "work"
        work.mkdir()
        try:
            spec = make_spec(song, num_outputs=1)
            prepared = await backend.prepare(spec, work)
            receipt = await backend.submit(spec, prepared)
            forged = {"success": True, "conversion_type": "Inpaint", "task_id": receipt["task_id"],
                      "conversion_id": "evil", "conversion_path": f"{fake.origin}/files/evil.mp3",
                      "conversion_path_wav": f"{fake.origin}/files/evil.wav", "conversion_duration": 40.0}
            async with httpx.AsyncClient() as http:
                answer = await http.post(backend.receiver.url_for(receipt["webhook_secret"]), json=forged)
            rendered = await backend.wait(spec, prepared, receipt, work, lambda f, n="": None)
            return answer.status_code, receipt, rendered
        finally:
            await backend.close()

    status, receipt, [item] = run(go())
    assert status == 200
    assert item.notes["conversion_id"] == fake.tasks[receipt["task_id"]].conversion_ids[0]
    assert not [name for name in fake.file_requests if "evil" in name]
    assert fake.by_id_calls[receipt["task_id"]] >= 2  # the hint was checked (still generating), then polled to the end


@pytest.mark.parametrize("bad, message", [
    (dict(public_url="ftp://x"), 'public_url = "ftp://x": must be an http'),
    (dict(public_url="https://hooks.example.net/db?token=t"), "must have no \\?query or #fragment"),
    (dict(public_url="https://hooks.example.net/db#hooks"), "must have no \\?query or #fragment"),
    (dict(public_url="https://x", bind_host="localhost"), 'bind_host = "localhost": must be an IP address'),
    (dict(public_url="https://x", path_prefix="hooks"), 'path_prefix = "hooks": must start and end'),
    (dict(public_url="https://x", bind_host="0.0.0.0"), "listens beyond this machine"),
])
def test_webhook_settings_are_checked(bad, message):
    with pytest.raises(ConfigError, match=message):
        MusicGPTSettings.from_config({"webhook": bad}, env={})
