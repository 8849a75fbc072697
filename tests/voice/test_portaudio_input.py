"""[voice] input = "portaudio": the daemon listens through the system's default input device. Here that device is
PortAudio's JACK host API (Debian's libportaudio2 is built with it) on the studio's private jackd, so PortAudio's own
stream carries the microphone into the daemon. Its own module: two studios (two JACK servers) at once in one process
is not a producer's set-up, and rtmidi's JACK clients did not survive it."""

from __future__ import annotations

import pytest

from tests.conftest import require_library
from tests.voice.studio import speech, studio


def test_the_systems_default_input_through_portaudio_hears_a_command(tmp_path_factory):
    """[voice] input = "portaudio": the daemon listens through the system's default input device, here PortAudio's
    JACK host API (Debian's libportaudio2 is built with it), so PortAudio's own stream carries the microphone."""
    # sounddevice is not imported here: PortAudio, once initialised in this process, asserts at exit when its JACK
    # server is gone.
    require_library("portaudio", "libportaudio2")
    pytest.importorskip("pocketsphinx")
    with studio(tmp_path_factory.mktemp("portaudio"), voice_input="portaudio") as room:
        assert "(portaudio, 48000 Hz)" in (room.project.root / "daemon.log").read_text()
        assert room.talk(speech("bridge keep", room.folder)) == "done"
        heard = room.ear.next()
        assert (heard["text"], heard["outcome"]) == ("bridge keep", "accepted")
