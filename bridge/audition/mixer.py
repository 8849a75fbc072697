"""The audio callback's side of an audition: copy the current program from its position, crossfading on a switch.

Real-time rules: ``render`` runs in the audio callback. It never allocates a buffer, locks, waits, logs or does I/O;
it only slices arrays another thread prepared (a slice is a view, not a copy) and multiplies in place into the
output and one preallocated scratch row. The other side talks to it through one attribute, ``_request``, holding an
immutable tuple: storing a reference is atomic in CPython, and a sequence number tells the callback it is new.
Where the Mixer plays in a process of its own (``sound_process``), the callback also reports in ``state``, a shared
array of integers, the last request it took up and whether a program plays.
"""

from __future__ import annotations

import numpy as np

FADE_S = 0.01  # the crossfade of a switch (A/B, another variant, stop): short, and no click
MAX_BLOCK = 8192  # the largest callback block served (JACK's and PortAudio's usual ones are 64..4096)


class Mixer:
    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self._up = ramp(sample_rate)
        self._down = np.ascontiguousarray(self._up[::-1])
        self._scratch = np.zeros(MAX_BLOCK, np.float32)
        self._request: tuple = (0, None, None)  # (sequence, program or None, start frame or None: stay in place)
        self._seen = 0
        self._program: np.ndarray | None = None
        self._position = 0
        self._fading: np.ndarray | None = None  # what a switch fades out of (None: silence)
        self._fading_position = 0
        self._faded = len(self._up)  # frames of the crossfade done; len(_up): none running
        self.state = None  # a shared array: [0] the last request taken up, [1] 1 while a program plays

    # -- the control side (any thread but the callback's) ------------------------------------------------------------

    def play(self, program: np.ndarray, start: int | None = 0) -> None:
        """Play ``program`` (float32, shaped (2, frames)) from frame ``start``, or from the current frame when None
        (a request the callback has not taken up yet lends its start: "variant 1" then at once "next" plays
        variant 2 from the start)."""
        sequence, _, pending_start = self._request
        if start is None and sequence != self._seen:
            start = pending_start
        self._request = (sequence + 1, program, start)

    def stop(self) -> None:
        self._request = (self._request[0] + 1, None, None)

    @property
    def playing(self) -> bool:
        """Whether a program plays, or is about to (False once it played to its end, or after stop)."""
        sequence, program, _ = self._request
        return program is not None if sequence != self._seen else self._program is not None

    @property
    def position(self) -> int:
        return self._position

    # -- the callback side -------------------------------------------------------------------------------------------

    def render(self, outputs, frames: int) -> None:
        """Fill each of the two output rows (1-D float32, at least ``frames`` long) with the next ``frames`` frames."""
        sequence, program, start = self._request
        if sequence != self._seen:
            self._seen = sequence
            if self._program is not None:  # fade out of what played; from silence a program starts as it is
                self._fading, self._fading_position, self._faded = self._program, self._position, 0
            self._program = program
            self._position = self._position if start is None else start
        fade = min(frames, len(self._up) - self._faded)
        for channel, out in enumerate(outputs):
            _copy(out, self._program, channel, self._position, frames)
            if fade > 0:
                done = self._faded
                np.multiply(out[:fade], self._up[done:done + fade], out=out[:fade])
                scratch = self._scratch[:fade]
                _copy(scratch, self._fading, channel, self._fading_position, fade)
                np.multiply(scratch, self._down[done:done + fade], out=scratch)
                np.add(out[:fade], scratch, out=out[:fade])
        self._position += frames
        if fade > 0:
            self._faded += fade
            self._fading_position += fade
        if self._program is not None and self._position >= self._program.shape[1]:
            self._program = None
        if self.state is not None:  # whether it plays first: a press that sees the request taken up reads it next
            self.state[1] = self._program is not None
            self.state[0] = self._seen


def ramp(sample_rate: int) -> np.ndarray:
    """The fade-in of a switch, and of every program's start (its reverse ends them): linear over FADE_S, as the
    programs a switch joins share their context."""
    frames = max(1, round(FADE_S * sample_rate))
    return ((np.arange(frames) + 0.5) / frames).astype(np.float32)


def _copy(out: np.ndarray, program: np.ndarray | None, channel: int, position: int, frames: int) -> None:
    """``program[channel, position:position + frames]`` into ``out``, silent past its end (or with no program)."""
    have = 0 if program is None else max(0, min(frames, program.shape[1] - position))
    if have:
        out[:have] = program[channel, position:position + have]
    out[have:frames] = 0.0
