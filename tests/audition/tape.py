"""A JACK client that records what reaches its two inputs: one block per cycle, with the cycle's frame time and
the wall-clock time the block was heard (for the bench).

The server runs in sync mode (tests/frontends/jack.py: ``-S``), so every client runs in every cycle: a cycle the
loaded machine drops is dropped for the player and the tape alike, and the recording still holds every frame played.
"""

from __future__ import annotations

import re
import subprocess
import sys
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
        self.client.set_process_callback(self._record)
        self.client.activate()

    @property
    def ports(self) -> list[str]:
        return [port.name for port in self.ins]

    def _record(self, frames: int) -> None:
        block = np.stack([port.get_array().copy() for port in self.ins], axis=1)
        self.blocks.append((self.client.last_frame_time, time.monotonic(), block))

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def gil_hold(seconds: float = 2.0) -> int:
    """The length of string for which ``hold_the_gil`` holds the GIL ``seconds`` or more (up to twice as long)."""
    length = 18
    while held(length) < seconds:  # the same call on a longer string: one call, one hold, whatever this machine
        length += 1
    return length


def hold_the_gil(record: Path, length: int) -> None:
    """Hold this process's GIL in one C call (a regular expression that backtracks never lets go, on a string of
    ``length``: ``gil_hold``), as python-rtmidi does while it opens a JACK port, only longer; but first make the
    same call in a process of its own, the same load on the machine without the GIL. Write both spans of time into
    ``record``."""
    spans = []
    for apart in (True, False):
        began = time.monotonic()  # the same clock in every process here (CLOCK_MONOTONIC)
        if apart:
            subprocess.run([sys.executable, "-c", f"import re; re.match({_PATTERN!r}, 'a' * {length})"], check=True)
        else:
            held(length)
        spans += [began, time.monotonic()]
    record.write_text(" ".join(map(str, spans)))


def cycles_while_held(tape: Tape, record: Path) -> tuple[float, float]:
    """How many cycles a second ``tape`` ran while the hold ``record`` tells of lasted, and while the same call ran
    in a process of its own. A client whose callback waits for the held GIL holds up the whole server (measured: 1
    cycle in a 2 s hold, against 250 with the call apart); a loaded machine without realtime scheduling loses a few
    anyway, more while one of its cores is kept busy."""
    apart, apart_end, began, ended = map(float, record.read_text().split())
    rate = lambda lo, hi: sum(lo <= heard <= hi for _, heard, _ in tape.blocks) / (hi - lo)  # noqa: E731
    return rate(began, ended), rate(apart, apart_end)


_PATTERN = r"(a+)+b"


def held(length: int) -> float:
    """Hold the GIL in one call on a string of ``length`` (``gil_hold``); the seconds it took."""
    began = time.monotonic()
    re.match(_PATTERN, "a" * length)
    return time.monotonic() - began
