"""What an audition plays, worked out from a delivered job's files, and how the audio callback switches: the
producer's promises (bars of context at the song's tempo, the louder take does not win, no clicks) without a
sound card."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from bridge.audition.mixer import Mixer, ramp
from bridge.audition.program import (
    AuditionError,
    bar_seconds,
    load_programs,
    readable_source,
)
from bridge.audition.sound_process import open_output
from bridge.config import Config
from bridge.models import State
from tests.audition.jobs import RATE, delivered_job


def test_a_whole_song_delivery_plays_the_same_as_a_patch(tmp_path):
    record = delivered_job(tmp_path, tempo=120.0)
    patch = load_programs(record, RATE, 2, 1)
    song, _ = sf.read(record.spec.source, dtype="float32")
    span, _ = sf.read(tmp_path / "song_v1.wav", dtype="float32")
    song[9 * RATE:13 * RATE] = span
    sf.write(tmp_path / "song_v1.wav", song, RATE, subtype="FLOAT")
    (tmp_path / "song_v1.json").write_text(json.dumps({"audio": "song_v1.wav", "sample_rate": RATE,
                                                       "source": {"span_start": 0.0}, "splice": {"tempo": 120.0}}))
    full = load_programs(record, RATE, 2, 1)
    np.testing.assert_array_equal(full.variants[0], patch.variants[0])


def test_a_plugin_captures_job_reads_its_context_from_the_capture_again(tmp_path):
    """Its source was an export in the job's work folder, gone with it after delivery."""
    record = delivered_job(tmp_path, tempo=120.0)
    song, _ = sf.read(record.spec.source, dtype="float32")
    instance = tmp_path / "captures" / "4242-1"
    instance.mkdir(parents=True)
    sf.write(instance / "span-000001.wav", song, RATE, subtype="FLOAT")  # played from timeline 5 s on
    (instance / "index.json").write_text(json.dumps({
        "format": "daw-bridge.capture/1", "instance": instance.name, "channels": 2, "spans": [
            {"file": "span-000001.wav", "sample_rate": RATE, "timeline_start_frame": 5 * RATE, "frames": len(song)}]}))
    record.spec = replace(record.spec, source=tmp_path / "work" / "j-1" / "capture-4242-1.wav", position=5.0,
                          ids={"capture": "4242-1"})
    config = Config(captures_dir=tmp_path / "captures", project_roots=(tmp_path,))
    with readable_source(config, record.spec) as source:
        programs = load_programs(record, RATE, 2, 1, source)
    assert not source.exists(), "the copy is gone once read"
    expected = load_programs(delivered_job(tmp_path, tempo=120.0), RATE, 2, 1)
    np.testing.assert_array_equal(programs.original, expected.original)
    np.testing.assert_array_equal(programs.variants[0], expected.variants[0])


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_two_bars_before_and_one_after_at_the_songs_tempo(tmp_path):
    programs = load_programs(delivered_job(tmp_path, tempo=100.0), RATE, 2, 1)
    bar = 2.4  # 4 beats at 100 BPM
    assert bar_seconds(100.0) == bar
    assert programs.start == pytest.approx(10.0 - 2 * bar)
    assert programs.original.shape == (2, round((2 + 2 * bar + bar) * RATE))
    assert [v.shape for v in programs.variants] == [programs.original.shape]


def test_without_a_tempo_two_bars_are_four_seconds(tmp_path):
    programs = load_programs(delivered_job(tmp_path, tempo=None), RATE, 2, 1)
    assert programs.tempo == 120.0 and programs.start == 6.0


