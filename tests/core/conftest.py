"""Fixtures of the core's in-process stories."""

from __future__ import annotations

import pytest

from bridge.config import Config


@pytest.fixture
def setup(tmp_path, demo_song_path):
    """A project with a copy of the demo song, and a config whose default backend is the test's paid one."""
    song = tmp_path / "song.wav"
    song.write_bytes(demo_song_path.read_bytes())
    config = Config(state_dir=tmp_path / "state", project_roots=(tmp_path,), backend="paid",
                    drop_folder=tmp_path / "drop", inbox=tmp_path / "inbox")
    return config, song
