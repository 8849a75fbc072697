"""The few words of a prompt the embedded engine can follow: energy, density and brightness.

The engine re-uses the song's own material, so a prompt can only choose *among* the passages that fit. A small
fixed vocabulary is understood: comparatives (calmer, quieter, softer, louder, busier, denser, brighter, darker...),
a few words that describe a section (sparse, intense, build-up, breakdown, drop) and any of their adjectives after
"more" or "less" ("more intense", "less busy"). "not", "no", "without" and "less" before a word turn it round
("not so loud" asks for quieter material). A bare "soft" or "dark" is *not* understood: in "soft guitar solo" it
names an instrument's sound, which re-used material cannot follow; "softer" asks for a change it can.

When a prompt steers, the engine plans more candidates than variants, renders them, and measures each one's range
against the music around it (level, onsets per second, spectral centroid, and for a build-up how much louder its
second half is than its first). Candidates whose confidence is within ``FIT_MARGIN`` of the best one's are ranked by
how far they move the asked way; the rest follow by confidence. The manifest says what was understood, what the
chosen material measured, and that the rest of the prompt was not followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from bridge.audio import fades

FIT_MARGIN = 0.1  # candidates this close to the best confidence fit as well as it: only they are steered
PLANS_PER_VARIANT = 4  # a steering prompt asks the planners for this many plans per variant (at least MIN_PLANS)
MIN_PLANS = 8
CONTEXT_SECONDS = 8.0  # music either side of the range that the candidates are compared with
# One unit of each axis: 3 dB of level weighs as much as twice the onsets per second, 20 % in centroid, 3 dB of
# rise. Onset counts over a few seconds are noisy: where librosa's counts (bench/steering.py's judge) of two fitting
# candidates differ by a quarter onset per second or more, ours order them alike only 4 times in 5 (24 dev songs),
# while both measure level alike; so density weighs less than level. Calmer/intense picks that moved both ways on
# dev inpaints: 79 % at 30 % per unit, 87 % at 50 %, 90 % from 100 % to 300 %.
# Other density measures, on the same 24 dev songs (pairs of fitting candidates whose librosa counts differ by more
# than either count's spread over the judge's four grids): our counter orders them as the judge does 77 % of the
# time, the mean flux 62 %, a count against each piece's own loudest rise (as librosa thresholds) 74 %, the mean of
# the three measures' log ratios 86 %. Yet the mean's calmer/intense inpaint picks moved both ways less often (84
# against 90 %; 93 against 96 % where the song offers a density choice beyond the judge's noise): the picks the
# measures disagree on are candidates 0-2 onsets apart, a coin toss for any counter. Also no better: among candidates
# within 0.05-0.25 unit of the best score, the one that goes furthest on density (77-89 %); the worse axis instead of
# the sum (67 %); a wrong-way axis counted double (88-90 %).
SCALES = {"level": 3.0, "density": 1.0, "brightness": np.log2(1.2), "rise": 3.0}

# adjective: what it asks for on each axis (+1 more, -1 less)
_ADJECTIVES = {
    "calm": {"level": -1, "density": -1}, "relaxed": {"level": -1, "density": -1},
    "quiet": {"level": -1}, "soft": {"level": -1}, "gentle": {"level": -1}, "mellow": {"level": -1},
    "loud": {"level": +1}, "strong": {"level": +1}, "powerful": {"level": +1},
    "intense": {"level": +1, "density": +1}, "energetic": {"level": +1, "density": +1},
    "busy": {"density": +1}, "dense": {"density": +1}, "full": {"density": +1},
    "sparse": {"density": -1}, "empty": {"density": -1}, "minimal": {"density": -1},
    "bright": {"brightness": +1}, "dark": {"brightness": -1},
    "build-up": {"rise": +1}, "breakdown": {"level": -1, "density": -1}, "drop": {"level": +1, "density": +1},
}
_COMPARATIVES = {
    "calmer": "calm", "quieter": "quiet", "softer": "soft", "gentler": "gentle", "mellower": "mellow",
    "louder": "loud", "stronger": "strong", "busier": "busy", "denser": "dense", "fuller": "full",
    "sparser": "sparse", "emptier": "empty", "brighter": "bright", "darker": "dark",
}
_ON_THEIR_OWN = {"sparse", "intense", "energetic", "minimal", "build-up", "breakdown", "drop"}
_NEGATORS = {"not", "no", "less", "without", "never", "don't", "dont", "isn't", "nothing"}
_FILLERS = {"more", "too", "so", "as", "very", "much", "a", "an", "the", "bit", "little", "lot", "way", "even",
            "any", "that", "slightly", "somewhat", "rather", "quite", "really", "of", "make", "it", "sound", "get",
            "be", "go", "keep"}
_SPELLINGS = ((re.compile(r"\bbuild(?:ing)?[\s-]?ups?\b"), "build-up"), (re.compile(r"\bbuilds?\b(?!-)"), "build-up"),
              (re.compile(r"\bbreak[\s-]?downs?\b"), "breakdown"), (re.compile(r"\bdrops\b"), "drop"))
_TOKEN = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_WORDS_FOR = {("level", -1): "quieter", ("level", +1): "louder", ("density", -1): "sparser",
              ("density", +1): "busier", ("brightness", -1): "darker", ("brightness", +1): "brighter",
              ("rise", +1): "rising", ("rise", -1): "falling"}


@dataclass(frozen=True)
class Character:
    """What a stretch of audio sounds like, in the measures steering compares."""

    level_db: float  # RMS
    onsets_per_s: float
    centroid_hz: float
    rise_db: float  # level of its second half minus its first


@dataclass
class Steering:
    """The words of one prompt the engine follows, and what they ask for on each axis."""

    phrases: list[str]  # the prompt's own words that were understood, e.g. ["calmer", "less busy"]
    wants: dict[str, int]  # axis -> +1 / -1 (axes the words contradict each other on are left out)
    rest: str  # the rest of the prompt's words (lower case, without punctuation): not followed
    contradicted: list[str] = field(default_factory=list)

    def plan_count(self, variants: int) -> int:
        """How many plans to ask for: more than variants, so there is a choice (none when the words cancel out)."""
        return max(MIN_PLANS, PLANS_PER_VARIANT * variants) if self.wants else variants

    def score(self, change: dict[str, float]) -> float:
        """How far a candidate's change from the context goes the asked way, in units of ``SCALES``."""
        return float(sum(sign * change[axis] / SCALES[axis] for axis, sign in self.wants.items()))

    def notes(self) -> dict:
        """The manifest's account of the prompt, before any material is chosen."""
        asked = ", ".join(_WORDS_FOR[axis, sign] for axis, sign in self.wants.items())
        notes = {"understood": self.phrases, "asked": asked or "nothing (the words contradict each other)",
                 "not_followed": self.rest or "nothing else"}
        if self.contradicted:
            notes["contradicted"] = (f"{' and '.join(self.contradicted)}: the words ask for both ways, so neither "
                                     f"is followed")
        return notes


