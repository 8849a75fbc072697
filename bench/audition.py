"""Audition latency through a real JACK server: press (an OSC /bridge/audition) -> first sample on the daemon's JACK
output port, and A/B switch -> first sample of the other program, against the JACK period and an OSC round trip
(/bridge/ping -> /bridge/pong) measured in the same run.

A real daemon (`daw-bridge serve`, embedded engine) inpaints a song whose range was made silent, so on the tape (a
JACK client recording the daemon's ports, tests/audition/tape.py) the original is exact silence over the range and
the variant is not: "ab" from the original to the variant is heard from the first non-zero sample. The time of a
sample is when the tape's process callback received its block (the daemon's client runs before it in the same
cycle), on the same monotonic clock as the send. Presses are spaced with random pauses so they land anywhere in the
JACK cycle.

    python bench/audition.py [--presses 20] [--period 256]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
from _common import BenchDaemon, describe  # (puts the repository on sys.path)

from bridge.audition.program import bar_seconds
from bridge.client import BridgeClient
from bridge.demo_song import make_song_array
from tests.audition.tape import Tape
from tests.frontends.jack import JackServer

RATE = 48000
START, END = 16.0, 24.0  # the silent range the engine fills


def first_sound_after(tape: Tape, since: float, timeout: float = 5.0) -> float:
    """The time of the first block received after ``since`` that holds a non-zero sample."""
    deadline = time.monotonic() + timeout
    checked = max(0, len(tape.blocks) - 200)  # blocks from well before ``since`` (a reply takes < 1 s)
    while time.monotonic() < deadline:
        blocks = tape.blocks
        for _, heard, block in blocks[checked:]:
            if heard > since and block.any():
                return heard
        checked = len(blocks)
        time.sleep(0.002)
    raise TimeoutError("nothing was heard")


def silent_since(tape: Tape, since: float, timeout: float = 5.0) -> None:
    """Wait until a whole block received after ``since`` is silent (the original's range is playing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(heard > since and not block.any() for _, heard, block in tape.blocks[-20:]):
            return
        time.sleep(0.005)
    raise TimeoutError("the original never went silent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--period", type=int, default=256)
    options = parser.parse_args()
    logs = tempfile.mkdtemp(prefix="audition-bench-")  # the server's log, removed with it
    jack = JackServer(logs, period=options.period, rate=RATE).start()
    tape = Tape()
    try:
        ports = ", ".join(f'"{port}"' for port in tape.ports)
        with BenchDaemon(f'[audition]\njack_server = "{jack.name}"\njack_ports = [{ports}]\n') as daemon:
            song, _ = make_song_array(40.0, RATE)
            song[int(START * RATE):int(END * RATE)] = 0.0
            sf.write(daemon.root / "song.wav", song, RATE, subtype="PCM_24")
            with BridgeClient("127.0.0.1", daemon.port) as client:
                outcome, _ = client.run_job("inpaint", source=str(daemon.root / "song.wav"), start=START, end=END,
                                            prompt="", num_outputs=1, timeout=300)
                assert outcome.name == "done", outcome
                tempo = json.loads(Path(outcome.args[1]).read_text())["splice"]["tempo"]
                measure(client, tape, outcome.args[0], 2 * bar_seconds(tempo), options, jack.period)
    finally:
        tape.close()
        jack.stop()
        shutil.rmtree(logs, ignore_errors=True)


def send(client: BridgeClient, *args, **options) -> float:
    sent = time.monotonic()
    client.send("audition", **dict(zip(("job_id", "what"), args)), **options)
    reply = client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=10)
    assert reply is not None and reply.name == "auditioning", reply
    return sent


def measure(client: BridgeClient, tape: Tape, job: str, pre_roll: float, options, period: int) -> None:
    sent = send(client, job, "variant")
    cold = first_sound_after(tape, sent) - sent  # opens the JACK client and reads the job
    pings, presses, switches = [], [], []
    while len(presses) < options.presses or len(switches) < options.presses:
        send(client, job, "stop")
        time.sleep(0.1 + random.random() * 0.05)
        started = time.monotonic()
        client.ping(timeout=2)
        pings.append(time.monotonic() - started)
        sent = send(client, job, "original")
        presses.append(first_sound_after(tape, sent) - sent)
        range_end = sent + pre_roll + (END - START)
        time.sleep(pre_roll + 0.2)
        silent_since(tape, time.monotonic())
        while time.monotonic() < range_end - 0.6 and len(switches) < options.presses:
            time.sleep(random.random() * 0.05)
            sent = send(client, job, "ab")  # the original (silent here) -> the variant
            switches.append(first_sound_after(tape, sent) - sent)
            send(client, job, "ab")  # and back
            silent_since(tape, time.monotonic())
    cycle = period / RATE
    presses, switches = presses[:options.presses], switches[:options.presses]
    print(f"JACK: dummy driver, {RATE} Hz, period {period} frames = {cycle * 1000:.2f} ms")
    print(f"first press (opens the JACK client, reads and matches the job): {cold * 1000:.0f} ms")
    print(f"OSC round trip (ping -> pong), baseline:  {describe(pings)}")
    print(f"press -> first sample on the port:        {describe(presses)}")
    print(f"A/B switch -> first sample of the other:  {describe(switches)}")
    for name, values in (("press", presses), ("A/B switch", switches)):
        median = statistics.median(values)
        print(f"{name}: median = {median / cycle:.2f} JACK periods = {median / statistics.median(pings):.1f}x the "
              f"OSC round trip; target < 50 ms {'met' if median < 0.05 else 'missed'}")


if __name__ == "__main__":
    main()
