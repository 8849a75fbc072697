"""Bringing a finished task's variants in: download, check, decode, align and splice each into a span.

WAV is taken when offered (kept 7 days by MusicGPT), else the MP3 (kept 90 days) is decoded. A download counts
only when it decodes and its length agrees with the ``conversion_duration`` byId reported; otherwise it is fetched
again. Files already in the work folder from an earlier attempt are re-used, so retrying a job whose download
failed costs neither credit nor bandwidth.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.audio.align import match_channels, resample
from bridge.audio.region import read_region
from bridge.audio.splice import Edit, splice_span
from bridge.audio.wavio import write_atomic
from bridge.backends.musicgpt.client import UNREADABLE_JSON, MusicGPTClient
from bridge.exceptions import BackendError, BridgeError, TransientError
from bridge.models import JobSpec, Rendered

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Offered:
    """One variant as byId describes it."""

    variant: int
    conversion_id: str | None
    wav_url: str | None
    mp3_url: str | None
    duration: float | None
    title: str
    lyrics: str
    lyrics_timestamped: object

    @classmethod
    def from_conversion(cls, conversion: dict, variant: int) -> "Offered | None":
        """Variant ``variant`` of a byId ``conversion`` object, or None when it offers no audio for it."""
        wav, mp3 = conversion.get(f"conversion_path_wav_{variant}"), conversion.get(f"conversion_path_{variant}")
        if not wav and not mp3:
            return None
        duration = conversion.get(f"conversion_duration_{variant}")
        return cls(variant, conversion.get(f"conversion_id_{variant}"), wav or None, mp3 or None,
                   float(duration) if isinstance(duration, (int, float)) and duration > 0 else None,
                   str(conversion.get(f"title_{variant}") or ""), str(conversion.get(f"lyrics_{variant}") or ""),
                   _timestamped(conversion.get(f"lyrics_timestamped_{variant}")))


async def fetch_variant(client: MusicGPTClient, offered: Offered, workdir: Path) -> tuple[np.ndarray, int, str]:
    """Download (or re-use) one variant and decode it: audio (frames, channels), its rate, and "wav" or "mp3"."""
    sources = [(kind, url, workdir / f"musicgpt-v{offered.variant}-{_file_key(offered, url)}.{kind}")
               for kind, url in (("wav", offered.wav_url), ("mp3", offered.mp3_url)) if url]
    for kind, _, dest in sources:  # an earlier attempt may have fetched it already
        if dest.exists():
            try:
                audio, rate = await asyncio.to_thread(_decode_checked, dest, offered.duration)
                return audio, rate, kind
            except ValueError:
                dest.unlink(missing_ok=True)
    reason, transient = "", False
    for kind, url, dest in sources:
        decoded: dict = {}

        async def verify(path: Path, decoded=decoded) -> None:
            decoded["audio"], decoded["rate"] = await asyncio.to_thread(_decode_checked, path, offered.duration)

        try:
            await client.download(url, dest, verify=verify)
        except BridgeError as exc:
            reason, transient = str(exc), transient or exc.retryable
            log.warning("variant %d: %s download failed (%s)%s", offered.variant, kind.upper(), exc,
                        "; trying the MP3" if kind == "wav" and offered.mp3_url else "")
            continue
        return decoded["audio"], decoded["rate"], kind
    if transient:  # the files may still be there: the task id is kept, a retry downloads without paying again
        raise TransientError(f"variant {offered.variant} could not be downloaded ({reason}); retry the job to "
                             "download it again (it will not be paid for twice)", code="download_failed")
    raise BackendError(f"variant {offered.variant} could not be downloaded ({reason})", code="download_failed")


def _file_key(offered: Offered, url: str) -> str:
    """A short name for the output behind a download, so an earlier attempt's file is re-used only for that output.

    By variant number alone, a job resolved first with another task's id (a real one, copied wrong) and then with
    its own took the wrong task's variant, left in the work folder, as its own whenever the lengths agreed.
    """
    who = offered.conversion_id or url.split("?", 1)[0]  # without the query: a signed address changes, the file not
    return hashlib.sha256(str(who).encode()).hexdigest()[:12]


def _decode_checked(path: Path, expected: float | None) -> tuple[np.ndarray, int]:
    """Decode ``path``; ValueError when it does not decode, is empty, or is clearly shorter or longer than said."""
    try:
        with sf.SoundFile(str(path)) as f:
            audio, rate = f.read(dtype="float32", always_2d=True), f.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        # libsndfile's own words, without the path of the hidden file being downloaded
        said = getattr(exc, "error_string", None) or str(exc).strip().replace(str(path), "the download")
        detail = said.splitlines()[-1] if said else type(exc).__name__
        raise ValueError(f"not decodable ({detail})") from None
    if len(audio) == 0:
        raise ValueError("decodes to no audio")
    if not np.isfinite(audio).all():
        raise ValueError("decodes to invalid samples")
    seconds = len(audio) / rate
    if expected is not None and abs(seconds - expected) > max(0.5, 0.02 * expected):
        raise ValueError(f"{seconds:.2f} s of audio where MusicGPT said {expected:.2f} s (truncated?)")
    return audio, rate


def splice_variant(spec: JobSpec, prepared: dict, audio: np.ndarray, rate: int, offered: Offered, kind: str,
                   workdir: Path, *, crossfade_s: float, max_shift_s: float, crop: tuple[np.ndarray, int]) -> Rendered:
    """Put one decoded variant on the source's clock, splice it into a span, write it, describe it."""
    source_audio, sample_rate = crop
    crop_start = float(prepared["crop_start"])
    generated = match_channels(resample(audio, rate, sample_rate), source_audio.shape[1])
    crop_first = int(round(crop_start * sample_rate))
    edit_first = int(round(spec.edit_start * sample_rate)) - crop_first
    if spec.operation == "inpaint":
        edit_stop = int(round(spec.end * sample_rate)) - crop_first
    else:
        wanted = spec.duration if spec.duration else len(generated) / sample_rate
        edit_stop = edit_first + int(round(wanted * sample_rate))
    edit = Edit(spec.operation, edit_first, edit_stop, int(round(spec.handle * sample_rate)),
                int(round(crossfade_s * sample_rate)))
    span = splice_span(source_audio, generated, edit, sample_rate, crop_start_s=crop_start, max_shift_s=max_shift_s)
    if spec.operation == "extend" and span.info.get("extension_seconds", 0) <= 0:
        raise BackendError(f"variant {offered.variant}: MusicGPT's audio ends before the extension point",
                           code="generation_failed")
    if rate != sample_rate:
        span.info["resampled_from"] = rate
    alignment = span.info["alignment"]
    if not alignment["found"]:
        log.warning("variant %d: the returned audio could not be aligned to the untouched context "
                    "(confidence %.2f); assumed it keeps the uploaded timeline", offered.variant,
                    alignment["confidence"])
    else:
        log.info("variant %d aligned: offset %.4f s (confidence %.3f)", offered.variant, alignment["offset_s"],
                 alignment["confidence"])
    path = write_atomic(workdir / f"musicgpt-v{offered.variant}-span.wav", span.audio, sample_rate, subtype="FLOAT")
    notes = {"title": offered.title, "lyrics": offered.lyrics, "lyrics_timestamped": offered.lyrics_timestamped,
             "conversion_id": offered.conversion_id, "downloaded": kind,
             "uploaded": {"start": crop_start, "end": prepared.get("crop_end")}}
    return Rendered(variant=offered.variant, path=path, span_start=crop_start + span.first / sample_rate,
                    splice=span.info, notes=notes)


