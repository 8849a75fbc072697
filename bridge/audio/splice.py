"""Building a ready-to-deliver span from the source and generated audio that is already on the source's clock.

A span (see :class:`bridge.backends.base.Rendered`) starts ``handle`` seconds before the edited range. Its
handles are the source itself; the join into generated material is an equal-power crossfade that *ends* at the
range's start (and, for inpaint, one that *begins* at its end), so the whole range is generated and the fades sit in
context that both sides share. The generated material is gain-matched on that same shared context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridge.audio import fades
from bridge.audio.align import Alignment, context_pieces, find_offset
from bridge.audio.blocks import BLOCK_FRAMES
from bridge.audio.region import padded_slice

TAIL_FADE_S = 0.01  # an extension cut short of the generated material ends with a fade, not a click


@dataclass(frozen=True)
class Edit:
    """What was edited, in frames of the crop that was uploaded (at the source's rate)."""

    operation: str  # "inpaint" | "extend"
    edit_first: int  # first generated frame
    edit_stop: int  # first frame after the generated range (for extend: where the producer wants it to end)
    handle: int  # frames of untouched source kept before (and, for inpaint, after) the range
    crossfade: int  # frames of each join


@dataclass
class Span:
    """A spliced span: its audio, its first frame in crop coordinates, and what the splice did (for the manifest)."""

    audio: np.ndarray
    first: int
    info: dict


@dataclass(frozen=True)
class SplicePlan:
    """Where a span's parts go, decided from the context alone: what :func:`span_blocks` renders a block at a time.

    Frames are the span's own (0 is crop frame ``first``); the material is ``generated[first + offset + i] * gain``.
    """

    operation: str
    first: int  # the span's first frame, in crop frames
    frames: int  # the span's length
    offset: int  # the alignment's offset
    gain: float
    join_in: int  # the first generated frame, in span frames
    xf_in: int
    join_out: int  # inpaint: the first frame after the generated range; extend: how much of the source leads in
    xf_out: int
    tail_fade: int
    info: dict


def plan_splice(crop, generated, edit: Edit, sample_rate: int, *, crop_start_s: float = 0.0,
                max_shift_s: float = 2.0) -> SplicePlan:
    """Align ``generated`` (the service's output, at ``sample_rate``) to ``crop`` and plan the span.

    Reads only the context around the range (a few seconds), so either may be a
    :class:`bridge.audio.blocks.FileFrames` as well as an array. ``crop_start_s`` is where the crop begins in the
    source, so the report names joins in source seconds.
    """
    inpaint = edit.operation == "inpaint"
    pieces = context_pieces(len(crop), edit.edit_first, edit.edit_stop if inpaint else None, sample_rate)
    alignment = find_offset(crop, generated, pieces, sample_rate=sample_rate, max_shift_s=max_shift_s)
    gain = _context_gain(crop, generated, pieces, alignment.offset)
    first = max(0, edit.edit_first - edit.handle)
    if inpaint:
        stop = min(len(crop), edit.edit_stop + edit.handle)
    else:  # an extension ends where the producer asked, or where the generated material does
        stop = min(edit.edit_stop, len(generated) - alignment.offset)
        stop = max(stop, edit.edit_first)
    join_in = edit.edit_first - first
    xf_in = min(edit.crossfade, join_in)
    tail_fade = 0
    if inpaint:
        join_out = edit.edit_stop - first
        xf_out = min(edit.crossfade, stop - first - join_out)
        joins = [(edit.edit_first, xf_in, "before"), (edit.edit_stop, xf_out, "after")]
    else:
        join_out, xf_out = _clipped_length(len(crop), first, edit.edit_first), 0  # len(crop[first:edit_first])
        if len(generated) - alignment.offset > stop:  # cut short
            tail_fade = int(TAIL_FADE_S * sample_rate)
        joins = [(edit.edit_first, xf_in, "before")]
    info = {
        "handle": round(join_in / sample_rate, 6),
        "crossfade": round(edit.crossfade / sample_rate, 6),
        "gain_db": round(float(20 * np.log10(gain)), 3),
        "alignment": alignment.to_json(),
        "joins": [{"at": round(crop_start_s + at / sample_rate, 6), "crossfade": round(xf / sample_rate, 6),
                   "confidence": _side_confidence(alignment, pieces, edit, side)} for at, xf, side in joins],
    }
    if not inpaint:
        info["extension_seconds"] = round((stop - edit.edit_first) / sample_rate, 6)
    return SplicePlan(edit.operation, first, stop - first, alignment.offset, gain, join_in, xf_in, join_out, xf_out,
                      tail_fade, info)


def splice_span(crop: np.ndarray, generated: np.ndarray, edit: Edit, sample_rate: int, *,
                crop_start_s: float = 0.0, max_shift_s: float = 2.0) -> Span:
    """Align ``generated`` (the service's output, at ``sample_rate``) to ``crop`` and splice it into a span, whole.

    ``crop_start_s`` is where the crop begins in the source, so the report names joins in source seconds.
    """
    plan = plan_splice(crop, generated, edit, sample_rate, crop_start_s=crop_start_s, max_shift_s=max_shift_s)
    first, stop = plan.first, plan.first + plan.frames
    material = padded_slice(generated, first + plan.offset, plan.frames) * np.float32(plan.gain)
    if plan.operation == "inpaint":
        audio = splice_inpaint(crop[first:stop], material, plan.join_in, plan.join_out, plan.xf_in, plan.xf_out)
    else:
        audio = splice_extend(crop[first:edit.edit_first], material, plan.xf_in, tail_fade=plan.tail_fade)
    return Span(audio, first, plan.info)


def span_blocks(plan: SplicePlan, crop, generated, size: int = BLOCK_FRAMES):
    """The span :func:`splice_span` makes, ``size`` frames at a time, the same samples: memory follows the block.

    ``crop`` and ``generated`` may be :class:`bridge.audio.blocks.FileFrames`; each block reads only its own frames.
    """
    gain = np.float32(plan.gain)
    for lo in range(0, plan.frames, size):
        hi = min(lo + size, plan.frames)
        material = padded_slice(generated, plan.first + plan.offset + lo, hi - lo) * gain
        if plan.operation == "inpaint":
            yield _inpaint_block(plan, crop[plan.first + lo:plan.first + hi], material, lo)
        else:
            lead = min(hi, plan.join_out)  # source frames (before the extension point) in this block
            source = crop[plan.first + lo:plan.first + lead] if lead > lo else material[:0]
            yield _extend_block(plan, source, material, lo)


def _inpaint_block(plan: SplicePlan, source: np.ndarray, material: np.ndarray, lo: int) -> np.ndarray:
    """:func:`splice_inpaint`'s frames [lo, lo + len(source)), by the same operations on the same values."""
    if source.shape != material.shape:
        raise ValueError(f"source span and material differ in shape: {source.shape} vs {material.shape}")
    out = source.copy()
    n = plan.frames
    _crossfade_into(out, source, material, lo, _bounds(plan.join_in - plan.xf_in, plan.join_in, n))
    a, b = _overlap(_bounds(plan.join_in, plan.join_out, n), lo, len(out))
    out[a:b] = material[a:b]
    _crossfade_into(out, material, source, lo, _bounds(plan.join_out, plan.join_out + plan.xf_out, n))
    return out


def _extend_block(plan: SplicePlan, source: np.ndarray, material: np.ndarray, lo: int) -> np.ndarray:
    """:func:`splice_extend`'s frames [lo, lo + len(material)); ``source`` holds this block's lead-in frames."""
    out = material.copy()
    join, xf, n = plan.join_out, plan.xf_in, plan.frames
    lead = np.zeros_like(material)  # the source where it exists, for the slices below
    lead[:len(source)] = source
    a, b = _overlap(_bounds(None, join - xf, n), lo, len(out))
    out[a:b] = lead[a:b]
    _crossfade_into(out, lead, material, lo, _bounds(join - xf, join, n))
    if plan.tail_fade and n - join > plan.tail_fade:
        fade_from = n - plan.tail_fade
        a, b = _overlap((fade_from, n), lo, len(out))
        if b > a:
            curve = fades.equal_power_curves(plan.tail_fade)[0]
            out[a:b] *= curve[lo + a - fade_from:lo + b - fade_from]
    return out


def _bounds(start: int | None, stop: int, n: int) -> tuple[int, int]:
    """The frames ``array[start:stop]`` of an ``n``-frame array covers (numpy's rules, negative ends included)."""
    a, b, _ = slice(start, stop).indices(n)
    return a, max(a, b)


def _overlap(bounds: tuple[int, int], lo: int, count: int) -> tuple[int, int]:
    """``bounds`` (span frames) within the block [lo, lo + count), in the block's own frames."""
    a, b = max(bounds[0], lo), min(bounds[1], lo + count)
    return (a - lo, b - lo) if b > a else (0, 0)


def _crossfade_into(out: np.ndarray, outgoing: np.ndarray, incoming: np.ndarray, lo: int,
                    bounds: tuple[int, int]) -> None:
    """:func:`fades.crossfade` over span frames ``bounds``, for the part of it inside the block at ``lo``."""
    a, b = _overlap(bounds, lo, len(out))
    if b <= a:
        return
    fade_out, fade_in = fades.equal_power_curves(bounds[1] - bounds[0])
    at = lo + a - bounds[0]
    out[a:b] = outgoing[a:b] * fade_out[at:at + b - a] + incoming[a:b] * fade_in[at:at + b - a]


def _clipped_length(length: int, start: int, stop: int) -> int:
    a, b, _ = slice(start, stop).indices(length)
    return max(0, b - a)


def splice_inpaint(source_span: np.ndarray, material: np.ndarray, join_in: int, join_out: int,
                   xf_in: int, xf_out: int) -> np.ndarray:
    """Source, crossfade into ``material`` ending at ``join_in``, material up to ``join_out``, crossfade back."""
    if source_span.shape != material.shape:
        raise ValueError(f"source span and material differ in shape: {source_span.shape} vs {material.shape}")
    out = source_span.copy()
    out[join_in - xf_in:join_in] = fades.crossfade(source_span[join_in - xf_in:join_in],
                                                   material[join_in - xf_in:join_in])
    out[join_in:join_out] = material[join_in:join_out]
    out[join_out:join_out + xf_out] = fades.crossfade(material[join_out:join_out + xf_out],
                                                      source_span[join_out:join_out + xf_out])
    return out


def splice_extend(source_before: np.ndarray, material: np.ndarray, xf: int, tail_fade: int = 0) -> np.ndarray:
    """Source up to the extension point (crossfading over its last ``xf`` frames), then ``material`` from there on."""
    join = len(source_before)
    out = material.copy()
    out[:join - xf] = source_before[:join - xf]
    out[join - xf:join] = fades.crossfade(source_before[join - xf:join], material[join - xf:join])
    if tail_fade and len(out) - join > tail_fade:
        out[-tail_fade:] *= fades.equal_power_curves(tail_fade)[0]
    return out


def _context_gain(crop: np.ndarray, generated: np.ndarray, pieces: list[tuple[int, int]], offset: int) -> float:
    """The gain that makes the generated context as loud as the source context it should equal."""
    if not pieces:
        return 1.0
    source = np.concatenate([crop[a:b] for a, b in pieces])
    material = np.concatenate([padded_slice(generated, a + offset, b - a) for a, b in pieces])
    return fades.match_gain(material, source)


def _side_confidence(alignment: Alignment, pieces: list[tuple[int, int]], edit: Edit, side: str) -> float | None:
    """How well the context on one side of the range matched, or None when that side had no usable context."""
    for piece, confidence in zip(pieces, alignment.piece_confidences):
        if (piece[1] <= edit.edit_first) == (side == "before"):
            return round(confidence, 4)
    return None
