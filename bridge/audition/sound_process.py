"""The audition's output in a process of its own (``bridge.audio_process`` says why), so that nothing the daemon
does can make it drop out.

The daemon keeps everything slow (reading a job's audio, loudness matching): each program it prepares is copied
once into shared memory for the sound process, so a press sends a few bytes. A program the daemon lets go of is
forgotten there at the next command.
"""

from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from bridge import audio_process
from bridge.audition.output import open_device
from bridge.audition.program import AuditionError

_SEEN, _PLAYING = 1, 2  # the shared state's slots the Mixer reports in: the last request taken up, 1 while playing


def open_output(settings: dict):
    """The output the [audition] table asks for, played from a process of its own where the platform allows."""
    if not audio_process.CAN_PASS_DESCRIPTORS or settings.get("output", "auto") == "none":
        return open_device(settings)
    return SoundProcess(settings)


class SoundProcess(audio_process.DeviceProcess):
    """An output (JACK or PortAudio, as ``open_device`` chooses) opened and played in a child process; ``mixer``
    takes the same calls as the child's Mixer."""

    def __init__(self, settings: dict):
        super().__init__(_serve, settings, AuditionError)
        self.mixer = MixerLink(self.pipe, self.state, self.pid)


class MixerLink:
    """The daemon's side of the sound process's Mixer: ``play``, ``stop`` and ``playing``, as on a Mixer."""

    def __init__(self, pipe, state, pid: int):
        self._pipe = pipe
        self._state = state
        self._pid = pid
        self._lock = threading.Lock()  # one message (and its descriptor) at a time on the pipe
        self._sequence = 0  # requests sent; the Mixer there counts the same ones and reports the last it took up
        self._requested = False  # whether the last request was to play
        self._shared: dict[int, weakref.ref] = {}  # programs the sound process holds, by key
        self._gone: list[int] = []  # keys of programs the daemon let go of, to forget there with the next command

    def play(self, program: np.ndarray, start: int | None = 0) -> None:
        with self._lock:
            self._forget_gone()
            key = self._share(program)
            self._send("play", key, start)
            self._requested = True

    def stop(self) -> None:
        with self._lock:
            try:
                self._forget_gone()
                self._send("stop")
            except AuditionError:  # the process ended: nothing plays there any more, which is what stop asks
                pass
            self._requested = False

    @property
    def playing(self) -> bool:
        """As ``Mixer.playing``: the request not taken up yet says, else what the callback plays."""
        if self._state[_SEEN] != self._sequence:
            return self._requested
        return bool(self._state[_PLAYING])

    def _send(self, *message) -> None:
        try:
            self._pipe.send(message)
        except OSError:
            raise AuditionError("the audition's output process ended; press again to open it anew") from None
        if message[0] in ("play", "stop"):
            self._sequence += 1

    def _share(self, program: np.ndarray) -> int:
        key = id(program)
        held = self._shared.get(key)
        if held is not None and held() is program:
            return key
        samples = np.ascontiguousarray(program, np.float32)
        try:
            descriptor = audio_process.anonymous_file(samples.nbytes)
        except OSError as exc:
            raise _not_copied(exc) from None
        try:
            _write_all(descriptor, samples)
        except OSError as exc:
            os.close(descriptor)
            raise _not_copied(exc) from None
        try:
            self._send("load", key, samples.shape)
            audio_process.send_descriptor(self._pipe, descriptor, self._pid)
        except OSError:
            raise AuditionError("the audition's output process ended; press again to open it anew") from None
        finally:
            os.close(descriptor)
        # Called when the daemon drops the program; appending is all it may do, as it can run inside a send.
        self._shared[key] = weakref.ref(program, lambda _, key=key: self._gone.append(key))
        return key

    def _forget_gone(self) -> None:
        while self._gone:
            key = self._gone.pop()
            held = self._shared.get(key)
            if held is not None and held() is None:
                del self._shared[key]
                self._send("forget", key)


def _not_copied(exc: OSError) -> AuditionError:
    """The program could not be copied into memory for the output's process (out of memory or descriptors; where
    there is no memfd, a temporary file on a full disk): the process still plays, and says so."""
    return AuditionError(f"the audition could not copy the program for its output's process ({exc.strerror or exc})")


def _write_all(descriptor: int, samples: np.ndarray) -> None:
    data = memoryview(samples).cast("B")
    done = 0
    while done < len(data):
        done += os.pwrite(descriptor, data[done:], done)


# -- the sound process ------------------------------------------------------------------------------------------------


def _serve(pipe, settings: dict, state) -> None:
    """Open the output, then play, stop, load and forget programs as the daemon asks."""
    try:
        output = open_device(settings)
    except AuditionError as exc:
        pipe.send(("failed", str(exc)))
        return
    output.mixer.state = np.frombuffer(state, np.int64)[_SEEN:]
    programs: dict[int, np.ndarray] = {}

    def command(verb: str, args: list) -> None:
        if verb == "load":
            key, shape = args
            memory = audio_process.received(pipe, shape[0] * shape[1] * 4)
            programs[key] = np.frombuffer(memory, np.float32).reshape(shape)  # keeps the mapping while it lives
        elif verb == "play":
            key, start = args
            output.mixer.play(programs[key], start)
        elif verb == "stop":
            output.mixer.stop()
        elif verb == "forget":
            # Should it still play, the Mixer's reference keeps it mapped until the callback lets go of it.
            programs.pop(args[0], None)

    audio_process.serve(pipe, state, output, command=command)
