"""The audition's output in a process of its own, so that nothing the daemon does can make it drop out.

The output's audio callback is Python (JACK-Client's and sounddevice's callbacks take the GIL). In the daemon's
process it waited for the GIL behind whatever else ran there, and lost cycles: measured on a private jackd (256
frames at 48 kHz, `bench/audition_gil.py`), one thread of pure-Python work beside it broke the played stream 114-117
times in 5 s, and python-rtmidi opening a MIDI port (it holds the GIL for the JACK handshake) broke it each time a
controller came in; the same work in another process, 0-3 times. Here the callback runs alone with its process's
GIL, next to one thread that only waits on the pipe.

The daemon keeps everything slow (reading a job's audio, loudness matching): each program it prepares is copied
once into an anonymous shared file whose descriptor is passed over the pipe, and the sound process maps it, so a
press sends a few bytes. A program the daemon lets go of is forgotten there at the next command. The sound process
ends with the daemon however the daemon ends (``bridge.lifeline``). Platforms that cannot pass descriptors (Windows)
keep the output in the daemon's process.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing.reduction
import os
import tempfile
import threading
import weakref

import numpy as np

from bridge.audition.output import open_device
from bridge.audition.program import AuditionError
from bridge.lifeline import LifelineContext

log = logging.getLogger(__name__)

CAN_PASS_DESCRIPTORS = hasattr(multiprocessing.reduction, "sendfds")
OPEN_TIMEOUT = 60.0  # seconds for the sound process to start and open its output (imports on a cold, loaded machine)
_SEEN, _PLAYING, _ALIVE = range(3)  # the shared state's slots: written by the sound process, read by the daemon


def open_output(settings: dict):
    """The output the [audition] table asks for, played from a process of its own where the platform allows."""
    if not CAN_PASS_DESCRIPTORS or settings.get("output", "auto") == "none":
        return open_device(settings)
    return SoundProcess(settings)


class SoundProcess:
    """An output (JACK or PortAudio, as ``open_device`` chooses) opened and played in a child process; ``mixer``
    takes the same calls as the child's Mixer."""

    def __init__(self, settings: dict):
        self._context = LifelineContext()
        self._pipe, theirs = self._context.Pipe()
        state = self._context.RawArray("q", 3)
        self._process = self._context.Process(target=_serve, args=(theirs, settings, state),
                                              name="daw-bridge-audition", daemon=True)
        self._process.start()
        theirs.close()
        try:
            if not self._pipe.poll(OPEN_TIMEOUT):
                raise AuditionError(f"the audition's output did not open within {OPEN_TIMEOUT:.0f} s")
            answer = self._pipe.recv()
        except (EOFError, OSError):
            answer = ("failed", f"the audition's output process ended (exit code {self._process.exitcode})")
        except AuditionError:
            self.close()
            raise
        if answer[0] == "failed":
            self.close()
            raise AuditionError(answer[1])
        _, self.kind, self.name, self.sample_rate = answer
        self.mixer = MixerLink(self._pipe, state, self._process.pid)
        self._state = state

    @property
    def alive(self) -> bool:
        """False once the process ended or its JACK server went away: the next press opens a new output."""
        return self._process.is_alive() and bool(self._state[_ALIVE])

    def close(self) -> None:
        try:
            self._pipe.send(("close",))
        except OSError:  # it ended already
            pass
        self._process.join(5.0)
        self._context.cut()  # should it hang in its output's close, the lifeline ends it
        self._process.join(5.0)
        self._pipe.close()


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
            self._forget_gone()
            self._send("stop")
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
        descriptor = _anonymous_file(samples.nbytes)
        try:
            _write_all(descriptor, memoryview(samples).cast("B"))
            self._send("load", key, samples.shape)
            multiprocessing.reduction.send_handle(self._pipe, descriptor, self._pid)
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


def _anonymous_file(size: int) -> int:
    """A descriptor of ``size`` bytes of memory no name reaches (a memfd; elsewhere an unlinked temporary file)."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("daw-bridge-audition", os.MFD_CLOEXEC)
    else:
        descriptor, path = tempfile.mkstemp(prefix="daw-bridge-audition-")
        os.unlink(path)
    os.ftruncate(descriptor, size)
    return descriptor


def _write_all(descriptor: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(descriptor, data[done:], done)


# -- the sound process ------------------------------------------------------------------------------------------------


def _serve(pipe, settings: dict, state) -> None:
    """Open the output, answer how it went, then carry out the daemon's requests until it closes or goes away."""
    try:
        output = open_device(settings)
    except AuditionError as exc:
        pipe.send(("failed", str(exc)))
        return
    state[_ALIVE] = 1
    output.mixer.state = state
    pipe.send(("open", output.kind, output.name, output.sample_rate))
    programs: dict[int, np.ndarray] = {}
    try:
        while True:
            state[_ALIVE] = int(output.alive)
            if not pipe.poll(0.2):
                continue
            verb, *args = pipe.recv()
            if verb == "load":
                key, shape = args
                programs[key] = _mapped(multiprocessing.reduction.recv_handle(pipe), shape)
            elif verb == "play":
                key, start = args
                output.mixer.play(programs[key], start)
            elif verb == "stop":
                output.mixer.stop()
            elif verb == "forget":
                # Should it still play, the Mixer's reference keeps it mapped until the callback lets go of it.
                programs.pop(args[0], None)
            elif verb == "close":
                break
    except (EOFError, OSError):  # the daemon closed its end without a word
        pass
    finally:
        output.close()


def _mapped(descriptor: int, shape: tuple[int, int]) -> np.ndarray:
    try:
        memory = mmap.mmap(descriptor, shape[0] * shape[1] * 4, prot=mmap.PROT_READ)
    finally:
        os.close(descriptor)
    return np.frombuffer(memory, np.float32).reshape(shape)  # the array keeps the mapping open while it lives
