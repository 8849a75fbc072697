"""The audition's output against the daemon's own Python: late JACK cycles and breaks in the played stream while
the process that asked for the audition is busy, with the output in that process (as before) and in a process of
its own (``bridge.audition.sound_process``, as shipped), in the same run.

A private ``jackd -d dummy`` in its default (asynchronous) mode, as a producer runs it; the output plays a ramp
whose every sample is its own index, and a recorder in a separate process counts the server's late cycles and the
places where the recorded ramp does not go up by one. The loads, each for about 5 s in the asking process:
``idle``; ``thread``: one thread of pure-Python work; ``midi``: python-rtmidi opening three JACK MIDI ports, a
second apart (what plugging in a controller does); ``hold``: one C call holding the GIL for a second.

    python bench/audition_gil.py [--runs 3] [--period 256]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from _common import ROOT  # (puts the repository on sys.path)

from bridge.audition.output import open_device
from bridge.audition.sound_process import SoundProcess
from bridge.lifeline import end_resource_tracker
from tests.frontends.jack import JackServer

RATE = 48000
LOADS = ("idle", "thread", "midi", "hold")
RECORD_SECONDS = 8.0


def record(seconds: float) -> None:
    """The recorder (run as its own process): print late cycles and breaks in the ramp it heard."""
    import jack

    client = jack.Client("recorder", no_start_server=True)
    port = client.inports.register("in")
    blocks, late = [], [0]
    client.set_process_callback(lambda frames: blocks.append(port.get_array().copy()))
    client.set_xrun_callback(lambda delay: late.__setitem__(0, late[0] + 1))
    client.activate()
    client.connect("daw-bridge-audition:out_1", "recorder:in")
    print("ready", flush=True)
    time.sleep(seconds)
    client.deactivate()
    client.close()
    heard = np.concatenate(blocks).astype(np.float64) * 2 ** 20
    sounding = heard[1:] > 0
    print(late[0], int(np.sum(sounding & (np.abs(np.diff(heard) - 1) > 0.5))), flush=True)


def load(kind: str) -> None:
    if kind == "idle":
        time.sleep(5)
    elif kind == "thread":
        def work():
            end = time.monotonic() + 5
            while time.monotonic() < end:
                sum(i * i for i in range(10000))
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    elif kind == "midi":
        import rtmidi
        ports = []
        for n in range(3):
            ports.append(rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=f"controller-{n}"))
            ports[-1].open_virtual_port("in")
            time.sleep(1.0)
        for port in ports:
            port.close_port()
        time.sleep(2)
    elif kind == "hold":
        length = 18
        while True:  # one regular-expression match that backtracks: it never lets go of the GIL
            began = time.monotonic()
            re.match(r"(a+)+b", "a" * length)
            if time.monotonic() - began >= 1.0:
                break
            length += 1
        time.sleep(4)


def one_run(apart: bool, kind: str) -> tuple[int, int]:
    output = SoundProcess({"output": "jack"}) if apart else open_device({"output": "jack"})
    try:
        frames = RATE * 20
        ramp = (np.arange(frames, dtype=np.float64) / 2 ** 20 + 2 ** -21).astype(np.float32)
        output.mixer.play(np.stack([ramp, ramp]), 0)
        recorder = subprocess.Popen([sys.executable, __file__, "--record", str(RECORD_SECONDS)],
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert recorder.stdout.readline().strip() == "ready"
        time.sleep(1)
        load(kind)
        late, breaks = map(int, recorder.communicate()[0].split())
        return late, breaks
    finally:
        output.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--period", type=int, default=256)
    parser.add_argument("--record", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.record:
        record(args.record)
        return
    logs = tempfile.mkdtemp(prefix="audition-gil-")  # the server's log, removed with it
    server = JackServer(logs, period=args.period, rate=RATE, sync=False).start()
    try:
        print(f"jackd -d dummy -p {args.period} -r {RATE} (asynchronous), {args.runs} runs a cell; "
              "median late cycles / breaks in the stream over 8 s")
        for kind in LOADS:
            cells = []
            for apart in (False, True):
                results = [one_run(apart, kind) for _ in range(args.runs)]
                cells.append(f"{statistics.median(r[0] for r in results):5.0f} / "
                             f"{statistics.median(r[1] for r in results):4.0f}  {results}")
            print(f"{kind:7s} in the daemon's process: {cells[0]}\n        in its own process:    {cells[1]}")
    finally:
        server.stop()
        shutil.rmtree(logs, ignore_errors=True)
        end_resource_tracker()  # the sound processes' tracker ends before this process does, as the daemon's


if __name__ == "__main__":
    main()
