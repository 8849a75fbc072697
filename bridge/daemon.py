"""The daemon: backends, then the core, then the frontends; stopped in reverse order.

Starting in this order means no command arrives while the core is half up; stopping in reverse inside ``finally``
means no job is left half-journaled when the producer logs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from contextlib import AsyncExitStack
from pathlib import Path

from bridge import logs, threads
from bridge.backends.base import Backend
from bridge.config import Config, ConfigError
from bridge.core.journal import Journal
from bridge.core.retention import Pruner, Retention
from bridge.core.service import JobService
from bridge.exceptions import BridgeError
from bridge.lifeline import end_resource_tracker
from bridge.statelock import StateLock

log = logging.getLogger(__name__)


def make_backends(config: Config) -> dict[str, Backend]:
    """Every backend this config can run: the embedded engine always, MusicGPT when it has an API key."""
    from bridge.backends.local.backend import LocalBackend

    local = config.local
    backends: dict[str, Backend] = {
        "local": LocalBackend(cache_dir=config.state_dir / "analysis-cache",
                              **{k: local[k] for k in ("min_confidence", "workers") if k in local}),
    }
    musicgpt = make_musicgpt(config)
    if musicgpt is not None:
        backends["musicgpt"] = musicgpt
    return backends


def make_musicgpt(config: Config) -> Backend | None:
    """The MusicGPT backend, or None when no API key is configured (the embedded engine still works)."""
    from bridge.backends.musicgpt.backend import MusicGPTBackend, MusicGPTSettings

    settings = MusicGPTSettings.from_config(config.musicgpt, state_dir=config.state_dir / "musicgpt",
                                            config_file=config.source_file)
    if settings.api_key is None:
        return None
    logs.redact(settings.api_key.reveal())  # second line of defence: even a careless log line cannot print the key
    return MusicGPTBackend.from_settings(settings)


class Daemon:
    """One running daw-bridge: owns the journal, the job service and the frontends."""

    def __init__(self, config: Config, backends: dict[str, Backend] | None = None):
        self.config = config
        self._backends = backends
        self.service: JobService | None = None
        self.osc = None
        self.inbox = None
        self.ableton = None
        self.midi = None
        self.audition = None
        self.decisions = None
        self.osc_address: tuple[str, int] | None = None
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set or SIGINT/SIGTERM/SIGHUP arrives."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGHUP: the terminal 'daw-bridge serve' ran in was closed. It killed the daemon outright, a delivery's
        # hidden half file left in the drop folder; it stops cleanly now, as on Ctrl-C.
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self.started.set()
            await stop.wait()
            log.info("stopping")

    async def _start(self, stack: AsyncExitStack) -> None:
        from bridge.audition import Audition
        from bridge.decisions import Decisions
        from bridge.frontends.inbox import InboxFrontend
        from bridge.frontends.notify import DawNotifier
        from bridge.frontends.osc import OscFrontend

        config = self.config
        if (clash := config.state_in_inbox()) is not None:
            raise BridgeError(clash, code="state_in_inbox")
        # First of all: a second daemon on this state folder must not touch its journal, jobs or ledgers.
        try:
            state_lock = StateLock.acquire(config.state_dir, config.osc_host, config.osc_port)
        except OSError as exc:
            raise BridgeError(unusable("state folder", config.state_dir, exc)) from None
        stack.callback(state_lock.release)
        # Said at start, not only when the first job is refused. Resolving the drop folder waits for good on a share
        # that does not answer: in a thread, said when it answers, the start (and a stop) not held up by it.
        refusals = asyncio.create_task(asyncio.to_thread(config.refused_by_roots))
        refusals.add_done_callback(_say_refusals)
        stack.callback(refusals.cancel)
        backends = self._backends if self._backends is not None else make_backends(config)
        for backend in backends.values():
            stack.push_async_callback(backend.close)
        journal = Journal(config.journal_path)
        stack.callback(journal.close)
        self.service = JobService(config, journal, backends)
        stack.push_async_callback(self.service.close)

        if config.notify:
            notifier = DawNotifier(config.notify)
            self.service.subscribe(notifier)
            stack.callback(notifier.close)
        self.audition = Audition(self.service, config.audition)  # opens its audio output on first use
        stack.push_async_callback(self.audition.close)
        self.decisions = Decisions(self.service)  # keep or discard, from OSC, pads and voice alike
        self.decisions.subscribe(self.audition.on_decision)  # a discarded job stops playing
        self.osc = OscFrontend(self.service, config, self.decisions)
        self.osc.audition = self.audition
        if config.ableton.get("enabled"):
            from bridge.frontends.ableton import AbletonFrontend, AbletonSettings

            self.ableton = AbletonFrontend(self.service, AbletonSettings.from_table(config.ableton,
                                                                                    config.source_file))
            await self.ableton.start()  # names the port when AbletonOSC's reply port is taken
            stack.callback(self.ableton.close)
            self.osc.ableton = self.ableton
        self.osc_address = await self.osc.start()
        stack.callback(self.osc.close)
        # OSC answers once the journal's jobs are taken up and the inbox is up (as when the inbox's start held the
        # event loop): a ping answered means the daemon is up, its inbox too, and no command is admitted before the
        # jobs the journal left unfinished are held (one admitted first would be taken up again, and run twice). A
        # share that does not answer holds up the start, and the log says so. Paused before the loop first reads
        # the socket; where it cannot be (Windows' proactor loop), nothing is awaited from here to the take-up.
        with contextlib.suppress(NotImplementedError):  # Windows' proactor loop: answered meanwhile
            self.osc.transport.pause_reading()
        # the inbox is watched once the OSC port is ours: a daemon refused its port starts no watcher thread (one
        # stopped right after it started could log watchdog's own error beside the one-line refusal)
        self.inbox = InboxFrontend(self.service, config.inbox)
        # Taken up once every frontend that tells a job's sender of its state listens (OSC replies to its origin's
        # port; the inbox keeps status files until it starts, see InboxFrontend._catch_up): a job the restart changes
        # at once (a paid submit cut off becomes submission_unknown, a job whose song changed fails its check) could
        # be told to nobody, and its sender kept the state from before the restart (a status file "submitting")
        # until the producer acted on a state never shown. MIDI starts later: its pads light for their own presses'
        # jobs only, none of which a restart takes up.
        resumed = await self.service.resume()
        # Workers start in the background: the first job is quick, and OSC is up before they are. The engine's
        # warm worker holds ~110 MB; [local] warm_up = false trades that for ~1.5 s on the first job.
        warming = [asyncio.create_task(_warm_up(name, backend)) for name, backend in backends.items()
                   if name != "local" or config.local.get("warm_up", True)]
        stack.callback(lambda: [task.cancel() for task in warming])
        try:
            await self.inbox.start()
        except OSError as exc:
            raise BridgeError(unusable("inbox", config.inbox, exc)) from None
        stack.callback(self.inbox.close)
        with contextlib.suppress(NotImplementedError):
            self.osc.transport.resume_reading()
        pruning = asyncio.create_task(Pruner(
            Retention.from_config(config), journal, config.work_dir, inbox=self.inbox,
            ledgers=list(backends.values()), others=[config.one_shot_journal_path]).run())
        stack.callback(pruning.cancel)
        if config.midi.get("port"):  # MIDI pads: the daemon runs on while the controller is absent
            from bridge.frontends.midi import MidiFrontend

            self.midi = MidiFrontend(self.service, config, ableton=self.ableton.client if self.ableton else None,
                                     decisions=self.decisions)
            self.midi.audition = self.audition
            self.osc.session = self.midi.context  # /bridge/bars counts from the transport it follows
            stack.callback(self.midi.close)  # registered first, so a partial start is cleaned up too
            if config.voice.get("enabled"):  # push-to-talk: the pads hold the microphone open
                # Made before the pads are connected: a talk pad pressed as soon as they are was refused as
                # "needs [voice] enabled". It records once the input is open, and is decoded once the recogniser
                # has loaded (voice.start, below).
                from bridge.frontends.voice import VoiceFrontend

                self.midi.voice = VoiceFrontend(self.midi, config)
                stack.push_async_callback(self.midi.voice.close)
            await self.midi.start()
        if config.voice.get("enabled"):
            if self.midi is None:
                raise ConfigError("needs [midi] with a talk or listen pad", file=config.source_file,
                                  key="[voice] enabled", value=True)
            await self.midi.voice.start()
        log.info("daw-bridge listening for OSC on %s:%d, watching %s; backends: %s; %d job(s) resumed",
                 *self.osc_address, config.inbox, ", ".join(backends), resumed)


def _say_refusals(refusals: asyncio.Task) -> None:
    if not refusals.cancelled():
        for refusal in refusals.result():
            log.warning("%s", refusal)


async def _warm_up(name: str, backend: Backend) -> None:
    try:
        await backend.warm_up()
    except Exception:  # not fatal: the first job starts the workers instead
        log.exception("could not prepare backend %s ahead of its first job", name)


def unusable(what: str, folder: Path, exc: OSError) -> str:
    """One line on a folder of the daemon's (``what``: "inbox", "state folder") that cannot be made or used: the
    file standing where it or one of its parents goes, else the system's reason (and the file it names)."""
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"the {what} {folder} cannot be made: {blocker} is a file"
    named = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(folder) else ""
    return f"the {what} {folder} cannot be used: {exc.strerror or exc}{named}"


def serve(config: Config) -> int:
    """Run the daemon in the foreground; the exit status for the shell."""
    give_large_blocks_back()
    try:
        threads.run(Daemon(config).run())
    except BridgeError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 2
    finally:
        end_resource_tracker()  # the pools are shut down: their tracker ends before the daemon does
    return 0


# glibc's M_MMAP_THRESHOLD: blocks at least this large are mapped on their own and unmapped when freed.
_M_MMAP_THRESHOLD = -3
_LARGE_BLOCK = 1 << 20


def give_large_blocks_back() -> None:
    """Map every block of 1 MiB or more on its own, so freeing it gives it back to the system.

    glibc raises its threshold each time such a block is freed, up to 32 MiB, and serves what is below it from heaps
    that each job thread gets: after a few long jobs (a 600 s result is freed in pieces under 32 MiB) the daemon
    kept 75 MB more than idle for good, which malloc_trim does not return. A fixed threshold stops the raising.
    """
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK)
    except (OSError, AttributeError):  # not glibc: its allocator gives memory back its own way
        pass
