"""Worker processes that end with the daemon, however the daemon ends (SIGKILL and crashes run no clean-up).

Every worker holds the read end of a pipe whose only write end stays in the daemon; nobody ever writes to it. A
thread in the worker blocks reading it and gets end-of-file when the daemon is gone, because the kernel closes a
dead process's descriptors whatever killed it; the worker then leaves with ``os._exit`` at once. This works the
same on Linux and macOS. ``cut()`` closes the write end on purpose, to end the workers without waiting for the job
they are running (the daemon's clean stop: that job stays journaled and resumes at the next start).

On Linux a worker also asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``): it arrives even
while the worker's Python is inside a long C call that holds the GIL, when the pipe-watching thread cannot run.
The kernel sends it when the *thread* that forked the worker ends, not the process, so a worker asks for it only
when the daemon's main thread forked it (that thread ends only with the process). A worker forked by another
thread (a daemon run inside a test's thread, a pool's manager thread) relies on the pipe alone.

The multiprocessing resource tracker exits when the last holder of its pipe (the daemon and each worker) is gone,
after removing the semaphores the daemon left; after a clean stop ``end_resource_tracker`` waits for it, so it does
not outlive the daemon, even for a moment, as a process nobody started.
"""

from __future__ import annotations

import ctypes
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class LifelineContext(multiprocessing.context.SpawnContext):
    """A ``spawn`` multiprocessing context (for a process pool's ``mp_context``) whose processes die with this one."""

    def __init__(self):
        self._reader, self._writer = multiprocessing.connection.Pipe(duplex=False)

    def Process(self, *args, **kwargs) -> multiprocessing.context.SpawnProcess:  # noqa: N802 (as in BaseContext)
        return _LifelineProcess(self._reader, *args, **kwargs)

    def cut(self) -> None:
        """End every process of this context now; none can be started after this."""
        self._writer.close()
        self._reader.close()


class _LifelineProcess(multiprocessing.context.SpawnProcess):
    def __init__(self, lifeline: multiprocessing.connection.Connection, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lifeline = lifeline

    def start(self) -> None:
        # spawn hands the worker this process's folder (os.getcwd()), which fails once that folder is deleted (a
        # daemon started in a project folder the producer removed later): every job then failed as an internal
        # error. A deleted folder is empty, so no relative path could reach anything there: move to / instead.
        try:
            os.getcwd()
        except FileNotFoundError:
            os.chdir("/")
        super().start()

    def __getstate__(self) -> dict:
        # Pickled by spawn, in the thread that forks the worker. The lifeline goes first, so the worker holds it
        # before unpickling the rest imports the pool's initializer (the engine: seconds of numpy and librosa
        # imports, during which a daemon's death would otherwise go unnoticed).
        state = dict(self.__dict__)
        forked_by_main_thread = threading.current_thread() is threading.main_thread()
        return {"_lifeline": _HeldInWorker(state.pop("_lifeline"), os.getpid(), forked_by_main_thread), **state}


class _HeldInWorker:
    """Unpickled in the worker as a call to ``hold``."""

    def __init__(self, lifeline: multiprocessing.connection.Connection, daemon_pid: int, forked_by_main_thread: bool):
        self.args = (lifeline, daemon_pid, forked_by_main_thread)

    def __reduce__(self):
        return _hold_in_worker, self.args


def _hold_in_worker(lifeline: multiprocessing.connection.Connection, daemon_pid: int,
                    forked_by_main_thread: bool) -> None:
    hold(lifeline, daemon_pid, die_with_parent=forked_by_main_thread)


def hold(lifeline: multiprocessing.connection.Connection, daemon_pid: int, *, die_with_parent: bool) -> None:
    """In a worker: exit as soon as the daemon holding the other end of ``lifeline`` is gone."""
    # Ctrl-C in a terminal reaches its whole process group, workers included: each printed a KeyboardInterrupt
    # traceback under the daemon's (or one-shot command's) clean stop. The daemon decides what Ctrl-C means and ends
    # its workers through the lifeline, so a worker leaves SIGINT to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if die_with_parent:
        ask_to_die_with_parent()  # should it fail or not exist here, the pipe below still ends the worker
    threading.Thread(target=_exit_at_end_of_file, args=(lifeline,), name="lifeline", daemon=True).start()
    if os.getppid() != daemon_pid:  # the daemon died before the signal was asked for
        os._exit(0)


def ask_to_die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the thread that started it ends (Linux; elsewhere nothing).

    Also a ``preexec_fn`` for ``subprocess``: the request survives ``exec``, so a program started that way (a test's
    JACK server, host or daemon) ends with the process that started it, however that process ends.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))


def _exit_at_end_of_file(lifeline: multiprocessing.connection.Connection) -> None:
    try:
        while True:
            lifeline.recv_bytes()  # nothing is ever sent: this returns only by raising, at end-of-file
    except (EOFError, OSError):
        pass
    os._exit(0)  # no clean-up on purpose: the daemon is gone, nobody waits for this worker's results


def end_resource_tracker() -> None:
    """Stop this process's multiprocessing resource tracker and wait for it (once every pool is shut down).

    The tracker is a child of the process whose pools started it, and would otherwise end only after its parent,
    adopted by init in between. ``_stop`` is the standard library's own (Python 3.11-3.13); without it, nothing.
    """
    from multiprocessing import resource_tracker

    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()
