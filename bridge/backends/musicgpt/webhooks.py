"""An optional receiver for MusicGPT's webhooks, so a finished job is noticed at once instead of at the next poll.

MusicGPT's webhooks are not signed and their retries are not documented, so a webhook is only ever a *hint*: it
wakes the job it belongs to, and the job then asks ``GET /v1/byId`` what really happened. Each job gets its own
random secret in the URL path; a POST to any other path is answered 404 and reaches nobody. Audio, timestamped
lyrics and album-cover deliveries may come in any order and more than once: each distinct one wakes its job once,
and a job acts at most once, on what byId confirms.

The receiver is a few lines of HTTP on asyncio's own server (no web framework): POST only, bodies up to 1 MB,
10 s to send them. It binds 127.0.0.1 unless configured otherwise; MusicGPT reaches it through ``public_url``
(a tunnel or reverse proxy the producer sets up).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from bridge import logs
from bridge.settings_schema import defaults

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
READ_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            413: "Payload Too Large"}


_DEFAULTS = defaults("musicgpt.webhook")  # the [musicgpt.webhook] table, checked by the settings schema


@dataclass(frozen=True)
class WebhookSettings:
    """Where the receiver listens and the address MusicGPT is told to call (``[musicgpt.webhook]``, checked)."""

    public_url: str  # e.g. https://hooks.example.net/daw-bridge: forwards to bind_host:bind_port
    bind_host: str = _DEFAULTS["bind_host"]
    bind_port: int = _DEFAULTS["bind_port"]  # 0: any free port (tests)
    path_prefix: str = _DEFAULTS["path_prefix"]
    allowed_senders: tuple[str, ...] = _DEFAULTS["allowed_senders"]  # with a bind_host beyond loopback: the tunnel's

    def allowed_networks(self) -> list:
        return [ipaddress.ip_network(sender, strict=False) for sender in self.allowed_senders]


class JobHints:
    """What the webhooks said about one job: a wake-up flag and the distinct deliveries seen."""

    def __init__(self, task_id: str | None = None):
        self.task_id = task_id
        self.deliveries: list[dict] = []  # distinct ones, in arrival order
        self.duplicates = 0
        self.foreign = 0  # claimed another task: ignored
        self._seen: set[tuple] = set()
        self._event = asyncio.Event()

    def offer(self, payload: dict) -> bool:
        """Take one webhook body; return True when it is new (and wake the job), False for a repeat or a stranger."""
        task_id = str(payload.get("task_id") or "")
        if self.task_id and task_id and task_id != self.task_id:
            self.foreign += 1
            return False
        key = (task_id, str(payload.get("subtype") or "audio"), str(payload.get("conversion_id") or ""))
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(key)
        self.deliveries.append({"subtype": key[1], "conversion_id": key[2] or None})
        self._event.set()
        return True

    async def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds or until a new webhook arrives; return True when one did."""
        if self._event.is_set():
            self._event.clear()
            return True
        try:
            await asyncio.wait_for(self._event.wait(), max(timeout, 0.0))
        except asyncio.TimeoutError:
            return False
        self._event.clear()
        return True


class WebhookReceiver:
    """A tiny HTTP server routing ``POST <prefix><secret>`` to the job registered under that secret."""

    def __init__(self, settings: WebhookSettings):
        self.settings = settings
        self._jobs: dict[str, JobHints] = {}
        self._retired: set[str] = set()  # finished jobs: late deliveries get a polite 200, not an error
        self._server: asyncio.AbstractServer | None = None
        self._starting = asyncio.Lock()
        self.port: int | None = None

    async def start(self) -> None:
        """Start listening (idempotent). Jobs resumed together all call it at once: the lock lets one bind the port
        and the others find it bound, where each would have tried the port itself and all but one failed."""
        async with self._starting:
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, self.settings.bind_host,
                                                          self.settings.bind_port)
                self.port = self._server.sockets[0].getsockname()[1]
                log.info("MusicGPT webhook receiver listening on %s:%d", self.settings.bind_host, self.port)

    def _sender_allowed(self, peer) -> bool:
        networks = self.settings.allowed_networks()
        if not networks:
            return True  # bound to loopback (a wider bind without an allowlist is refused by the settings)
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            return False
        return any(address in network for network in networks)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @staticmethod
    def new_secret() -> str:
        """A fresh per-job secret for the webhook path (192 random bits), never to appear in a log line."""
        secret = secrets.token_urlsafe(24)
        logs.redact(secret)
        return secret

    def url_for(self, secret: str) -> str:
        """The webhook_url to send with a job's submit."""
        return self.settings.public_url.rstrip("/") + self.settings.path_prefix + secret

    def register(self, secret: str, task_id: str | None = None) -> JobHints:
        """Route deliveries for ``secret`` to one job (again after a restart: same secret, same hints object)."""
        hints = self._jobs.get(secret)
        if hints is None:
            hints = self._jobs[secret] = JobHints(task_id)
        elif task_id:
            hints.task_id = task_id
        self._retired.discard(secret)
        return hints

    def retire(self, secret: str) -> None:
        """The job is done: forget its hints, keep answering its late deliveries with 200."""
        if self._jobs.pop(secret, None) is not None:
            self._retired.add(secret)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._sender_allowed(writer.get_extra_info("peername")):
            writer.close()  # not even an HTTP answer for a stranger
            return
        try:
            status = await asyncio.wait_for(self._read_and_route(reader), READ_TIMEOUT_S)
        except asyncio.TimeoutError:
            status = 408
        except (ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status = 400
        except ConnectionError:  # the sender went away: nobody to answer
            writer.close()
            return
        except _TooLarge:
            status = 413
        except _NotPost:
            status = 405
        body = json.dumps({"received": status == 200}).encode()
        try:
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _read_and_route(self, reader: asyncio.StreamReader) -> int:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.rstrip("\r\n").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method != "POST":
            raise _NotPost()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError("negative length")
            if length > MAX_BODY:
                raise _TooLarge()
            body = await reader.readexactly(length)
        path = urlsplit(target).path
        secret = path[len(self.settings.path_prefix):] if path.startswith(self.settings.path_prefix) else ""
        hints = self._jobs.get(secret) if secret else None
        if hints is None:
            return 200 if secret in self._retired else 404
        payload = json.loads(body.decode("utf-8"))
        if not isinstance(payload, dict):
            raise ValueError("webhook body is not a JSON object")
        if hints.offer(payload):
            log.info("MusicGPT webhook for task %s (%s): confirming through byId", payload.get("task_id"),
                     payload.get("subtype") or "audio")
        return 200


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers expected: the blank line that ends the body
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise _TooLarge()
        body += await reader.readexactly(size)
        await reader.readexactly(2)


class _TooLarge(Exception):
    pass


class _NotPost(Exception):
    pass
