"""Fixtures: the fake MusicGPT service and a producer's song."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.musicgpt import FakeMusicGPT


@pytest.fixture
def fake():
    with FakeMusicGPT(time_scale=0.01, eta=20) as service:
        yield service


@pytest.fixture
def song(demo_song_path) -> Path:
    """The 40 s generated song shared by the suites (44.1 kHz stereo, 24-bit)."""
    return demo_song_path