def understand(prompt: str) -> Steering | None:
    """The steering words of ``prompt``, or None when it has none (the engine then ignores the prompt, as before)."""
    text = prompt.lower().replace("’", "'")
    for pattern, spelling in _SPELLINGS:
        text = pattern.sub(spelling, text)
    tokens = _TOKEN.findall(text)
    phrases, used, signs = [], set(), {}
    for i, token in enumerate(tokens):
        adjective = _COMPARATIVES.get(token, token)
        if adjective not in _ADJECTIVES:
            continue
        j = i  # the modifiers before the word: "a little less", "not so", "don't make it"
        while j > 0 and i - j < 4 and (tokens[j - 1] in _FILLERS or tokens[j - 1] in _NEGATORS):
            j -= 1
        modifiers = set(tokens[j:i])
        negated = bool(modifiers & _NEGATORS)
        if token not in _COMPARATIVES and token not in _ON_THEIR_OWN and not (negated or "more" in modifiers):
            continue  # a bare adjective describes an instrument or a mood ("soft guitar"), not a change
        while j < i and tokens[j] in _FILLERS and tokens[j] != "more":
            j += 1  # "a little less busy" is reported as "less busy"
        phrases.append(" ".join(tokens[j:i + 1]))
        used.update(range(j, i + 1))
        for axis, sign in _ADJECTIVES[adjective].items():
            signs.setdefault(axis, set()).add(-sign if negated else sign)
    if not phrases:
        return None
    wants = {axis: next(iter(both)) for axis, both in signs.items() if len(both) == 1}
    contradicted = [f"{_WORDS_FOR[axis, +1]} and {_WORDS_FOR[axis, -1]}" for axis, both in signs.items()
                    if len(both) > 1]
    rest = " ".join(token for k, token in enumerate(tokens) if k not in used)
    return Steering(phrases, wants, rest, contradicted)


