"""A producer auditions a delivered inpaint through the daemon's JACK output: two bars of the song before the
range, variant 1 over it (as loud as the original), a bar after; and A/B flips to the original at the same place in
the song with a crossfade, not a click. A real jackd (dummy driver) carries the audio; a JACK client records it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.client import BridgeClient
from bridge.demo_song import make_song
from bridge.frontends.osc_wire import encode
from tests.audition.conftest import PERIOD, RATE
from tests.audition.tape import Tape
from tests.conftest import DaemonProcess, Project
from tests.frontends.jack import Controller

PADS = """\
[[pad]]
note = 40
action = "audition_variant_1"

[[pad]]
note = 41
action = "audition_stop"
"""
DONE = [127, 0, 127, 0, 0]  # the pad's LED: two flashes, then off
START, END = 16.0, 20.0  # the inpainted range, seconds
FADE = round(0.01 * RATE)  # the player's fades: 10 ms


@pytest.fixture(scope="module")
def delivered(jack, tmp_path_factory):
    """A daemon playing into a recording JACK client, and an inpaint it delivered on the embedded engine."""
    root = tmp_path_factory.mktemp("audition")
    project = Project(root / "project", make_song(root / "song.wav", seconds=40.0, sample_rate=RATE))
    pads = Controller(f"pads-{jack.name[-6:]}")
    tape = Tape()  # after the controller (see Tape: CI saw "JACK server not running?" the other way round)
    ports = ", ".join(f'"{port}"' for port in tape.ports)
    (project.root / "pads.toml").write_text(PADS, encoding="utf-8")
    project.write_config(f'[audition]\njack_server = "{jack.name}"\njack_ports = [{ports}]\n'
                         f'[midi]\nport = "{pads.name}-pads*"\noutput_port = "{pads.name}-leds*"\n'
                         'mapping = "pads.toml"\napi = "UNIX_JACK"\npoll_interval = 0.2\n')
    daemon = DaemonProcess(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=START, end=END, prompt="",
                                        backend="local", num_outputs=2, timeout=120)
            assert outcome.name == "done", outcome
        yield project, pads, tape, outcome.args[0], [Path(p) for p in outcome.args[1:]]
    finally:
        daemon.stop()
        tape.close()
        pads.close()


def audition(project: Project, job: str, what: str, expect: str = "auditioning", **options) -> list:
    """Send /bridge/audition JOB WHAT [variant N], unchecked, and return the arguments of its answer
    (/bridge/auditioning, or /bridge/error when ``expect`` says so)."""
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send_raw(encode("/bridge/audition", [job, what, *(x for pair in options.items() for x in pair)]))
        reply = client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=30)
    assert reply is not None and reply.name == expect, reply
    return reply.args


def programs(project: Project, manifests: list[Path]) -> tuple[np.ndarray, list[np.ndarray], int]:
    """What the audition should play, worked out from the files: (original, variants, index of the range's start).

    Two bars (4/4 at the tempo in the manifest) of the source before the range and one after; a variant is the
    source with the delivered audio laid over it, its gain over the range making its RMS the original's there,
    ramped in and out over 0.25 s outside the range; every program fades in and out over 10 ms.
    """
    records = [json.loads(path.read_text()) for path in manifests]
    bar = 4 * 60.0 / records[0]["splice"]["tempo"]
    first, stop = round((START - 2 * bar) * RATE), round((END + bar) * RATE)
    song, _ = sf.read(project.song, dtype="float32", always_2d=True)
    original = song[first:stop]
    lo, hi = round(START * RATE) - first, round(END * RATE) - first
    variants = []
    for path, record in zip(manifests, records):
        delivered, _ = sf.read(path.parent / record["audio"], dtype="float32", always_2d=True)
        at = round(record["source"]["span_start"] * RATE) - first
        variant = original.copy()
        variant[at:at + len(delivered)] = delivered
        rms = lambda x: np.sqrt(np.mean(np.square(x, dtype=np.float64)))
        gain = rms(original[lo:hi]) / rms(variant[lo:hi])
        assert 0.25 < gain < 4 and gain * np.abs(variant[lo:hi]).max() <= 1.0  # within the player's limits
        ramp = 0.25 * RATE
        envelope = np.interp(np.arange(len(variant)), [lo - ramp, lo, hi, hi + ramp], [1.0, gain, gain, 1.0])
        variants.append(variant * envelope.astype(np.float32)[:, None])
    edge = ((np.arange(FADE) + 0.5) / FADE).astype(np.float32)[:, None]
    for program in [original, *variants]:
        program[:FADE] *= edge
        program[-FADE:] *= edge[::-1]
    return original, variants, lo


def played(tape: Tape, length: int, since: int) -> tuple[np.ndarray, int]:
    """Wait for a program of ``length`` frames to play out; the recording from block ``since`` on, and where the
    program starts in it: at the start of the JACK cycle of its first sound."""
    deadline = time.monotonic() + length / RATE + 30
    while True:
        recording = np.concatenate([block for _, _, block in tape.blocks[since:]] or [np.zeros((0, 2))])
        sounding = np.flatnonzero(np.any(recording != 0, axis=1))
        if len(sounding) and len(recording) >= sounding[0] + length + RATE // 10:
            return recording, int(sounding[0]) // PERIOD * PERIOD
        assert time.monotonic() < deadline, "the audition never played to its end"
        time.sleep(0.2)


def test_variant_1_plays_in_context_sample_for_sample_and_as_loud_as_the_original(delivered):
    project, _, tape, job_id, manifests = delivered
    original, variants, lo = programs(project, manifests)
    since = len(tape.blocks)
    job, playing, variant, gain_db, output = audition(project, job_id, "variant", variant=1)
    assert (job, playing, variant) == (job_id, "variant", 1)
    assert output.startswith("daw-bridge")

    recording, at = played(tape, len(variants[0]), since)
    heard = recording[at:at + len(variants[0])]
    np.testing.assert_allclose(heard, variants[0], rtol=0, atol=1e-6)
    assert not recording[at + len(variants[0]):].any(), "silence after the post-roll"
    # the pre-roll is the song itself, bit for bit, after the 10 ms fade-in
    np.testing.assert_array_equal(heard[FADE:lo - RATE // 4], original[FADE:lo - RATE // 4])
    level = lambda x: 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    hi = lo + round((END - START) * RATE)
    assert level(heard[lo:hi]) == pytest.approx(level(original[lo:hi]), abs=0.01)
    assert gain_db == pytest.approx(level(original[lo:hi]) - level(variants[0][lo:hi] / 10 ** (gain_db / 20)),
                                    abs=0.01)


def test_ab_switches_to_the_original_in_place_with_a_crossfade(delivered):
    project, _, tape, job_id, manifests = delivered
    original, variants, lo = programs(project, manifests)
    since = len(tape.blocks)
    audition(project, job_id, "variant", variant=2)
    time.sleep((lo / RATE) + 1.0)  # into the range, where the two differ
    assert audition(project, "last", "ab")[:3] == [job_id, "original", 0]

    recording, at = played(tape, len(original), since)
    heard = recording[at:at + len(original)]
    # The switch happens at a JACK cycle's start: before it variant 2, then a 10 ms crossfade, then the original.
    down = ((np.arange(FADE) + 0.5) / FADE).astype(np.float32)[::-1, None]
    errors = {}
    for block_start in range(0, len(heard) - FADE, PERIOD):
        switch = slice(block_start, block_start + FADE)
        if np.abs(heard[:block_start] - variants[1][:block_start]).max(initial=0) > 1e-6:
            break
        expected = np.concatenate([variants[1][:block_start],
                                   variants[1][switch] * down + original[switch] * down[::-1],
                                   original[block_start + FADE:]])
        errors[block_start] = np.abs(heard - expected).max()
    switched_at, error = min(errors.items(), key=lambda item: item[1])
    assert error < 1e-6, f"no crossfade at any cycle start fits (best at frame {switched_at}: {error})"
    assert lo < switched_at < lo + round((END - START) * RATE), "switched inside the range, where they differ"
    jump = np.abs(np.diff(heard[switched_at - 1:switched_at + FADE + 1], axis=0)).max()
    assert jump <= np.abs(np.diff(heard[lo:switched_at], axis=0)).max(), "no click: no step beyond the music's own"



def test_next_and_previous_go_round_the_variants_and_ab_returns_to_the_last_one_heard(delivered):
    project, _, _, job_id, _ = delivered
    assert audition(project, job_id, "variant", variant=1)[:3] == [job_id, "variant", 1]
    assert audition(project, "last", "next")[1:3] == ["variant", 2]
    assert audition(project, "last", "next")[1:3] == ["variant", 1]
    assert audition(project, "last", "previous")[1:3] == ["variant", 2]
    assert audition(project, "last", "ab")[1:3] == ["original", 0]
    assert audition(project, "last", "ab")[1:3] == ["variant", 2]
    assert audition(project, "last", "stop")[:3] == ["", "stopped", 0]


def test_a_wrong_audition_is_answered_with_one_line_naming_the_field(delivered):
    project, _, _, job_id, _ = delivered
    assert audition(project, "j-nope", "original", expect="error")[2:] == ["job_id",
                                                                          "job_id: 'j-nope' is not a known job"]
    assert audition(project, job_id, "variant", variant=3, expect="error")[2:] == [
        "variant", "variant: 3 must be in range 1..2"]
    assert audition(project, job_id, "louder", expect="error")[2] == "what"


def test_a_pad_auditions_the_last_job_and_another_stops_it(delivered):
    project, pads, tape, _, manifests = delivered
    _, variants, lo = programs(project, manifests)
    pads.wait_joined(timeout=30)
    since = len(tape.blocks)
    pads.note(40)
    assert pads.wait_for_leds(lambda c: c.led_values(40), timeout=30)  # heard: its LED starts flashing
    pads.note(41)
    for note in (40, 41):
        assert pads.wait_for_leds(lambda c, note=note: c.led_values(note)[-len(DONE):] == DONE, timeout=30), \
            pads.led_values(note)
    recording = np.concatenate([block for _, _, block in tape.blocks[since:]])
    at = np.flatnonzero(np.any(recording != 0, axis=1))[0] // PERIOD * PERIOD
    heard = recording[at:]
    last_sound = np.flatnonzero(np.any(heard != 0, axis=1))[-1]
    switch = last_sound // PERIOD * PERIOD  # the stop took effect at a cycle's start, and faded out in 10 ms
    stopped = switch + FADE
    assert PERIOD <= switch < lo, "stopped during the pre-roll"
    assert not heard[stopped:].any()
    np.testing.assert_array_equal(heard[:switch], variants[0][:switch])  # variant 1 from its start...
    fade_out = ((np.arange(FADE) + 0.5) / FADE).astype(np.float32)[::-1, None]
    np.testing.assert_allclose(heard[switch:stopped], variants[0][switch:stopped] * fade_out, atol=1e-7)
