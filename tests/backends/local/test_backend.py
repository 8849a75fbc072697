"""LocalBackend as the core drives it: a real JobSpec, a real spawned worker, real files in a work folder."""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local import backend as backend_module
from bridge.backends.local import engine
from bridge.backends.local.backend import LocalBackend
from bridge.backends.local.inpaint import JOIN_SECONDS
from bridge.exceptions import NoMaterialError, SourceError
from bridge.models import JobSpec
from osc_schema import ValidationError
from tests.songs import make_noise_array, make_silence_array, make_song_array, real_music, write


@pytest.fixture(scope="module")
def pool():
    """One spawned worker for the module (starting one costs seconds of imports)."""
    executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=engine.warm_up)
    executor.submit(engine.warm_up).result()  # the worker starts here, the module's, not inside its first test
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def backend(tmp_path, pool) -> LocalBackend:
    return LocalBackend(tmp_path / "cache", executor=pool)


@pytest.fixture(scope="module")
def song_file(tmp_path_factory) -> Path:
    audio, sr = make_song_array(40.0, seed=2)
    return write(tmp_path_factory.mktemp("songs") / "verse-chorus.wav", audio, sr)


def job(source: Path, **fields) -> JobSpec:
    values = {"job_id": "j-test", "operation": "inpaint", "source": source, "source_info": probe(source),
              "backend": "local"}
    values.update(fields)
    return JobSpec(**values)


def run(backend: LocalBackend, spec: JobSpec, workdir: Path, notes: list | None = None):
    workdir.mkdir(parents=True, exist_ok=True)
    record = notes if notes is not None else []
    return asyncio.run(backend.wait(spec, {}, {}, workdir, lambda fraction, note: record.append((fraction, note))))


def read(path: Path) -> tuple[np.ndarray, int, str]:
    with sf.SoundFile(str(path)) as f:
        return f.read(dtype="float32", always_2d=True), f.samplerate, f.subtype


def test_inpaint_delivers_two_variants_that_drop_into_the_timeline(backend, song_file, tmp_path):
    spec = job(song_file, start=9.3, end=12.3, num_outputs=2, prompt="soft guitar solo", lyrics="la la",
               gender="female")
    rendered = run(backend, spec, tmp_path / "work")
    source, sr, _ = read(song_file)
    assert [r.variant for r in rendered] == [1, 2]
    first, stop = int(round(8.3 * sr)), int(round(13.3 * sr))
    froms = set()
    for r in rendered:
        audio, rate, subtype = read(r.path)
        assert r.path.parent == tmp_path / "work"
        assert (rate, audio.shape[1], subtype) == (sr, 2, "PCM_24")
        assert len(audio) == stop - first
        assert r.span_start == pytest.approx(first / sr, abs=1e-12)
        joins = r.splice["joins"]
        assert r.splice["handle"] == 1.0
        assert [j["at"] for j in joins] == [9.3, 12.3]
        assert r.splice["confidence"] == min(j["confidence"] for j in joins) >= 0.3
        assert all(set(j) >= {"at", "from", "crossfade", "confidence"} for j in joins)
        froms.add(joins[0]["from"])
        assert "does not follow prompt, lyrics or gender" in r.notes["engine"]
        assert r.notes["ignored"] == {"prompt": "soft guitar solo", "lyrics": "la la", "gender": "female"}
        head = int(round((9.3 - joins[0]["crossfade"]) * sr)) - first - 2
        tail = int(round((12.3 + joins[-1]["crossfade"]) * sr)) - first + 2
        np.testing.assert_array_equal(audio[:head], source[first:first + head])
        np.testing.assert_array_equal(audio[tail:], source[first + tail:stop])
    assert len(froms) == 2  # two different passages, not the same one twice


def test_a_second_job_on_the_same_song_skips_the_analysis_even_under_another_name(backend, song_file, tmp_path):
    notes: list = []
    run(backend, job(song_file, start=9.3, end=12.3, num_outputs=1), tmp_path / "a", notes)
    copy = tmp_path / "renamed.wav"
    copy.write_bytes(song_file.read_bytes())
    [again] = run(backend, job(copy, start=17.4, end=20.4, num_outputs=1), tmp_path / "b", notes)
    halfway = [note for fraction, note in notes if fraction == 0.5]
    assert halfway == ["analysed; choosing passages", "choosing passages"]
    assert len(list(backend.cache_dir.glob("*.npz"))) == 1
    # without a new analysis the worker reads only the blocks it plays: still the source's own samples
    audio, sr, _ = read(again.path)
    source, _, _ = read(song_file)
    first = int(round(16.4 * sr))
    head = int(round((17.4 - again.splice["joins"][0]["crossfade"]) * sr)) - first - 2
    np.testing.assert_array_equal(audio[:head], source[first:first + head])


