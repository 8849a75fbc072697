"""The MusicGPT cloud backend: the same four calls as the embedded engine, with real money behind ``submit``.

- ``prepare`` checks the request against the API's limits, exports the range with its context, and waits for a
  generation slot (the plan's concurrency), all free: a job stopped while it waits has not been sent.
- ``submit`` asks the spend guard and POSTs once. It never sends a request twice when the first may have arrived
  (``resubmit_safe = False``; see the client for what counts as "may have"), and writes down in the spend ledger
  whether it did (``submission_state``).
- ``wait`` polls byId (first near the eta MusicGPT answered, then backing off; woken early by webhooks when they
  are configured), then downloads, aligns and splices each variant. A failure here keeps the task id in the
  receipt, so retrying the job polls and downloads again without paying again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Collection
from pathlib import Path

import osc_schema
from bridge import logs
from bridge.audio.region import export_region
from bridge.backends.base import Backend
from bridge.backends.musicgpt.client import CONVERSION_TYPES, ENDPOINTS, NOT_SENT_AGAIN, MusicGPTClient, RetryPolicy
from bridge.backends.musicgpt.outputs import render_all
from bridge.backends.musicgpt.ratelimit import shared_limiter
from bridge.backends.musicgpt.secrets import Redacted
from bridge.backends.musicgpt.settings import MusicGPTSettings, SettingsError
from bridge.backends.musicgpt.spend import SpendGuard
from bridge.backends.musicgpt.webhooks import JobHints, WebhookReceiver, WebhookSettings
from bridge.exceptions import AuthError, BackendError, BridgeError, RateLimited, SubmissionUnknown, TransientError
from bridge.models import JobSpec, Progress, Rendered
from osc_schema import ValidationError

__all__ = ["MusicGPTBackend", "MusicGPTSettings", "SettingsError", "LIMITS"]

log = logging.getLogger(__name__)

# Text limits and voices, declared once in the address space (osc_schema, from the vendor's pages; where they
# disagree, as on inpaint's lyrics: 2000 in one place, 3000 in another, the wider reading: a 422 costs nothing).
# Checked again here because a job can reach this backend from the journal of an older version.
LIMITS = {"prompt": osc_schema.ARGUMENTS["prompt"].max_length, "lyrics": osc_schema.ARGUMENTS["lyrics"].max_length,
          "lyrics_section": osc_schema.ARGUMENTS["lyrics_section_to_extend"].max_length}
EXTEND_LYRICS_LIMIT = 2000  # where extend's two pages agree (its field table and its OpenAPI document)
GENDERS = osc_schema.ARGUMENTS["gender"].choices
PENDING = {"IN_QUEUE", "PENDING", "PROCESSING", "IN_PROGRESS"}
FAILED = {"ERROR", "FAILED"}


class MusicGPTBackend(Backend):
    """Generation through the MusicGPT public API (inpaint, extend)."""

    name = "musicgpt"
    resubmit_safe = False

    def __init__(self, *, base_url: str, api_key: Redacted, state_dir: Path, context_s: float | None = 30.0,
                 poll_calls_per_minute: int = 20, concurrency: int = 1, max_wait_s: float = 900,
                 hourly_limit: int | None = None, daily_limit: int | None = None, dry_run: bool = False,
                 webhook: WebhookSettings | None = None, http_timeout_s: float = 60, **tuning):
        if not isinstance(api_key, Redacted):
            raise TypeError("api_key must be a Redacted (see bridge.backends.musicgpt.secrets.find_api_key)")
        self.settings = MusicGPTSettings(
            base_url=base_url, context_s=context_s, poll_calls_per_minute=poll_calls_per_minute,
            concurrency=concurrency, max_wait_s=max_wait_s, hourly_limit=hourly_limit, daily_limit=daily_limit,
            dry_run=dry_run, webhook=webhook, http_timeout_s=http_timeout_s, api_key=api_key,
            state_dir=Path(state_dir), **tuning)
        s = self.settings
        self._key_source = api_key.source
        self.limiter = shared_limiter(s.base_url, s.poll_calls_per_minute, s.concurrency)
        self.client = MusicGPTClient(s.base_url, api_key, limiter=self.limiter, timeout_s=s.http_timeout_s,
                                     retry=RetryPolicy(base_s=s.retry_base_s, cap_s=max(s.retry_base_s * 16, 0.0),
                                                       rate_limit_s=s.rate_limit_backoff_s,
                                                       rate_limit_patience_s=s.max_wait_s))
        self.spend = SpendGuard(Path(state_dir) / "musicgpt-spend.sqlite", hourly_limit=s.hourly_limit,
                                daily_limit=s.daily_limit)
        self.receiver = WebhookReceiver(s.webhook) if s.webhook else None
        self._slots: set[str] = set()  # jobs of this backend holding a generation slot
        self._secrets: dict[str, str] = {}  # job id -> the webhook secret registered for it

    @classmethod
    def from_settings(cls, settings: MusicGPTSettings) -> "MusicGPTBackend":
        """Build from settings that carry the key and the state folder (see ``MusicGPTSettings.from_config``)."""
        if settings.api_key is None:
            raise AuthError("no MusicGPT API key configured (set MUSICGPT_API_KEY)", code="auth_missing")
        if settings.state_dir is None:
            raise ValueError("MusicGPTSettings.state_dir is needed for the spend ledger")
        return cls(api_key=settings.api_key, state_dir=settings.state_dir, **settings.backend_kwargs())

    def check(self, spec: JobSpec) -> None:
        """Refuse at the sender what MusicGPT would refuse (an inpaint without a prompt...), before a job is made."""
        if (problem := request_problem(spec)) is not None:
            field, value, rule, shown = problem
            raise ValidationError(field, value, f"is not accepted by MusicGPT: {rule}", shown=shown)

    # -- prepare -------------------------------------------------------------------------------------------------

    async def prepare(self, spec: JobSpec, workdir: Path) -> dict:
        """Check the request against MusicGPT's limits, export the range with its context, queue for a slot."""
        check_request(spec)
        duration = spec.source_info.duration
        edit_end = spec.end if spec.operation == "inpaint" else spec.extend_after
        context = self.settings.context_s
        lo, hi = (0.0, edit_end if spec.operation == "extend" else duration) if context is None else \
            (spec.edit_start - context, edit_end + (context if spec.operation == "inpaint" else 0.0))
        upload = Path(workdir) / "musicgpt-upload.wav"
        path, crop_start = await asyncio.to_thread(export_region, spec.source, lo, hi, upload, context=0.0,
                                                   subtype="PCM_16")
        crop_end = min(max(hi, crop_start), duration)
        fields = request_fields(spec, crop_start)
        prepared = {"operation": spec.operation, "upload": str(path), "upload_bytes": path.stat().st_size,
                    "crop_start": crop_start, "crop_end": crop_end, "fields": fields,
                    "endpoint": logs.scrub(self.settings.base_url + ENDPOINTS[spec.operation]),
                    "ledger": self.spend.identity}  # the ledger that will know whether it was sent
        log.info("job %s: uploading %.1f s of %.1f s (%d bytes) to MusicGPT %s", spec.job_id, crop_end - crop_start,
                 duration, prepared["upload_bytes"], spec.operation)
        if not self.settings.dry_run:
            # Queue for a generation slot here, before the core journals "submitting": a daemon stopped while a job
            # waits its turn then resumes it as not yet sent, instead of asking the producer about a paid submit.
            await self.limiter.acquire_slot(spec.job_id)
            self._slots.add(spec.job_id)
        return prepared

    # -- submit --------------------------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec, prepared: dict) -> dict:
        """POST the request once (after the spend guard, holding a generation slot); return the receipt.

        Once the POST may have left, it is seen through to its answer even when the job is cancelled meanwhile
        (the cancellation is re-raised after the receipt is returned, see ``JobService._submit``): abandoning it
        would leave a task the ledger cannot name.
        """
        operation, fields = prepared["operation"], dict(prepared["fields"])
        if self.settings.dry_run:
            await asyncio.to_thread(self.spend.record_dry_run, spec.job_id, operation)
            shown = json.dumps(fields, ensure_ascii=False)
            log.info("dry run, job %s: would POST %s with %s and %d bytes of audio", spec.job_id,
                     prepared["endpoint"], shown, prepared["upload_bytes"])
            raise BackendError(f"dry run: nothing was sent. Would POST {prepared['endpoint']} with fields {shown} "
                               f"and audio_file {Path(prepared['upload']).name} ({prepared['upload_bytes']} bytes)",
                               code="dry_run")
        await self.limiter.acquire_slot(spec.job_id)
        self._slots.add(spec.job_id)
        secret = None
        if self.receiver is not None and await self._listening(spec.job_id):  # before the intent: nothing sent yet
            secret = self.receiver.new_secret()
            self.receiver.register(secret)
            self._secrets[spec.job_id] = secret
            fields["webhook_url"] = self.receiver.url_for(secret)
        entry = await self._intent(spec, operation)
        attempt = {"sending": False}
        answer = await self._post_once(spec, operation, fields, prepared, attempt, entry)
        receipt = {"task_id": str(answer["task_id"]),
                   "conversion_ids": [answer[k] for k in ("conversion_id_1", "conversion_id_2") if answer.get(k)],
                   "eta": answer.get("eta"), "credit_estimate": answer.get("credit_estimate"),
                   "submitted_at": time.time(), "conversion_type": CONVERSION_TYPES[operation]}
        # Said before the ledger is written: when it cannot be (the state folder's disk full), this line is all that
        # names the task the producer paid for.
        log.info("job %s: MusicGPT task %s accepted (eta %s s, credit estimate %s)", spec.job_id,
                 receipt["task_id"], receipt["eta"], receipt["credit_estimate"])
        try:
            other, kept = await asyncio.to_thread(self._record_answer, spec.job_id, entry, receipt["task_id"],
                                                  _number(answer.get("credit_estimate")))
        except (OSError, sqlite3.Error) as exc:
            raise self._unrecorded(spec, receipt["task_id"], exc) from None
        if other is not None:
            raise await self._anothers_task(spec, entry, receipt["task_id"], other)
        _late(spec.job_id, f"accepted as task {receipt['task_id']}", kept)
        if secret:
            receipt["webhook_secret"] = secret
            self.receiver.register(secret, receipt["task_id"])
        if answer.get("is_flagged"):
            receipt["flagged"] = self.client.words(answer.get("reason") or "flagged")  # shown by `jobs show`
        return receipt

    async def _intent(self, spec: JobSpec, operation: str) -> int:
        """Write the submit's intent in the ledger; its entry.

        The ledger is shared (a one-shot command, 'doctor' and the retention write it too), so this may wait, and a
        cancel or the daemon stopping meanwhile does not stop the thread writing it: the intent then stood for a
        submit never sent, taken for one that may have been paid for (a retry refused, the producer sent to the
        dashboard, the limits counting it). Cancelled here, it is written down as not sent first."""
        writing = asyncio.ensure_future(asyncio.to_thread(self.spend.record_intent, spec.job_id, operation,
                                                          spec.request_id))
        try:
            return await asyncio.shield(writing)
        except asyncio.CancelledError:
            entry = (await asyncio.gather(writing, return_exceptions=True))[0]
            if isinstance(entry, int):
                try:
                    await asyncio.to_thread(self.spend.record_refused, entry, "cancelled before sending")
                except (OSError, sqlite3.Error) as exc:  # the cancel stays a cancel; the intent errs on the safe side
                    log.warning("job %s: the spend ledger could not write down that its submit was never sent (%s)",
                                spec.job_id, exc)
            raise

    def _record_answer(self, job_id: str, entry: int, task_id: str, credit: float | None) -> tuple[str | None, object]:
        """The ledger learns the task an accepted submit names: (None, what ``record_accepted`` says), or (the other
        job, None) when the ledger already holds that task as another job's (written down as nothing, then). One
        call, in one thread: a cancel landing meanwhile cannot leave the answer half recorded."""
        if (other := self.spend.job_with_task(task_id, job_id)) is not None:
            return other, None
        return None, self.spend.record_accepted(entry, task_id, credit)

    async def _anothers_task(self, spec: JobSpec, entry: int, task_id: str, other: str) -> SubmissionUnknown:
        """An accepted submit answered with a task id the ledger holds as another job's (a server or a proxy in front
        of it handing out an answer twice): polled, it would deliver that job's audio as this one's, while the task
        this POST made, and may have been paid for, stays nameless. So the job waits for the producer."""
        self.release(spec.job_id)
        advice = (f"MusicGPT answered the {spec.operation} request with task {task_id}, which is job {other}'s; this "
                  "job's own task may have been made and paid for. It was NOT sent again, so you are not charged "
                  "twice: check your MusicGPT dashboard for its task, then resolve the job with that task id or as "
                  "not submitted")
        _late(spec.job_id, "unknown", await asyncio.to_thread(self.spend.record_unknown, entry, advice))
        log.warning("job %s: %s", spec.job_id, advice)
        return SubmissionUnknown(advice)

    def _unrecorded(self, spec: JobSpec, task_id: str, exc: BaseException) -> SubmissionUnknown:
        """A task MusicGPT accepted that the ledger could not write down: the job must not go on as if it had (a
        restart would find only the intent), so it waits for the producer, told the task id to resolve it with."""
        self.release(spec.job_id)
        advice = (f"MusicGPT accepted the {spec.operation} as task {task_id}, but the spend ledger could not write it "
                  f"down ({logs.one_line(str(exc))}; is the state folder's disk full?). It was NOT sent again: free "
                  f"some space, then 'daw-bridge jobs resolve {spec.job_id} --task-id {task_id}'")
        log.warning("job %s: %s", spec.job_id, advice)
        return SubmissionUnknown(advice)

    async def _post_once(self, spec: JobSpec, operation: str, fields: dict, prepared: dict, attempt: dict,
                         entry: int) -> dict:
        """The POST, its outcome written to the ledger whatever it is; shielded from cancellation once sending."""
        async def waiting(why: str) -> None:  # a try made nothing, the next waits (a Retry-After: minutes)
            await asyncio.to_thread(self.spend.record_waiting, entry, why)
            attempt["waiting"] = True

        async def resending() -> None:
            attempt["waiting"] = False
            await asyncio.to_thread(self.spend.record_resending, entry)

        post = asyncio.ensure_future(self.client.submit(operation, fields, Path(prepared["upload"]),
                                                        attempt=attempt, on_wait=waiting, on_resend=resending))
        try:
            try:
                return await asyncio.shield(post)
            except asyncio.CancelledError:
                if not attempt["sending"]:  # queued behind a 429 or a connect retry: nothing is in flight
                    post.cancel()
                    await asyncio.gather(post, return_exceptions=True)
                    raise
                log.info("job %s: cancelled while its MusicGPT request is in flight; waiting for the answer so "
                         "the task is not lost", spec.job_id)
                return await post
        except SubmissionUnknown as exc:
            self.release(spec.job_id)
            _late(spec.job_id, "unknown", await asyncio.to_thread(self.spend.record_unknown, entry, str(exc)))
            raise
        except asyncio.CancelledError:
            self.release(spec.job_id)
            if attempt["sending"]:  # cancelled again (the daemon stopping) while the answer was awaited: it may be paid
                _late(spec.job_id, "unknown", await asyncio.to_thread(
                    self.spend.record_unknown, entry, "stopped while waiting for MusicGPT's answer"))
            else:
                await asyncio.to_thread(self.spend.record_refused, entry, "cancelled before sending")
            raise
        except BaseException as exc:
            self.release(spec.job_id)
            if attempt["sending"] and not isinstance(exc, BridgeError):
                # Sent, then a fault no one foresaw before a refusal or a readable answer was in hand: as a refusal,
                # a retry would send it again, when the task may well exist.
                said = f"{type(exc).__name__}: {self.client.words(str(exc))[:200]}"
                _late(spec.job_id, "unknown", await asyncio.to_thread(self.spend.record_unknown, entry, said))
                if not isinstance(exc, Exception):
                    raise  # a stop (SystemExit, KeyboardInterrupt) stays a stop: the ledger already says unknown
                raise SubmissionUnknown(f"the {operation} request was sent, but its answer could not be taken in "
                                        f"({said}); MusicGPT may have accepted it. {NOT_SENT_AGAIN}") from None
            _late(spec.job_id, "refused", await asyncio.to_thread(self.spend.record_refused, entry, str(exc)))
            raise

    # -- wait ----------------------------------------------------------------------------------------------------

    async def wait(self, spec: JobSpec, prepared: dict, receipt: dict, workdir: Path,
                   progress: Progress) -> list[Rendered]:
        """Poll until the task is finished, then bring every variant in as a spliced span."""
        task_id = receipt.get("task_id")
        if not task_id:
            raise BackendError("the job has no MusicGPT task id to wait for", code="backend_error")
        if spec.job_id not in self._slots:  # resumed after a restart: the task is generating, count it
            self.limiter.occupy_slot(spec.job_id)
            self._slots.add(spec.job_id)
        secret = receipt.get("webhook_secret") if self.receiver is not None else None
        hints = None
        if secret and await self._listening(spec.job_id):
            hints = self.receiver.register(secret, task_id)
        try:
            conversion = await self._poll(spec, receipt, hints, progress)
        finally:
            self._release(spec.job_id, secret)
        progress(0.92, "MusicGPT: downloading")
        rendered = await self._bring_in(spec, prepared, receipt, conversion, Path(workdir))
        cover = conversion.get("album_cover_path")
        extra = {"task_id": task_id, "credit_estimate": receipt.get("credit_estimate"),
                 # a signed storage address: its query is a credential, and a manifest is read by anyone
                 "album_cover_path": logs.scrub(cover) if isinstance(cover, str) else None}
        for item in rendered:
            item.notes = {**extra, **item.notes}
        progress(1.0, "MusicGPT: spliced")
        return rendered

    async def _bring_in(self, spec: JobSpec, prepared: dict, receipt: dict, conversion: dict,
                        workdir: Path) -> list[Rendered]:
        """Download and splice every variant the finished task offers.

        Storage's signed addresses expire (a variant fetched after another's long download, a slow link), and then
        it refuses them: byId hands out fresh ones for free, so it is asked once more before the job fails, where
        the producer, told the audio was refused, would send the command again and pay again. What was fetched
        already is re-used (see ``fetch_variant``).
        """
        splice = {"crossfade_s": self.settings.crossfade_s, "max_shift_s": self.settings.max_shift_s}
        try:
            return await render_all(self.client, spec, prepared, conversion, workdir, **splice)
        except BackendError as exc:
            if exc.code != "download_failed" or exc.retryable:
                raise
            refused = exc
        task_id = receipt["task_id"]
        log.info("job %s: %s; asking MusicGPT for the task's audio addresses again", spec.job_id, refused)
        try:
            fresh = await self.client.by_id(receipt.get("conversion_type") or CONVERSION_TYPES[spec.operation],
                                            task_id=task_id)
        except BridgeError as exc:
            log.warning("job %s: could not ask for task %s again (%s)", spec.job_id, task_id, exc)
            raise refused from None
        if str(fresh.get("status") or "").upper() != "COMPLETED":
            raise refused
        return await render_all(self.client, spec, prepared, fresh, workdir, **splice)

    async def _poll(self, spec: JobSpec, receipt: dict, hints: JobHints | None, progress: Progress) -> dict:
        s = self.settings
        task_id = receipt["task_id"]
        conversion_type = receipt.get("conversion_type") or CONVERSION_TYPES[spec.operation]
        # The schedule runs on this process's monotonic clock: the wall clock can be set back (a wait as long as the
        # jump, the job silent meanwhile) or jump ahead (a timeout at once). It only says how long ago the task was
        # submitted, for a job resumed after a restart, and a submit it places in the future was just now.
        started = time.monotonic()
        since_submit = max(0.0, time.time() - float(receipt.get("submitted_at") or time.time()))
        eta = _number(receipt.get("eta")) or 0.0
        deadline = started + s.max_wait_s
        next_at = started + max(0.0, eta * s.eta_scale - since_submit) if eta else started
        interval, unknown_seen, polls = s.poll_interval_s, set(), 0
        while True:
            delay = max(0.0, min(next_at, deadline) - time.monotonic())
            if hints is not None:
                await hints.wait(delay)
            elif delay:
                await asyncio.sleep(delay)
            polls += 1
            try:
                conversion = await self.client.by_id(conversion_type, task_id=task_id)
            except (TransientError, RateLimited) as exc:  # a missed poll, not a failed job
                log.warning("job %s: could not poll task %s (%s); will try again", spec.job_id, task_id, exc)
                conversion = {"status": "UNREACHABLE"}
            status = str(conversion.get("status") or "").upper()
            if status == "COMPLETED":
                log.info("job %s: task %s completed after %d byId call(s)", spec.job_id, task_id, polls)
                return conversion
            if status in FAILED:
                why = conversion.get("message") or conversion.get("reason") or conversion.get("error_message") or ""
                raise BackendError(f"MusicGPT could not generate task {task_id} (status {status}"
                                   f"{': ' + self.client.words(why) if why else ''})", code="generation_failed")
            if status not in PENDING and status != "UNREACHABLE" and status not in unknown_seen:
                unknown_seen.add(status)
                log.warning("job %s: MusicGPT status %r is not one we know; treating it as still pending",
                            spec.job_id, status)
            now = time.monotonic()
            if now >= deadline:
                raise TransientError(f"MusicGPT task {task_id} had not finished after {s.max_wait_s:.0f} s "
                                     f"(last status {status or 'none'}). The task is kept: retry the job to wait "
                                     "again; it will not be paid for twice", code="generation_timeout")
            fraction = (since_submit + now - started) / (eta * s.eta_scale) if eta and s.eta_scale else 0.5
            progress(min(0.9, max(0.0, fraction) * 0.9), f"MusicGPT: {status.lower().replace('_', ' ')}")
            next_at = now + interval
            interval = min(interval * 1.5, s.poll_max_interval_s)

    async def _listening(self, job_id: str) -> bool:
        """Start the webhook receiver if it is not yet; False (said in the log) when it cannot listen. Webhooks only
        wake the polling early, so a job goes on without them rather than fail on a port another program holds."""
        try:
            await self.receiver.start()
        except OSError as exc:
            log.warning("job %s: the MusicGPT webhook receiver cannot listen on %s:%s (%s); polling without it",
                        job_id, self.settings.webhook.bind_host, self.settings.webhook.bind_port,
                        exc.strerror or exc)
            return False
        return True

    # -- the rest ------------------------------------------------------------------------------------------------

    def submission_state(self, job_id: str, prepared: dict | None = None) -> str:
        """What the spend ledger knows of a job's last submit: not_sent, accepted, or unknown (may have been paid).

        ``not_sent`` means the backend wrote down that nothing left (no submit recorded, or refused, or stopped
        before sending), so submitting again cannot pay twice; anything else is never sent again. A ledger other
        than the one the job was prepared with (deleted or replaced since) does not hold its submit, so its silence
        is "unknown". (Jobs prepared before ledgers had an identity name none: their ledger is taken as theirs.)
        """
        state = self.spend.last_state(job_id)
        if state == "accepted":
            return "accepted"
        ours = (prepared or {}).get("ledger") in (None, self.spend.identity)
        return "not_sent" if state in (None, "refused") and ours else "unknown"

    def submitted_receipt(self, job_id: str) -> dict | None:
        """A receipt for the job's accepted task from the ledger (enough to poll it and bring its outputs in)."""
        task_id = self.spend.accepted_task(job_id)
        return {"task_id": task_id, "submitted_at": time.time()} if task_id else None

    def resolve_submission(self, job_id: str, task_id: str | None) -> None:
        """The ledger learns the producer's answer: the task they found, or that nothing was sent.

        A task the ledger already holds as another job's is refused (ValidationError): the dashboard lists every
        task, and one copied from the line above would deliver that job's audio as this one's, the task this job
        paid for then never fetched.
        """
        if task_id:
            if (other := self.spend.job_with_task(str(task_id), job_id)) is not None:
                raise ValidationError("task_id", str(task_id), f"is the task of job {other}, not of job {job_id}: copy "
                                                               "this job's own task id from the MusicGPT dashboard")
            self.spend.record_resolved(job_id, str(task_id))
        else:
            self.spend.record_not_submitted(job_id)

    def release(self, job_id: str) -> None:
        """Free the job's generation slot and retire its webhook secret."""
        self._release(job_id, self._secrets.pop(job_id, None))

    def unsettled_jobs(self) -> set[str]:
        return self.spend.unsettled_jobs()

    def paid_jobs(self) -> dict[str, str | None]:
        return self.spend.paid_jobs()

    def prune(self, before: float, keep: Collection[str] = ()) -> int:
        return self.spend.prune(before, keep)

    async def cancel(self, spec: JobSpec, receipt: dict) -> None:
        """MusicGPT has no cancel call: stop waiting and free the slot; the task itself runs (and is paid) on."""
        self._release(spec.job_id, receipt.get("webhook_secret"))
        if receipt.get("task_id"):
            log.info("job %s cancelled; MusicGPT task %s cannot be stopped and stays on your account",
                     spec.job_id, receipt["task_id"])

    async def describe(self) -> dict:
        """Settings, spend and rate-limit use; never the key itself, only where it came from."""
        return {"name": self.name, "base_url": logs.scrub(self.settings.base_url), "key_source": self._key_source,
                "dry_run": self.settings.dry_run, "context_s": self.settings.context_s,
                "spend": self.spend.totals(), "rate": self.limiter.snapshot(),
                "webhook": ({"listening": self.receiver.port,  # a tunnel's user:password@ is a credential too
                             "public_url": logs.scrub(self.settings.webhook.public_url)}
                            if self.receiver else None)}

    async def close(self) -> None:
        """Release slots, the webhook receiver and connections."""
        for job_id in list(self._slots):
            self._release(job_id)
        if self.receiver is not None:
            await self.receiver.close()
        await self.client.close()

    def _release(self, job_id: str, secret: str | None = None) -> None:
        if job_id in self._slots:
            self._slots.discard(job_id)
            self.limiter.release_slot(job_id)
        if secret and self.receiver is not None:
            self.receiver.retire(secret)


