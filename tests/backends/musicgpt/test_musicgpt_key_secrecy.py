"""The API key never appears in logs, errors, journaled dicts, health reports or any file the backend writes."""

from __future__ import annotations

import json
import logging

from bridge.exceptions import BridgeError
from tests.backends.musicgpt.support import make_backend, make_spec, run, run_job

KEY = "sk-leakcheck-9f8e7d6c5b4a3210"


def test_the_key_never_leaks_through_success_or_failure(fake, song, tmp_path, caplog):
    fake.api_key = KEY
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included, at their most talkative
    texts: list[str] = []

    async def attempt(backend, spec, work):
        try:
            prepared, receipt, rendered = await run_job(backend, spec, work)
            texts.extend(json.dumps(x, default=str) for x in (prepared, receipt, [r.to_json() for r in rendered]))
        except BridgeError as exc:
            texts.extend([str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)])

    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            await attempt(backend, make_spec(song, job_id="j-ok"), tmp_path / "w-ok")
            fake.inject("submit", "422", text="audio too short")
            await attempt(backend, make_spec(song, job_id="j-422"), tmp_path / "w-422")
            fake.inject("submit", "drop_after_accept")
            await attempt(backend, make_spec(song, job_id="j-lost"), tmp_path / "w-lost")
            fake.inject("submit", "500", times=10)
            await attempt(backend, make_spec(song, job_id="j-500"), tmp_path / "w-500")
            fake.api_key = "someone-else"  # now the server refuses ours
            await attempt(backend, make_spec(song, job_id="j-401"), tmp_path / "w-401")
            texts.append(json.dumps(await backend.describe(), default=str))
            texts.extend([repr(backend), repr(backend.settings), repr(backend.client.__dict__)])
        finally:
            await backend.close()
        dry = make_backend(fake, tmp_path / "state", dry_run=True)
        try:
            await attempt(dry, make_spec(song, job_id="j-dry"), tmp_path / "w-dry")
        finally:
            await dry.close()

    run(go())
    assert len(texts) > 10 and any("audio too short" in t for t in texts)  # the failures really happened
    assert fake.auth_headers.count(KEY) >= 5  # ... and the key really was sent
    for text in texts:
        assert KEY not in text
    assert caplog.records and KEY not in caplog.text
    assert all(KEY not in record.getMessage() for record in caplog.records)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" for p in written) and any(p.suffix == ".wav" for p in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
