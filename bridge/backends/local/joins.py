"""Making a join inaudible: fine alignment on the waveform, crossfade curves and lengths, loudness matching."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

import numpy as np
from scipy.signal import correlate

from bridge.audio.region import padded_slice
from bridge.exceptions import SourceError

ALIGN_WINDOW = 0.3  # seconds of waveform compared when aligning a join
ALIGN_SEARCH = 0.06  # seconds either way the incoming material may move (covers a cell of the search grid)
LEVEL_WINDOW = 1.0  # seconds whose loudness is matched across a join (long enough that one drum hit does not sway it)
MIN_CROSSFADE = 0.01
MAX_CROSSFADE = 0.15
MAX_GAIN_DB = 6.0
GAIN_DEADBAND_DB = 0.5  # smaller level differences are left alone: identical material keeps unity gain


@dataclass(frozen=True)
class Alignment:
    """Where incoming material lines up best with what it joins, and how alike the two are there."""

    shift: int  # samples to add to the incoming material's source position
    correlation: float  # normalised waveform correlation at that shift, -1..1


def align(reference: np.ndarray, block: np.ndarray, search: int, limits: tuple[int, int] | None = None) -> Alignment:
    """Best shift in -search..search so that ``block[search + shift:][:len(reference)]`` matches ``reference``.

    Both are mono; ``block`` is the incoming material from ``search`` samples before its planned position to
    ``search`` after the reference's end. Maximises the correlation normalised by the energy at each shift, so a
    loud neighbouring beat does not win over the matching one. ``limits`` narrows the shifts allowed (inclusive).
    """
    width = len(reference)
    block = block.astype(np.float64)
    ref = reference.astype(np.float64)
    ref_energy = float(np.dot(ref, ref))
    if width == 0 or ref_energy < 1e-12:
        return Alignment(0, 0.0)
    raw = correlate(block, ref, mode="valid", method="fft")
    cumulative = np.concatenate([[0.0], np.cumsum(block * block)])
    energy = cumulative[width:] - cumulative[:-width]
    score = raw / np.sqrt(np.maximum(energy, 1e-12) * ref_energy)
    score[energy < 1e-9 * ref_energy] = 0.0
    if limits is not None:
        shifts = np.arange(-search, search + 1)
        outside = (shifts < limits[0]) | (shifts > limits[1])
        if np.all(outside):
            nearest = int(np.clip(0, limits[0], limits[1]))
            return Alignment(nearest, float(score[search + nearest]) if abs(nearest) <= search else 0.0)
        score[outside] = -np.inf
    best = int(np.argmax(score))
    return Alignment(best - search, float(np.clip(score[best], -1.0, 1.0)))




class ArraySource:
    """A song held in memory as float32 frames (frames, channels)."""

    def __init__(self, audio: np.ndarray):
        self.audio = audio
        self.frames, self.channels = audio.shape

    def read(self, start: int, length: int) -> np.ndarray:
        return padded_slice(self.audio, start, length)


class FileSource:
    """A song read from its file a block at a time: a job on a cached song decodes only what it plays.

    Only for formats whose seeking is sample-exact (PCM in WAV, AIFF, FLAC and the like): a lossy decoder may
    not give the same samples after a seek as in one pass.
    """

    def __init__(self, path):
        import soundfile as sf

        self._path = path
        self._file = sf.SoundFile(str(path))
        self._stat = _identity(path)
        self.frames, self.channels = self._file.frames, self._file.channels

    def read(self, start: int, length: int) -> np.ndarray:
        """Frames [start, start + length), zeros outside the song. The header was read when the job opened the
        file: a song bounced over itself meanwhile (rewritten in place) holds fewer frames now, or none where the
        decoder looks, and the job stops with source_changed rather than play a half-written file."""
        import soundfile as sf

        out = np.zeros((length, self.channels), dtype=np.float32)
        lo, hi = max(start, 0), min(start + length, self.frames)
        if hi > lo:
            try:
                self._file.seek(lo)
                frames = self._file.read(hi - lo, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise self._failed(str(exc)) from None
            if len(frames) != hi - lo:
                raise self._failed(f"{hi - lo - len(frames)} frames short of what its header says")
            out[lo - start:hi - start] = frames
        return out

    def _failed(self, reason: str) -> SourceError:
        """A read that failed: the song rewritten meanwhile, or (the same file) unreadable for ``reason``."""
        if _identity(self._path) != self._stat:
            return SourceError(f"source audio changed during the job (it was rewritten, e.g. bounced again, while "
                               f"being read): retry once the song is written: {self._path}", code="source_changed")
        return SourceError(f"source audio cannot be read ({reason}): {self._path}", code="source_unreadable")

    def close(self) -> None:
        self._file.close()


def _identity(path) -> tuple[int, int, int, int] | None:
    """What tells a file rewritten in place from the one opened: its inode, size and change times (None: gone)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class SpanSource:
    """A song whose seeking is not sample-exact (Ogg Vorbis, MP3), decoded from its start in one pass that keeps
    only the frames ``spans`` (source frame ranges) cover: a job's memory is what it plays, not the decoded song.

    The frames kept are the ones a whole decode gives there. A read outside them (the spans were reckoned short)
    still returns those frames, at the cost of another pass; ``passes`` counts them.
    """

    MISS_MARGIN = 1 << 17  # frames kept either side of a read that missed, so its neighbours do not miss again
    # Read in whole MPEG frames (1152 samples; 576 and 384 divide it): libsndfile 1.2's MP3 decoder gave other
    # samples than one whole read after reads of 4096 frames, none after multiples of 1152 (Vorbis: either).
    BLOCK = 64 * 1152

    def __init__(self, path, spans: list[tuple[int, int]], block: int = BLOCK):
        self._path, self._block = path, block
        self.passes = 0
        self._decode(spans)

    def _decode(self, spans: list[tuple[int, int]]) -> None:
        import soundfile as sf

        wanted = []
        for lo, hi in sorted((max(lo, 0), hi) for lo, hi in spans if hi > max(lo, 0)):
            if wanted and lo <= wanted[-1][1]:
                wanted[-1][1] = max(wanted[-1][1], hi)
            else:
                wanted.append([lo, hi])
        kept, at, which, filling = [], 0, 0, None
        with sf.SoundFile(str(self._path)) as song:
            self.channels, told = song.channels, song.frames  # an MP3's may be estimated: blocks() stops there too
            # read in blocks from the start: the same samples as one read of the whole file, without a seek
            for block in song.blocks(blocksize=self._block, dtype="float32", always_2d=True):
                end = at + len(block)
                while which < len(wanted) and wanted[which][0] < end:
                    lo, hi = wanted[which]
                    if filling is None:
                        filling = _Filling(lo, max(min(hi, told) - lo, 0), self.channels)
                    filling.add(block[max(lo - at, 0):min(hi, end) - at])
                    if hi > end:
                        break
                    kept.append(filling.done())
                    filling, which = None, which + 1
                at = end
        if filling is not None:  # a span reaching past the song's end
            kept.append(filling.done())
        self.frames, self._kept, self._spans = at, kept, [tuple(w) for w in wanted]
        self._starts = [lo for lo, _ in kept]
        self.passes += 1

    def read(self, start: int, length: int) -> np.ndarray:
        out = np.zeros((length, self.channels), dtype=np.float32)
        lo, hi = max(start, 0), min(start + length, self.frames)
        if hi <= lo:
            return out
        held = self._held(lo, hi)
        if held is None:
            self._decode(self._spans + [(lo - self.MISS_MARGIN, hi + self.MISS_MARGIN)])
            held = self._held(lo, hi)
        first, frames = held
        out[lo - start:hi - start] = frames[lo - first:hi - first]
        return out

    def hold(self, spans: list[tuple[int, int]]) -> None:
        """Keep these frame ranges too (decoding again only when one is not kept yet)."""
        spans = [(max(lo, 0), min(hi, self.frames)) for lo, hi in spans]
        if any(hi > lo and self._held(lo, hi) is None for lo, hi in spans):
            self._decode(self._spans + spans)

    def _held(self, lo: int, hi: int) -> tuple[int, np.ndarray] | None:
        index = bisect.bisect_right(self._starts, lo) - 1
        if index >= 0:
            first, frames = self._kept[index]
            if hi <= first + len(frames):
                return self._kept[index]
        return None


