"""What keeps a producer's money and key safe: the spend guard, dry runs, the key lookup, the rate limiter."""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import types

import pytest

from bridge import logs
from bridge.backends.musicgpt.ratelimit import RateLimiter, shared_limiter
from bridge.backends.musicgpt.secrets import Redacted, find_api_key
from bridge.backends.musicgpt.settings import MusicGPTSettings, SettingsError
from bridge.backends.musicgpt.spend import SpendGuard
from bridge.backends.musicgpt.webhooks import WebhookSettings
from bridge.exceptions import AuthError, BackendError, SpendLimitReached
from tests.backends.musicgpt.support import make_backend, make_spec, run, run_job

# -- spend guard -------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_late_post_outcome_is_noted_beside_the_producers_resolve_never_over_it(tmp_path):
    # The producer settled the rows while their POSTs were in flight (another process sharing the state folder: the
    # daemon itself refuses such a resolve); each POST's outcome then comes.
    guard = SpendGuard(tmp_path / "spend.sqlite")
    named, lost, refused = (guard.record_intent(job, "inpaint") for job in ("named", "lost", "refused"))
    guard.record_resolved("named", "task-T")
    guard.record_resolved("lost", "task-L")
    guard.record_not_submitted("refused")
    assert guard.record_accepted(named, "task-T2", 0.2) == "accepted as task task-T, as the producer resolved it"
    assert guard.record_unknown(lost, "connection dropped") == "accepted as task task-L, as the producer resolved it"
    # money spent is a fact: the task MusicGPT accepted is never lost behind a "not submitted"
    assert guard.record_accepted(refused, "task-R", 0.1) is None
    rows = {row["job_id"]: row for row in guard.entries()}
    assert [(rows[job]["state"], rows[job]["task_id"]) for job in ("named", "lost", "refused")] == [
        ("accepted", "task-T"), ("accepted", "task-L"), ("accepted", "task-R")]
    assert "late answer: accepted as task task-T2" in rows["named"]["note"]
    assert "late answer: unknown (connection dropped)" in rows["lost"]["note"]
    assert rows["named"]["credit_estimate"] == 0.2 and guard.paid_jobs()["refused"] == "task-R"
    # the same task the producer named: nothing to tell
    same = guard.record_intent("same", "inpaint")
    guard.record_resolved("same", "task-S")
    assert guard.record_accepted(same, "task-S", 0.1) is None


def test_hourly_and_daily_limits_count_paid_and_unknown_submits_not_refused_ones(tmp_path):
    clock = Clock()
    guard = SpendGuard(tmp_path / "spend.sqlite", hourly_limit=2, daily_limit=3, clock=clock)
    guard.record_accepted(guard.record_intent("j1", "inpaint"), "t1", 42.0)
    guard.record_refused(guard.record_intent("j2", "inpaint"), "HTTP 422")  # nothing spent: does not count
    guard.record_unknown(guard.record_intent("j3", "extend"), "connection dropped")  # may have cost: counts
    with pytest.raises(SpendLimitReached, match="2 paid MusicGPT requests in the last hour reach the limit of 2"):
        guard.record_intent("j4", "inpaint")
    clock.now += 3601
    guard.record_accepted(guard.record_intent("j4", "inpaint"), "t4", 40.0)
    with pytest.raises(SpendLimitReached, match="last day reach the limit of 3"):
        guard.record_intent("j5", "inpaint")
    reopened = SpendGuard(tmp_path / "spend.sqlite", hourly_limit=2, daily_limit=3, clock=clock)  # a restart
    totals = reopened.totals()
    assert totals["requests_last_day"] == 3 and totals["credit_estimate_last_day"] == 82.0
    assert totals["unknown_submissions"] == 1


