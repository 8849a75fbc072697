"""Bringing a finished task's variants in: download, check, decode, align and splice each into a span.

WAV is taken when offered (kept 7 days by MusicGPT), else the MP3 (kept 90 days) is decoded. A download counts
only when it decodes and its length agrees with the ``conversion_duration`` byId reported; otherwise it is fetched
again. Files already in the work folder from an earlier attempt are re-used, so retrying a job whose download
failed costs neither credit nor bandwidth.

A download may be a gigabyte, so nothing here holds it whole: it is checked, resampled and spliced a block at a
time (see :mod:`bridge.audio.blocks`), and only the few seconds of context the alignment compares are read at once.
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

from bridge.audio.align import match_channels, resample_blocks
from bridge.audio.blocks import AudioReadError, FileFrames, read_blocks, sndfile_reason
from bridge.audio.region import frame_range, probe, source_frames
from bridge.audio.splice import Edit, plan_splice, span_blocks
from bridge.audio.wavio import write_blocks_atomic
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


@dataclass(frozen=True)
class Download:
    """A variant's audio file in the work folder, checked: it decodes to ``frames`` finite frames."""

    path: Path
    kind: str  # "wav" or "mp3"
    rate: int
    frames: int
    channels: int


async def fetch_variant(client: MusicGPTClient, offered: Offered, workdir: Path) -> Download:
    """Download (or re-use) one variant and check that it decodes, as long as byId said (never held whole)."""
    sources = [(kind, url, workdir / f"musicgpt-v{offered.variant}-{_file_key(offered, url)}.{kind}")
               for kind, url in (("wav", offered.wav_url), ("mp3", offered.mp3_url)) if url]
    for kind, _, dest in sources:  # an earlier attempt may have fetched it already
        if dest.exists():
            try:
                return Download(dest, kind, *await asyncio.to_thread(_decode_checked, dest, offered.duration))
            except ValueError:
                dest.unlink(missing_ok=True)
    reason, transient = "", False
    for kind, url, dest in sources:
        decoded: dict = {}

        async def verify(path: Path, decoded=decoded) -> None:
            decoded["checked"] = await asyncio.to_thread(_decode_checked, path, offered.duration)

        try:
            await client.download(url, dest, verify=verify)
        except BridgeError as exc:
            reason, transient = str(exc), transient or exc.retryable
            log.warning("variant %d: %s download failed (%s)%s", offered.variant, kind.upper(), exc,
                        "; trying the MP3" if kind == "wav" and offered.mp3_url else "")
            continue
        return Download(dest, kind, *decoded["checked"])
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


def _decode_checked(path: Path, expected: float | None) -> tuple[int, int, int]:
    """Decode ``path`` a block at a time (nothing kept): its (rate, frames, channels); ValueError when it does not
    decode, is empty, holds invalid samples, or is clearly shorter or longer than said."""
    frames = 0
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
        for block in read_blocks(path):
            if not np.isfinite(block).all():
                raise ValueError("decodes to invalid samples")
            frames += len(block)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"not decodable ({sndfile_reason(exc, path, 'the download')})") from None
    if frames == 0:
        raise ValueError("decodes to no audio")
    seconds = frames / rate
    if expected is not None and abs(seconds - expected) > max(0.5, 0.02 * expected):
        raise ValueError(f"{seconds:.2f} s of audio where MusicGPT said {expected:.2f} s (truncated?)")
    return rate, frames, channels


def splice_variant(spec: JobSpec, prepared: dict, download: Download, offered: Offered, workdir: Path, *,
                   crossfade_s: float, max_shift_s: float, crop: FileFrames) -> Rendered:
    """Put one downloaded variant on the source's clock, splice it into a span, write it, describe it.

    A block at a time: the span is written as it is spliced, reading the crop (the source) and the variant only
    where each block needs them. A variant that cannot be read back (its file changed since it was checked) is a
    TransientError, and its file is removed, so a retry downloads it again without paying again.
    """
    sample_rate, crop_start = crop.samplerate, float(prepared["crop_start"])
    try:
        on_clock = _on_source_clock(download, sample_rate, crop.channels, workdir, offered.variant)
        try:
            with FileFrames(on_clock) as generated:
                if on_clock == download.path:
                    _same_length(download, len(generated))
                return _splice(spec, prepared, generated, download, offered, workdir, crop, crop_start,
                               crossfade_s=crossfade_s, max_shift_s=max_shift_s)
        finally:
            if on_clock != download.path:
                on_clock.unlink(missing_ok=True)
    except AudioReadError as exc:  # the download read back (the source's failures are SourceErrors)
        download.path.unlink(missing_ok=True)
        raise TransientError(f"variant {offered.variant}: MusicGPT's {download.kind.upper()} could not be read back "
                             f"from the work folder ({exc}); retry the job to download it again (it will not be "
                             "paid for twice)", code="download_failed") from None


