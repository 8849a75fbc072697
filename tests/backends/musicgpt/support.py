"""Helpers for the MusicGPT suites: a backend tuned so that "slow" tasks take a fraction of a second, job specs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.audio.region import probe
from bridge.backends.musicgpt.backend import MusicGPTBackend
from bridge.backends.musicgpt.client import MusicGPTClient, RetryPolicy
from bridge.backends.musicgpt.ratelimit import RateLimiter
from bridge.backends.musicgpt.secrets import Redacted
from bridge.models import JobSpec
from tests.fakes.musicgpt import FakeMusicGPT

# Every delay scaled down together: an answered eta of 20 s completes in 0.2 s and is first polled at 0.2 s;
# 8 s of context keeps uploads and renders small.
FAST = dict(context_s=8.0, eta_scale=0.01, poll_interval_s=0.05, poll_max_interval_s=0.2, retry_base_s=0.01,
            rate_limit_backoff_s=0.02, poll_calls_per_minute=6000, http_timeout_s=5.0)


def make_spec(song: Path, job_id: str = "j-20261121-120000-a1b2", **fields) -> JobSpec:
    values = dict(operation="inpaint", start=18.0, end=24.0, prompt="a soft guitar solo", num_outputs=2, handle=1.0)
    values.update(fields)
    return JobSpec(job_id=job_id, source=song, source_info=probe(song), backend="musicgpt", **values)


def make_backend(fake: FakeMusicGPT, state_dir: Path, **overrides) -> MusicGPTBackend:
    settings = dict(FAST)
    settings.update(overrides)
    return MusicGPTBackend(base_url=settings.pop("base_url", fake.url), api_key=Redacted(fake.api_key),
                           state_dir=state_dir, **settings)


def make_client(url: str, key: str, *, timeout_s: float = 5.0, attempts: int = 3) -> MusicGPTClient:
    return MusicGPTClient(url, Redacted(key), limiter=RateLimiter(6000, 10), timeout_s=timeout_s,
                          retry=RetryPolicy(attempts=attempts, base_s=0.01, cap_s=0.05, rate_limit_s=0.01,
                                            rate_limit_patience_s=5.0))


async def run_job(backend: MusicGPTBackend, spec: JobSpec, workdir: Path, progress=None):
    """prepare, submit and wait, as the core does; returns (prepared, receipt, rendered)."""
    workdir.mkdir(parents=True, exist_ok=True)
    notes: list = progress if progress is not None else []
    prepared = await backend.prepare(spec, workdir)
    receipt = await backend.submit(spec, prepared)
    rendered = await backend.wait(spec, prepared, receipt, workdir, lambda f, n="": notes.append((f, n)))
    return prepared, receipt, rendered


def run(coro):
    return asyncio.run(coro)


def run_one_job(fake: FakeMusicGPT, spec: JobSpec, tmp_path: Path, progress=None, **overrides):
    """``run_job`` on a backend of ``make_backend``'s (its state and work folders in ``tmp_path``), closed afterwards
    whatever happens; returns (prepared, receipt, rendered)."""
    async def go():
        backend = make_backend(fake, tmp_path / "state", **overrides)
        try:
            return await run_job(backend, spec, tmp_path / "work", progress)
        finally:
            await backend.close()
    return run(go())


def with_client(url: str, key: str, call, **settings):
    """``await call(client)`` with a client of ``make_client``'s, closed afterwards whatever happens."""
    async def go():
        client = make_client(url, key, **settings)
        try:
            return await call(client)
        finally:
            await client.close()

    return run(go())