def test_an_edited_song_at_the_same_path_is_analysed_afresh(backend, tmp_path):
    audio, sr = make_song_array(30.0, seed=2)
    song = write(tmp_path / "song.wav", audio, sr)
    run(backend, job(song, start=9.3, end=12.3, num_outputs=1), tmp_path / "a")
    audio[:sr] *= 0.5  # the producer bounced a new mix over the old file
    write(song, audio, sr)
    notes: list = []
    run(backend, job(song, start=9.3, end=12.3, num_outputs=1), tmp_path / "b", notes)
    assert ("analysed; choosing passages" in [note for _, note in notes])
    assert len(list(backend.cache_dir.glob("*.npz"))) == 2


def test_extend_continues_past_the_song_end_for_the_requested_duration(backend, song_file, tmp_path):
    spec = job(song_file, operation="extend", extend_after=40.0, duration=12.0, num_outputs=1)
    [rendered] = run(backend, spec, tmp_path / "work")
    audio, sr, _ = read(rendered.path)
    assert rendered.span_start == pytest.approx(39.0)
    assert len(audio) == int(round(52.0 * sr)) - int(round(39.0 * sr))
    assert rendered.splice["ending"] in ("song_end", "fade")
    assert rendered.splice["joins"][0]["at"] == 40.0
    source, _, _ = read(song_file)
    head = int(round((1.0 - rendered.splice["joins"][0]["crossfade"]) * sr)) - 2
    np.testing.assert_array_equal(audio[:head], source[int(39.0 * sr):int(39.0 * sr) + head])
    assert np.sqrt(np.mean(audio[int(2 * sr):int(8 * sr)] ** 2)) > 0.05  # music, not silence


def test_an_extension_needs_the_music_its_first_join_is_judged_on(backend, song_file):
    """After 0 s the engine was sure of a guess, at 1.0: nothing before the point said how well it fits."""
    assert backend_module.LEAD_IN_SECONDS == JOIN_SECONDS  # the daemon cannot import the engine to ask
    for after in (0.0, 1.49):
        with pytest.raises(ValidationError, match=r"^extend_after: .* leaves less than 1.5 s of music before"):
            backend.check(job(song_file, operation="extend", extend_after=after, duration=10.0))
    backend.check(job(song_file, operation="extend", extend_after=1.5, duration=10.0))


def test_noise_fails_with_a_reason_instead_of_delivering_noise(backend, tmp_path):
    noise = write(tmp_path / "noise.wav", *make_noise_array(20.0))
    with pytest.raises(NoMaterialError) as failure:
        run(backend, job(noise, start=8.0, end=11.0), tmp_path / "work")
    assert failure.value.code == "no_material"
    assert "similar enough" in failure.value.message and "min_confidence" in failure.value.message
    assert not list((tmp_path / "work").glob("*.wav"))


def test_silence_fails_with_a_reason(backend, tmp_path):
    silence = write(tmp_path / "silence.wav", *make_silence_array(20.0))
    with pytest.raises(NoMaterialError, match="silent"):
        run(backend, job(silence, start=8.0, end=11.0), tmp_path / "work")


def test_a_song_whose_channels_cancel_in_mono_is_not_called_silent(backend, tmp_path):
    """Right is left inverted (a polarity switch left on): the mono mix is digital silence, the song is not. The
    engine hears only the mix, so it refuses, saying why and what to do, rather than "silent" or a confident
    variant matched on nothing."""
    audio, sr = make_song_array(20.0, seed=2)
    out_of_phase = write(tmp_path / "out-of-phase.wav", np.stack([audio[:, 0], -audio[:, 0]], axis=1), sr)
    with pytest.raises(SourceError) as failure:
        run(backend, job(out_of_phase, start=8.0, end=11.0), tmp_path / "work")
    assert "silent" not in failure.value.message
    assert "cancel when mixed to mono" in failure.value.message and "polarity" in failure.value.message
    assert failure.value.code == "source_unreadable" and "\n" not in failure.value.message
    assert not list((tmp_path / "work").glob("*.wav"))


