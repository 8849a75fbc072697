"""A JACK client that records what reaches its two inputs: one block per cycle, with the cycle's frame time and
the wall-clock time the block was heard (for the bench).

The server runs in sync mode (tests/frontends/jack.py: ``-S``), so every client runs in every cycle: a cycle the
loaded machine drops is dropped for the player and the tape alike, and the recording still holds every frame played.
"""

from __future__ import annotations

import time
import uuid

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
        self.xruns = 0  # cycles the server reported some client late in
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
        self.xruns += 1

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