def test_the_spend_guard_stops_a_submit_before_anything_is_sent(fake, song, tmp_path):
    async def go():
        backend = make_backend(fake, tmp_path / "state", hourly_limit=1)
        try:
            await run_job(backend, make_spec(song, job_id="j-1", num_outputs=1), tmp_path / "w1")
            with pytest.raises(SpendLimitReached, match="hourly_limit"):
                await run_job(backend, make_spec(song, job_id="j-2"), tmp_path / "w2")
            return backend.spend.entries()
        finally:
            await backend.close()

    entries = run(go())
    assert [(e["job_id"], e["state"], e["credit_estimate"]) for e in entries] == [("j-1", "accepted", 42.0)]
    assert fake.submit_requests["inpaint"] == 1


def test_a_dry_run_shows_what_would_be_sent_and_sends_nothing(fake, song, tmp_path):
    spec = make_spec(song, lyrics="la la", lyrics_section="new line", gender="neutral")

    async def go():
        backend = make_backend(fake, tmp_path / "state", dry_run=True)
        try:
            with pytest.raises(BackendError) as caught:
                await run_job(backend, spec, tmp_path / "work")
            return caught.value, backend.spend.entries()
        finally:
            await backend.close()

    error, entries = run(go())
    assert error.code == "dry_run"
    for shown in ('"replace_start_at": "8"', '"lyrics_section_to_replace": "new line"', '"gender": "neutral"',
                  "/v1/inpaint", "musicgpt-upload.wav"):
        assert shown in str(error)
    assert [e["state"] for e in entries] == ["dry_run"]
    assert sum(fake.submit_requests.values()) == 0 and fake.auth_headers == []


# -- the key -----------------------------------------------------------------------------------------------------


def test_the_key_comes_from_the_environment_first(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[musicgpt]\napi_key = "from-file"\n')
    config.chmod(0o600)
    key = find_api_key("from-file", config, env={"MUSICGPT_API_KEY": "from-env"}, use_keyring=False)
    assert key.reveal() == "from-env" and key.source == "env"
    key = find_api_key("from-file", config, env={}, use_keyring=False)
    assert key.reveal() == "from-file" and key.source == "config"


def test_the_keyring_is_used_when_installed(tmp_path, monkeypatch):
    # keyring is optional and not installed here: a stand-in module with its one call plays the system keyring.
    stand_in = types.ModuleType("keyring")
    stand_in.get_password = lambda service, user: "from-keyring" if (service, user) == ("daw-bridge", "musicgpt") \
        else None
    monkeypatch.setitem(sys.modules, "keyring", stand_in)
    key = find_api_key("from-file", None, env={})
    assert (key.reveal(), key.source) == ("from-keyring", "keyring")


@pytest.mark.parametrize("mode,who", [(0o640, "group"), (0o604, "others"), (0o644, "group and others")])
def test_a_config_file_others_can_read_is_refused(tmp_path, mode, who):
    config = tmp_path / "config.toml"
    config.write_text('[musicgpt]\napi_key = "secret-in-file"\n')
    config.chmod(mode)
    with pytest.raises(AuthError, match=f"readable by {who}.*chmod 600") as caught:
        find_api_key("secret-in-file", config, env={}, use_keyring=False)
    assert "secret-in-file" not in str(caught.value)


def test_no_key_anywhere_says_where_to_put_one():
    with pytest.raises(AuthError, match="MUSICGPT_API_KEY") as caught:
        find_api_key(None, None, env={}, use_keyring=False)
    assert caught.value.code == "auth_missing"


def test_a_redacted_key_never_shows_itself():
    key = Redacted("sk-live-1234567890", source="env")
    for text in (repr(key), str(key), f"{key}", f"{key!r}", "%s" % key, str([key]), str({"k": key})):
        assert "1234567890" not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    logs.redact(key.reveal())
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "header was %s", ("sk-live-1234567890",), None)
    logs.CredentialFilter().filter(record)
    assert record.getMessage() == "header was <redacted>"


def test_signed_addresses_lose_their_query_in_any_log_line():
    url = ("https://bucket.example.net/out/v1.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFAKE%2F2026"
           "&X-Amz-Signature=" + "ab" * 32)
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: GET %s "HTTP/1.1 200 OK"', (url,),
                               None)
    logs.CredentialFilter().filter(record)
    assert record.getMessage() == 'HTTP Request: GET https://bucket.example.net/out/v1.wav?<redacted> "HTTP/1.1 200 OK"'


