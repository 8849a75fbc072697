"""How well the embedded engine fills gaps: real music and generated songs, against two baselines.

For each case a gap is cut (zeroed) out of a song, the engine fills it from the zeroed copy (so it cannot peek),
and the result is compared with the original:
- log-spectral distance (dB) inside the gap, next to two baselines computed here in the same run: silence (with
  10 ms fades) and a copy of the audio just before the gap joined with 50 ms equal-power crossfades;
- at each join, the spectral-flux spike ratio: the largest flux around the join in the result over the larger of
  the song's median flux and the original's own largest flux at that spot (1.0 = no spike beyond the music's own);
  the raw ratio against the median alone is printed too;
- a click detector: the largest second difference of the waveform around a join over the larger of the 99.9th
  percentile of the original's second difference in the surrounding two seconds and the original's own largest
  second difference at that spot (a click when > 2);
- on generated songs with exact repeats, the SNR inside the gap.

Real music: the first EXCERPT seconds of every track of Debian's planetblupi-music-ogg (the tracks are 10-28 min
long; the excerpt keeps the run to a few minutes), gaps of 2, 5 and 10 s at four positions each.

    python bench/engine_quality.py [--excerpt 240] [--tracks N] [--quick]
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.backends.local.analysis import analyse, without_range  # noqa: E402
from bridge.backends.local.backend import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from bridge.backends.local.inpaint import plan_inpaint  # noqa: E402
from bridge.backends.local.render import render  # noqa: E402
from bridge.demo_song import make_song_array  # noqa: E402

MUSIC = "/usr/share/planetblupi/music/*.ogg"
GAPS = (2.0, 5.0, 10.0)
HANDLE = 1.0
FLUX_HOP = 256
FLUX_RATE = 22050


@dataclass
class Case:
    song: str
    start: float
    length: float
    lsd: float = np.nan
    lsd_silence: float = np.nan
    lsd_copy: float = np.nan
    snr: float = np.nan
    spikes: tuple = ()
    spikes_raw: tuple = ()
    spikes_copy: tuple = ()
    clicks: int = 0
    clicks_copy: int = 0
    clicks_silence: int = 0
    confidence: float = np.nan
    passages: int = 0
    seconds: float = 0.0

    @property
    def better(self) -> bool:
        return self.lsd < self.lsd_silence and self.lsd < self.lsd_copy


def _mono22(audio: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    return soxr.resample(audio.mean(axis=1).astype(np.float32), sr, FLUX_RATE)


def log_spectral_distance(result: np.ndarray, original: np.ndarray) -> float:
    """Mean over frames of the RMS difference of the dB power spectra (2048-point frames)."""
    import librosa

    a = np.abs(librosa.stft(result, n_fft=2048, hop_length=512, center=False)) ** 2
    b = np.abs(librosa.stft(original, n_fft=2048, hop_length=512, center=False)) ** 2
    floor = 1e-8 * max(float(b.max()), 1e-12)
    diff = 10 * np.log10(a + floor) - 10 * np.log10(b + floor)
    return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=0))))


def flux(mono: np.ndarray) -> np.ndarray:
    """Spectral flux per hop: the summed rise of each bin's magnitude (1024-point frames, 11.6 ms hop)."""
    import librosa

    mag = np.abs(librosa.stft(mono, n_fft=1024, hop_length=FLUX_HOP))
    return np.concatenate([[0.0], np.maximum(np.diff(mag, axis=1), 0.0).sum(axis=0)])


def spike(result_flux: np.ndarray, original_flux: np.ndarray, median: float, lo: float, hi: float):
    """(spike ratio against max(median, original's own flux there), raw ratio against the median)."""
    a = max(int(lo * FLUX_RATE / FLUX_HOP), 0)
    b = int(np.ceil(hi * FLUX_RATE / FLUX_HOP)) + 1
    got = float(result_flux[a:b].max())
    natural = float(original_flux[a:b].max())
    return got / max(median, natural), got / median


