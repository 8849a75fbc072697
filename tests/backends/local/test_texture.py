"""An ambient cue extended where no passage of it fits: the engine continues its sound with a texture of the cue's
own audio, says so in the manifest, repeats no stretch as a loop and ends cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import engine
from bridge.backends.local.agreement import CONFIDENCE_DB
from bridge.backends.local.extend import LOOP_BARS
from bridge.backends.local.joins import MAX_GAIN_DB
from bridge.models import JobSpec
from tests.songs import write

CUT, SECONDS = 56.0, 20.0


def drone(seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """A through-composed pad: six partials whose levels and tunings drift independently, over soft noise, so
    the sound holds steady while no stretch of it comes back."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for partial in (110.0, 165.0, 220.0, 277.2, 330.0, 440.0):
        drift = np.cumsum(rng.standard_normal(len(t) // 4410 + 2)) * 0.002
        tuning = np.interp(t, np.arange(len(drift)) * 0.1, drift)
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.013, 0.05) * t + rng.uniform(0, 2 * np.pi))
        out += swell * np.sin(2 * np.pi * partial * (t + np.cumsum(tuning) / sample_rate) + rng.uniform(0, 6.3))
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(32) / 32, mode="same")
    out = 0.05 * out + 0.05 * noise
    return np.stack([out, np.roll(out, 441)], axis=1).astype(np.float32)


def extend_cue(folder: Path, seconds: float) -> tuple[list[dict], np.ndarray, int]:
    """The variants of extending the ambient cue by ``seconds`` (and the cue, and its rate)."""
    sr = 44100
    song = drone(CUT, sr)
    path = write(folder / "ambient.wav", song, sr, subtype="FLOAT")
    spec = JobSpec(job_id="j-texture", operation="extend", source=path, source_info=probe(path), backend="local",
                   extend_after=CUT, duration=seconds, num_outputs=2)
    (folder / "work").mkdir()
    variants = engine.render_job(spec.to_json(), str(folder / "work"), str(folder / "cache"), 0.1)
    return variants, song, sr


@pytest.fixture(scope="module")
def extended(tmp_path_factory) -> tuple[list[dict], np.ndarray, int]:
    return extend_cue(tmp_path_factory.mktemp("texture"), SECONDS)


@pytest.fixture(scope="module")
def long_extended(tmp_path_factory) -> tuple[list[dict], np.ndarray, int]:
    """Two minutes: most stretches of the cue are heard several times."""
    return extend_cue(tmp_path_factory.mktemp("long-texture"), 120.0)


def texture_variant(variants: list[dict]) -> dict:
    found = [v for v in variants if "texture" in v["splice"]]
    assert found, [v["splice"]["confidence"] for v in variants]
    return found[0]


def test_an_ambient_cue_is_extended_with_a_texture_that_says_what_it_is(extended):
    variants, _, _ = extended
    variant = texture_variant(variants)
    splice = variant["splice"]
    assert splice["texture"].startswith("a texture, not a passage of the song")
    assert all(p["texture"] for p in splice["passages"])
    assert all(0.0 <= p["from"] and p["from"] + p["until"] - p["at"] <= CUT + 1e-3 for p in splice["passages"])
    assert 0.1 <= splice["confidence"] <= 1.0
    assert splice["ending"] == "fade"


def test_the_texture_keeps_the_level_and_ends_cleanly(extended):
    variants, song, sr = extended
    variant = texture_variant(variants)
    audio, rate = sf.read(variant["path"], dtype="float32", always_2d=True)
    assert rate == sr
    start = int(round((CUT - variant["span_start"]) * sr))
    assert len(audio) == start + int(round(SECONDS * sr))
    body = audio[start:start + int(round((SECONDS - 8.0) * sr))]  # before the closing fade
    before = song[-int(6.0 * sr):]
    level = lambda x: 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))  # noqa: E731
    assert abs(level(body) - level(before)) < 2.0
    median = np.median(np.abs(audio[start:].mean(axis=1)))
    tail = np.sqrt(np.mean(audio[-int(0.02 * sr):].mean(axis=1) ** 2))
    assert tail < median * 10 ** (-30 / 20)


@pytest.mark.parametrize("extension", ["extended", "long_extended"])
def test_the_texture_plays_no_stretch_three_times_within_eight_bars(extension, request):
    # a long texture used to forget all but a stretch's first hearings and its latest, and so loop freely
    variants, _, _ = request.getfixturevalue(extension)
    variant = texture_variant(variants)
    bar = 4 * 60.0 / variant["splice"]["tempo"]
    heard: dict[int, list[float]] = {}
    for p in variant["splice"]["passages"]:
        for t in np.arange(p["at"], p["until"], 0.25):
            source = p["from"] + (t - p["at"])
            heard.setdefault(int(round(source / 0.25)), [float(source)]).append(float(t))
    for times in heard.values():
        gaps = np.diff(sorted(times))
        gaps = gaps[gaps > 1.0]  # the neighbouring quarter seconds of one hearing
        assert not np.any((gaps[:-1] < LOOP_BARS * bar) & (gaps[1:] < LOOP_BARS * bar)), times


def test_no_variant_of_a_long_extension_grows_louder_than_the_cue(long_extended):
    # each join matches the level of what it follows, and a walk over a swelling cue used to compound those gains
    # (+10 dB after two minutes, +40 dB after ten): a take far louder than the music it continues
    variants, song, sr = long_extended
    loudest = lambda x: max(10 * np.log10(np.mean(np.square(x[at:at + 2 * sr], dtype=np.float64)))  # noqa: E731
                            for at in range(0, len(x) - 2 * sr, sr))
    for variant in variants:
        audio, _ = sf.read(variant["path"], dtype="float32", always_2d=True)
        extension = audio[int(round((CUT - variant["span_start"]) * sr)):]
        assert loudest(extension) <= loudest(song) + MAX_GAIN_DB + 1.0, variant["splice"]["passages"]


def test_the_variants_come_in_the_order_of_agreement_less_confidence(extended):
    """Each variant says how far (dB) its sound lies from the other candidates the job rendered; variant 1 is the
    one with the least distance less ``CONFIDENCE_DB`` per unit of confidence (rounding aside)."""
    variants, _, _ = extended
    score = [v["splice"]["apart_db"] - CONFIDENCE_DB * v["splice"]["confidence"] for v in variants]
    assert len(score) == 2 and all(v["splice"]["apart_db"] > 0 for v in variants)
    assert score[0] <= score[1] + 0.01
