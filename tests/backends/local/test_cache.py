"""The analysis cache: keyed by the song's content, safe against half-written and damaged entries."""

from __future__ import annotations

import numpy as np

from bridge.backends.local.analysis import analyse
from bridge.backends.local.cache import AnalysisCache, content_key
from tests.songs import make_song_array, write


def test_the_key_follows_the_content_not_the_name(tmp_path):
    audio, sr = make_song_array(6.0, seed=4)
    song = write(tmp_path / "take1.wav", audio, sr)
    copy = tmp_path / "take1 copy.wav"
    copy.write_bytes(song.read_bytes())
    assert content_key(song) == content_key(copy)
    audio[-1] *= 0.5  # one sample at the very end differs
    write(copy, audio, sr)
    assert content_key(song) != content_key(copy)


def test_an_analysis_comes_back_as_it_was_stored(tmp_path):
    audio, sr = make_song_array(6.0, seed=4)
    analysis = analyse(audio, sr)
    cache = AnalysisCache(tmp_path / "cache")
    assert cache.load("song") is None
    cache.store("song", analysis)
    loaded = cache.load("song")
    assert loaded.duration == analysis.duration and loaded.tempo == analysis.tempo
    np.testing.assert_array_equal(loaded.beats, analysis.beats)
    np.testing.assert_array_equal(loaded.mel, analysis.mel)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_damaged_entry_counts_as_missing(tmp_path):
    cache = AnalysisCache(tmp_path)
    cache.path("song").write_bytes(b"PK\x03\x04 not really a zip")
    assert cache.load("song") is None