@pytest.mark.parametrize(("layout", "level_db"), [("left only", -55.5), ("centre of six", -48.0)])
def test_a_quiet_song_on_some_channels_is_called_silent_not_cancelling(backend, tmp_path, layout, level_db):
    """An independent review: a mix loses 6 dB when one side is empty and 15.6 dB for one channel of six, which
    took a song near the silence floor for channels that cancel, with advice to flip a polarity that mends nothing."""
    audio, sr = make_song_array(20.0, seed=2)
    quiet = audio[:, 0] / np.sqrt(np.mean(np.square(audio[:, 0]))) * 10 ** (level_db / 20)  # the mix under -60
    silent = np.zeros_like(quiet)
    channels = [quiet, silent] if layout == "left only" else [silent, silent, quiet, silent, silent, silent]
    path = write(tmp_path / "quiet.wav", np.stack(channels, axis=1).astype(np.float32), sr)
    with pytest.raises(NoMaterialError, match="the song is silent"):
        run(backend, job(path, start=8.0, end=11.0), tmp_path / "work")


def test_a_range_the_song_cannot_supply_fails_with_a_reason(backend, tmp_path):
    short = write(tmp_path / "short.wav", *make_song_array(8.0, seed=2))
    with pytest.raises(NoMaterialError, match="too short"):
        run(backend, job(short, start=1.5, end=6.5), tmp_path / "work")


def test_a_long_song_with_no_beat_is_not_called_too_short(backend, tmp_path):
    """An outside probe: a minute of a constant level (DC) was 'too short (60.0 s) to supply 10.0 s'; what it lacks
    is a beat, the unit material moves by."""
    steady = write(tmp_path / "steady.wav", np.full((60 * 22050, 2), 0.3, np.float32), 22050)
    with pytest.raises(NoMaterialError) as refused:
        run(backend, job(steady, operation="extend", extend_after=60.0, duration=10.0), tmp_path / "work")
    assert "too short" not in str(refused.value) and "no steady beat" in str(refused.value)


def test_a_stricter_threshold_refuses_what_the_default_accepts(pool, song_file, tmp_path):
    strict = LocalBackend(tmp_path / "cache", executor=pool, min_confidence=0.99)
    with pytest.raises(NoMaterialError, match="threshold 0.99"):
        run(strict, job(song_file, start=21.7, end=24.7, num_outputs=1), tmp_path / "work")


def test_a_long_range_is_held_to_a_share_of_the_floor_in_proportion_to_its_length(pool, tmp_path):
    """Beyond 10 s the floor falls in proportion to the range (30 s: a third of [local] min_confidence), since a
    long fill's joins score lower while it may sound as good; a refusal names the threshold it applied."""
    audio, sr = make_song_array(90.0, seed=5)
    song = write(tmp_path / "ninety.wav", audio, sr)
    thirty = job(song, start=25.0, end=55.0, num_outputs=1)

    def with_floor(min_confidence: float, name: str):
        engine = LocalBackend(tmp_path / "cache", executor=pool, min_confidence=min_confidence)
        return run(engine, thirty, tmp_path / name)

    [found] = with_floor(0.0, "any")
    sure = found.splice["confidence"]
    assert 1 / 6 < sure < 1 / 3, f"this song's 30 s fill scores {sure}: pick a range between the floors below"
    [kept] = with_floor(0.5, "half")  # refused before: 0.5 applied whatever the length
    assert kept.splice["confidence"] == sure
    with pytest.raises(NoMaterialError, match=r"threshold 0\.33, from \[local\] min_confidence for a 30 s range"):
        with_floor(1.0, "strict")