def test_settings_come_from_the_config_table_and_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "keyring", None)  # as on a machine without a keyring: the table's key counts
    table = {"base_url": "https://example.net/api/public", "context_s": "whole", "poll_calls_per_minute": 200,
             "concurrency": 3, "hourly_limit": 10, "dry_run": True, "api_key": "k-from-table",
             "webhook": {"public_url": "https://hooks.example.net/db", "bind_port": 8765}}
    config = tmp_path / "config.toml"
    config.write_text("")
    config.chmod(0o600)
    settings = MusicGPTSettings.from_config(table, state_dir=tmp_path, config_file=config, env={})
    assert settings.context_s is None and settings.concurrency == 3 and settings.dry_run is True
    assert settings.webhook == WebhookSettings(public_url="https://hooks.example.net/db", bind_port=8765)
    assert settings.api_key.reveal() == "k-from-table" and "k-from-table" not in repr(settings)
    assert "k-from-table" not in str(settings.to_json())
    env = {"MUSICGPT_BASE_URL": "http://127.0.0.1:9/api/public"}
    assert MusicGPTSettings.from_config({}, env=env).base_url == env["MUSICGPT_BASE_URL"]
    for bad, message in [({"conext_s": 5}, r"\[musicgpt\] conext_s = 5: unknown key; did you mean .* context_s"),
                         ({"concurrency": 0}, r"\[musicgpt\] concurrency = 0: must be at least 1"),
                         ({"hourly_limit": 2.5}, r"\[musicgpt\] hourly_limit = 2.5: must be a whole number"),
                         ({"dry_run": "yes"}, r'\[musicgpt\] dry_run = "yes": must be true or false'),
                         ({"webhook": {"bind_port": 1}}, r"\[musicgpt.webhook\] public_url is missing: required"),
                         ({"webhook": {"public_url": "https://x", "bind_port": "80"}},
                          r'\[musicgpt.webhook\] bind_port = "80": must be a whole number')]:
        with pytest.raises(SettingsError, match=message):
            MusicGPTSettings.from_config(bad, env={})


# -- rate limiter ------------------------------------------------------------------------------------------------


def test_calls_per_minute_are_spread_over_the_window_and_a_429_holds_everyone_back():
    clock = Clock(0.0)
    limiter = RateLimiter(3, 1, clock=clock)
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 60.0]  # the 4th call waits for the 1st to age
    clock.now = 61.0
    assert limiter.reserve() == 0.0  # the calls at 0 s have aged out: only the one at 60 s is within the minute
    limiter.penalize(30.0)
    assert limiter.reserve() == pytest.approx(30.0)


def test_generation_slots_queue_jobs_in_order_and_survive_cancellation():
    async def go():
        limiter = RateLimiter(100, 1)
        order: list[str] = []

        async def job(name: str):
            await limiter.acquire_slot(name)
            order.append(f"{name} runs")
            await asyncio.sleep(0.01)
            limiter.release_slot(name)

        await limiter.acquire_slot("first")
        waiting = asyncio.ensure_future(limiter.acquire_slot("cancelled"))
        jobs = [asyncio.ensure_future(job(n)) for n in ("second", "third")]
        await asyncio.sleep(0.01)
        assert limiter.snapshot()["queued"] == 3 and order == []
        waiting.cancel()
        limiter.release_slot("first")
        await asyncio.gather(*jobs)
        return order, limiter.snapshot()

    order, snapshot = asyncio.run(go())
    assert order == ["second runs", "third runs"]
    assert snapshot["generating"] == 0 and snapshot["queued"] == 0


def test_one_limiter_per_account_in_the_process():
    a = shared_limiter("https://one.example/api", 20, 1)
    b = shared_limiter("https://one.example/api", 200, 3)
    assert a is b and (a.calls_per_minute, a.concurrency) == (200, 3)
    assert shared_limiter("https://two.example/api", 20, 1) is not a
