"""Reading the region a job needs, from any format, without reading the rest of the file."""

from __future__ import annotations

import os
import threading
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import check_unchanged, export_region, probe, read_frames, read_region, source_frames
from bridge.exceptions import SourceError

FORMATS = [("wav", "WAV", "PCM_16"), ("aiff", "AIFF", "PCM_24"), ("flac", "FLAC", "PCM_24"),
           ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")]


def _tone(seconds: float, sample_rate: int, channels: int) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    left = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.stack([left * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize("suffix,fmt,subtype", FORMATS, ids=[f[0] for f in FORMATS])
def test_a_region_keeps_the_sources_rate_and_channels_in_every_format(tmp_path, suffix, fmt, subtype):
    path = tmp_path / f"song.{suffix}"
    sf.write(str(path), _tone(6.0, 48000, 2), 48000, format=fmt, subtype=subtype)
    audio, sample_rate = read_region(path, 2.0, 3.5)
    assert sample_rate == 48000 and audio.shape[1] == 2 and audio.dtype == np.float32
    assert abs(len(audio) - 1.5 * 48000) <= 1152  # MP3 decoders may pad by a frame


def test_a_region_is_the_exact_frames_of_a_pcm_source(tmp_path):
    song = _tone(5.0, 44100, 2)
    path = tmp_path / "song.wav"
    sf.write(str(path), song, 44100, subtype="FLOAT")
    audio, _ = read_region(path, 1.0, 2.0)
    np.testing.assert_array_equal(audio, song[44100:88200])


def test_export_adds_context_clamped_to_the_file_and_says_where_the_crop_starts(tmp_path):
    path = tmp_path / "song.flac"
    sf.write(str(path), _tone(20.0, 44100, 1), 44100)
    crop, crop_start = export_region(path, 12.0, 14.0, tmp_path / "crop.wav", context=5.0)
    assert crop_start == pytest.approx(7.0)
    assert sf.info(str(crop)).duration == pytest.approx(12.0, abs=1e-3)  # 7..19 s
    crop, crop_start = export_region(path, 1.0, 19.5, tmp_path / "crop2.wav", context=30.0)
    assert crop_start == 0.0 and sf.info(str(crop)).duration == pytest.approx(20.0, abs=1e-3)


def test_memory_for_a_region_does_not_grow_with_the_files_length(tmp_path):
    peaks = []
    for minutes in (1, 8):
        path = tmp_path / f"long-{minutes}.wav"
        with sf.SoundFile(str(path), "w", samplerate=48000, channels=2, subtype="PCM_24") as f:
            block = _tone(60.0, 48000, 2)
            for _ in range(minutes):
                f.write(block)
        tracemalloc.start()
        read_region(path, 30.0, 40.0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 1.2, peaks


def test_missing_and_corrupt_sources_raise_a_source_error_naming_the_file(tmp_path):
    with pytest.raises(SourceError, match="not found") as missing:
        probe(tmp_path / "gone.wav")
    assert missing.value.code == "source_missing"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(SourceError, match="bad.wav") as corrupt:
        read_region(bad, 0.0, 1.0)
    assert corrupt.value.code == "source_unreadable"


def test_a_truncated_source_is_reported_not_padded(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(str(path), _tone(4.0, 44100, 2), 44100, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header still claims 4 s
    try:
        audio, _ = read_region(path, 3.0, 3.5)
    except SourceError as exc:
        assert "cut.wav" in str(exc)
    else:  # libsndfile may fix up the frame count from the file size: then the region must be empty, not noise
        assert len(audio) == 0


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_an_exported_wav_crop_holds_exactly_the_sources_samples(tmp_path, subtype):
    song = _tone(8.0, 48000, 2)
    path = tmp_path / "song.wav"
    sf.write(str(path), song, 48000, subtype=subtype)
    crop, crop_start = export_region(path, 3.0, 4.0, tmp_path / "crop.wav", context=1.0)
    original, _ = sf.read(str(path), dtype="float32", always_2d=True)
    exported, rate = sf.read(str(crop), dtype="float32", always_2d=True)
    assert rate == 48000 and crop_start == 2.0
    np.testing.assert_array_equal(exported, original[2 * 48000:5 * 48000])


def test_a_source_bounced_again_in_mono_is_named_as_changed_in_its_channels(tmp_path):
    """The song re-rendered in mono while its job waited: same length, same rate, and the refusal read as if nothing
    had changed (1323000 frames at 44100 Hz, now 1323000 at 44100 Hz)."""
    path = tmp_path / "song.wav"
    stereo = _tone(2.0, 44100, 2)
    sf.write(str(path), stereo, 44100, subtype="PCM_16")
    accepted = probe(path)
    sf.write(str(path), stereo[:, 0], 44100, subtype="PCM_16")
    with pytest.raises(SourceError) as caught:
        check_unchanged(path, accepted)
    assert caught.value.code == "source_changed"
    assert "(88200 frames of 2 channels at 44100 Hz, now 88200 frames of 1 channel at 44100 Hz)" in str(caught.value)


def _write_nothing_into(pipe, done: threading.Event) -> None:
    """A recorder that opens the pipe as soon as a reader has it open, and stops (until ``done``)."""
    while not done.is_set():
        try:
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO while no reader has it open
            return
        except OSError:
            done.wait(0.01)


@pytest.mark.parametrize("read", ["read_frames", "source_frames"])
def test_a_source_replaced_by_a_pipe_after_its_probe_is_refused_not_waited_on(tmp_path, read):
    """The song probed when its job was accepted; by the time the delivery or the audition reads it, a pipe stands at
    its name (a tool recording into it). The read waited for a writer, maybe for good; it is now refused."""
    path = tmp_path / "song.wav"
    sf.write(str(path), _tone(2.0, 44100, 2), 44100)
    frames = probe(path).frames
    path.unlink()
    os.mkfifo(path)
    done = threading.Event()
    recorder = threading.Thread(target=_write_nothing_into, args=(path, done))
    recorder.start()  # so that a read that waits for a writer ends (with an error) instead of waiting for good
    try:
        with pytest.raises(SourceError) as caught:
            if read == "read_frames":
                read_frames(path, 0, frames)
            else:
                source_frames(path, 0, frames).close()
    finally:
        done.set()
        recorder.join()
    assert str(caught.value) == f"source audio is not a regular file: {path}"
    assert caught.value.code == "source_unreadable"
