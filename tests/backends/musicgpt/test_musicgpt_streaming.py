"""A long MusicGPT result goes from the download to the drop folder a block at a time, and is the same audio as when
every step held the whole file: checked, resampled, aligned, spliced, delivered in full and drawn.

Real music (Debian's planetblupi-music-ogg) as the source, the fake service on loopback answering with a float WAV
at another rate, late and quieter, so every step after the download has work to do.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge import delivery
from bridge.audio import picture
from bridge.audio.align import match_channels, resample
from bridge.audio.blocks import FileFrames
from bridge.audio.region import read_frames, read_region, source_frames
from bridge.audio.splice import Edit, splice_span
from bridge.audio.wavio import write_atomic
from bridge.backends.musicgpt.outputs import Offered, fetch_variant, open_crop, splice_variant
from bridge.client import BridgeClient
from bridge.exceptions import DeliveryError, TransientError
from bridge.models import Rendered
from tests.adversarial.support import Daemon, musicgpt_table
from tests.backends.musicgpt.support import make_backend, make_spec, run, run_job
from tests.conftest import Project
from tests.songs import real_music, write


@pytest.fixture(scope="module")
def real_song(tmp_path_factory) -> Path:
    """90 s of a real song as a 44.1 kHz stereo 24-bit WAV (about 60 blocks)."""
    audio, rate = real_music("music001.ogg", 90, start=20)
    return write(tmp_path_factory.mktemp("real") / "real-song.wav", audio, rate, subtype="PCM_24")


def _whole_file_span(spec, prepared: dict, download: Path, crossfade_s: float, max_shift_s: float):
    """The span as it was made before streaming: the download decoded whole, resampled whole, spliced whole."""
    audio, rate = sf.read(str(download), dtype="float32", always_2d=True)
    crop, sr = read_region(spec.source, float(prepared["crop_start"]), float(prepared["crop_end"]))
    generated = match_channels(resample(audio, rate, sr), crop.shape[1])
    crop_start = float(prepared["crop_start"])
    crop_first = int(round(crop_start * sr))
    edit_first = int(round(spec.edit_start * sr)) - crop_first
    if spec.operation == "inpaint":
        edit_stop = int(round(spec.end * sr)) - crop_first
    else:
        edit_stop = edit_first + int(round((spec.duration or len(generated) / sr) * sr))
    edit = Edit(spec.operation, edit_first, edit_stop, int(round(spec.handle * sr)), int(round(crossfade_s * sr)))
    return splice_span(crop, generated, edit, sr, crop_start_s=crop_start, max_shift_s=max_shift_s), sr


def _sketch_equal(a: picture.Sketch, b: picture.Sketch) -> None:
    assert (a.loudest, a.span_start, a.span_end) == (b.loudest, b.span_start, b.span_end)
    for (name_a, text_a, wave_a, spec_a), (name_b, text_b, wave_b, spec_b) in zip(a.rows, b.rows, strict=True):
        assert (name_a, text_a) == (name_b, text_b)
        for x, y in zip((*wave_a, *spec_a), (*wave_b, *spec_b), strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("operation", ["inpaint", "extend"])
def test_a_long_result_streamed_to_the_drop_folder_is_the_audio_the_whole_file_path_made(fake, real_song, tmp_path,
                                                                                         operation):
    fake.shift_s, fake.output_rate, fake.output_gain, fake.output_subtype = 0.25, 48000, 0.5, "FLOAT"
    fake.extend_s = 15.0  # more than the 10 s asked for: the extension is cut short with a tail fade
    drop = tmp_path / "drop"
    if operation == "inpaint":
        spec = make_spec(real_song, start=20.0, end=70.0, num_outputs=1, delivery="full", drop_folder=drop)
    else:
        spec = make_spec(real_song, operation="extend", start=None, end=None, extend_after=60.0, duration=10.0,
                         prompt="", num_outputs=1, delivery="full", drop_folder=drop)

    async def go():
        backend = make_backend(fake, tmp_path / "state", context_s=None)  # the whole song goes up and comes back
        try:
            return backend.settings, *await run_job(backend, spec, tmp_path / "work")
        finally:
            await backend.close()

    settings, prepared, _, (rendered,) = run(go())
    download = next(p for p in (tmp_path / "work").glob("musicgpt-v1-*.wav") if "span" not in p.name)
    assert sf.info(str(download)).subtype == "FLOAT" and sf.info(str(download)).duration > 60
    whole, sr = _whole_file_span(spec, prepared, download, settings.crossfade_s, settings.max_shift_s)

    streamed, streamed_rate = sf.read(str(rendered.path), dtype="float32", always_2d=True)
    assert streamed_rate == sr and streamed.shape == whole.audio.shape
    np.testing.assert_array_equal(streamed, whole.audio)  # bit for bit, not within a tolerance
    assert rendered.span_start == float(prepared["crop_start"]) + whole.first / sr
    assert rendered.splice == {**whole.info, "resampled_from": 48000}
    assert whole.info["alignment"]["found"] and whole.info["alignment"]["offset_s"] == pytest.approx(0.25, abs=1e-4)
    assert list((tmp_path / "work").glob("*on-clock*")) == []  # the resampled copy is gone once spliced

    (manifest_path,) = delivery.deliver(spec, [rendered])
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    full = delivery._full_song(spec, whole.audio, rendered.span_start)  # the whole-file delivery's song
    expected = write_atomic(tmp_path / "expected.wav", full, sr, subtype="PCM_24")
    delivered = drop / manifest["audio"]
    assert manifest["frames"] == len(full) and sf.info(str(delivered)).subtype == "PCM_24"
    np.testing.assert_array_equal(sf.read(str(delivered), dtype="int32")[0], sf.read(str(expected), dtype="int32")[0])
    assert sorted(p.name for p in drop.iterdir()) == sorted([manifest["audio"], manifest_path.name])

    first = int(round(rendered.span_start * sr))
    original, _ = read_frames(real_song, first, first + len(whole.audio))
    common = dict(sample_rate=sr, span_start=rendered.span_start, edit_start=spec.edit_start,
                  edit_end=spec.edit_end, joins=rendered.splice["joins"], title="t")
    with FileFrames(rendered.path) as span, source_frames(real_song, first, first + len(span)) as on_disk:
        _sketch_equal(picture.sketch(picture.PictureInput(original=on_disk, result=span, **common)),
                      picture.sketch(picture.PictureInput(original=original, result=whole.audio, **common)))


@pytest.mark.parametrize("output_rate", [None, 48000], ids=["read-in-place", "resampled"])
def test_a_download_cut_short_on_disk_after_its_check_fails_in_one_line_and_is_fetched_again(fake, real_song,
                                                                                          tmp_path, output_rate):
    """Checked whole once, the download is read again while it is spliced. A file that changed between the two
    (cut short: a WAV then reads as a shorter WAV, no error) would have been spliced with silence for its end."""
    fake.output_rate = output_rate
    spec = make_spec(real_song, start=20.0, end=30.0, num_outputs=1)
    work = tmp_path / "work"
    work.mkdir()

    async def go():
        backend = make_backend(fake, tmp_path / "state")
        try:
            prepared = await backend.prepare(spec, work)
            receipt = await backend.submit(spec, prepared)
            backend.release(spec.job_id)
            fake.finish(receipt["task_id"])
            offered = Offered.from_conversion(fake.conversion(fake.tasks[receipt["task_id"]]), 1)
            download = await fetch_variant(backend.client, offered, work)
            os.truncate(download.path, download.path.stat().st_size * 2 // 3)
            crop = open_crop(spec, prepared)
            try:
                with pytest.raises(TransientError) as caught:
                    await asyncio.to_thread(splice_variant, spec, prepared, download, offered, work,
                                            crossfade_s=0.1, max_shift_s=2.0, crop=crop)
                left = sorted(p.name for p in work.iterdir())
                again = await fetch_variant(backend.client, offered, work)  # the retry: downloaded again
                rendered = await asyncio.to_thread(splice_variant, spec, prepared, again, offered, work,
                                                   crossfade_s=0.1, max_shift_s=2.0, crop=crop)
            finally:
                crop.close()
            return caught.value, left, download, rendered
        finally:
            await backend.close()

    error, left, download, rendered = run(go())
    message = str(error)
    assert error.code == "download_failed" and "\n" not in message
    assert message.startswith("variant 1: MusicGPT's WAV could not be read back from the work folder (it holds "), \
        message
    assert "retry the job" in message and str(work) not in message
    assert left == ["musicgpt-upload.wav"]  # the cut file removed, no span or resampled copy half written
    assert sum(fake.downloads.values()) == 2 and sf.info(str(rendered.path)).frames > 0


def test_a_span_that_cannot_be_read_back_is_a_delivery_error_and_leaves_nothing_in_the_drop_folder(real_song,
                                                                                                   tmp_path):
    drop = tmp_path / "drop"
    spec = make_spec(real_song, start=20.0, end=30.0, num_outputs=2, delivery="full", drop_folder=drop)
    good = write_atomic(tmp_path / "v1.wav", read_region(real_song, 19.0, 31.0)[0], 44100, subtype="FLOAT")
    bad = tmp_path / "v2.wav"
    bad.write_bytes(b"RIFF" + os.urandom(4000))  # the work folder's file, garbled since the splice wrote it
    variants = [Rendered(1, good, 19.0, {"joins": []}, {}), Rendered(2, bad, 19.0, {"joins": []}, {})]

    with pytest.raises(DeliveryError) as caught:
        delivery.deliver(spec, variants)
    assert str(caught.value).startswith("variant 2's audio in the work folder could not be read (")
    assert "\n" not in str(caught.value) and caught.value.code == "delivery_failed"
    assert list(drop.iterdir()) == []  # variant 1's staged song was removed too


@pytest.mark.parametrize("fault", ["truncate_no_length", "corrupt"])
def test_a_truncated_or_corrupt_download_fails_the_job_in_one_line_with_nothing_in_the_drop_folder(fake, tmp_path,
                                                                                                real_song, fault):
    """Through the daemon: the download is checked a block at a time now, and still refused as before."""
    project = Project(tmp_path / "project", real_song)
    fake.output_subtype = "FLOAT"
    fake.inject("download", fault, times=100)  # every attempt, the WAV's and the MP3's
    project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url, context_s="whole"))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=20.0, end=70.0,
                                        prompt="a long solo", num_outputs=1, delivery="full", timeout=120)
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert outcome.name == "failed", outcome
    said = " ".join(map(str, outcome.args[1:]))
    assert "variant 1 could not be downloaded" in said and "\n" not in said, said
    assert ("truncated?" if fault == "truncate_no_length" else "not decodable") in said, said
    assert "Traceback" not in log
    assert not project.drop.exists() or list(project.drop.iterdir()) == []
