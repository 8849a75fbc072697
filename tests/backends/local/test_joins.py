"""Reading the song a job joins: a song bounced over itself while the job reads it stops the job, one line said."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bridge.audio.region import probe
from bridge.backends.local.joins import FileSource
from bridge.exceptions import SourceError
from bridge.models import JobSpec
from tests.songs import make_noise_array, make_song_array, write


def _bounce_in_progress(path, sample_rate: int, channels: int, frames: int) -> None:
    """Rewrite ``path`` in place as a DAW bouncing over it does: truncated, then written again from the start, with
    only ``frames`` frames in it so far."""
    audio, _ = make_noise_array(frames / sample_rate, sample_rate, channels, seed=7)
    with open(path, "r+b") as file:
        file.truncate(0)
        with sf.SoundFile(file, "w", sample_rate, channels, format=path.suffix[1:].upper(),
                          subtype="PCM_16") as song:
            song.write(audio)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_a_song_bounced_over_itself_while_a_job_reads_it_stops_the_job_as_changed(tmp_path, suffix):
    """A short read (WAV) or a seek into what is not there any more (FLAC) is the song changing, not a bug."""
    sample_rate, channels = 48000, 8
    audio, _ = make_noise_array(10.0, sample_rate, channels)
    song = write(tmp_path / f"song{suffix}", audio, sample_rate, subtype="PCM_16")
    source = FileSource(song)
    try:
        np.testing.assert_allclose(source.read(0, 1024), audio[:1024], atol=1e-4)
        _bounce_in_progress(song, sample_rate, channels, 33101)
        with pytest.raises(SourceError) as caught:
            source.read(0, 131072)
    finally:
        source.close()
    assert caught.value.code == "source_changed"
    assert "changed during the job" in str(caught.value) and "retry once" in str(caught.value)
    assert str(song) in str(caught.value) and "\n" not in str(caught.value)


def test_an_extension_of_a_song_bounced_over_itself_meanwhile_fails_as_changed_not_as_an_internal_error(
        tmp_path, monkeypatch):
    from bridge.backends.local import engine

    audio, sample_rate = make_song_array(60.0, sample_rate=44100, channels=8, seed=3)
    song = write(tmp_path / "song.wav", audio, sample_rate)
    spec = JobSpec(job_id="j-bounce", source=song, source_info=probe(song), backend="local", num_outputs=1,
                   operation="extend", extend_after=60.0, duration=30.0).to_json()

    def opened_then_bounced(source, reads=None, _open=engine.open_song):
        opened = _open(source, reads)
        _bounce_in_progress(song, sample_rate, 8, 33101)  # the producer bounces again as the job starts reading
        return opened

    monkeypatch.setattr(engine, "open_song", opened_then_bounced)
    (tmp_path / "work").mkdir()
    with pytest.raises(SourceError) as caught:
        engine.render_job(spec, str(tmp_path / "work"), str(tmp_path / "cache"), 0.1)
    assert caught.value.code == "source_changed"
