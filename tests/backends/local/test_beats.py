"""Tempo and beats without a JIT compiler: the same beats librosa's tracker gave, and nothing compiled or cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bridge.backends.local.analysis import ANALYSIS_RATE, FRAME_RATE, HOP, analyse
from bridge.backends.local.beats import beat_frames, estimate_tempo
from tests.conftest import ROOT
from tests.songs import make_song_array

# What librosa 0.11 (beat_track with trim=False after our tempo estimate) found in make_song_array(40.0, seed=2),
# as STFT frames: the tracker that replaced it must keep finding these.
LIBROSA_TEMPO = 117.45383522727273
LIBROSA_BEATS = [
    1, 23, 44, 66, 87, 109, 131, 152, 174, 195, 217, 238, 260, 281, 303, 324, 346, 367, 389, 410, 432, 453, 475,
    496, 518, 539, 561, 582, 604, 626, 647, 669, 691, 712, 733, 755, 776, 798, 819, 841, 863, 884, 906, 927, 949,
    970, 992, 1013, 1035, 1056, 1078, 1099, 1121, 1142, 1164, 1185, 1207, 1228, 1250, 1272, 1293, 1315, 1336, 1358,
    1380, 1401, 1422, 1444, 1466, 1487, 1509, 1530, 1552, 1573, 1595, 1616, 1638, 1659, 1680, 1701, 1722,
]


def test_the_demo_song_has_the_tempo_and_beats_librosa_found():
    analysis = analyse(*make_song_array(40.0, seed=2))
    assert analysis.tempo == pytest.approx(LIBROSA_TEMPO, rel=1e-12)
    np.testing.assert_array_equal(np.round(analysis.beats * ANALYSIS_RATE / HOP).astype(int), LIBROSA_BEATS)


def click_track(frames: int, period: int, first: int) -> np.ndarray:
    onset = np.full(frames, 0.05, dtype=np.float32)
    onset[:3] = 0.0  # an onset envelope starts with zeros (its delay)
    onset[first::period] = 1.0
    return onset


def test_beats_land_on_the_clicks_of_a_steady_click_track():
    onset = click_track(2000, 22, first=7)
    tempo = estimate_tempo(onset, FRAME_RATE)
    assert tempo == pytest.approx(60.0 * FRAME_RATE / 22)
    beats = beat_frames(onset, tempo, FRAME_RATE)
    np.testing.assert_array_equal(beats[beats < 1900], np.arange(7, 1900, 22))
    assert 1 <= np.sum(beats >= 1900) <= 5  # the last beats bunch towards the end (so do librosa's)


def test_a_beat_track_follows_the_clicks_through_a_gap():
    onset = click_track(1200, 25, first=10)
    onset[400:700] = 0.0  # a muted range (as without_range does): the grid carries on through it
    beats = beat_frames(onset, 60.0 * FRAME_RATE / 25, FRAME_RATE)
    np.testing.assert_array_equal(beats[beats < 1100], np.arange(10, 1100, 25))


def test_an_envelope_shorter_than_a_beat_window_is_tracked():
    onset = click_track(30, 11, first=5)
    beats = beat_frames(onset, 60.0, FRAME_RATE)  # 43 frames a beat: the smoothing window is longer than the song
    assert len(beats) >= 1 and np.all((beats >= 3) & (beats < 30))


CHILD = r"""
import json, sys
from bridge.backends.local import engine
from bridge.backends.local.analysis import analyse, without_range
from tests.songs import make_song_array
engine.warm_up()
without_range(analyse(*make_song_array(12.0, seed=3)), 4.0, 6.0)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite", "librosa"))))
"""


def test_the_analysis_compiles_nothing_and_writes_no_numba_cache(tmp_path):
    """A worker killed while numba wrote its cache once left files that crashed every later worker: the analysis
    must not import numba (nor librosa, whose modules JIT-compile as they are imported) at all."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("NUMBA_")}
    env.update(NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert not list(cache.rglob("*"))
