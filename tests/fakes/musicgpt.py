"""A fake MusicGPT service on loopback: real HTTP, following the contract field by field, with faults on demand.

It serves, under ``<url>`` (like ``https://api.musicgpt.com/api/public``):

- ``POST /v1/inpaint`` and ``POST /v1/extend``: multipart/form-data parsed part by part; every documented field is
  checked (types, enums, lengths, ranges, audio_file or audio_url) and anything else is a 422, so a typo in the
  client cannot pass. A 200 answers the documented body (``new_fields=True`` adds the newer servers' fields).
- ``GET /v1/byId``: ``conversionType`` plus ``task_id`` *or* ``conversion_id`` (both or neither: 400 "Invalid request
  parameters"); statuses move IN_QUEUE → PROCESSING (or the unknown values you give) → COMPLETED/ERROR/FAILED over
  ``eta * time_scale * slow_factor`` seconds.
- the audio itself at ``/files/<conversion id>.wav`` and ``.mp3`` on the same server but outside the API path, like a
  storage bucket: it counts requests that wrongly carry an Authorization header.

The "generated" audio is the upload with the replaced range (or everything after ``extend_after`` plus
``extend_s`` seconds) filled with a tone that differs per variant, then gain ``output_gain``, shifted late by
``shift_s`` (silence prepended; negative trims), and resampled to ``output_rate``: deterministic, so tests can
check the splice and the alignment offset exactly.

Faults: ``inject(endpoint, kind, times=1, **options)`` queues one-off faults for ``submit``, ``byId`` or
``download``: ``429 500 401 402 422`` or any other status (answered; ``429`` with ``retry_after=s``: a Retry-After;
``html=...``: as a gateway's HTML page), ``drop`` (close without answering),
``drop_after_accept`` (submit only: the task is created and paid for, then the connection closes),
``timeout`` / ``timeout_after_accept`` (hang until the client gives up), ``status_after_accept`` (submit only: the
task is created and paid for, then the answer is an error, ``status=500`` by default: 502, 503, 504...),
``slow_accept`` (submit only: the task is created, the 200 answer follows ``seconds`` later, as from a loaded
server), ``truncate`` (download: half the body under the full Content-Length), ``truncate_no_length`` (half the
body, no length, then close), ``corrupt`` (download: garbage bytes), ``trickle`` (download: the whole body, ``chunk``
bytes every ``every`` seconds). Standing knobs: ``unknown_statuses``, ``missing_wav``, ``outcome``,
``failure_message``, ``slow_factor``, ``concurrency_limit``, ``outputs_made``, ``credits``, ``new_fields``,
``numbers_as_text``, ``shift_s``, ``output_rate``, ``output_gain``, ``output_subtype`` (the WAV's sample format,
``PCM_16`` by default), ``signed_urls``, ``expired_urls``.

With ``signed_urls = True`` the audio addresses carry a pre-signed storage query, as S3 and its imitators hand
out: ``?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<access key id>%2F<date>%2F...&X-Amz-Signature=<64 hex>``.
A file asked for without its exact signature is then refused with 403, so a client cannot pass by dropping the
query; ``url_credential`` and ``url_signature(name)`` are the secret values a test looks for in what the daemon
writes. ``expired_urls = n``: the next ``n`` byId answers that offer audio hand out addresses whose signature has
expired by the time they are fetched (storage answers 403 "Request has expired"), as happens to a variant fetched
after another's long download; a later answer's addresses are fresh.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import random
import socket
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf
import soxr

API_PREFIX = "/api/public"
INPAINT_FIELDS = {"audio_file", "audio_url", "prompt", "replace_start_at", "replace_end_at", "lyrics",
                  "lyrics_section_to_replace", "gender", "num_outputs", "webhook_url"}
EXTEND_FIELDS = {"audio_file", "audio_url", "extend_after", "prompt", "lyrics", "lyrics_section_to_extend", "gender",
                 "num_outputs", "webhook_url"}
GENDERS = {"male", "female", "neutral"}


@dataclass
class Fault:
    kind: str
    options: dict = field(default_factory=dict)


@dataclass
class Task:
    task_id: str
    operation: str  # inpaint | extend
    fields: dict[str, str]
    upload_name: str | None
    upload_type: str | None
    upload_bytes: int
    audio: np.ndarray
    rate: int
    conversion_ids: list[str]
    eta: int
    created: float
    finish_at: float
    outcome: str
    rendered: dict = field(default_factory=dict)  # conversion id -> audio, rate, wav bytes, mp3 bytes, duration
    render_lock: threading.Lock = field(default_factory=threading.Lock)


class FakeMusicGPT:
    """The fake service. Use as a context manager; ``url`` is the base URL to give the client."""

    def __init__(self, *, api_key: str = "fake-key-0123456789abcdef", time_scale: float = 0.01, eta: int = 40,
                 credit_estimate: float = 42.0, seed: int = 7):
        self.api_key = api_key
        self.time_scale = time_scale
        self.eta = eta
        self.credit_estimate = credit_estimate
        self.slow_factor = 1.0
        self.shift_s = 0.0
        self.output_rate: int | None = None
        self.output_gain = 1.0
        self.output_subtype = "PCM_16"
        self.extend_s = 12.0
        self.new_fields = False
        self.missing_wav = False
        self.wav_as_null = False  # missing WAV shown as null rather than left out
        self.unknown_statuses: list[str] = []
        self.outcome = "COMPLETED"
        self.failure_message = "Generation failed: the model could not follow the prompt"  # byId's, on ERROR/FAILED
        self.concurrency_limit: int | None = None
        self.outputs_made: int | None = None  # outputs per task whatever num_outputs says (a server ignoring it)
        self.numbers_as_text = False  # eta, credit_estimate and conversion durations quoted: "38", "192.12"
        self.credits: tuple[float, float] | None = None  # (required, available): 402 when required > available
        self.webhook_duplicates = 2
        self.lyrics_limit = 3000
        self.hang_s = 5.0
        self.signed_urls = False
        self.expired_urls = 0
        self.url_credential = "AKIAFAKE" + uuid.uuid4().hex[:12].upper()  # the access key id in signed URLs
        self._signing_key = uuid.uuid4().bytes
        self.rng = random.Random(seed)
        # What happened, for the tests to assert on.
        self.submits: Counter = Counter()  # tasks created (paid for) per operation
        self.submit_requests: Counter = Counter()  # POSTs received per operation, whatever their fate
        self.submit_times: list[float] = []  # when each POST came (monotonic clock)
        self.by_id_calls: Counter = Counter()  # per task id
        self.by_id_requests: list[dict] = []
        self.downloads: Counter = Counter()  # complete file deliveries per file name
        self.file_requests: list[str] = []  # every file name asked for, served or not
        self.file_requests_with_auth = 0
        self.auth_headers: list[str | None] = []
        self.webhooks_sent: list[tuple[str, str, int | str]] = []  # (task id, subtype, HTTP status or error)
        self.tasks: dict[str, Task] = {}
        self.hosted: dict[str, bytes] = {}  # served at /uploads/<name>, for audio_url submits
        self._faults: dict[str, deque[Fault]] = {"submit": deque(), "byId": deque(), "download": deque()}
        self._lock = threading.Lock()
        self._admission = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> "FakeMusicGPT":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="fake-musicgpt", daemon=True)
        thread.start()
        self._serving = thread
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._serving.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> "FakeMusicGPT":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.origin + API_PREFIX

    # -- knobs ---------------------------------------------------------------------------------------------------

    def inject(self, endpoint: str, kind: str, times: int = 1, **options) -> None:
        """Queue ``times`` faults of ``kind`` for the next requests to ``endpoint`` (submit, byId, download)."""
        with self._lock:
            for _ in range(times):
                self._faults[endpoint].append(Fault(kind, options))

    def clear_faults(self, endpoint: str) -> int:
        """Drop the faults still queued for ``endpoint``; how many there were."""
        with self._lock:
            left = len(self._faults[endpoint])
            self._faults[endpoint].clear()
            return left

    def _next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            return self._faults[endpoint].popleft() if self._faults[endpoint] else None

    def finish(self, task_id: str, *, mp3: bool = False) -> None:
        """Make a task complete now and render its audio (benchmarks: keep rendering out of the measured time)."""
        task = self.tasks[task_id]
        task.finish_at = time.monotonic()
        for cid in task.conversion_ids:
            self._mp3(task, cid) if mp3 else self._render(task, cid)

    @property
    def total_submits(self) -> int:
        return sum(self.submits.values())

    def url_signature(self, name: str) -> str:
        """The X-Amz-Signature of the signed address of file ``name`` (64 hex digits)."""
        return hmac.new(self._signing_key, name.encode(), hashlib.sha256).hexdigest()

    def file_url(self, name: str, *, expired: bool = False) -> str:
        """Where file ``name`` is served: signed like a storage bucket's pre-signed URL when ``signed_urls`` (or
        ``expired``: signed, and no longer good)."""
        url = f"{self.origin}/files/{name}"
        if expired:
            return (f"{url}?X-Amz-Date=20000101T000000Z&X-Amz-Expires=60"
                    f"&X-Amz-Signature={self.url_signature('expired:' + name)}")
        if not self.signed_urls:
            return url
        date = time.strftime("%Y%m%d", time.gmtime())
        return (f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={self.url_credential}%2F{date}"
                f"%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={date}T000000Z&X-Amz-Expires=604800"
                f"&X-Amz-SignedHeaders=host&X-Amz-Signature={self.url_signature(name)}")

    # -- the service ---------------------------------------------------------------------------------------------

    def status_of(self, task: Task) -> str:
        now = time.monotonic()
        if now >= task.finish_at:
            return task.outcome
        if now < task.created + 0.25 * (task.finish_at - task.created):
            return "IN_QUEUE"
        if self.unknown_statuses:
            step = int((now - task.created) / max(task.finish_at - task.created, 1e-6) * 8)
            return self.unknown_statuses[step % len(self.unknown_statuses)]
        return "PROCESSING"

    def create_task(self, operation: str, fields: dict, upload: tuple | None, audio: np.ndarray, rate: int) -> Task:
        task_id = f"task-{operation}-{uuid.uuid4().hex[:12]}"
        outputs = self.outputs_made or int(fields.get("num_outputs", "2"))
        ids = [f"{operation}-{uuid.uuid4().hex[:10]}" for _ in range(outputs)]
        now = time.monotonic()
        task = Task(task_id, operation, dict(fields), upload[0] if upload else None, upload[1] if upload else None,
                    len(upload[2]) if upload else 0, audio, rate, ids, self.eta, now,
                    now + self.eta * self.time_scale * self.slow_factor, self.outcome)
        with self._lock:
            self.tasks[task_id] = task
            self.submits[operation] += 1
        if fields.get("webhook_url"):
            thread = threading.Thread(target=self._webhooks_when_done, args=(task,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return task

    def conversion(self, task: Task) -> dict:
        status = self.status_of(task)
        title = "Fake Song"
        out = {"task_id": task.task_id, "status": status, "message": "", "createdAt": _iso(task.created),
               "updatedAt": _iso(time.monotonic()), "album_cover_path": None}
        expired = False
        if status == "COMPLETED":
            with self._lock:
                expired, self.expired_urls = self.expired_urls > 0, max(0, self.expired_urls - 1)
        for n, cid in enumerate(task.conversion_ids, start=1):
            out[f"conversion_id_{n}"] = cid
            if status == "COMPLETED":
                duration = self._render(task, cid)["duration"]
                out[f"conversion_path_{n}"] = self.file_url(f"{cid}.mp3", expired=expired)
                if not self.missing_wav:
                    out[f"conversion_path_wav_{n}"] = self.file_url(f"{cid}.wav", expired=expired)
                elif self.wav_as_null:
                    out[f"conversion_path_wav_{n}"] = None
                out[f"conversion_duration_{n}"] = str(duration) if self.numbers_as_text else duration
                out[f"title_{n}"] = f"{title} ({n})"
                out[f"lyrics_{n}"] = task.fields.get("lyrics", "")
                out[f"lyrics_timestamped_{n}"] = json.dumps(
                    [{"start": 0, "end": 1500, "text": "la la", "index": 0}])
                out["album_cover_path"] = self.file_url(f"{task.task_id}-cover.png")
        if status in ("ERROR", "FAILED"):
            out["message"] = self.failure_message
        return out

    def _render(self, task: Task, cid: str) -> dict:
        """The variant's audio, WAV bytes and duration (MP3 is encoded only when asked for: it is slow)."""
        with task.render_lock:
            if cid not in task.rendered:
                variant = task.conversion_ids.index(cid) + 1
                audio = generated_audio(task, variant, shift_s=self.shift_s, gain=self.output_gain,
                                        extend_s=self.extend_s)
                rate = self.output_rate or task.rate
                if rate != task.rate:
                    audio = soxr.resample(audio, task.rate, rate).astype(np.float32)
                wav = io.BytesIO()
                sf.write(wav, audio, rate, format="WAV", subtype=self.output_subtype)
                task.rendered[cid] = {"audio": audio, "rate": rate, "wav": wav.getvalue(), "mp3": None,
                                      "duration": round(len(audio) / rate, 3)}
            return task.rendered[cid]

    def _mp3(self, task: Task, cid: str) -> bytes:
        rendered = self._render(task, cid)
        with task.render_lock:
            if rendered["mp3"] is None:
                mp3 = io.BytesIO()
                sf.write(mp3, rendered["audio"], rendered["rate"], format="MP3")
                rendered["mp3"] = mp3.getvalue()
            return rendered["mp3"]

    def file_bytes(self, name: str) -> bytes | None:
        cid, _, kind = name.rpartition(".")
        for task in list(self.tasks.values()):
            if cid in task.conversion_ids and self.status_of(task) == "COMPLETED":
                if kind == "wav" and not self.missing_wav:
                    return self._render(task, cid)["wav"]
                if kind == "mp3":
                    return self._mp3(task, cid)
        return None

    # -- webhooks ------------------------------------------------------------------------------------------------

    def _webhooks_when_done(self, task: Task) -> None:
        if self._stop.wait(max(0.0, task.finish_at - time.monotonic())):
            return
        deliveries = self.webhook_payloads(task)
        order = deliveries + [self.rng.choice(deliveries) for _ in range(self.webhook_duplicates)]
        self.rng.shuffle(order)
        for payload in order:
            if self._stop.is_set():
                return
            self.post_webhook(task.fields["webhook_url"], payload)

    def webhook_payloads(self, task: Task) -> list[dict]:
        """What MusicGPT POSTs when a task is done: one per output, one timestamped-lyrics each, one album cover."""
        conversion = self.conversion(task)
        kind = "Inpaint" if task.operation == "inpaint" else "Extend"
        payloads = []
        for n, cid in enumerate(task.conversion_ids, start=1):
            payloads.append({"success": task.outcome == "COMPLETED", "conversion_type": kind, "task_id": task.task_id,
                             "conversion_id": cid, "conversion_path": conversion.get(f"conversion_path_{n}"),
                             "conversion_path_wav": conversion.get(f"conversion_path_wav_{n}"),
                             "conversion_duration": conversion.get(f"conversion_duration_{n}"), "is_flagged": False,
                             "reason": "", "lyrics": conversion.get(f"lyrics_{n}", ""), "lyrics_timestamped": [],
                             "title": conversion.get(f"title_{n}", "")})
            payloads.append({"success": True, "conversion_type": kind, "task_id": task.task_id,
                             "conversion_id": cid, "subtype": "lyrics_timestamped",
                             "lyrics_timestamped": [{"start": 0, "end": 1500, "text": "la la", "index": 0}]})
        payloads.append({"success": True, "conversion_type": kind, "task_id": task.task_id,
                         "subtype": "album_cover_generation", "image_path": conversion.get("album_cover_path")})
        return payloads

    def post_webhook(self, url: str, payload: dict) -> None:
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=3) as response:
                result: int | str = response.status
        except urllib.error.HTTPError as exc:
            result = exc.code
        except OSError as exc:
            result = type(exc).__name__
        with self._lock:
            self.webhooks_sent.append((payload.get("task_id"), payload.get("subtype") or "audio", result))


