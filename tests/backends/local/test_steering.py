"""Prompt steering in the embedded engine: "calmer" or "more intense" chooses among the passages that fit, the
manifest says what was understood and what it changed, and a prompt without such words changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import engine
from bridge.backends.local.analysis import without_range
from bridge.backends.local.cache import AnalysisCache, content_key
from bridge.backends.local.inpaint import plan_inpaint
from bridge.backends.local.limit import limited
from bridge.backends.local.render import render
from bridge.backends.local.steering import Ruler, rank, understand
from bridge.models import JobSpec
from tests.songs import make_song_array, write

SECTION = 8.0  # seconds: four bars at 120 BPM
GAINS = (1.0, 1.0, 0.25, 1.0, 0.25, 1.0, 1.0, 0.25)  # the same four bars, loud or 12 dB down


@pytest.fixture(scope="module")
def song_file(tmp_path_factory) -> Path:
    """64 s: one four-bar passage of the demo song played eight times, three of them 12 dB quieter."""
    audio, sr = make_song_array(40.0, seed=2)
    passage = audio[int(SECTION * sr):int(2 * SECTION * sr)]
    song = np.concatenate([passage * np.float32(gain) for gain in GAINS])
    return write(tmp_path_factory.mktemp("songs") / "loud-and-quiet.wav", song, sr, subtype="FLOAT")


def render_job(path: Path, folder: Path, prompt: str, **fields) -> list[dict]:
    values = {"job_id": "j-steer", "operation": "inpaint", "source": path, "source_info": probe(path),
              "backend": "local", "start": 44.6, "end": 47.6, "num_outputs": 1, "prompt": prompt}
    values.update(fields)
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    return engine.render_job(JobSpec(**values).to_json(), str(work), str(folder / "cache"), 0.2)


def level_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-12))


def range_of(variant: dict, start: float, end: float) -> np.ndarray:
    audio, sr = sf.read(variant["path"], dtype="float32", always_2d=True)
    first = int(round(variant["span_start"] * sr))
    return audio[int(round(start * sr)) - first:int(round(end * sr)) - first]


def test_calmer_chooses_a_quiet_repeat_and_more_intense_a_loud_one(song_file, tmp_path):
    source, sr = sf.read(str(song_file), dtype="float32", always_2d=True)
    context = level_db(source[int(36.6 * sr):int(44.6 * sr)])  # the loud section the range sits in, and before
    [calm] = render_job(song_file, tmp_path / "calm", "calmer please")
    [intense] = render_job(song_file, tmp_path / "intense", "more intense")
    [plain] = render_job(song_file, tmp_path / "plain", "")
    calm_db, intense_db = level_db(range_of(calm, 44.6, 47.6)), level_db(range_of(intense, 44.6, 47.6))
    assert calm_db < context - 3.0  # a quiet repeat, even after the join's level matching (at most 6 dB)
    assert intense_db > calm_db + 3.0
    assert level_db(range_of(plain, 44.6, 47.6)) > calm_db + 3.0  # the surest passage is a loud one
    for variant in (calm, intense):
        assert variant["splice"]["confidence"] >= 0.2
        assert variant["splice"]["confidence"] >= plain["splice"]["confidence"] - 0.1  # it fits as well


def test_the_manifest_says_what_was_understood_what_it_changed_and_what_was_not_followed(song_file, tmp_path):
    [variant] = render_job(song_file, tmp_path, "Calmer, with a soft guitar solo", lyrics="la la")
    notes = variant["notes"]
    steering = notes["steering"]
    assert steering["understood"] == ["calmer"]
    assert steering["asked"] == "quieter, sparser"
    assert re.fullmatch(r"calmer: chose material \d+\.\d dB quieter and \d+ % (sparser|busier) than the context, "
                        r"the best of \d+ candidates that fit(; nothing that fits here is sparser)?",
                        steering["changed"]), steering["changed"]
    assert steering["measured"]["level_db"] < -3.0
    source, sr = sf.read(str(song_file), dtype="float32", always_2d=True)
    context = np.concatenate([source[int(round(36.6 * sr)):int(round(44.6 * sr))],
                              source[int(round(47.6 * sr)):int(round(55.6 * sr))]])  # 8 s either side
    delivered = range_of(variant, 44.6, 47.6)
    # the figure describes the audio delivered (the chosen variant is rendered again after the choice)
    assert level_db(delivered.mean(axis=1)) - level_db(context.mean(axis=1)) == pytest.approx(
        steering["measured"]["level_db"], abs=0.01)
    assert steering["not_followed"] == "with a soft guitar solo"
    assert notes["ignored"] == {"prompt": "with a soft guitar solo", "lyrics": "la la"}
    assert "nothing else in it is followed" in notes["engine"]


def test_a_prompt_without_steering_words_changes_nothing(song_file, tmp_path):
    """Bit for bit what the engine made before steering: the planner asked for exactly the variants wanted."""
    plain = render_job(song_file, tmp_path / "a", "", num_outputs=2)
    worded = render_job(song_file, tmp_path / "b", "soft guitar solo, dark and moody", num_outputs=2)
    audio, sr = sf.read(str(song_file), dtype="float32", always_2d=True)
    cached = AnalysisCache(tmp_path / "a" / "cache").load(content_key(song_file))  # the analysis the job used
    analysis = without_range(cached, 44.6, 47.6)
    plans = plan_inpaint(analysis, 44.6, 47.6, 2)
    span = (int(round(43.6 * sr)), int(round(48.6 * sr)))
    assert len(plain) == len(worded) == len(plans) == 2
    for a, b, plan in zip(plain, worded, plans):
        expected, joins, _ = render(audio, sr, plan, 44.6, 47.6, span, analysis.beat_period)
        expected = np.concatenate(list(limited([expected], sr, analysis.peak)))  # as written: under the song's peak
        np.testing.assert_array_equal(sf.read(a["path"], dtype="float32", always_2d=True)[0], expected)
        np.testing.assert_array_equal(sf.read(b["path"], dtype="float32", always_2d=True)[0], expected)
        assert a["splice"] == b["splice"] and a["splice"]["joins"] == joins
        assert "steering" not in b["notes"]
        assert b["notes"]["ignored"] == {"prompt": "soft guitar solo, dark and moody"}
        assert "does not follow prompt" in b["notes"]["engine"]


def test_an_extension_asked_to_build_up_says_how_much_its_material_rises(song_file, tmp_path):
    [variant] = render_job(song_file, tmp_path, "build up", operation="extend", start=None, end=None,
                           extend_after=40.0, duration=12.0)
    steering = variant["notes"]["steering"]
    assert steering["understood"] == ["build-up"]
    assert re.match(r"build-up: chose material that (rises|falls) \d+\.\d dB from its first half to its second",
                    steering["changed"])


@pytest.mark.parametrize(("prompt", "phrases", "wants"), [
    ("calmer", ["calmer"], {"level": -1, "density": -1}),
    ("a little less busy", ["less busy"], {"density": -1}),
    ("not so loud, brighter", ["not so loud", "brighter"], {"level": -1, "brightness": +1}),
    ("more intense drums", ["more intense"], {"level": +1, "density": +1}),
    ("Build-up into the drop", ["build-up", "drop"], {"rise": +1, "level": +1, "density": +1}),
    ("a sparse breakdown", ["sparse", "breakdown"], {"density": -1, "level": -1}),
    ("don't make it darker", ["don't make it darker"], {"brightness": +1}),
])
def test_the_vocabulary_and_its_negations(prompt, phrases, wants):
    steering = understand(prompt)
    assert steering.phrases == phrases
    assert steering.wants == wants


@pytest.mark.parametrize("prompt", ["", "soft guitar solo", "dark and moody", "loud drums", "a guitar solo"])
def test_words_that_only_describe_an_instrument_or_mood_do_not_steer(prompt):
    assert understand(prompt) is None


def test_contradicting_words_are_reported_and_neither_is_followed():
    steering = understand("quieter but louder, and brighter")
    assert steering.wants == {"brightness": +1}
    assert steering.notes()["contradicted"] == "louder and quieter: the words ask for both ways, so neither is followed"
    assert steering.plan_count(2) > 2
    assert understand("quieter and louder").plan_count(2) == 2  # nothing left to steer: no extra candidates


def test_a_word_said_many_times_is_understood_and_reported_once(song_file, tmp_path):
    [variant] = render_job(song_file, tmp_path, "calmer " * 142)
    steering = variant["notes"]["steering"]
    assert steering["understood"] == ["calmer"]
    assert steering["changed"].startswith("calmer: ") and steering["changed"].count("calmer") == 1
    assert steering["not_followed"] == "nothing else" and "ignored" not in variant["notes"]
    assert understand("calmer, quieter and calmer, calmer").phrases == ["calmer", "quieter"]


@pytest.mark.parametrize(("prompt", "rest"), [
    ("calmer 🎸🎸", "🎸🎸"),  # an emoji is what the producer wrote: the manifest says it was not followed
    ("Calmer, über-bass ♪ x2!", "über-bass ♪ x2"),  # not "ber-bass x"
    ("calmer ñcalmer", "ñcalmer"),  # another word, not "calmer" again
    ("(calmer!!!)", ""),  # punctuation alone is nothing left to follow
])
def test_what_was_not_followed_keeps_every_word_and_symbol_but_the_understood_ones(prompt, rest):
    steering = understand(prompt)
    assert steering.phrases == ["calmer"]
    assert steering.rest == rest
    assert steering.notes()["not_followed"] == (rest or "nothing else")


@pytest.mark.parametrize(("prompt", "phrases", "wants"), [
    ("more chill", ["more chill"], {"level": -1, "density": -1}),  # what "calmer" asks
    ("a mellower outro", ["mellower"], {"level": -1, "density": -1}),
    ("harder", ["harder"], {"level": +1, "density": +1}),  # what "more intense" asks
    ("heavier drums", ["heavier"], {"level": +1, "density": +1}),
    ("more energy", ["more energy"], {"level": +1, "density": +1}),
    ("less energy", ["less energy"], {"level": -1, "density": -1}),
])
def test_the_words_producers_use_for_calmer_and_more_intense(prompt, phrases, wants):
    steering = understand(prompt)
    assert (steering.phrases, steering.wants) == (phrases, wants)


@pytest.mark.parametrize("prompt", ["heavy bass", "hard kick", "energy drink", "mellow piano", "chill hop beat"])
def test_hard_heavy_mellow_chill_and_energy_on_their_own_name_a_sound_and_do_not_steer(prompt):
    assert understand(prompt) is None


def clicks(seconds: float, per_second: float, sr: int, gain: float = 0.5, brightness: float = 1.0) -> np.ndarray:
    """Short decaying noise bursts at a steady rate; ``brightness`` < 1 smooths them (a darker sound)."""
    rng = np.random.default_rng(1)
    audio = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr))
    if brightness < 1.0:
        kernel = np.ones(int(round(1 / brightness)))
        burst = np.convolve(burst, kernel / len(kernel), mode="same")
    for at in np.arange(0.1, seconds - 0.05, 1.0 / per_second):
        audio[int(at * sr):int(at * sr) + len(burst)] += (gain * burst).astype(np.float32)
    return audio[:, None]


def test_the_ruler_measures_level_onsets_and_brightness_against_the_context():
    sr = 44100
    ruler = Ruler([clicks(8.0, 4.0, sr)], sr)
    assert ruler.context.onsets_per_s == pytest.approx(4.0, abs=0.3)
    sparse, change = ruler.change(clicks(4.0, 2.0, sr))
    assert sparse.onsets_per_s == pytest.approx(2.0, abs=0.3)
    assert change["density"] < -0.5
    _, change = ruler.change(clicks(4.0, 4.0, sr, gain=0.125))
    assert change["level"] == pytest.approx(-12.0, abs=1.0)
    assert abs(change["density"]) < 0.2  # the same pattern, quieter: as dense
    _, change = ruler.change(clicks(4.0, 4.0, sr, brightness=0.1))
    assert change["brightness"] < -0.5


def test_calmer_and_more_intense_choose_material_that_moves_every_asked_way():
    """A much quieter but busier passage scores calmest by the sum of the axes, yet it is not calmer than the loud
    busy one "more intense" chooses; "calmer" takes the passage quieter *and* sparser than another that fits."""
    sr = 44100
    ruler = Ruler([clicks(8.0, 4.0, sr)], sr)
    quiet_busy, calm, loud_busy = (ruler.change(clicks(8.0, rate, sr, gain=gain))
                                   for rate, gain in ((8.0, 0.15), (3.0, 0.45), (6.0, 0.5)))
    measured = [quiet_busy, calm, loud_busy]
    calmer, intense, quieter = understand("calmer"), understand("more intense"), understand("quieter")
    assert calmer.score(quiet_busy[1]) > calmer.score(calm[1])  # the sum alone would choose the busy one
    assert quiet_busy[0].onsets_per_s > loud_busy[0].onsets_per_s > calm[0].onsets_per_s
    assert quiet_busy[0].level_db < calm[0].level_db < loud_busy[0].level_db
    first = {words: rank(steering, ruler, measured, [0.9, 0.9, 0.9])[0][0]
             for words, steering in (("calmer", calmer), ("intense", intense), ("quieter", quieter))}
    assert first == {"calmer": 1, "intense": 2, "quieter": 0}


def test_a_prompt_of_only_spaces_is_no_prompt(song_file, tmp_path):
    """An outside probe: "   " was reported as a prompt ignored, "   "."""
    [variant] = render_job(song_file, tmp_path, "   ")
    assert "ignored" not in variant["notes"] and "steering" not in variant["notes"], variant["notes"]
