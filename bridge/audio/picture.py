"""A picture of one delivered variant: the original and the result over the span, as a PNG beside its manifest.

Four stacked panels share one time axis in source seconds: the original's waveform and spectrogram, then the
result's. The replaced range is shaded, each join is a dashed line labelled with its confidence, and each
waveform panel's title gives the levels (RMS and peak, dBFS) over the replaced range, so "louder" and "quieter"
can be read without listening. Both spectrograms share one colour scale, so a difference in colour is a
difference in the audio.

It is meant to cost little next to writing the audio: the waveform is drawn as one min/max pair per pixel
column, the spectrogram takes one FFT per pixel column of a mono mixdown (about a thousand, whatever the span's
length) pooled into log-spaced bands, and the figure is drawn at a modest DPI with matplotlib's Agg renderer
through its object API (no pyplot: no global state, no GUI backend, safe in any thread).

The daemon draws through a :class:`Painter`, in a process of its own at low priority: drawn in the daemon's
delivery thread, matplotlib's ~0.2 s of CPU per picture held the interpreter lock often enough to push the OSC
accepted-reply p99 from 3.5 ms to 275 ms in the 5-jobs-a-second soak. That process holds ~120 MiB (matplotlib and
Pillow), so it ends after a few seconds without a picture and is started again for the next one: an idle
daemon holds no plotting library. It is handed a :class:`Sketch` (the measures drawn, kilobytes), not the audio.
"""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from bridge.audio import fades
from bridge.audio.region import padded_slice
from bridge.lifeline import LifelineContext

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.4, 80  # 800 x 512 pixels: readable in REAPER's gfx window, small on disk
_N_FFT = 2048
_BANDS = 160
_LOWEST_HZ = 30.0
_FLOOR_DB = 80.0  # the spectrograms show this many dB below their loudest cell
_SILENT_DB = -120.0
_PNG_LEVEL = 6
_COLUMNS_PER_FRAME = 2  # the spectrogram's time resolution: one FFT per two pixel columns
_LEVEL_BLOCK = 1 << 18  # frames summed at once for a level
IDLE_SECONDS = 2.0  # the painter's process ends this long after its last picture


@dataclass
class PictureInput:
    """What a picture shows. ``original`` may be shorter than ``result`` (an extension past the song's end)."""

    original: np.ndarray  # (frames, channels) float, the source over the span (or a FileFrames of it)
    result: np.ndarray  # (frames, channels) float, the delivered span (or a FileFrames of it)
    sample_rate: int
    span_start: float  # source seconds of the first frame of both
    edit_start: float  # the replaced range, source seconds
    edit_end: float
    joins: list = field(default_factory=list)  # the manifest's splice joins: {"at", "confidence", ...}
    title: str = ""


def levels(audio: np.ndarray, first: int = 0, last: int | None = None) -> tuple[float, float] | None:
    """(RMS dBFS, peak dBFS) of all channels of frames [first, last) together; None for no audio. Summed in
    float64 a block at a time (a float64 copy of a 10-minute extension would take 424 MB); ``audio`` may be a
    :class:`bridge.audio.blocks.FileFrames`, read a block at a time."""
    last = len(audio) if last is None else min(last, len(audio))
    first = min(max(first, 0), last)
    size = (last - first) * (audio.shape[1] if audio.ndim > 1 else 1)
    if size == 0:
        return None
    energy, peak = 0.0, 0.0
    for at in range(first, last, _LEVEL_BLOCK):
        block = np.asarray(audio[at:min(at + _LEVEL_BLOCK, last)], dtype=np.float64)
        energy += float(np.sum(block * block))
        peak = max(peak, float(np.max(np.abs(block))))
    return _db(float(np.sqrt(energy / size))), _db(peak)