def read_crop(spec: JobSpec, prepared: dict) -> tuple[np.ndarray, int]:
    """The uploaded stretch of the source, read again from the source itself (sample-exact, any bit depth)."""
    return read_region(spec.source, float(prepared["crop_start"]), float(prepared["crop_end"]))


async def render_all(client: MusicGPTClient, spec: JobSpec, prepared: dict, conversion: dict, workdir: Path, *,
                     crossfade_s: float, max_shift_s: float) -> list[Rendered]:
    """Every variant byId offers, downloaded and spliced, in variant order.

    Every one, even past the num_outputs asked for (a server that ignores the field): MusicGPT bills per output,
    so an output left behind is one the producer paid for and never heard.
    """
    offered = [o for o in (Offered.from_conversion(conversion, v) for v in (1, 2)) if o is not None]
    if not offered:
        raise BackendError("MusicGPT reported the task completed but gave no audio for it", code="generation_failed")
    if len(offered) != spec.num_outputs:
        log.info("job %s: MusicGPT made %d variant(s) where %d were asked for; delivering what it made", spec.job_id,
                 len(offered), spec.num_outputs)
    crop = await asyncio.to_thread(read_crop, spec, prepared)
    rendered = []
    for item in offered:
        audio, rate, kind = await fetch_variant(client, item, workdir)
        rendered.append(await asyncio.to_thread(splice_variant, spec, prepared, audio, rate, item, kind, workdir,
                                                crossfade_s=crossfade_s, max_shift_s=max_shift_s, crop=crop))
    return rendered


def _timestamped(value: object) -> object:
    """byId sends timestamped lyrics as a JSON *string*; webhooks as a list. Keep a list either way."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else []
        except UNREADABLE_JSON:  # not JSON, or nested past the parser's stack: kept as the text it is
            return value
    return value if value is not None else []
