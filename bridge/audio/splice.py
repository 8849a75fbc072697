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


def splice_span(crop: np.ndarray, generated: np.ndarray, edit: Edit, sample_rate: int, *,
                crop_start_s: float = 0.0, max_shift_s: float = 2.0) -> Span:
    """Align ``generated`` (the service's output, at ``sample_rate``) to ``crop`` and splice it into a span.

    ``crop_start_s`` is where the crop begins in the source, so the report names joins in source seconds.
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
    material = padded_slice(generated, first + alignment.offset, stop - first) * np.float32(gain)
    join_in = edit.edit_first - first
    xf_in = min(edit.crossfade, join_in)
    if inpaint:
        join_out = edit.edit_stop - first
        xf_out = min(edit.crossfade, stop - first - join_out)
        audio = splice_inpaint(crop[first:stop], material, join_in, join_out, xf_in, xf_out)
        joins = [(edit.edit_first, xf_in, "before"), (edit.edit_stop, xf_out, "after")]
    else:
        cut_short = len(generated) - alignment.offset > stop
        audio = splice_extend(crop[first:edit.edit_first], material, xf_in,
                              tail_fade=int(TAIL_FADE_S * sample_rate) if cut_short else 0)
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
    return Span(audio, first, info)


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