def clicks(result: np.ndarray, original: np.ndarray, sr: int, joins: list[tuple[float, float]],
           gap: tuple[float, float], own: list[np.ndarray] | None = None) -> int:
    """Joins whose sharpest waveform edge stands out over the original's sharpest edges nearby (ratio > 2).

    ``own`` (``material_edges``), for each join, says how sharp an edge the re-used audio playing there has of
    itself at each sample: an edge counts only where it is also more than twice that. Inside a long range there is
    no original nearby, and a drum hit of the material that lands by a join is the music's, not the join's; a cut
    (an edge the materials on both sides lack at that sample) still counts."""
    found = 0
    d2_result = np.abs(np.diff(result, n=2, axis=0)).max(axis=1)
    d2_original = np.abs(np.diff(original, n=2, axis=0)).max(axis=1)
    for i, (lo, hi) in enumerate(joins):
        a, b = int(lo * sr), int(hi * sr)
        around = np.concatenate([d2_original[max(a - 2 * sr, 0):int(gap[0] * sr)],
                                 d2_original[int(gap[1] * sr):b + 2 * sr]])
        reference = float(np.percentile(around, 99.9)) if around.size else 0.0
        reference = max(reference, float(d2_original[a:b].max()))  # the music's own transient there is no click
        edges, limit = d2_result[a:b], 2.0 * max(reference, 1e-4)
        if own is not None:
            edges = edges[:len(own[i])]
            limit = np.maximum(limit, 2.0 * own[i][:len(edges)])
        if np.any(edges > limit):
            found += 1
    return found


def played_pieces(song: np.ndarray, sr: int, passages: list[dict],
                  joins: list[dict]) -> list[tuple[float, np.ndarray, float]]:
    """The engine's passages as ``material_edges`` takes them: each from where its audio starts sounding (its
    join's crossfade) to where it stops (the next join, or the exit's crossfade after the range), at its gain."""
    fades = {round(float(j["at"]), 3): (float(j["crossfade"]), float(j["gain_db"])) for j in joins}
    pieces = []
    for i, p in enumerate(passages):
        at, until = float(p["at"]), float(p["until"])
        lag = float(p["from"]) - at
        lo = at - fades.get(round(at, 3), (0.0, 0.0))[0]
        gain_db = float(p.get("gain_db", 0.0))
        exit_ = fades.get(round(until, 3)) if i == len(passages) - 1 else None
        hi = until + (exit_[0] if exit_ else 0.0)
        gain_db = max(gain_db, exit_[1]) if exit_ else gain_db  # the last passage ramps to the exit's gain
        a, b = int(round((lo + lag) * sr)), int(round((hi + lag) * sr))
        if a < 0:
            lo, a = lo - a / sr, 0
        pieces.append((lo, song[a:max(b, a)], 10 ** (gain_db / 20)))
    return pieces


def material_edges(pieces: list[tuple[float, np.ndarray, float]], sr: int,
                   windows: list[tuple[float, float]]) -> list[np.ndarray]:
    """For each window (seconds), sample by sample: the sharpest waveform edge (second difference, as ``clicks``
    measures it) that the re-used audio playing there has of itself, at the gain it plays at, widened by a
    millisecond either way. ``pieces`` are (second it starts sounding, its audio, gain)."""
    from scipy.ndimage import maximum_filter1d

    edges = []
    for lo, hi in windows:
        a, b = int(lo * sr), int(hi * sr)
        sharpest = np.zeros(max(b - a, 0))
        for at, audio, gain in pieces:
            start = a - int(round(at * sr))  # the window's first sample in the piece's audio
            first, last = max(start, 0), min(start + len(sharpest), len(audio) - 2)
            if last > first:
                own = gain * np.abs(np.diff(audio[first:last + 2], n=2, axis=0)).max(axis=1)
                sharpest[first - start:last - start] = np.maximum(sharpest[first - start:last - start], own)
        edges.append(maximum_filter1d(sharpest, size=2 * int(0.001 * sr) + 1) if len(sharpest) else sharpest)
    return edges


COPY_CROSSFADE = 0.05