@pytest.mark.parametrize("start, end", [(30.0, 75.0), (33.0, 70.0)])
def test_a_range_no_one_passage_can_supply_is_filled_by_passages_handing_over(pool, tmp_path, start, end):
    """37-45 s in the middle of a 100 s song, with 25-35 s either side, so no one passage fits (the evaluation's 105 s
    ranges in 4-minute songs). Music from before it leads in and music from after it leads out, never the same music
    twice: before, the song was called too short (30-75 s), or both halves played much of what follows (33-70 s)."""
    audio, sr = make_song_array(100.0, seed=3)
    song = write(tmp_path / "hundred.wav", audio, sr)
    engine = LocalBackend(tmp_path / "cache", executor=pool, min_confidence=0.0)
    [rendered] = run(engine, job(song, start=start, end=end, num_outputs=1), tmp_path / "work")
    passages = rendered.splice["passages"]
    assert len(passages) >= 2 and passages[0]["at"] == start and passages[-1]["until"] == end
    assert all(a["until"] == b["at"] for a, b in zip(passages, passages[1:]))  # one after another, no hole
    heard = sorted((p["from"], p["from"] + p["until"] - p["at"]) for p in passages)
    assert all(b <= start or a >= end for a, b in heard), heard  # each plays music from outside the range
    assert all(earlier[1] <= later[0] + 0.5 for earlier, later in zip(heard, heard[1:])), heard  # none twice


def test_a_float_source_comes_back_as_float_and_unchanged_outside_the_joins(backend, tmp_path):
    audio, sr = make_song_array(40.0, seed=2, sample_rate=48000, channels=1)
    song = write(tmp_path / "mono48k.wav", audio, sr, subtype="FLOAT")
    [rendered] = run(backend, job(song, start=9.3, end=12.3, num_outputs=1), tmp_path / "work")
    result, rate, subtype = read(rendered.path)
    assert (rate, result.shape[1], subtype) == (48000, 1, "FLOAT")
    first = int(round(8.3 * sr))
    head = int(round((9.3 - rendered.splice["joins"][0]["crossfade"]) * sr)) - first - 2
    np.testing.assert_array_equal(result[:head], audio[first:first + head])


def test_the_event_loop_keeps_answering_while_the_engine_works(backend, tmp_path):
    audio, sr = make_song_array(60.0, seed=3)
    song = write(tmp_path / "fresh.wav", audio, sr)  # not cached yet: the worker analyses it

    async def scenario() -> int:
        beats = 0
        done = asyncio.Event()

        async def heartbeat():
            nonlocal beats
            while not done.is_set():
                await asyncio.sleep(0.01)
                beats += 1

        ticker = asyncio.create_task(heartbeat())
        (tmp_path / "work").mkdir()
        await backend.wait(job(song, start=20.0, end=24.0, num_outputs=1), {}, {}, tmp_path / "work",
                           lambda *_: None)
        done.set()
        await ticker
        return beats

    # were the analysis on the loop's thread, the heartbeat would only run between the engine's two calls
    assert asyncio.run(scenario()) >= 5


def test_the_backend_starts_its_own_spawned_workers_on_demand_and_stops_them(song_file, tmp_path):
    backend = LocalBackend(tmp_path / "cache")
    assert backend._executor is None  # nothing started until there is work

    async def scenario():
        try:
            rendered = await backend.wait(job(song_file, start=9.3, end=12.3, num_outputs=1), {}, {}, tmp_path,
                                          lambda *_: None)
            assert isinstance(backend._executor, concurrent.futures.ProcessPoolExecutor)
            return rendered
        finally:
            await backend.close()

    assert len(asyncio.run(scenario())) == 1
    assert backend._executor is None


def test_real_music_from_planetblupi(backend, tmp_path):
    audio, sr = real_music("music003.ogg", 150)
    # its first two minutes come round again from 2:00 on; the gap sits in that repeat
    song = write(tmp_path / "blupi.ogg", audio, sr, subtype="VORBIS")  # a lossy source, as producers have them
    [rendered] = run(backend, job(song, start=130.0, end=132.0, num_outputs=1), tmp_path / "work")
    result, rate, subtype = read(rendered.path)
    source, _, _ = read(song)
    assert (rate, subtype) == (sr, "FLOAT")
    first, a, b = int(round(129.0 * sr)), int(round(130.0 * sr)), int(round(132.0 * sr))
    gap, truth = result[a - first:b - first], source[a:b]
    assert rendered.splice["confidence"] >= 0.3
    error = np.sum((gap - truth) ** 2)
    assert error < 0.5 * np.sum(truth ** 2)  # much closer to what was there than silence would be