def test_a_quieter_variant_is_raised_to_the_originals_loudness_over_the_range(tmp_path):
    programs = load_programs(delivered_job(tmp_path, tempo=120.0), RATE, 2, 1)
    lo, hi = 4 * RATE, 6 * RATE  # the range in the program (it starts 4 s before 10.0)
    variant, original = programs.variants[0], programs.original
    assert rms(variant[:, lo:hi]) == pytest.approx(rms(original[:, lo:hi]), rel=1e-3)
    assert programs.gains_db[0] == pytest.approx(6.02, abs=0.05)
    # outside the range and its 0.25 s ramps the song plays as it is
    np.testing.assert_array_equal(variant[:, :lo - RATE // 4], original[:, :lo - RATE // 4])
    np.testing.assert_array_equal(variant[:, hi + RATE // 4:], original[:, hi + RATE // 4:])


def test_a_louder_variant_is_lowered_and_gains_stay_within_12_db_and_full_scale(tmp_path):
    lo, hi = 4 * RATE, 6 * RATE
    programs = load_programs(delivered_job(tmp_path, tempo=120.0, loudness=1.9), RATE, 2, 1)
    assert rms(programs.variants[0][:, lo:hi]) == pytest.approx(rms(programs.original[:, lo:hi]), rel=1e-3)
    record = delivered_job(tmp_path, tempo=120.0, loudness=0.05)
    assert load_programs(record, RATE, 2, 1).gains_db[0] == 12.0  # 26 dB quieter: raised by 12 dB, not more
    delivered, _ = sf.read(tmp_path / "song_v1.wav", dtype="float32")
    delivered[2 * RATE] = 0.9  # one loud transient in a quiet take
    sf.write(tmp_path / "song_v1.wav", delivered, RATE, subtype="FLOAT")
    programs = load_programs(record, RATE, 2, 1)
    assert np.abs(programs.variants[0]).max() == pytest.approx(1.0, abs=1e-6)  # raised only up to full scale


def test_a_mono_song_plays_on_both_sides_and_another_rate_is_resampled(tmp_path):
    programs = load_programs(delivered_job(tmp_path, tempo=120.0, channels=1, rate=44100), RATE, 2, 1)
    assert programs.original.shape == (2, 8 * RATE)  # 4 + 2 + 2 s at the output's rate
    np.testing.assert_array_equal(programs.original[0], programs.original[1])


def test_a_job_without_variants_or_files_gets_a_one_line_reason(tmp_path):
    record = delivered_job(tmp_path, tempo=120.0)
    record.state = State.FAILED
    with pytest.raises(AuditionError, match=r"^job j-1 has no delivered variants to audition \(failed\)$"):
        load_programs(record, RATE, 2, 1)
    record.state = State.DELIVERED
    (tmp_path / "song_v1.wav").unlink()
    with pytest.raises(AuditionError, match="the variant's audio cannot be read") as caught:
        load_programs(record, RATE, 2, 1)
    assert "\n" not in str(caught.value)


def render(mixer: Mixer, blocks: int, frames: int = 256) -> np.ndarray:
    out = np.zeros((2, blocks * frames), np.float32)
    for n in range(blocks):
        mixer.render(list(out[:, n * frames:(n + 1) * frames]), frames)
    return out


def test_the_callback_plays_a_program_and_then_silence():
    mixer = Mixer(RATE)
    program = np.random.default_rng(2).uniform(-1, 1, (2, 1000)).astype(np.float32)
    mixer.play(program)
    out = render(mixer, 6)
    np.testing.assert_array_equal(out[:, :1000], program)
    assert not out[:, 1000:].any() and not mixer.playing


def test_a_switch_keeps_the_place_and_crossfades_and_stop_fades_out():
    mixer = Mixer(RATE)
    a = np.full((2, RATE), 0.5, np.float32)
    b = np.full((2, RATE), -0.5, np.float32)
    mixer.play(a)
    render(mixer, 4)
    mixer.play(b, None)  # in place
    out = render(mixer, 4)
    fade = ramp(RATE)
    np.testing.assert_allclose(out[0, :len(fade)], 0.5 * fade[::-1] - 0.5 * fade, atol=1e-7)
    np.testing.assert_array_equal(out[:, len(fade):], -0.5)
    assert mixer.position == 8 * 256
    mixer.stop()
    out = render(mixer, 4)
    np.testing.assert_allclose(out[0, :len(fade)], -0.5 * fade[::-1], atol=1e-7)
    assert not out[:, len(fade):].any() and not mixer.playing


def test_no_output_or_no_server_is_a_one_line_reason(monkeypatch):
    with pytest.raises(AuditionError, match=r'^audition is switched off \(\[audition\] output = "none"\)$'):
        open_output({"output": "none"})
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(AuditionError, match="^no JACK server daw-bridge-nobody-here to play through$"):
        open_output({"output": "jack", "jack_server": "daw-bridge-nobody-here"})


def test_the_default_output_opens_or_says_in_one_line_why_not():
    sounddevice = pytest.importorskip("sounddevice")  # needs libportaudio2 as well
    if any(device["max_output_channels"] for device in sounddevice.query_devices()):
        output = open_output({"output": "portaudio"})
        assert output.sample_rate > 0 and output.kind == "portaudio"
        output.close()
    else:  # a machine without a sound card, like this one
        with pytest.raises(AuditionError, match=r"^no audio output device to play through \(.*\)$"):
            open_output({"output": "portaudio"})


def test_a_switch_asked_before_the_callback_took_up_the_start_plays_from_the_start():
    mixer = Mixer(RATE)
    a = np.full((2, RATE), 0.5, np.float32)
    b = np.full((2, RATE), -0.5, np.float32)
    mixer.play(a)
    assert mixer.playing  # already, before the callback ran
    mixer.play(b, None)
    out = render(mixer, 2)
    np.testing.assert_array_equal(out, b[:, :512])