class _Filling:
    """One span's frames as a decode passes them, written in place into room for as many as libsndfile told the
    file holds (soundfile reads no further), so a span as long as the song is never held twice."""

    def __init__(self, lo: int, room: int, channels: int):
        self.lo, self.frames, self.filled = lo, np.empty((room, channels), np.float32), 0

    def add(self, part: np.ndarray) -> None:
        self.frames[self.filled:self.filled + len(part)] = part
        self.filled += len(part)

    def done(self) -> tuple[int, np.ndarray]:
        return self.lo, self.frames[:self.filled]


def crossfade_seconds(correlation: float, beat: float) -> float:
    """Crossfade length for a join: long where the two sides are the same music, short where they differ.

    Well-correlated material can blend over up to a quarter beat without smearing; unlike material gets a short
    fade so neither side's transients double up.
    """
    amount = float(np.clip((correlation - 0.2) / 0.7, 0.0, 1.0))
    return float(np.clip(beat * (0.04 + 0.21 * amount), MIN_CROSSFADE, MAX_CROSSFADE))


def crossfade_curves(frames: int, correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """Fade-out and fade-in gains (frames, 1) that keep the summed power constant for signals this correlated.

    For uncorrelated material this is the usual equal-power fade; for identical material it becomes an
    equal-gain fade, so a join between two copies of the same passage neither dips nor bumps.
    """
    rho = float(np.clip(correlation, 0.0, 1.0))
    x = (np.arange(frames, dtype=np.float64) + 0.5) / max(frames, 1)
    rising = 0.5 - 0.5 * np.cos(np.pi * x)
    falling = 1.0 - rising
    norm = np.sqrt(falling ** 2 + rising ** 2 + 2.0 * rho * falling * rising)
    return (falling / norm)[:, None].astype(np.float32), (rising / norm)[:, None].astype(np.float32)


def level_gain(reference: np.ndarray, material: np.ndarray) -> float:
    """Gain bringing ``material`` to ``reference``'s level; unity within the deadband, bounded to MAX_GAIN_DB."""
    have = float(np.sqrt(np.mean(np.square(material, dtype=np.float64)))) if material.size else 0.0
    want = float(np.sqrt(np.mean(np.square(reference, dtype=np.float64)))) if reference.size else 0.0
    if have < 1e-6 or want < 1e-6:
        return 1.0
    db = 20.0 * np.log10(want / have)
    if abs(db) < GAIN_DEADBAND_DB:
        return 1.0
    return float(10 ** (np.clip(db, -MAX_GAIN_DB, MAX_GAIN_DB) / 20.0))


def stretch(block: np.ndarray, frames: int) -> np.ndarray:
    """Resample ``block`` (frames, channels) to exactly ``frames`` frames (a tiny varispeed that absorbs drift)."""
    import soxr

    if len(block) == frames:
        return block
    out = soxr.resample(np.ascontiguousarray(block, dtype=np.float32), len(block), frames, quality="HQ")
    if len(out) < frames:
        out = np.concatenate([out, np.repeat(out[-1:], frames - len(out), axis=0)])
    return out[:frames]
