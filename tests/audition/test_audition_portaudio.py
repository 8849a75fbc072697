"""[audition] output = "portaudio": where no JACK client of its own is wanted, the daemon plays through the system's
default output device. Here that device is PortAudio's JACK host API (Debian's libportaudio2 is built with it) on a
private jackd, so a JACK client can record what PortAudio's own stream played: the same program, sample for sample,
as through the daemon's JACK output (tests/audition/test_audition_jack.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bridge.client import BridgeClient
from bridge.demo_song import make_song
from tests.audition.conftest import RATE
from tests.audition.tape import Tape
from tests.audition.test_audition_jack import END, START, audition, played, programs
from tests.conftest import DaemonProcess, Project, require_library


def test_a_variant_plays_through_the_default_output_sample_for_sample(jack, tmp_path):
    # sounddevice is not imported here: PortAudio, once initialised in this process, asserts at exit when its JACK
    # server is gone.
    require_library("portaudio", "libportaudio2")
    project = Project(tmp_path / "project", make_song(tmp_path / "song.wav", seconds=40.0, sample_rate=RATE))
    project.write_config('[audition]\noutput = "portaudio"\n')
    tape = Tape()
    daemon = DaemonProcess(project).start()  # PortAudio finds this test's jackd (JACK_DEFAULT_SERVER)
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=START, end=END, prompt="",
                                        backend="local", num_outputs=1, timeout=120)
        assert outcome.name == "done", outcome
        job_id, manifests = outcome.args[0], [Path(p) for p in outcome.args[1:]]
        # The output opens at the first audition; once PortAudio's client is there, the tape listens to it.
        assert audition(project, job_id, "original")[-1] == "default output"
        assert audition(project, job_id, "stop")[1] == "stopped"
        deadline = time.monotonic() + 30
        while not (outs := tape.client.get_ports("PortAudio", is_audio=True, is_output=True)):
            assert time.monotonic() < deadline, "PortAudio opened no JACK output"
            time.sleep(0.1)
        for out, into in zip(outs, tape.ins):
            tape.client.connect(out, into)
        time.sleep(0.5)  # the stop's fade-out has played
        _, variants, _ = programs(project, manifests)
        since = len(tape.blocks)
        assert audition(project, job_id, "variant", variant=1)[1:3] == ["variant", 1]
        recording, at = played(tape, len(variants[0]), since)
        np.testing.assert_allclose(recording[at:at + len(variants[0])], variants[0], rtol=0, atol=1e-6)
    finally:
        daemon.stop()
        tape.close()
