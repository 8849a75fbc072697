"""The HTTP side of the MusicGPT backend: submit, poll, download.

This is the one place where httpx errors and HTTP statuses become :mod:`bridge.exceptions`:

    connect error, connect/pool timeout   nothing left this machine: retried, then TransientError
    401, 403                              AuthError (never retried)
    402                                   CreditError, naming required and available credit (never retried)
    400, 404, 409, 422, other 4xx         BackendError with the server's own text (never retried); so is a byId
                                          200 saying "success": false without a conversion
    429                                   every caller held back (at least as long as a Retry-After says), then
                                          retried; RateLimited when patience runs out
    5xx, other network errors             polls and downloads: retried with jittered backoff, then TransientError

A paid submit is stricter. Only an answer that proves no task was created may be followed by another POST: a
connect error (nothing left), or one of the contract's refusals before work starts (400, 401, 402, 403, 422, 429).
Any other answer — any 5xx, a 404 or 409, a timeout or dropped connection after sending, a 2xx without a task id
or with an unreadable body — leaves the task's existence open, so it raises SubmissionUnknown and is never sent
again: nothing in the contract says a 500 means "not created".

Submits go through their own connection pool without keep-alive: a fresh connection per submit means a connect
error proves the request never left, and a stale pooled connection can never turn a harmless retry into a
"submission unknown". Downloads go through a third client that never carries the Authorization header, since the
audio lives on another host (a storage bucket) that must not see the key.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import httpx

from bridge import logs
from bridge.backends.musicgpt.ratelimit import RateLimiter
from bridge.backends.musicgpt.secrets import Redacted
from bridge.exceptions import AuthError, BackendError, CreditError, RateLimited, SubmissionUnknown, TransientError

log = logging.getLogger(__name__)

ENDPOINTS = {"inpaint": "/v1/inpaint", "extend": "/v1/extend"}
CONVERSION_TYPES = {"inpaint": "INPAINT", "extend": "EXTEND"}
MAX_DOWNLOAD_BYTES = 1 << 30
MIN_DOWNLOAD_BYTES_PER_S = 8 << 10  # averaged once the first timeout has passed: a trickle is a stalled download
MAX_TASK_ID_CHARS = 200  # far above any id seen; a longer one is not an id we can poll, show or resolve with
# The contract's refusals before work starts: answered with one of these, a submit created no task.
REFUSED_BEFORE_WORK = (400, 401, 402, 403, 422, 429)
# What the producer is told whenever a paid submit's fate is open (submission_unknown).
NOT_SENT_AGAIN = ("It was NOT sent again, so you are not charged twice: check your MusicGPT dashboard for a new task, "
                  "then resolve the job with its task id or as not submitted")
# What reading a JSON body raises when it is no JSON, or JSON nested deeper than the parser's stack.
UNREADABLE_JSON = (ValueError, RecursionError)
# Raised before a byte of the request left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
             httpx.LocalProtocolError)


@dataclass
class RetryPolicy:
    """How hard to try before giving up. Tests shrink the delays; the shape stays the same."""

    attempts: int = 4  # tries per request for 5xx and network errors (not for 429)
    base_s: float = 1.0  # first backoff; doubles per attempt, jittered
    cap_s: float = 30.0
    rate_limit_s: float = 10.0  # first hold-back after a 429
    rate_limit_patience_s: float = 900.0  # how long a submit keeps queueing behind 429s

    def backoff(self, attempt: int, base: float | None = None) -> float:
        """Delay before retry number ``attempt`` (0-based): exponential, capped, with jitter so jobs spread out."""
        ceiling = min(self.cap_s, (self.base_s if base is None else base) * (2 ** attempt))
        return ceiling * random.uniform(0.5, 1.0)


class MusicGPTClient:
    """Async client for the MusicGPT public API (inpaint, extend, byId) and the audio it returns."""

    def __init__(self, base_url: str, api_key: Redacted, *, limiter: RateLimiter, timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None):
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self._secret = api_key
        self._timeout_s = timeout_s
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
        auth = {"Authorization": api_key.reveal(), "Accept": "application/json"}
        self._api = httpx.AsyncClient(base_url=self.base_url, headers=auth, timeout=timeout)
        self._submits = httpx.AsyncClient(base_url=self.base_url, headers=auth, timeout=timeout,
                                          limits=httpx.Limits(max_keepalive_connections=0))
        # Each address a download is sent on to is checked as the first one is (see download): httpx follows it
        # as it comes, and a port past 65535 raised from inside it, no network error.
        self._files = httpx.AsyncClient(timeout=timeout, follow_redirects=True,
                                        event_hooks={"request": [_refuse_unfetchable]})

    async def close(self) -> None:
        """Close every connection."""
        for client in (self._api, self._submits, self._files):
            await client.aclose()

    # -- submit --------------------------------------------------------------------------------------------------

    async def submit(self, operation: str, fields: dict[str, str], upload: Path | None = None, *,
                     attempt: dict | None = None, on_wait: Callable[[str], Awaitable[None]] | None = None,
                     on_resend: Callable[[], Awaitable[None]] | None = None) -> dict:
        """POST an inpaint or extend request once; return the server's answer (task_id, conversion ids, eta, ...).

        Retried only when the answer proves no task was created (connect error, 429). Anything that leaves the
        outcome open raises SubmissionUnknown instead of sending again. ``attempt["sending"]`` is True from the moment
        a POST may leave until a refusal, or an answer read whole, is in hand, so a caller interrupted mid-call (or
        met by an error no one foresaw) knows whether a task may exist. ``on_wait(why)`` is awaited when a try proved
        nothing was made and the next one waits (a 429's Retry-After may be minutes), ``on_resend()`` before that next
        try: the caller's record can say "not sent" meanwhile, so even a kill in the wait is known for what it was.
        """
        attempt = {} if attempt is None else attempt
        path = ENDPOINTS[operation]
        failures, refusals, started = 0, 0, time.monotonic()  # connect failures; 429 answers
        waiting = False  # between a try that made nothing and the next
        while True:
            await self.limiter.call()
            if waiting and on_resend is not None:
                await on_resend()
            waiting = False
            try:
                response = await self._post(path, fields, upload, attempt)
            except _NOT_SENT as exc:
                attempt["sending"] = False
                failures += 1
                if failures >= self.retry.attempts:
                    raise TransientError(f"MusicGPT cannot be reached at {self.base_url} ({_describe(exc)}); "
                                         "nothing was sent", code="backend_unreachable") from None
                if on_wait is not None:
                    await on_wait(f"not sent ({_describe(exc)})")
                waiting = True
                await self._sleep(self.retry.backoff(failures - 1), f"{operation} not sent ({_describe(exc)})")
                continue
            except httpx.HTTPError as exc:  # a timeout, a dropped connection, an answer that cannot be decoded...
                raise SubmissionUnknown(
                    f"the {operation} request may have reached MusicGPT, but its answer was lost or could not be "
                    f"read ({_describe(exc)}). {NOT_SENT_AGAIN}") from None
            status = response.status_code
            if status not in REFUSED_BEFORE_WORK and not 200 <= status < 300:
                raise SubmissionUnknown(
                    f"MusicGPT answered the {operation} request with HTTP {status} ({self._text(response)}), which "
                    f"does not prove the task was not created. {NOT_SENT_AGAIN}")
            if status in REFUSED_BEFORE_WORK:
                attempt["sending"] = False  # a refusal in hand: nothing of this attempt is pending
            if status == 429:
                waited = time.monotonic() - started
                if waited >= self.retry.rate_limit_patience_s:
                    raise RateLimited(f"MusicGPT kept answering 429 (too many requests or tasks at once) for "
                                      f"{waited:.0f} s; the {operation} was not accepted") from None
                delay = max(self.retry.backoff(min(refusals, 5), self.retry.rate_limit_s),
                            _retry_after(response, self.retry.rate_limit_patience_s))
                refusals += 1
                self.limiter.penalize(delay)
                if on_wait is not None:
                    await on_wait("refused with HTTP 429")
                waiting = True
                log.info("MusicGPT answered 429 to %s: queueing for %.1f s", operation, delay)
                continue
            answer = self._accepted(operation, response)
            attempt["sending"] = False  # the answer is read: the task it names is in hand
            return answer

    async def _post(self, path: str, fields: dict[str, str], upload: Path | None, attempt: dict) -> httpx.Response:
        if upload is None:  # still multipart, as documented: text parts without a file name
            parts = [(name, (None, value.encode("utf-8"))) for name, value in fields.items()]
            attempt["sending"] = True
            return await self._submits.post(path, files=parts)
        with open(upload, "rb") as audio:  # a missing upload fails here, before anything may leave
            files = {"audio_file": (upload.name, audio, _mime(upload))}
            attempt["sending"] = True
            return await self._submits.post(path, data=fields, files=files)

    def _accepted(self, operation: str, response: httpx.Response) -> dict:
        status = response.status_code
        if not 200 <= status < 300:
            self._raise_for(status, response, f"the {operation} request")
        try:
            answer = response.json()
        except UNREADABLE_JSON:
            raise SubmissionUnknown(f"MusicGPT answered the {operation} request with HTTP {status} but an unreadable "
                                    "body; it may have accepted it. Check your dashboard, then resolve the job"
                                    ) from None
        if not isinstance(answer, dict):
            answer = {}
        task_id = answer.get("task_id")
        if isinstance(task_id, (str, int)) and not isinstance(task_id, bool) and \
                0 < len(str(task_id)) <= MAX_TASK_ID_CHARS:
            return _with_numbers(answer, ("eta", "credit_estimate"))
        if task_id:
            raise SubmissionUnknown(f"MusicGPT answered the {operation} request with a task id that is not one "
                                    f"({type(task_id).__name__}, {len(str(task_id))} characters); it may have "
                                    "accepted it. Check your dashboard, then resolve the job")
        # Even "success": false in a 2xx is no refusal the contract lists (400, 401, 402, 403, 422, 429): newer
        # servers answer flagged requests so, and nothing says no task (and no charge) came of it.
        said = f" ({self._text(response)})" if answer.get("success") is False else ""
        raise SubmissionUnknown(f"MusicGPT answered the {operation} request with HTTP {status} but no task id{said}; "
                                "it may have accepted it. It was NOT sent again, so you are not charged twice: check "
                                "your dashboard, then resolve the job")

    # -- poll ----------------------------------------------------------------------------------------------------

    async def by_id(self, conversion_type: str, *, task_id: str | None = None,
                    conversion_id: str | None = None) -> dict:
        """GET /v1/byId for one task (or one conversion): return its ``conversion`` object."""
        if (task_id is None) == (conversion_id is None):
            raise ValueError("by_id takes task_id or conversion_id, exactly one")
        params = {"conversionType": conversion_type}
        params.update({"task_id": task_id} if task_id else {"conversion_id": conversion_id})
        what = f"the status of task {task_id or conversion_id}"
        failures = 0
        while True:
            await self.limiter.call()
            try:
                response = await self._api.get("/v1/byId", params=params)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failures += 1
                if failures >= self.retry.attempts:
                    raise TransientError(f"could not read {what} ({_describe(exc)})") from None
                await self._sleep(self.retry.backoff(failures - 1), f"byId failed ({_describe(exc)})")
                continue
            status = response.status_code
            if status == 429:
                failures += 1
                delay = max(self.retry.backoff(min(failures, 5), self.retry.rate_limit_s),
                            _retry_after(response, self.retry.rate_limit_patience_s))
                self.limiter.penalize(delay)
                if failures >= self.retry.attempts:
                    raise RateLimited(f"MusicGPT kept answering 429 when asked for {what}")
                continue
            if status >= 500:
                failures += 1
                if failures >= self.retry.attempts:
                    raise TransientError(f"MusicGPT failed {failures} times to give {what} (HTTP {status})")
                await self._sleep(self.retry.backoff(failures - 1), f"byId answered HTTP {status}")
                continue
            if status != 200:
                self._raise_for(status, response, what)
            try:
                body = response.json()
            except UNREADABLE_JSON:
                body = None
            conversion = body.get("conversion") if isinstance(body, dict) else None
            if not isinstance(conversion, dict) and isinstance(body, dict) and body.get("success") is False:
                # MusicGPT's own refusal in a 200 (a task it does not know, say): asking again would only poll on
                # until the longest wait, then tell the producer the task had not finished
                raise BackendError(f"MusicGPT refused to give {what}: {self._text(response)}",
                                   code="rejected_by_service")
            problem = "an unreadable answer" if not isinstance(conversion, dict) else _other_task(
                conversion, task_id, conversion_id)
            if problem:
                # Another task's answer (a cache in front of the API that ignores the query, a server mix-up) would
                # deliver another job's audio as this one's: never taken, only asked again.
                failures += 1
                if failures >= self.retry.attempts:
                    raise TransientError(f"MusicGPT gave {problem} when asked for {what}")
                await self._sleep(self.retry.backoff(failures - 1), f"byId gave {problem}")
                continue
            return _with_numbers(conversion, ("conversion_duration_1", "conversion_duration_2"))

    # -- download ------------------------------------------------------------------------------------------------

    async def download(self, url: str, dest: Path,
                       verify: Callable[[Path], Awaitable[None] | None] | None = None) -> Path:
        """Fetch ``url`` into ``dest`` (renamed into place when complete and, if given, ``verify``-ed).

        Truncated bodies, network errors, 5xx and files ``verify`` rejects (it raises ValueError) are fetched again,
        a bounded number of times; then TransientError. A 4xx (expired or missing file) is not retried.
        """
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not _well_formed(url):
            shown = _short(url) if isinstance(url, str) else url  # the query of a signed address is a credential
            raise BackendError(f"MusicGPT gave an audio address that is not a web address: {repr(shown)[:80]}",
                               code="download_failed")
        part = dest.with_name(f".{dest.name}.part")
        reason = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                await self._sleep(self.retry.backoff(attempt - 1), f"download failed ({reason})")
            try:
                await self._fetch(url, part)
                if verify is not None and inspect.isawaitable(checked := verify(part)):
                    await checked
                part.replace(dest)
                return dest
            except _DownloadRefused as exc:
                part.unlink(missing_ok=True)
                raise BackendError(f"MusicGPT's audio file is gone or refused (HTTP {exc.status}): {_short(url)}",
                                   code="download_failed") from None
            except _SentOnToNoAddress as exc:
                part.unlink(missing_ok=True)
                raise BackendError("MusicGPT's storage sent the download on to an address that is not a web "
                                   f"address: {_short(exc.url)}", code="download_failed") from None
            except (httpx.TimeoutException, httpx.TransportError, httpx.TooManyRedirects, _DownloadRetry,
                    ValueError) as exc:
                reason = _describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                part.unlink(missing_ok=True)
            except BaseException:  # the job was cancelled (or the daemon stops): no half file is left behind
                part.unlink(missing_ok=True)
                raise
        raise TransientError(f"downloading {_short(url)} failed {self.retry.attempts} times ({reason})",
                             code="download_failed")

    async def _fetch(self, url: str, part: Path) -> None:
        async with self._files.stream("GET", url) as response:
            if 400 <= response.status_code < 500:
                raise _DownloadRefused(response.status_code)
            if response.status_code != 200:
                raise _DownloadRetry(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            received, began = 0, time.monotonic()
            with open(part, "wb") as out:
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise _DownloadRetry(f"larger than {MAX_DOWNLOAD_BYTES} bytes")
                    elapsed = time.monotonic() - began  # the read timeout never fires on a byte a second
                    if elapsed > self._timeout_s and received < elapsed * MIN_DOWNLOAD_BYTES_PER_S:
                        raise _DownloadRetry(f"stalled: {received} bytes in {elapsed:.0f} s")
                    out.write(chunk)
            if declared is not None and received != int(declared):
                raise _DownloadRetry(f"truncated: {received} of {declared} bytes")

    # -- shared --------------------------------------------------------------------------------------------------

    def _raise_for(self, status: int, response: httpx.Response, what: str) -> None:
        text = self._text(response)
        if status == 401:
            raise AuthError(f"MusicGPT refused the API key ({text}); check MUSICGPT_API_KEY, the keyring entry or "
                            "the api_key setting. Nothing was retried")
        if status == 403:
            raise AuthError(f"MusicGPT does not allow this key to ask for {what} (HTTP 403: {text})")
        if status == 402:
            raise CreditError(_credit_message(response, text))
        raise BackendError(f"MusicGPT rejected {what} (HTTP {status}): {text}", code="rejected_by_service")

    def _text(self, response: httpx.Response) -> str:
        """The server's own words: ``error`` or ``message`` (it uses both), else the start of the body; one line of
        at most 300 characters, since it ends up in a reply, a status file and a terminal (a gateway's HTML page or
        a validator's indented detail would otherwise spill over many)."""
        try:
            body = response.json()
        except UNREADABLE_JSON:
            body = None
        text = ""
        if isinstance(body, dict):
            for key in ("error", "message", "detail", "error_message"):
                if body.get(key):
                    value = body[key]
                    text = value if isinstance(value, str) else json.dumps(value)
                    break
        for said in (text, response.text):
            if said := self.words(said):
                return said
        return response.reason_phrase or f"HTTP {response.status_code}"

    def words(self, text: object) -> str:
        """What the server said (an error, a failed task's message) as ``server_words`` puts it, the key and any web
        address's query (a signed URL) masked first: the cut could leave part of them."""
        text = text if isinstance(text, str) else json.dumps(text)
        key = self._secret.reveal()
        return server_words(logs.scrub(text.replace(key, "<redacted>") if key else text))

    async def _sleep(self, seconds: float, why: str) -> None:
        log.warning("MusicGPT: %s; retrying in %.1f s", why, seconds)
        await asyncio.sleep(seconds)


class _DownloadRetry(Exception):
    pass


class _SentOnToNoAddress(Exception):
    def __init__(self, url: str):
        super().__init__("redirected to an address that cannot be fetched")
        self.url = url


async def _refuse_unfetchable(request: httpx.Request) -> None:
    """Refuse, before httpx connects, an address a download was sent on to that it cannot fetch."""
    if not _well_formed(str(request.url)):
        raise _SentOnToNoAddress(str(request.url))


class _DownloadRefused(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def _retry_after(response: httpx.Response, longest_s: float = 3600.0) -> float:
    """The seconds a 429's ``Retry-After`` asks to wait (a number of seconds or an HTTP date), at most
    ``longest_s``; 0 when it says nothing usable. MusicGPT documents none, but a gateway in front of it may send one,
    and asking again sooner only earns more 429s."""
    said = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(said)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(said).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return 0.0
    return min(max(seconds, 0.0), longest_s) if math.isfinite(seconds) else 0.0


def _credit_message(response: httpx.Response, text: str) -> str:
    try:
        body = response.json()
    except UNREADABLE_JSON:
        body = {}
    body = body if isinstance(body, dict) else {}
    required, available = body.get("required_credits"), body.get("available_credits")
    figures = ""
    if required is not None or available is not None:
        figures = f": this request needs {required if required is not None else '?'} credits and the account has " \
                  f"{available if available is not None else '?'}"
    return f"not enough MusicGPT credit{figures} ({text}). Top up the account, then retry the job"


def server_words(text: object, limit: int = 300) -> str:
    """What the server said (an error, a failed task's message), as one line of at most ``limit`` characters: it ends
    up in a reply, a status file and a terminal, where a gateway's HTML page or an indented detail would spill."""
    text = " ".join((text if isinstance(text, str) else json.dumps(text)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _with_numbers(answer: dict, keys: tuple[str, ...]) -> dict:
    """``answer`` with the numbers among ``keys`` that came as text ("38", "192.12") read as numbers.

    The documents type them as numbers, but JSON written by hand (and some serialisers) quote them; read as text, an
    eta was no eta (the task polled at once), a credit estimate no credit, and a duration no check of a download.
    """
    out = dict(answer)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                continue
            if math.isfinite(number):
                out[key] = int(number) if number.is_integer() and key == "eta" else number
    return out


def _other_task(conversion: dict, task_id: str | None, conversion_id: str | None) -> str:
    """"" when a byId ``conversion`` is the one asked for (or does not say which it is), else what it is instead."""
    said = conversion.get("task_id")
    if task_id is not None and said not in (None, "") and str(said) != str(task_id):
        return f"the status of another task ({server_words(said, 60)})"
    ids = [str(conversion[k]) for k in ("conversion_id_1", "conversion_id_2") if conversion.get(k) not in (None, "")]
    if conversion_id is not None and ids and str(conversion_id) not in ids:
        return f"the status of other conversions ({server_words(', '.join(ids), 60)})"
    return ""


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _well_formed(url: str) -> bool:
    """Whether httpx can fetch ``url`` at all: a bad port or host name raised from inside httpx (InvalidURL, or an
    OverflowError for a port past 65535), not as a network error, and so failed the job instead of the one file."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):  # UnicodeError (an IDNA host name) is a ValueError
        return False
    return bool(parsed.host) and (parsed.port is None or 0 < parsed.port < 65536)


def _short(url: str) -> str:
    return url.split("?", 1)[0][:120]  # signed storage URLs carry credentials in the query


def _mime(path: Path) -> str:
    return {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".m4a": "audio/mp4"}.get(
        path.suffix.lower(), "application/octet-stream")