def request_problem(spec: JobSpec) -> tuple[str, object, str, str | None] | None:
    """The first thing in ``spec`` MusicGPT would refuse, as (argument, value, rule, value as shown); None if none."""
    if spec.operation not in ENDPOINTS:
        return "operation", spec.operation, "must be inpaint or extend", None
    section = f"lyrics_section_to_{'replace' if spec.operation == 'inpaint' else 'extend'}"
    for field, limit in LIMITS.items():
        text = getattr(spec, field) or ""
        limit = EXTEND_LYRICS_LIMIT if field == "lyrics" and spec.operation == "extend" else limit
        if len(text) > limit:
            return (section if field == "lyrics_section" else field, text,
                    f"at most {limit} characters (this one has {len(text)})", repr(f"{text[:20]}…"))
    if spec.operation == "inpaint" and not spec.prompt.strip():
        return "prompt", spec.prompt, "inpaint needs a prompt describing the replacement", None
    if spec.gender is not None and spec.gender not in GENDERS:
        return "gender", spec.gender, f"must be one of {', '.join(GENDERS)}", None
    if spec.num_outputs not in (1, 2):
        return "num_outputs", spec.num_outputs, "must be 1 or 2", None
    duration = spec.source_info.duration
    if spec.operation == "inpaint":
        if spec.start is None or spec.end is None or not 0 <= spec.start < spec.end:
            return "start/end", (spec.start, spec.end), "need 0 <= start < end", None
        if spec.start >= duration:
            return "start", spec.start, f"must lie inside the song ({duration:.2f} s)", None
    elif spec.extend_after is None or not 0 < spec.extend_after <= duration + 1e-6:
        return "extend_after", spec.extend_after, f"must lie inside the song (0..{duration:.2f} s]", None
    return None


