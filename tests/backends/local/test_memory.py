"""A long song costs the engine its features, not its samples: the analysis reads the file a block at a time,
and the worker gives back what a job took."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import tracemalloc

import numpy as np
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import analysis
from bridge.backends.local.analysis import analyse, analyse_file
from bridge.backends.local.backend import LocalBackend
from bridge.models import JobSpec
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
