"""The daemon's audio devices (the audition's output, the voice's input), each opened in a process of its own.

A device's audio callback is Python (JACK-Client's and sounddevice's callbacks take the GIL). In the daemon's
process it waited for the GIL behind whatever else ran there: a busy thread, python-rtmidi opening a port (it holds
the GIL for the JACK handshake), a second's hold. JACK then reported every such cycle as late to all its clients
(measured with the voice's input open: 89-149 late cycles in 6 s while one thread of the daemon worked, none without
it), which a DAW marks as xruns and Ardour can be set to stop recording on; the audition's sound broke up as well
(``bench/audition_gil.py``). In a process of its own, the callback shares its GIL only with one thread that waits on
the pipe to the daemon.

The child opens the device and answers how it went, in one line when it could not; then it carries out the
daemon's commands until the daemon closes it, and ends with the daemon however the daemon ends
(``bridge.lifeline``). Audio crosses in shared memory: anonymous files whose descriptors go over the pipe. Platforms
that cannot pass descriptors (Windows) keep the devices in the daemon's process.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing.reduction
import os
import tempfile
from collections.abc import Callable

from bridge import logs
from bridge.exceptions import BridgeError
from bridge.lifeline import LifelineContext

CAN_PASS_DESCRIPTORS = hasattr(multiprocessing.reduction, "sendfds")
OPEN_TIMEOUT = 60.0  # seconds for the child to start and open its device (imports on a cold, loaded machine)
ALIVE = 0  # the shared state's slot the child keeps at 1 while its device works; the rest are the device's own
STATE_SLOTS = 4


class DeviceProcess:
    """A device opened by ``serve(pipe, settings, state)`` in a child process. The child answers ("open", kind,
    name, sample_rate, ...) or ("failed", reason), raised here as ``error``; ``state`` is a shared int64 array."""

    def __init__(self, serve: Callable, settings: dict, error: type[BridgeError]):
        self._context = LifelineContext()
        self.pipe, theirs = self._context.Pipe()
        self.state = self._context.RawArray("q", STATE_SLOTS)
        self._process = self._context.Process(target=_with_logging, args=(logging.getLogger().level, serve, theirs,
                                                                     settings, self.state),
                                              name="daw-bridge-device", daemon=True)
        self._process.start()
        theirs.close()
        try:
            if not self.pipe.poll(OPEN_TIMEOUT):
                raise error(f"the audio device did not open within {OPEN_TIMEOUT:.0f} s")
            answer = self.pipe.recv()
        except (EOFError, OSError):
            self._process.join(5.0)  # it is ending: its exit code is not known before
            answer = ("failed", f"the audio device's {_ended(self._process.exitcode)}")
        except BridgeError:
            self.close()
            raise
        if answer[0] == "failed":
            self.close()
            raise error(answer[1])
        _, self.kind, self.name, self.sample_rate, *self.opened = answer

    @property
    def alive(self) -> bool:
        """False once the process ended or its JACK server went away: the next use opens a new one."""
        return self._process.is_alive() and bool(self.state[ALIVE])

    @property
    def gone(self) -> str:
        """Why ``alive`` is False, for the log: the server or the process (a crash, the system short of memory)."""
        if self._process.is_alive():
            return "JACK server went away"
        return _ended(self._process.exitcode)

    @property
    def pid(self) -> int:
        return self._process.pid

    def close(self) -> None:
        try:
            self.pipe.send(("close",))
        except OSError:  # it ended already
            pass
        self._process.join(5.0)
        self._context.cut()  # should it hang in its device's close, the lifeline ends it
        self._process.join(5.0)
        self.pipe.close()


def _ended(exit_code: int | None) -> str:
    how = f"killed by signal {-exit_code}" if exit_code is not None and exit_code < 0 else f"exit code {exit_code}"
    return f"process ended ({how})"


def _with_logging(level: int, serve: Callable, *args) -> None:
    """In the child: log as the daemon does (its format, its level), then ``serve``. A spawned process starts with no
    logging set up: the device's warnings came out bare, its info lines (why JACK was not used) not at all."""
    logs.install(level)
    serve(*args)


def serve(pipe, state, device, opened: tuple = (), descriptor: int | None = None,
          command: Callable | None = None) -> None:
    """In the child, once ``device`` is open: answer with ``opened`` added (and ``descriptor`` after it), then pass
    each command from the daemon to ``command(verb, args)`` until it closes (or goes away); the device is closed
    at the end."""
    state[ALIVE] = 1
    try:
        pipe.send(("open", device.kind, device.name, device.sample_rate, *opened))
        if descriptor is not None:
            send_descriptor(pipe, descriptor, os.getppid())
            os.close(descriptor)
        while True:
            state[ALIVE] = int(device.alive)
            if not pipe.poll(0.2):
                continue
            verb, *args = pipe.recv()
            if verb == "close":
                break
            command(verb, args)
    except (EOFError, OSError):  # the daemon closed its end without a word
        pass
    finally:
        device.close()


def anonymous_file(size: int) -> int:
    """A descriptor of ``size`` bytes of memory no name reaches (a memfd; elsewhere an unlinked temporary file)."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("daw-bridge-audio", os.MFD_CLOEXEC)
    else:
        descriptor, path = tempfile.mkstemp(prefix="daw-bridge-audio-")
        os.unlink(path)
    os.ftruncate(descriptor, size)
    return descriptor


def send_descriptor(pipe, descriptor: int, pid: int) -> None:
    multiprocessing.reduction.send_handle(pipe, descriptor, pid)


def mapped(descriptor: int, size: int, writable: bool = False) -> mmap.mmap:
    """``size`` bytes of the file behind ``descriptor``, mapped shared; the descriptor is closed."""
    try:
        return mmap.mmap(descriptor, size, prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0))
    finally:
        os.close(descriptor)


def received(pipe, size: int, writable: bool = False) -> mmap.mmap:
    """The memory whose descriptor comes next on ``pipe``, mapped."""
    return mapped(multiprocessing.reduction.recv_handle(pipe), size, writable)