def _splice(spec: JobSpec, prepared: dict, generated: FileFrames, download: Download, offered: Offered,
            workdir: Path, crop: FileFrames, crop_start: float, *, crossfade_s: float,
            max_shift_s: float) -> Rendered:
    sample_rate, rate = crop.samplerate, download.rate
    crop_first = int(round(crop_start * sample_rate))
    edit_first = int(round(spec.edit_start * sample_rate)) - crop_first
    if spec.operation == "inpaint":
        edit_stop = int(round(spec.end * sample_rate)) - crop_first
    else:
        wanted = spec.duration if spec.duration else len(generated) / sample_rate
        edit_stop = edit_first + int(round(wanted * sample_rate))
    edit = Edit(spec.operation, edit_first, edit_stop, int(round(spec.handle * sample_rate)),
                int(round(crossfade_s * sample_rate)))
    plan = plan_splice(crop, generated, edit, sample_rate, crop_start_s=crop_start, max_shift_s=max_shift_s)
    info = plan.info
    if spec.operation == "extend" and info.get("extension_seconds", 0) <= 0:
        raise BackendError(f"variant {offered.variant}: MusicGPT's audio ends before the extension point",
                           code="generation_failed")
    if rate != sample_rate:
        info["resampled_from"] = rate
    alignment = info["alignment"]
    if not alignment["found"]:
        log.warning("variant %d: the returned audio could not be aligned to the untouched context "
                    "(confidence %.2f); assumed it keeps the uploaded timeline", offered.variant,
                    alignment["confidence"])
    else:
        log.info("variant %d aligned: offset %.4f s (confidence %.3f)", offered.variant, alignment["offset_s"],
                 alignment["confidence"])
    path = write_blocks_atomic(workdir / f"musicgpt-v{offered.variant}-span.wav",
                               span_blocks(plan, crop, generated), sample_rate, crop.channels, subtype="FLOAT")
    notes = {"title": offered.title, "lyrics": offered.lyrics, "lyrics_timestamped": offered.lyrics_timestamped,
             "conversion_id": offered.conversion_id, "downloaded": download.kind,
             "uploaded": {"start": crop_start, "end": prepared.get("crop_end")}}
    return Rendered(variant=offered.variant, path=path, span_start=crop_start + plan.first / sample_rate,
                    splice=info, notes=notes)


def _on_source_clock(download: Download, sample_rate: int, channels: int, workdir: Path, variant: int) -> Path:
    """The variant as a WAV at the source's rate and channel count: the download itself when it already is one,
    else a float WAV beside it made a block at a time (soxr's stream resampler, the same samples as resampling the
    whole; an MP3 is decoded front to back, never sought in). The caller removes the made file."""
    if download.kind == "wav" and download.rate == sample_rate and download.channels == channels:
        return download.path
    blocks = resample_blocks(_read_back(download), download.rate, sample_rate, download.channels)
    return write_blocks_atomic(workdir / f"musicgpt-v{variant}-on-clock.wav",
                               (match_channels(block, channels) for block in blocks), sample_rate, channels,
                               subtype="FLOAT")


def _read_back(download: Download):
    """:func:`read_blocks` of the download, checked against what it held when it was checked; failures as
    AudioReadError."""
    frames = 0
    try:
        for block in read_blocks(download.path):
            frames += len(block)
            yield block
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioReadError(sndfile_reason(exc, download.path)) from None
    _same_length(download, frames)


def _same_length(download: Download, frames: int) -> None:
    """The download read back is the one checked (a WAV cut short on disk reads as a shorter WAV, not as an error)."""
    if frames != download.frames:
        raise AudioReadError(f"it holds {frames} frames where it held {download.frames} when checked", short=True)


def open_crop(spec: JobSpec, prepared: dict) -> FileFrames:
    """The uploaded stretch of the source, read on demand from the source itself (sample-exact, any bit depth)."""
    info = probe(spec.source)
    first, stop = frame_range(info.sample_rate, info.frames, float(prepared["crop_start"]),
                              float(prepared["crop_end"]))
    return source_frames(spec.source, first, stop)


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
    crop = await asyncio.to_thread(open_crop, spec, prepared)
    try:
        rendered = []
        for item in offered:
            download = await fetch_variant(client, item, workdir)
            rendered.append(await asyncio.to_thread(splice_variant, spec, prepared, download, item, workdir,
                                                    crossfade_s=crossfade_s, max_shift_s=max_shift_s, crop=crop))
        return rendered
    finally:
        crop.close()


def _timestamped(value: object) -> object:
    """byId sends timestamped lyrics as a JSON *string*; webhooks as a list. Keep a list either way."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else []
        except UNREADABLE_JSON:  # not JSON, or nested past the parser's stack: kept as the text it is
            return value
    return value if value is not None else []
