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
from bridge.backends.local.joins import ArraySource, SpanSource
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


def _lossy(path, audio, sr, kind: str):
    """``audio`` encoded by libsndfile as an Ogg Vorbis or MP3 file (skipped where this libsndfile cannot)."""
    container, subtype = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}[kind]
    if subtype not in sf.available_subtypes(container):
        pytest.skip(f"this libsndfile does not write {kind}")
    with sf.SoundFile(str(path), "w", sr, audio.shape[1], subtype, format=container) as out:
        for at in range(0, len(audio), 8192):
            out.write(audio[at:at + 8192])
    return path


@pytest.mark.parametrize("kind", ["ogg", "mp3"])
def test_a_lossy_song_decoded_once_for_its_spans_reads_as_the_whole_decode(tmp_path, kind):
    audio, sr = make_song_array(40.0, seed=9)
    song = _lossy(tmp_path / f"song.{kind}", audio, sr, kind)
    whole = sf.read(str(song), dtype="float32", always_2d=True)[0]
    spans = [(-500, 3 * sr), (20 * sr + 17, 23 * sr), (22 * sr, 25 * sr), (len(whole) - sr, len(whole) + 4 * sr)]
    source = SpanSource(song, spans, block=4 * 1152)  # spans that overlap, start before the song and end after it
    assert source.frames == len(whole) and source.channels == whole.shape[1]
    reference = ArraySource(whole)
    for start, length in ((-300, 1000), (0, 3 * sr), (20 * sr + 17, 5 * sr - 17), (24 * sr, 100),
                          (len(whole) - 700, 5000)):
        np.testing.assert_array_equal(source.read(start, length), reference.read(start, length))
    assert source.passes == 1
    np.testing.assert_array_equal(source.read(10 * sr, 333), reference.read(10 * sr, 333))  # not kept: read again
    assert source.passes == 2
    np.testing.assert_array_equal(source.read(0, sr), reference.read(0, sr))  # what was kept is kept still
    source.hold([(sr, 2 * sr), (30 * sr, 32 * sr)])  # a texture's grains, planned after the passages were read
    source.hold([(30 * sr, 31 * sr)])
    assert source.passes == 3
    np.testing.assert_array_equal(source.read(30 * sr, 2 * sr), reference.read(30 * sr, 2 * sr))
    assert source.passes == 3


@pytest.mark.parametrize("job", ["inpaint", "extend", "texture"])
def test_a_job_on_an_ogg_keeps_only_what_it_plays_and_renders_as_from_the_whole_decode(tmp_path, monkeypatch, job):
    from bridge.backends.local import engine, joins

    if job == "texture":  # an ambient cue no passage of which fits: its texture is planned after the passages
        audio, sr = drone(60.0), 44100
        fields = {"operation": "extend", "extend_after": 60.0, "duration": 20.0}
    else:
        audio, sr = make_song_array(90.0, seed=4)
        fields = ({"operation": "inpaint", "start": 40.0, "end": 44.0} if job == "inpaint" else
                  {"operation": "extend", "extend_after": 50.0, "duration": 8.0})
    song = _lossy(tmp_path / "song.ogg", audio, sr, "ogg")
    spec = JobSpec(job_id="j-ogg", source=song, source_info=probe(song), backend="local", num_outputs=2,
                   **fields).to_json()
    sources = []

    class Recorded(joins.SpanSource):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            sources.append(self)

    monkeypatch.setattr(engine, "SpanSource", Recorded)
    outputs = {}
    for way in ("spans", "whole"):
        if way == "whole":  # the song decoded whole, as before the spans were reckoned
            monkeypatch.setattr(engine, "open_song", lambda source, reads=None, _open=engine.open_song: _open(source))
        (tmp_path / way).mkdir()
        rendered = engine.render_job(spec, str(tmp_path / way), str(tmp_path / "cache"), 0.1)
        outputs[way] = [(sf.read(r["path"], dtype="float32")[0], r["splice"]) for r in rendered]
    [source] = sources
    # every read fell within the spans reckoned from the plans (a texture's, reckoned once it was planned, may
    # need one more pass); a short cue's texture draws on most of it
    assert source.passes <= 2 if job == "texture" else source.passes == 1
    if job != "texture":
        assert sum(len(frames) for _, frames in source._kept) < source.frames / 2
    assert len(outputs["spans"]) == len(outputs["whole"]) > 0
    assert ("texture" in outputs["spans"][0][1]) == (job == "texture")
    for (audio_spans, splice_spans), (audio_whole, splice_whole) in zip(outputs["spans"], outputs["whole"]):
        np.testing.assert_array_equal(audio_spans, audio_whole)
        assert splice_spans == splice_whole