class Ruler:
    """Measures candidates against the music around the range, with the context's own onset threshold."""

    def __init__(self, context: list[np.ndarray], sample_rate: int):
        self.sample_rate = sample_rate
        self.n_fft = 1 << int(round(np.log2(0.046 * sample_rate)))
        self.hop = self.n_fft // 4
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self.bands = _band_edges(self.n_fft, sample_rate)
        pieces = [fades.mono(piece) for piece in context if len(piece) >= self.n_fft]
        powers = [self._power(piece) for piece in pieces]
        loudest = max((float(self._band_db(power).max()) for power in powers), default=-100.0)
        self.floor_db = loudest - 60.0  # quieter detail is noise: it must not count as onsets
        fluxes = [self._flux(power) for power in powers]
        self.onset_delta = max(float(np.std(np.concatenate(fluxes))), 1e-3) if fluxes else 1.0
        self.context = self._character(pieces, powers, fluxes)

    def change(self, audio: np.ndarray) -> tuple[Character, dict[str, float]]:
        """The candidate's character and its change from the context per axis (dB; log2 ratios; dB)."""
        mine = self.measure(audio)
        return mine, {"level": mine.level_db - self.context.level_db,
                      "density": float(np.log2((mine.onsets_per_s + 0.25) / (self.context.onsets_per_s + 0.25))),
                      "brightness": float(np.log2(max(mine.centroid_hz, 1.0) / max(self.context.centroid_hz, 1.0))),
                      "rise": mine.rise_db}

    def measure(self, audio: np.ndarray) -> Character:
        mono = fades.mono(audio)
        if len(mono) < self.n_fft:
            return self._character([], [], [])
        power = self._power(mono)
        return self._character([mono], [power], [self._flux(power)])

    def _character(self, pieces: list[np.ndarray], powers: list[np.ndarray], fluxes: list[np.ndarray]) -> Character:
        if not pieces:
            return Character(-120.0, 0.0, 0.0, 0.0)
        samples = np.concatenate(pieces)
        spectrum = sum(power.sum(axis=0) for power in powers)
        total = float(spectrum.sum())
        centroid = float(spectrum @ np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)) / total if total else 0.0
        halves = np.array_split(samples, 2)
        rise = fades.level_db(halves[1]) - fades.level_db(halves[0])
        onsets = sum(self._onsets(flux) for flux in fluxes)
        return Character(fades.level_db(samples), onsets * self.sample_rate / len(samples), centroid, rise)

    def _power(self, mono: np.ndarray) -> np.ndarray:
        """(frames, bins) power spectra of ~46 ms windows every quarter window."""
        frames = np.lib.stride_tricks.sliding_window_view(mono, self.n_fft)[::self.hop]
        return np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2

    def _band_db(self, power: np.ndarray) -> np.ndarray:
        return 10.0 * np.log10(np.maximum(np.add.reduceat(power, self.bands[:-1], axis=1), 1e-12))

    def _flux(self, power: np.ndarray) -> np.ndarray:
        """Spectral flux per hop: the mean rise in dB of log-spaced bands, above the context's noise floor."""
        floored = np.maximum(self._band_db(power), self.floor_db)
        return np.mean(np.maximum(np.diff(floored, axis=0), 0.0), axis=1)

    def _onsets(self, flux: np.ndarray) -> int:
        """Peaks of the flux at least 50 ms apart that stand out from the 200 ms around them by the context's
        typical flux variation (the same threshold for the context and every candidate)."""
        if len(flux) < 3:
            return 0
        reach = max(int(round(0.05 * self.sample_rate / self.hop)), 1)
        nearby = np.lib.stride_tricks.sliding_window_view(np.pad(flux, reach, mode="edge"), 2 * reach + 1)
        around = np.lib.stride_tricks.sliding_window_view(np.pad(flux, 4 * reach, mode="edge"), 8 * reach + 1)
        peaks = (flux >= nearby.max(axis=1)) & (flux - around.mean(axis=1) >= self.onset_delta)
        return int(np.count_nonzero(peaks))


