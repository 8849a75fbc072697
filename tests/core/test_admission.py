"""Refusals a producer meets when a command names its song or its numbers the way a shell or a locale would."""

from __future__ import annotations

import pytest

import osc_schema
from bridge.core.admission import admit
from osc_schema import ValidationError


def inpaint(source: str, **extra) -> osc_schema.Command:
    return osc_schema.parse_request({"command": "inpaint", "source": source, "start": 5.0, "end": 8.0, "prompt": "x",
                                     "num_outputs": 1, **extra})


def test_a_song_named_from_a_home_the_daemon_does_not_share_is_refused_saying_to_give_the_absolute_path(
        setup, tmp_path, monkeypatch):
    config, song = setup
    elsewhere = tmp_path.parent / f"{tmp_path.name}-daemon-home"  # the daemon's home, outside the project
    monkeypatch.setenv("HOME", str(elsewhere))
    with pytest.raises(ValidationError) as refused:
        admit(inpaint("~/song.wav"), config, {"paid"})
    assert refused.value.field == "source"
    assert str(refused.value) == (
        f"source: '~/song.wav' is outside the configured project roots ({tmp_path}): the daemon took '~/song.wav' "
        f"to be {elsewhere / 'song.wav'}, in a home on its machine, which may not be yours: give the absolute path "
        f"instead")
    with pytest.raises(ValidationError, match=r"^drop_folder: '~/takes' is outside the configured project roots: "
                                              r"the daemon took '~/takes' to be .* give the absolute path instead$"):
        admit(inpaint(str(song), drop_folder="~/takes"), config, {"paid"})
    monkeypatch.setenv("HOME", str(tmp_path))  # the daemon's home is the project: ~ is still taken there
    assert admit(inpaint("~/song.wav"), config, {"paid"}).source == song


@pytest.mark.parametrize(("given", "why"), [
    ("song.wav", "the daemon cannot tell which folder it is relative to"),
    ("./audio/song.wav", "the daemon cannot tell which folder it is relative to"),
    ("~nobody-by-this-name/song.wav", "~nobody-by-this-name is no user's home on the daemon's machine"),
])
def test_a_relative_song_is_refused_saying_why_it_must_be_absolute(setup, given, why):
    config, _ = setup
    with pytest.raises(ValidationError) as refused:
        admit(inpaint(given), config, {"paid"})
    assert str(refused.value) == f"source: {given!r} must be an absolute path ({why})"