def copy_material(song: np.ndarray, sr: int, start: float, end: float) -> np.ndarray:
    """What the copy baseline plays from ``start - COPY_CROSSFADE`` to ``end + COPY_CROSSFADE``: the audio just
    before the gap, repeated when the song holds less before the gap than the gap."""
    first, last = int(round(start * sr)), int(round(end * sr))
    need = (last - first) + 2 * int(COPY_CROSSFADE * sr)  # ending where the gap begins
    material = song[max(first - need, 0):first]
    if len(material) < need:  # less music before the gap than the gap (a range in the middle of a short song)
        material = np.concatenate([material] * -(-need // len(material)))[-need:]  # what there is, repeated
    return material


def copy_pieces(song: np.ndarray, sr: int, start: float, end: float) -> list[tuple[float, np.ndarray, float]]:
    """The copy baseline's re-used audio as ``material_edges`` takes it (one piece, at unity gain)."""
    return [(start - COPY_CROSSFADE, copy_material(song, sr, start, end), 1.0)]


def baselines(song: np.ndarray, sr: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """(silence with 10 ms fades, ``copy_material`` with crossfades of ``COPY_CROSSFADE``); gap audio unused."""
    first, last = int(round(start * sr)), int(round(end * sr))
    silence = song.copy()
    fade = int(0.01 * sr)
    ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    silence[first - fade:first] *= ramp
    silence[first:last] = 0.0
    silence[last:last + fade] *= ramp[::-1]
    cross = int(COPY_CROSSFADE * sr)
    material = copy_material(song, sr, start, end)
    copy = song.copy()
    x = (np.arange(cross) + 0.5) / cross
    fade_out, fade_in = np.cos(x * np.pi / 2)[:, None], np.sin(x * np.pi / 2)[:, None]
    copy[first - cross:first] = song[first - cross:first] * fade_out + material[:cross] * fade_in
    copy[first:last] = material[cross:cross + last - first]
    copy[last:last + cross] = material[-cross:] * fade_out + song[last:last + cross] * fade_in
    return silence, copy


def run_case(name: str, original: np.ndarray, sr: int, start: float, length: float,
             song_median_flux: float, original_flux: np.ndarray) -> Case:
    end = start + length
    first, last = int(round(start * sr)), int(round(end * sr))
    case = Case(name, start, length)
    hidden = original.copy()
    hidden[first:last] = 0.0
    t0 = time.perf_counter()
    analysis = without_range(analyse(hidden, sr), start, end)
    plans = plan_inpaint(analysis, start, end, 1)
    if not plans:
        case.seconds = time.perf_counter() - t0
        return case
    plan = plans[0]
    span = (int(round((start - HANDLE) * sr)), int(round((end + HANDLE) * sr)))
    out, joins, passages = render(hidden, sr, plan, start, end, span, analysis.beat_period)
    case.seconds = time.perf_counter() - t0
    result = original.copy()
    result[span[0]:span[1]] = out
    case.confidence = min(j["confidence"] for j in joins)  # as the engine judges it, waveforms included
    case.passages = len(passages)
    silence, copy = baselines(original, sr, start, end)
    ref = _mono22(original[first:last], sr)
    case.lsd = log_spectral_distance(_mono22(result[first:last], sr), ref)
    case.lsd_silence = log_spectral_distance(_mono22(silence[first:last], sr), ref)
    case.lsd_copy = log_spectral_distance(_mono22(copy[first:last], sr), ref)
    noise = np.sum((result[first:last].astype(np.float64) - original[first:last]) ** 2)
    case.snr = 10 * np.log10(np.sum(original[first:last].astype(np.float64) ** 2) / max(noise, 1e-20))
    windows = [(start - 0.2, start + 0.05), (end - 0.05, end + 0.2)]
    for label, version in (("engine", result), ("copy", copy)):
        version_flux = flux(_mono22(version, sr))
        ratios = [spike(version_flux, original_flux, song_median_flux, lo, hi) for lo, hi in windows]
        if label == "engine":
            case.spikes = tuple(r[0] for r in ratios)
            case.spikes_raw = tuple(r[1] for r in ratios)
        else:
            case.spikes_copy = tuple(r[0] for r in ratios)
    case.clicks = clicks(result, original, sr, windows, (start, end),
                         material_edges(played_pieces(hidden, sr, passages, joins), sr, windows))
    case.clicks_copy = clicks(copy, original, sr, windows, (start, end),
                              material_edges(copy_pieces(original, sr, start, end), sr, windows))
    case.clicks_silence = clicks(silence, original, sr, windows, (start, end))
    return case


def song_cases(name: str, audio: np.ndarray, sr: int, positions: list[float], gaps=GAPS) -> list[Case]:
    original_flux = flux(_mono22(audio, sr))
    median = float(np.median(original_flux))
    cases = []
    for start in positions:
        for length in gaps:
            case = run_case(name, audio, sr, start, length, median, original_flux)
            cases.append(case)
            spikes = "/".join(f"{s:.2f}" for s in case.spikes)
            print(f"  {name} {start:6.1f}s +{length:4.1f}s  LSD {case.lsd:5.2f} (silence {case.lsd_silence:5.2f}, "
                  f"copy {case.lsd_copy:5.2f}) {'better' if case.better else 'WORSE '}  SNR {case.snr:6.1f} dB  "
                  f"spike {spikes}  clicks {case.clicks}  conf {case.confidence:.2f}  passages {case.passages}  "
                  f"{case.seconds:.2f}s", flush=True)
    return cases


def summarise(title: str, cases: list[Case], snr_target: bool = False) -> None:
    done = [c for c in cases if np.isfinite(c.lsd)]
    spikes = [s for c in done for s in c.spikes]
    raw = [s for c in done for s in c.spikes_raw]
    copy_spikes = [s for c in done for s in c.spikes_copy]
    confident = [c for c in done if c.confidence >= DEFAULT_MIN_CONFIDENCE]
    print(f"\n== {title}: {len(cases)} cases, {len(done)} filled")
    if not done:
        return
    print(f"better than both baselines (gap LSD): {sum(c.better for c in done)}/{len(done)} "
          f"= {100 * sum(c.better for c in done) / len(done):.0f} %")
    print(f"  among the {len(confident)} above the default min_confidence {DEFAULT_MIN_CONFIDENCE}: "
          f"{sum(c.better for c in confident)}/{max(len(confident), 1)}")
    print(f"gap LSD median: engine {statistics.median(c.lsd for c in done):.2f} dB, "
          f"silence {statistics.median(c.lsd_silence for c in done):.2f} dB, "
          f"copy {statistics.median(c.lsd_copy for c in done):.2f} dB")
    print(f"join spike ratio: median {statistics.median(spikes):.2f}, p90 {np.percentile(spikes, 90):.2f}, "
          f"max {max(spikes):.2f}, below 2: {100 * np.mean(np.array(spikes) < 2):.0f} % of joins "
          f"(copy baseline: median {statistics.median(copy_spikes):.2f}, max {max(copy_spikes):.2f}); "
          f"raw vs song median: median {statistics.median(raw):.2f}")
    print(f"clicks: engine {sum(c.clicks for c in done)}, copy {sum(c.clicks_copy for c in done)}, "
          f"silence {sum(c.clicks_silence for c in done)} (of {2 * len(done)} joins)")
    print(f"confidence: median {statistics.median(c.confidence for c in done):.2f}, "
          f"below {DEFAULT_MIN_CONFIDENCE} (job would fail): {len(done) - len(confident)}")
    if snr_target:
        snrs = np.array([c.snr for c in done])
        print(f"gap SNR: median {np.median(snrs):.1f} dB, > 20 dB in {np.sum(snrs > 20)}/{len(snrs)} cases")
    worse = [c for c in done if not c.better]
    if worse:
        print("not better than both: " + ", ".join(f"{c.song}@{c.start:.0f}+{c.length:.0f} "
                                                   f"({c.lsd:.1f} vs {min(c.lsd_silence, c.lsd_copy):.1f}, "
                                                   f"conf {c.confidence:.2f})" for c in worse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--excerpt", type=float, default=240.0, help="seconds of each real track to use")
    parser.add_argument("--tracks", type=int, default=0, help="only the first N tracks (0 = all)")
    parser.add_argument("--quick", action="store_true", help="one generated song, three tracks")
    args = parser.parse_args()
    started = time.perf_counter()
    generated: list[Case] = []
    songs = [(0, 120.0), (1, 97.0), (2, 133.0)][:1 if args.quick else 3]
    print("generated songs with exact repeats (240 s):")
    for seed, bpm in songs:
        audio, sr = make_song_array(240.0, seed=seed, bpm=bpm)
        generated += song_cases(f"gen{seed}@{bpm:.0f}", audio, sr, [61.3, 103.7, 151.1, 187.9])
    tracks = sorted(glob.glob(MUSIC))
    if args.tracks or args.quick:
        tracks = tracks[:args.tracks or 3]
    real: list[Case] = []
    if not tracks:
        print(f"\nno real music at {MUSIC} (apt-get install planetblupi-music-ogg)")
    for path in tracks:
        with sf.SoundFile(path) as f:
            audio = f.read(int(args.excerpt * f.samplerate), dtype="float32", always_2d=True)
            sr = f.samplerate
        length = len(audio) / sr
        positions = [round(length * q, 1) for q in (0.2, 0.4, 0.6, 0.8)]
        print(f"\n{Path(path).name} (first {length:.0f} s):")
        real += song_cases(Path(path).stem, audio, sr, positions)
    summarise("generated songs", generated, snr_target=True)
    summarise("real music (planetblupi)", real)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