def context_around(song, sample_rate: int, start: float, end: float, operation: str) -> list[np.ndarray]:
    """The music the candidates are compared with: up to ``CONTEXT_SECONDS`` before the range and (inpaint) after."""
    first, last = int(round(start * sample_rate)), int(round(end * sample_rate))
    reach = int(round(CONTEXT_SECONDS * sample_rate))
    pieces = [song.read(max(first - reach, 0), first - max(first - reach, 0))]
    if operation == "inpaint":
        pieces.append(song.read(last, max(min(last + reach, song.frames) - last, 0)))
    return [piece for piece in pieces if len(piece)]


def rank(steering: Steering, ruler: Ruler, measured: list[tuple[Character, dict[str, float]]],
         confidences: list[float]) -> list[tuple[int, dict]]:
    """Candidate indices in delivery order, each with its manifest note.

    ``measured`` holds each candidate's ``ruler.change`` of its rendered range, ``confidences`` their confidences
    (all above the floor, best first).
    """
    best = max(confidences)
    fitting = [i for i, sure in enumerate(confidences) if sure >= best - FIT_MARGIN]
    steered = sorted(fitting, key=lambda i: -steering.score(measured[i][1]))
    order = steered + [i for i in range(len(measured)) if i not in fitting]
    # the asked ways no fitting candidate goes: the note says so rather than leave "chose" to imply a choice
    missing = [axis for axis, sign in steering.wants.items()
               if not any(np.sign(measured[i][1][axis]) == sign for i in fitting)]
    phrases = ", ".join(steering.phrases)
    out = []
    for place, i in enumerate(order):
        character, change = measured[i]
        note = steering.notes()
        note["measured"] = {"level_db": round(change["level"], 2),
                            "onsets_per_s": round(character.onsets_per_s, 2),
                            "context_onsets_per_s": round(ruler.context.onsets_per_s, 2),
                            "centroid_hz": round(character.centroid_hz),
                            "context_centroid_hz": round(ruler.context.centroid_hz),
                            "rise_db": round(change["rise"], 2)}
        described = _describe(steering, change)
        if fitting == [i]:
            note["changed"] = f"{phrases}: the only candidate that fits is {described}"
        elif i in fitting:
            note["changed"] = (f"{phrases}: chose material {described}, the {_ordinal(place + 1)} of {len(fitting)} "
                               f"candidates that fit")
        else:
            note["changed"] = (f"{phrases}: no further candidate fits within {FIT_MARGIN} of the best confidence; "
                               f"this one, chosen by confidence, is {described}")
        if missing:
            note["changed"] += "; nothing that fits here is " + " or ".join(_WORDS_FOR[axis, steering.wants[axis]]
                                                                          for axis in missing)
        out.append((i, note))
    return out


def _describe(steering: Steering, change: dict[str, float]) -> str:
    """E.g. '4.1 dB quieter and 30 % sparser than the context' (on the asked axes, whichever way it went)."""
    parts = []
    for axis in ("level", "density", "brightness"):
        if axis in steering.wants:
            value = change[axis]
            amount = f"{abs(value):.1f} dB" if axis == "level" else f"{abs(2.0 ** value - 1.0) * 100:.0f} %"
            parts.append(f"{amount} {_WORDS_FOR[axis, 1 if value >= 0 else -1]}")
    text = " and ".join(parts) + " than the context" if parts else ""
    if "rise" in steering.wants:
        rise = change["rise"]
        text += ("; " if text else "") + (f"that {'rises' if rise >= 0 else 'falls'} {abs(rise):.1f} dB from its "
                                          f"first half to its second")
    return text or "by confidence alone"


def _ordinal(n: int) -> str:
    return {1: "best", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _band_edges(n_fft: int, sample_rate: int) -> np.ndarray:
    """FFT bin edges of ~36 bands spaced evenly on a log scale from 60 Hz to 16 kHz (or Nyquist)."""
    top = min(16000.0, sample_rate / 2 * 0.95)
    hz = np.geomspace(60.0, top, 37)
    edges = np.unique(np.round(hz * n_fft / sample_rate).astype(int))
    return edges[(edges > 0) & (edges <= n_fft // 2)]