def check_request(spec: JobSpec) -> None:
    """Refuse, before anything is sent, a request MusicGPT would refuse; the message names field, value and rule."""
    if (problem := request_problem(spec)) is not None:
        field, value, rule, shown = problem
        raise BackendError(f"{field}={shown or repr(value)} is not accepted by MusicGPT: {rule}",
                           code="invalid_argument")


def request_fields(spec: JobSpec, crop_start: float) -> dict[str, str]:
    """The multipart text fields, with times relative to the uploaded crop."""
    fields: dict[str, str] = {}
    if spec.prompt:
        fields["prompt"] = spec.prompt
    if spec.operation == "inpaint":
        fields["replace_start_at"] = _seconds(spec.start - crop_start)
        fields["replace_end_at"] = _seconds(min(spec.end, spec.source_info.duration) - crop_start)
        if spec.lyrics_section:
            fields["lyrics_section_to_replace"] = spec.lyrics_section
    else:
        fields["extend_after"] = _seconds(min(spec.extend_after, spec.source_info.duration) - crop_start)
        if spec.lyrics_section:
            fields["lyrics_section_to_extend"] = spec.lyrics_section
    if spec.lyrics:
        fields["lyrics"] = spec.lyrics
    if spec.gender:
        fields["gender"] = spec.gender
    fields["num_outputs"] = str(spec.num_outputs)
    return fields


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.6f}".rstrip("0").rstrip(".") or "0"


def _late(job_id: str, outcome: str, kept: str | None) -> None:
    """Say in the log that a POST's outcome came after the producer had settled its ledger row differently."""
    if kept:
        log.warning("job %s: MusicGPT's answer (%s) came after the producer resolved the job; the ledger keeps %s, "
                    "with the answer noted beside it: check the task on your MusicGPT dashboard", job_id,
                    logs.scrub(outcome), kept)


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

