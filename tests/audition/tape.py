"""A JACK client that records what reaches its two inputs: one block per cycle, with the cycle's frame time and
the wall-clock time the block was heard (for the bench).

The server runs in sync mode (tests/frontends/jack.py: ``-S``), so every client runs in every cycle: a cycle the
loaded machine drops is dropped for the player and the tape alike, and the recording still holds every frame played.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.frontends.jack import opened

jack = pytest.importorskip("jack")  # JACK-Client


class Tape:
    """Open it after any rtmidi client of this process (tests.frontends.jack.Controller): rtmidi opens its JACK
    clients holding the GIL, which this client's Python process callback needs in every cycle of a sync-mode
    server, so an rtmidi client opened while the tape runs can miss JACK's handshake."""

    def __init__(self, name: str = ""):
        name = name or f"tape-{uuid.uuid4().hex[:6]}"
        self.client = opened(lambda: jack.Client(name, no_start_server=True))
        self.ins = [self.client.inports.register(f"in_{n}") for n in (1, 2)]
        self.blocks: list[tuple[int, float, np.ndarray]] = []  # (frame time, time.monotonic(), (frames, 2))
        self.xruns: list[float] = []  # when (time.monotonic()) the server reported a cycle some client was late in
        self.client.set_process_callback(self._record)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    @property
    def ports(self) -> list[str]:
        return [port.name for port in self.ins]

    def _record(self, frames: int) -> None:
        block = np.stack([port.get_array().copy() for port in self.ins], axis=1)
        self.blocks.append((self.client.last_frame_time, time.monotonic(), block))

    def _xrun(self, delay: float) -> None:
        self.xruns.append(time.monotonic())

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def hold_the_gil(record: Path, seconds: float = 2.0) -> None:
    """Hold this process's GIL for ``seconds`` or more in one C call (a regular expression that backtracks never
    lets go), as python-rtmidi does while it opens a JACK port, only longer; write when into ``record``."""
    length = 18
    while _held(length) < seconds:  # the same call on a longer string: one call, one hold, whatever this machine
        length += 1
    began = time.monotonic()  # the same clock in every process here (CLOCK_MONOTONIC)
    _held(length)
    record.write_text(f"{began} {time.monotonic()}")


def late_while_held(tape: Tape, record: Path) -> tuple[int, float]:
    """The late cycles ``tape`` heard of while the hold ``record`` tells of lasted (and half a second after), and
    the seconds it lasted. A hold in a process with a JACK client makes 5-40 a second; a loaded machine, without
    realtime scheduling, makes the odd one at any time."""
    began, ended = map(float, record.read_text().split())
    return sum(began <= at <= ended + 0.5 for at in tape.xruns), ended - began


def _held(length: int) -> float:
    began = time.monotonic()
    re.match(r"(a+)+b", "a" * length)
    return time.monotonic() - began
