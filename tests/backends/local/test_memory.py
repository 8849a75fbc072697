"""A long song costs the engine its features, not its samples: the analysis reads the file a block at a time,
the variants are made and written a block at a time, and the worker gives back what a job took."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import agreement, analysis
from bridge.backends.local.analysis import analyse, analyse_file, without_range
from bridge.backends.local.backend import LocalBackend
from bridge.backends.local.extend import plan_extend
from bridge.backends.local.inpaint import plan_inpaint
from bridge.backends.local.joins import ArraySource
from bridge.backends.local.render import lay_out
from bridge.backends.local.texture import lay_out_texture, plan_texture
from bridge.models import JobSpec
from tests.backends.local.test_texture import drone
from tests.songs import make_song_array, write


def test_a_song_read_block_by_block_is_analysed_as_if_decoded_whole(tmp_path):
    audio, sr = make_song_array(50.0, seed=6)
    song = write(tmp_path / "song.wav", audio, sr)
    whole = analyse(sf.read(str(song), dtype="float32", always_2d=True)[0], sr)
    streamed = analyse_file(song)
    assert streamed.duration == whole.duration and streamed.tempo == whole.tempo
    np.testing.assert_array_equal(streamed.beats, whole.beats)
    for field in ("mel", "chroma", "onset", "onset_envelope"):
        np.testing.assert_allclose(getattr(streamed, field), getattr(whole, field), rtol=0, atol=1e-4)
    assert abs(streamed.level_db - whole.level_db) < 1e-9 and streamed.tail_db == whole.tail_db


def test_the_memory_an_analysis_needs_grows_with_its_features_not_with_the_samples(tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "_FRAMES_AT_ONCE", 256)  # both songs longer than a block of frames (6 s)
    peaks, samples = [], []
    for seconds in (30.0, 120.0):
        audio, sr = make_song_array(seconds, seed=7)
        song = write(tmp_path / f"{seconds:.0f}.wav", audio, sr)
        samples.append(audio.nbytes)  # what decoding it whole as float32 stereo would hold
        del audio
        tracemalloc.start()
        try:
            assert analyse_file(song).duration == seconds
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < (samples[1] - samples[0]) / 4  # decoding it whole: more than the samples


def test_after_a_job_on_a_long_song_the_worker_holds_what_it_held_after_a_short_one(tmp_path):
    songs = {}
    for name, seconds in (("short", 20.0), ("long", 300.0)):
        audio, sr = make_song_array(seconds, seed=9)
        songs[name] = write(tmp_path / f"{name}.wav", audio, sr)
        long_samples = audio.nbytes
        del audio
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        worker = pool.submit(os.getpid).result()
        backend = LocalBackend(tmp_path / "cache", executor=pool)
        resident = []
        for name, song in songs.items():
            spec = JobSpec(job_id=f"j-{name}", operation="inpaint", source=song, source_info=probe(song),
                           backend="local", start=10.0, end=14.0, num_outputs=2)
            (tmp_path / name).mkdir()
            asyncio.run(backend.wait(spec, {}, {}, tmp_path / name, lambda *_: None))
            resident.append(_resident_bytes(worker))
    assert resident[1] - resident[0] < long_samples / 4  # holding the decoded song would be all of it


def _resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def _made_in_blocks_as_whole(rendering, size: int) -> None:
    whole = next(rendering.blocks(size=rendering.frames))  # the span made in one piece
    np.testing.assert_array_equal(np.concatenate(list(rendering.blocks(size=size))), whole)
    lo, hi = rendering.frames // 3, rendering.frames // 3 + 5 * size + 17
    np.testing.assert_array_equal(rendering.audio(lo, hi), whole[lo:hi])


def test_a_variant_made_a_block_at_a_time_is_the_variant_made_whole(tmp_path):
    """Inpaints (entry, passages, exit with its varispeed) and extensions (walks, repeats, the song's ending) come out
    of the renderer a block at a time, to the bit what making the whole span at once gives."""
    audio, sr = make_song_array(40.0, seed=2)
    song = ArraySource(audio)
    whole = analyse(audio, sr)
    passages = 0
    for start, end in ((12.0, 15.0), (9.5, 26.0)):
        analysis = without_range(whole, start, end)
        for plan in plan_inpaint(analysis, start, end, 3):
            span = (int(round((start - 1.0) * sr)), int(round((end + 1.0) * sr)))
            _made_in_blocks_as_whole(lay_out(song, sr, plan, start, end, span, analysis.beat_period), 4099)
            passages += len(plan.passages)
    for after, seconds in ((30.0, 45.0), (40.0, 20.0)):
        for plan in plan_extend(whole, after, seconds, 2, more_starts=True):
            span = (int(round((after - 1.0) * sr)), int(round((after + seconds) * sr)))
            _made_in_blocks_as_whole(lay_out(song, sr, plan, after, after + seconds, span, whole.beat_period), 10007)
            passages += len(plan.passages)
    assert passages > 12  # joins between passages were made, not only single passages


def test_a_texture_made_a_block_at_a_time_is_the_texture_made_whole():
    cue = drone(56.0)
    analysis = analyse(cue, 44100)
    texture = plan_texture(analysis, 56.0, 30.0)
    assert texture is not None
    span = (int(round(55.0 * 44100)), int(round(86.0 * 44100)))
    rendering = lay_out_texture(ArraySource(cue), 44100, texture, 56.0, 86.0, span, analysis.beat_period)
    _made_in_blocks_as_whole(rendering, 3001)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_an_extension_compared_a_block_at_a_time_is_compared_as_if_whole(sample_rate):
    audio, sr = make_song_array(75.0, sample_rate=sample_rate, seed=4)
    whole = agreement.spectra(audio, sr)
    for size in (777, 1 << 16):
        blocks = (audio[at:at + size] for at in range(0, len(audio), size))
        np.testing.assert_array_equal(agreement.spectra_of_blocks(blocks, sr, len(audio)), whole)