def offer_wav_at(monkeypatch, address: str) -> None:
    """Make byId offer each finished task's first WAV at ``address`` (a test's ``monkeypatch``); its MP3 and the
    rest stay the fake's own."""
    answered = FakeMusicGPT.conversion

    def elsewhere(self, task: Task) -> dict:
        conversion = answered(self, task)
        if conversion.get("conversion_path_wav_1"):
            conversion["conversion_path_wav_1"] = address
        return conversion

    monkeypatch.setattr(FakeMusicGPT, "conversion", elsewhere)


def generated_audio(task: Task, variant: int, *, shift_s: float, gain: float, extend_s: float) -> np.ndarray:
    """The fake's "generation": the upload with its range replaced by a per-variant tone, then gain and shift."""
    audio, rate = task.audio, task.rate
    tone_hz = 300.0 + 140.0 * variant
    if task.operation == "inpaint":
        first = int(round(float(task.fields["replace_start_at"]) * rate))
        stop = int(round(float(task.fields["replace_end_at"]) * rate))
        out = audio.copy()
        out[first:stop] = _tone(stop - first, rate, tone_hz, audio.shape[1], first)
    else:
        first = int(round(float(task.fields["extend_after"]) * rate))
        new = _tone(int(round(extend_s * rate)), rate, tone_hz, audio.shape[1], first)
        out = np.concatenate([audio[:first], new])
    out = out * np.float32(gain)
    shift = int(round(shift_s * rate))
    if shift > 0:
        out = np.concatenate([np.zeros((shift, out.shape[1]), dtype=np.float32), out])
    elif shift < 0:
        out = out[-shift:]
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _tone(frames: int, rate: int, hz: float, channels: int, phase_frame: int) -> np.ndarray:
    t = (np.arange(frames) + phase_frame) / rate
    wobble = 0.3 * np.sin(2 * np.pi * 0.5 * t)  # a slow tremolo: not a bare sine, still deterministic
    mono = (0.25 * (1 + wobble) * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def _iso(monotonic: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - (time.monotonic() - monotonic)))


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content type, data) for each part of a multipart/form-data body (RFC 7578)."""
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise ValueError("expected multipart/form-data with a boundary")
    delimiter = b"--" + boundary.encode()
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("multipart body is not terminated")
    parts = []
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise ValueError("multipart part is not framed by CRLF")
        head, sep, data = section[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part has no header end")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        if not disposition.startswith("form-data"):
            raise ValueError("multipart part without form-data disposition")
        attrs = {}
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            attrs[key] = value.strip('"')
        parts.append((attrs.get("name", ""), attrs.get("filename"), headers.get("content-type"), data))
    return parts


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (a daemon killed or stopped, a cancelled POST) is part of the game, not an error."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeMusicGPT

    def log_message(self, format, *args) -> None:  # quiet: tests read counters, not logs
        pass

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self) -> None:
        """Close without a word; linger 0 makes it a reset, as a crashed proxy would."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass

    def _hang(self, fault: Fault) -> None:
        self.fake._stop.wait(fault.options.get("seconds", self.fake.hang_s))
        self._drop()

    def _answer_fault(self, fault: Fault) -> bool:
        """Answer with a status fault; True when one was sent."""
        kind = fault.kind
        if kind == "429":  # retry_after=...: with the Retry-After header a gateway in front may add
            after = fault.options.get("retry_after")
            self._json(429, {"success": False, "message": "Too many requests"},
                       {} if after is None else {"Retry-After": str(after)})
        elif kind == "500":
            self._json(500, {"success": False, "error": "Internal Server Error"})
        elif kind == "401":
            self._json(401, {"success": False, "error": "Authentication failed"})
        elif kind == "402":
            self._json(402, {"success": False, "message": "Insufficient credits",
                             "required_credits": fault.options.get("required", 42),
                             "available_credits": fault.options.get("available", 3)})
        elif kind == "422":
            self._json(422, {"success": False, "error": fault.options.get("text", "Unprocessable")})
        elif kind.isdigit() and "html" in fault.options:  # a gateway's own page, not the API's JSON
            data = fault.options["html"].encode()
            self.send_response(int(kind))
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif kind.isdigit():  # any other status, e.g. a gateway's 502/503/504
            self._json(int(kind), {"success": False, "message": fault.options.get("text", f"HTTP {kind}")})
        else:
            return False
        return True

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization")
        with self.fake._lock:
            self.fake.auth_headers.append(header)
        if header != self.fake.api_key:
            self._json(401, {"success": False, "error": "Authentication failed"})
            return False
        return True

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    # -- routes --------------------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        operation = {API_PREFIX + "/v1/inpaint": "inpaint", API_PREFIX + "/v1/extend": "extend"}.get(path)
        if operation is None:
            self._read_body()
            return self._json(404, {"success": False, "message": "Not found"})
        fake = self.fake
        with fake._lock:
            fake.submit_requests[operation] += 1
            fake.submit_times.append(time.monotonic())
        fault = fake._next_fault("submit")
        if fault and fault.kind == "drop":
            return self._drop()
        if fault and fault.kind == "timeout":
            return self._hang(fault)
        body = self._read_body()
        if not self._authorized():
            return
        if fault and self._answer_fault(fault):
            return
        if fake.credits and fake.credits[0] > fake.credits[1]:
            return self._json(402, {"success": False, "message": "Insufficient credits",
                                    "required_credits": fake.credits[0], "available_credits": fake.credits[1]})
        with fake._admission:  # checking the account's running tasks and adding one is a single step
            if fake.concurrency_limit is not None:
                now = time.monotonic()
                running = sum(1 for t in list(fake.tasks.values()) if t.finish_at > now)
                if running >= fake.concurrency_limit:
                    return self._json(429, {"success": False, "message": "Too many concurrent requests"})
            try:
                fields, upload, audio, rate = self._checked_submit(operation, body)
            except _Invalid as exc:
                return self._json(422, {"success": False, "error": str(exc)})
            task = fake.create_task(operation, fields, upload, audio, rate)
        if fault and fault.kind == "drop_after_accept":
            return self._drop()
        if fault and fault.kind == "timeout_after_accept":
            return self._hang(fault)
        if fault and fault.kind == "status_after_accept":  # created and paid for, then a 5xx from the server
            status = int(fault.options.get("status", 500))
            return self._json(status, {"success": False, "message": fault.options.get("text", f"HTTP {status}")})
        if fault and fault.kind == "slow_accept":  # created and paid for; the answer comes late, but it comes
            if fake._stop.wait(fault.options.get("seconds", fake.hang_s)):
                return self._drop()
            self.close_connection = True
            try:
                return self._json(200, self._accepted_answer(operation, task))
            except OSError:  # the client gave up waiting (a cancel): the task stays created and paid for
                return None
        self._json(200, self._accepted_answer(operation, task))

    def _accepted_answer(self, operation: str, task: Task) -> dict:
        fake = self.fake
        answer = {"success": True, "message": f"{operation.capitalize()} request submitted successfully",
                  "task_id": task.task_id, "conversion_id_1": task.conversion_ids[0],
                  "eta": task.eta, "credit_estimate": fake.credit_estimate}
        if len(task.conversion_ids) > 1:
            answer["conversion_id_2"] = task.conversion_ids[1]
        if fake.numbers_as_text:
            answer.update(eta=str(task.eta), credit_estimate=str(fake.credit_estimate))
        if fake.new_fields:
            answer.update(status="IN_QUEUE", is_flagged=False, reason="", error_message=None,
                          error_message_detail=None, missing_input_fields=[])
        return answer

    def _checked_submit(self, operation: str, body: bytes):
        try:
            parts = parse_multipart(self.headers.get("Content-Type", ""), body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Invalid(f"malformed multipart body: {exc}") from None
        allowed = INPAINT_FIELDS if operation == "inpaint" else EXTEND_FIELDS
        fields: dict[str, str] = {}
        upload = None
        for name, filename, ctype, data in parts:
            if name not in allowed:
                raise _Invalid(f"unexpected field {name!r}")
            if name in fields or (name == "audio_file" and upload):
                raise _Invalid(f"field {name!r} given twice")
            if name == "audio_file":
                if filename is None:
                    raise _Invalid("audio_file must be a file upload")
                upload = (filename, ctype, data)
            elif filename is not None:  # the contract's other fields are strings and numbers, not uploads
                raise _Invalid(f"{name} must be a form field, not a file upload")
            else:
                fields[name] = data.decode("utf-8")
        required_text = ("audio_file or audio_url and valid replace range are required." if operation == "inpaint"
                         else "audio_file or audio_url and extend_after are required.")
        if upload is None and not fields.get("audio_url"):
            raise _Invalid(required_text)
        if upload is not None:
            try:
                audio, rate = sf.read(io.BytesIO(upload[2]), dtype="float32", always_2d=True)
            except Exception:
                raise _Invalid("audio_file could not be read as audio") from None
        else:
            audio, rate = self._fetch_audio_url(fields["audio_url"])
        seconds = len(audio) / rate
        if operation == "inpaint":
            if not fields.get("prompt"):
                raise _Invalid("prompt is required")
            try:
                start, end = float(fields["replace_start_at"]), float(fields["replace_end_at"])
            except (KeyError, ValueError):
                raise _Invalid(required_text) from None
            if not 0 <= start < end <= seconds + 1e-3:
                raise _Invalid(required_text)
            section = fields.get("lyrics_section_to_replace", "")
        else:
            try:
                after = float(fields["extend_after"])
            except (KeyError, ValueError):
                raise _Invalid(required_text) from None
            if not 0 <= after <= seconds + 1e-3:
                raise _Invalid(f"extend_after {after} lies outside the audio ({seconds:.2f} s)")
            section = fields.get("lyrics_section_to_extend", "")
        lyrics_limit = self.fake.lyrics_limit if operation == "inpaint" else min(self.fake.lyrics_limit, 2000)
        if len(fields.get("lyrics", "")) > lyrics_limit:
            raise _Invalid(f"lyrics must be at most {lyrics_limit} characters")
        if len(section) > 3000:
            raise _Invalid("lyrics section must be at most 3000 characters")
        if "gender" in fields and fields["gender"] not in GENDERS:
            raise _Invalid("gender must be one of male, female, neutral")
        if fields.get("num_outputs", "2") not in ("1", "2"):
            raise _Invalid("num_outputs must be 1 or 2")
        if "webhook_url" in fields and not fields["webhook_url"].startswith(("http://", "https://")):
            raise _Invalid("webhook_url must be a URL")
        return fields, upload, audio, rate

    def _fetch_audio_url(self, url: str):
        if not url.startswith(self.fake.origin + "/"):
            raise _Invalid("audio_url could not be fetched")
        with urllib.request.urlopen(url, timeout=5) as response:
            data = response.read()
        return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == API_PREFIX + "/v1/byId":
            return self._by_id(parse_qs(parts.query))
        if parts.path.startswith("/files/"):
            name = parts.path[len("/files/"):]
            if parse_qs(parts.query).get("X-Amz-Signature") == [self.fake.url_signature("expired:" + name)]:
                with self.fake._lock:
                    self.fake.file_requests.append(name)
                return self._json(403, {"success": False, "message": "Request has expired"})
            if self.fake.signed_urls and parse_qs(parts.query).get("X-Amz-Signature") != [
                    self.fake.url_signature(name)]:
                with self.fake._lock:
                    self.fake.file_requests.append(name)
                return self._json(403, {"success": False, "message": "SignatureDoesNotMatch"})
            return self._file(name)
        if parts.path.startswith("/uploads/"):  # for audio_url tests: serve what the test put there
            data = self.fake.hosted.get(parts.path[len("/uploads/"):])
            if data is None:
                return self._json(404, {"success": False, "message": "Not found"})
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._json(404, {"success": False, "message": "Not found"})

    def _by_id(self, query: dict) -> None:
        fake = self.fake
        fault = fake._next_fault("byId")
        if fault and fault.kind == "drop":
            return self._drop()
        if fault and fault.kind == "timeout":
            return self._hang(fault)
        if not self._authorized():
            return
        if fault and self._answer_fault(fault):
            return
        flat = {k: v[0] for k, v in query.items()}
        fake.by_id_requests.append(flat)
        kind = flat.get("conversionType")
        task_id, cid = flat.get("task_id"), flat.get("conversion_id")
        if kind not in ("INPAINT", "EXTEND") or bool(task_id) == bool(cid):
            return self._json(400, {"success": False, "message": "Invalid request parameters"})
        task = fake.tasks.get(task_id) if task_id else next(
            (t for t in list(fake.tasks.values()) if cid in t.conversion_ids), None)
        if task is None or task.operation.upper() != kind:
            return self._json(404, {"success": False, "message": "Conversion not found"})
        with fake._lock:
            fake.by_id_calls[task.task_id] += 1
        self._json(200, {"success": True, "conversion": fake.conversion(task)})

    def _file(self, name: str) -> None:
        fake = self.fake
        with fake._lock:
            fake.file_requests.append(name)
            fake.file_requests_with_auth += self.headers.get("Authorization") is not None
        fault = fake._next_fault("download")
        if fault and fault.kind == "drop":
            return self._drop()
        if fault and fault.kind == "timeout":
            return self._hang(fault)
        if fault and self._answer_fault(fault):
            return
        data = fake.file_bytes(name)
        if data is None:
            return self._json(404, {"success": False, "message": "Not found"})
        if fault and fault.kind == "corrupt":
            data = np.random.default_rng(1).integers(0, 256, len(data) // 4, dtype=np.uint8).tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav" if name.endswith(".wav") else "audio/mpeg")
        if fault and fault.kind == "truncate_no_length":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault and fault.kind == "trickle":  # a slow storage host: ``chunk`` bytes every ``every`` seconds
            chunk, every = fault.options.get("chunk", 1), fault.options.get("every", 1.0)
            for at in range(0, len(data), chunk):
                if fake._stop.wait(every):
                    return self._drop()
                self.wfile.write(data[at:at + chunk])
                self.wfile.flush()
            return
        if fault and fault.kind == "truncate":
            self.wfile.write(data[:len(data) // 2])
            return self._drop()
        self.wfile.write(data)
        with fake._lock:
            fake.downloads[name] += 1


class _Invalid(Exception):
    pass
