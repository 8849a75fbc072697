"""Pad press -> job accepted through a real JACK server, against the bare MIDI transport measured in the same run.

A press is a note sent by a second JACK client (the controller stand-in of tests/frontends/jack.py) to the MIDI
frontend, running in-process on a job service built as bridge/daemon.py builds it. "Accepted" is the service's
accepted event: the note crossed JACK, was handed from the MIDI thread to the event loop, matched to a pad, turned
into a request from the session context, validated by osc_schema, its source probed and the job journaled (fsync).
The baseline is the same note reaching a bare mido callback on the same port and hopping to the same event loop: the
JACK and thread-hop share, which depends on the JACK period (one cycle is period/rate seconds).

Presses and baseline notes alternate, with a random pause between them so notes land anywhere in the JACK cycle.
Accepted jobs park in a backend that never finishes, so no generation competes for the two cores.

    python bench/midi_latency.py [--presses 200] [--period 256]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import mido
from _common import describe  # (importing _common puts the repository on sys.path)

from bridge.backends.base import Backend
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.demo_song import make_song
from bridge.frontends.midi import MidiFrontend
from tests.frontends.jack import Controller, JackServer


class ParkedBackend(Backend):
    """Takes every job and never finishes it: the figure is about admission, not generation."""

    name = "local"
    resubmit_safe = True

    async def submit(self, spec, prepared):
        return {}

    async def wait(self, spec, prepared, receipt, workdir, progress):
        await asyncio.Event().wait()


async def measure(root: Path, presses: int) -> tuple[list[float], list[float], list[float]]:
    song = make_song(root / "song.wav", seconds=30.0)
    (root / "pads.toml").write_text('[[pad]]\nnote = 36\ncommand = "inpaint"\nnum_outputs = 1\n')
    config = Config(state_dir=root / "state", project_roots=(root,), drop_folder=root / "drop", inbox=root / "inbox")
    journal = Journal(config.journal_path)
    service = JobService(config, journal, {"local": ParkedBackend()})
    controller = Controller("benchpads")
    frontend = MidiFrontend(service, replace(config, midi={"port": "benchpads-pads*", "api": "UNIX_JACK",
                                                           "mapping": str(root / "pads.toml")}))
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future | None = None

    def settle(value: float) -> None:
        if arrived is not None and not arrived.done():
            arrived.set_result(value)

    def bare_callback(message) -> None:  # the baseline: JACK, the MIDI thread, the hop to the loop; nothing else
        if message.type == "note_on" and message.note == 60:
            loop.call_soon_threadsafe(settle, time.perf_counter())

    parked: list[str] = []

    def on_event(record, event) -> None:
        if event == "accepted":
            parked.append(record.job_id)
            settle(time.perf_counter())

    def cancel_parked() -> None:
        """A pad pressed again while its job runs, asking the same, starts nothing (and max_jobs + max_queued bound
        what may wait): each press's parked job is cancelled once measured, so the next press is a new job."""
        while parked:
            service.cancel(parked.pop())

    service.subscribe(on_event)
    bare = mido.Backend("mido.backends.rtmidi/UNIX_JACK", use_environ=False).open_input("benchpads-pads:pads",
                                                                                      callback=bare_callback)
    await frontend.start()
    service.set_context({"source": str(song), "start": 10.0, "end": 12.0})
    await asyncio.to_thread(_wait_joined, controller)
    baseline, accepted, in_loop = [], [], []
    try:
        for i in range(presses):
            for note, figures in ((60, baseline), (36, accepted)):
                arrived = loop.create_future()
                start = time.perf_counter()
                controller.send(mido.Message("note_on", note=note, velocity=100))
                figures.append(await asyncio.wait_for(arrived, 5) - start)
                cancel_parked()
                await asyncio.sleep(random.uniform(0.01, 0.03))
        for i in range(presses):  # the frontend's own share: a press handed to it on the loop, no MIDI
            arrived = loop.create_future()
            start = time.perf_counter()
            frontend.received(mido.Message("note_on", note=36, velocity=100))
            in_loop.append(await asyncio.wait_for(arrived, 5) - start)
            cancel_parked()
            await asyncio.sleep(random.uniform(0.01, 0.03))
    finally:
        frontend.close()
        bare.close()
        controller.close()
        await service.close()
        journal.close()
    return baseline, accepted, in_loop


def _wait_joined(controller: Controller) -> None:
    """The frontend and the bare input both joined to the pads (the LED port stays unjoined here)."""
    import subprocess

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout.splitlines()
        index = out.index("benchpads-pads:pads") if "benchpads-pads:pads" in out else -1
        joined = 0
        for line in out[index + 1:] if index >= 0 else []:
            if not line.startswith((" ", "\t")):
                break
            joined += 1
        if joined >= 2:
            time.sleep(0.05)
            return
        time.sleep(0.01)
    raise RuntimeError("the pads were not joined")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--period", type=int, default=256, help="JACK period in frames at 48 kHz")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="daw-bridge-midi-bench-"))
    try:
        server = JackServer(root, period=args.period).start()
        try:
            baseline, accepted, in_loop = asyncio.run(measure(root, args.presses))
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cycle = args.period / server.rate * 1000
    print(f"JACK dummy driver, sync mode, period {args.period} frames at {server.rate} Hz = {cycle:.2f} ms a cycle")
    print(f"note -> bare callback on the loop (baseline): {describe(baseline)}")
    print(f"pad press -> job accepted:                   {describe(accepted)}")
    print(f"press handed to the frontend -> accepted:    {describe(in_loop)}")
    print(f"ratio accepted/baseline (medians):           "
          f"{statistics.median(accepted) / statistics.median(baseline):.2f}")
    print(f"frontend and admission share (medians):      "
          f"{(statistics.median(accepted) - statistics.median(baseline)) * 1000:.3f} ms")


if __name__ == "__main__":
    main()