@dataclass
class Sketch:
    """What a picture draws, measured from a :class:`PictureInput`: a few thousand numbers whatever the span's
    length, so the painter's process is handed kilobytes, not the audio (a 10-minute extension's is 212 MB, and
    the process held it twice)."""

    rows: list  # per panel pair, original then result: (name, levels text, (lows, highs, times), (spec, times))
    loudest: float  # the spectrograms' shared top, dB
    sample_rate: int
    span_start: float
    span_end: float
    edit_start: float
    edit_end: float
    joins: list
    title: str


def sketch(picture: PictureInput) -> Sketch:
    """The measures :func:`render_png` draws; the cheap part (numpy), done where the audio already is."""
    sr, columns = picture.sample_rate, int(WIDTH_IN * DPI)
    first, last = _edit_frames(picture, len(picture.result))
    rows = []
    for name, audio in (("Original", picture.original), ("Result", picture.result)):
        rows.append((name, _levels_text(audio, first, last), _envelope(audio, sr, columns),
                     _spectrogram(audio, sr, columns // _COLUMNS_PER_FRAME)))
    loudest = max((spec.max() for *_, (spec, _) in rows if spec.size), default=0.0)
    return Sketch(rows, float(loudest), sr, picture.span_start, picture.span_start + len(picture.result) / sr,
                  picture.edit_start, picture.edit_end, list(picture.joins), picture.title)


class Painter:
    """Draws pictures in one worker process, started on demand and ended ``idle`` seconds after its last picture,
    or with the daemon (its lifeline, or :meth:`close`)."""

    def __init__(self, idle: float = IDLE_SECONDS):
        self._idle = idle
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._lifeline: LifelineContext | None = None
        self._busy = 0  # renders in flight
        self._timer: threading.Timer | None = None  # ends the worker when it has been idle long enough
        self._closed = False

    def render(self, picture: PictureInput) -> bytes:
        """:func:`render_png` in the worker; raises what it raises (a worker that died is replaced next time)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the daemon is stopping")
            if self._timer is not None:  # busy again: the worker stays
                self._timer.cancel()
                self._timer = None
            if self._pool is None:
                self._lifeline = LifelineContext()
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=self._lifeline, initializer=_background)
            pool, self._busy = self._pool, self._busy + 1
        try:
            return pool.submit(render_png, sketch(picture)).result()
        except BrokenProcessPool:
            self._end_worker(lambda: self._pool is pool)
            raise
        finally:
            with self._lock:
                self._busy -= 1
                if not self._busy and self._pool is not None and not self._closed:
                    self._timer = threading.Timer(self._idle, self._end_worker, (self._idle_now,))
                    self._timer.daemon = True
                    self._timer.start()

    def close(self) -> None:
        """End the worker for good (a picture being drawn is abandoned: its delivery is done without it)."""
        with self._lock:
            self._closed = True
        self._end_worker(lambda: True)

    def _idle_now(self) -> bool:
        return not self._busy and self._timer is threading.current_thread()

    def _end_worker(self, when) -> None:
        """End the worker if ``when()`` holds (asked under the lock); a waiting idle timer is dropped with it."""
        with self._lock:
            if not when():
                return
            pool, self._pool = self._pool, None
            lifeline, self._lifeline = self._lifeline, None
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
            timer.join()
        if pool is not None:
            lifeline.cut()
            pool.shutdown(wait=True, cancel_futures=True)


def _background() -> None:
    """Pictures are a convenience: the engine and the daemon go first when the machine is busy."""
    try:
        os.nice(10)
    except OSError:  # not allowed here: the picture still gets drawn
        pass


def render_png(picture: PictureInput | Sketch) -> bytes:
    """The PNG's bytes. Raises whatever goes wrong; the caller decides that a missing picture is no failure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import NullLocator

    picture = picture if isinstance(picture, Sketch) else sketch(picture)
    sr, span_end = picture.sample_rate, picture.span_end
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(4, 1, height_ratios=[1, 1.6, 1, 1.6], hspace=0.45, left=0.07, right=0.985,
                            top=0.91, bottom=0.08)
    # Not sharex: the upper panels need no x ticks at all, and ticks are most of matplotlib's drawing time.
    axes = [fig.add_subplot(grid[i]) for i in range(4)]
    if picture.title:
        fig.suptitle(picture.title, fontsize=10)

    for row, (name, levels_text, envelope, (spec, times)) in enumerate(picture.rows):
        wave_ax, spec_ax = axes[2 * row], axes[2 * row + 1]
        wave_ax.set_title(f"{name}  -  replaced range: {levels_text}", fontsize=9, loc="left")
        _draw_wave(wave_ax, envelope, picture.span_start)
        _draw_spectrogram(spec_ax, spec, times, sr, picture.span_start, picture.loudest)
    join_times = [float(join["at"]) for join in picture.joins]
    for index, ax in enumerate(axes):
        # Drawn in axes coordinates (0..1 high), so the y limits stay as set and nothing is autoscaled.
        on_axes = ax.get_xaxis_transform()
        if index % 2 == 0:  # waveforms: the range shaded
            ax.add_patch(Rectangle((picture.edit_start, 0), picture.edit_end - picture.edit_start, 1,
                                   transform=on_axes, color="#ffd54f", alpha=0.3, lw=0, zorder=0))
        else:  # spectrograms: a shade would change their colours, so only the range's edges
            ax.vlines([picture.edit_start, picture.edit_end], 0, 1, transform=on_axes, color="#ffd54f", lw=1.2)
        if join_times:
            ax.vlines(join_times, 0, 1, transform=on_axes, color="#d32f2f", lw=1.0, linestyles="dashed")
        ax.tick_params(labelsize=8)
    for join, at in zip(picture.joins, join_times):
        axes[0].text(at, 0.96, _join_label(join), transform=axes[0].get_xaxis_transform(), fontsize=8,
                     color="#b71c1c", va="top", ha="left",
                     bbox={"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1})
    for ax in axes:
        ax.set_xlim(picture.span_start, span_end)
    for ax in axes[:-1]:
        ax.xaxis.set_major_locator(NullLocator())
    axes[-1].set_xlabel("source time (s); shaded: replaced range; dashed: joins with their confidence", fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, pil_kwargs={"compress_level": _PNG_LEVEL})
    return out.getvalue()


def _edit_frames(picture: PictureInput, frames: int) -> tuple[int, int]:
    first = int(round((picture.edit_start - picture.span_start) * picture.sample_rate))
    last = int(round((picture.edit_end - picture.span_start) * picture.sample_rate))
    return min(max(first, 0), frames), min(max(last, 0), frames)


def _draw_wave(ax, envelope: tuple[np.ndarray, np.ndarray, np.ndarray], start: float) -> None:
    ax.set_ylim(-1.0, 1.0)
    ax.set_yticks([])  # full scale is the panel's height; the levels are in its title
    ax.set_ylabel("wave", fontsize=8)
    lows, highs, times = envelope
    if len(lows):
        ax.fill_between(start + times, lows, highs, color="#1565c0", lw=0, step="mid")


def _envelope(audio: np.ndarray, sr: int, columns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column, the lowest and highest sample of any channel, and the column's centre time (seconds).

    Whole columns are read a few at a time (``audio`` may be a FileFrames of a long span)."""
    if len(audio) == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    per = max(1, -(-len(audio) // columns))  # frames per column, rounded up
    usable = (len(audio) // per) * per
    step = max(1, _LEVEL_BLOCK // per) * per
    lows, highs = [], []
    for at in range(0, usable, step):
        block = np.asarray(audio[at:min(at + step, usable)]).reshape(-1, per * audio.shape[1])
        lows.append(block.min(axis=1))
        highs.append(block.max(axis=1))
    if usable < len(audio):
        rest = np.asarray(audio[usable:len(audio)])
        lows.append(np.array([rest.min()]))
        highs.append(np.array([rest.max()]))
    lows, highs = np.concatenate(lows), np.concatenate(highs)
    times = (np.arange(len(lows)) * per + per / 2) / sr
    return lows, highs, times


def _spectrogram(audio: np.ndarray, sr: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(bands x frames) dB of a mono mixdown, one Hann-windowed FFT per column; and the frames' centre times.

    Only the frames around each column's centre are read (``audio`` may be a FileFrames of a long span)."""
    if len(audio) == 0:
        return np.empty((_BANDS, 0)), np.empty(0)
    n_fft = _N_FFT
    count = max(1, min(columns, len(audio) // 256 or 1))
    centres = np.linspace(0, len(audio) - 1, count).astype(np.int64)
    frames = np.stack([fades.mono(padded_slice(audio, int(c) - n_fft // 2, n_fft)) for c in centres])
    frames = frames * _window(n_fft)
    # numpy's FFT, not scipy's: a few ms slower per picture, but the painter's process, started again after each
    # idle spell, saves scipy's import (~0.2 s of CPU).
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # float32 in, float32 out (numpy >= 2)  # (frames, bins)
    lows, highs = _band_bins(sr, n_fft)
    summed = np.concatenate([np.zeros((len(power), 1), dtype=power.dtype), np.cumsum(power, axis=1)], axis=1)
    bands = (summed[:, highs] - summed[:, lows]) / (highs - lows)  # each band's mean power
    spec = 10.0 * np.log10(np.maximum(bands, 1e-12)).T
    return spec, centres / sr


def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft).astype(np.float32)


_BAND_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _band_bins(sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """For log-spaced bands, the FFT bins each covers as [low, high); a band narrower than a bin takes its
    nearest bin."""
    key = (sr, n_fft)
    if key not in _BAND_CACHE:
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
        edges = np.geomspace(_LOWEST_HZ, sr / 2, _BANDS + 1)
        lows = np.searchsorted(freqs, edges[:-1], side="left")
        highs = np.searchsorted(freqs, edges[1:], side="left")
        empty = highs <= lows
        nearest = np.abs(freqs[None, :] - np.sqrt(edges[:-1] * edges[1:])[:, None]).argmin(axis=1)
        lows[empty], highs[empty] = nearest[empty], nearest[empty] + 1
        _BAND_CACHE[key] = lows, highs
    return _BAND_CACHE[key]


def _draw_spectrogram(ax, spec: np.ndarray, times: np.ndarray, sr: int, start: float, loudest: float) -> None:
    low, high = np.log10(_LOWEST_HZ), np.log10(sr / 2)
    ax.set_ylim(low, high)
    ticks = [f for f in (100, 1000, 10000) if _LOWEST_HZ < f < sr / 2]
    ax.set_yticks(np.log10(ticks))
    ax.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax.set_ylabel("Hz", fontsize=8)
    if spec.shape[1] == 0:
        return
    step = (times[1] - times[0]) if len(times) > 1 else len(times) / sr
    left, right = start + times[0] - step / 2, start + times[-1] + step / 2
    ax.imshow(spec, origin="lower", aspect="auto", extent=(left, right, low, high), cmap="magma",
              vmin=loudest - _FLOOR_DB, vmax=loudest, interpolation="nearest")


def _levels_text(audio: np.ndarray, first: int = 0, last: int | None = None) -> str:
    measured = levels(audio, first, last)
    if measured is None:
        return "no audio here"
    rms, peak = measured
    return f"RMS {_fmt_db(rms)}, peak {_fmt_db(peak)}"


def _join_label(join: dict) -> str:
    confidence = join.get("confidence")
    return f"join {confidence:.2f}" if isinstance(confidence, (int, float)) else "join ?"


def _db(value: float) -> float:
    return max(20.0 * np.log10(value), _SILENT_DB) if value > 0 else _SILENT_DB


def _fmt_db(value: float) -> str:
    return "silent" if value <= _SILENT_DB else f"{round(value, 1) + 0.0:.1f} dBFS"  # + 0.0: never "-0.0"
