"""Request files: JSON commands dropped into the inbox folder, for clients that cannot open a socket (ReaScript).

A client writes ``.<name>.part`` (any name starting with a dot or ending in .part/.tmp is ignored) and renames it to
``<name>.json``. Each request is processed exactly once: it is first claimed by renaming it into ``processing/``
(a rename either wins or finds the file gone), and moved to ``processed/`` once its job is journaled, or to
``rejected/`` with ``<name>.error.json`` beside it. Status files in ``status/`` follow the job. Answered requests,
error files and status files of finished jobs are deleted after ``[retention] files_days`` (see ``prune``). A folder
named like a request is answered as a refused request but left where it is (see ``_refuse_folder``).

Files come to the daemon's notice two ways: the observer's events, and a listing of the inbox at every look at its
folders (``_rescan``), for files no event told of: on a network share (SMB, NFS, sshfs) the kernel reports only what
this machine writes, not a request dropped there from the studio's other computer.

Every file system call on the inbox runs on its own thread (``ShareThread``), one at a time, and the event loop
awaits it: a share that stops answering (a hard-mounted NFS share whose server is down) holds up that thread and
the inbox's requests, not the daemon. The log says once that the inbox is not answering, and once that it answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Collection
from concurrent.futures import CancelledError
from pathlib import Path

from watchdog import events
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

import osc_schema
from bridge.audio.wavio import write_text_atomic
from bridge.config import INBOX_FOLDERS
from bridge.core.service import JobService
from bridge.exceptions import BridgeError, Busy
from bridge.files import NotRegularFile, open_regular
from bridge.models import JobRecord
from bridge.share import ShareThread
from bridge.statelock import lock_folder
from osc_schema import ValidationError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 20  # a request is a few hundred bytes; a megabyte is a mistake or an attack
FOLDER_CHECK_S = 2.0  # how often the inbox's folders are checked for having been removed, and the inbox listed
NOT_ANSWERING_S = 5.0  # a file system call on the inbox taking longer is said in the log: the share is not answering
# The events _Handler acts on. By default the watch also hears every opening and reading close in the inbox, the
# daemon's own listing every FOLDER_CHECK_S among them: waking the observer's thread for those cost twice the listing.
_HEARD = [events.FileCreatedEvent, events.DirCreatedEvent, events.FileModifiedEvent, events.FileMovedEvent,
          events.DirMovedEvent, events.FileClosedEvent, events.DirDeletedEvent]


class InboxFrontend:
    def __init__(self, service: JobService, inbox: Path):
        self.service = service
        self.inbox = Path(inbox)
        self.processing, self.processed, self.rejected, self.status = (self.inbox / name for name in INBOX_FOLDERS)
        self._observer: Observer | None = None
        self._watch: ObservedWatch | None = None
        self._handler: _Handler | None = None
        self._watched: tuple[int, int] | None = None  # the inbox folder's (device, inode) being watched
        self._real = str(self.inbox)  # the watched folder: the inbox with symlinks resolved
        self._check: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._share: ShareThread | None = None  # where every file system call on the inbox runs (see _fs)
        self._stuck = False  # a call on the share has gone unanswered for NOT_ANSWERING_S (said in the log)
        self._heard: asyncio.Queue = asyncio.Queue()  # files events told of, and None for a look at the folders
        self._task: asyncio.Task | None = None  # _run: one file or one look at a time
        self._said: set[str] = set()  # problems with the inbox's folders said since it was last watched anew
        # names of the files in the inbox that are no request (a result's manifest, a JSON file of the producer's: see
        # _peek), each said once in the log, not at every look at the inbox
        self._not_ours_said: set[str] = set()
        self._lock: int | None = None  # this daemon's hold on the inbox folder (see _hold)
        self._followed: dict[str, set[Path]] = {}  # job id -> status files of request files that named that job
        self._folders_refused: set[tuple[str, int, int]] = set()  # (name, device, inode) of folders answered
        self._listed: dict[str, tuple[int, int, int]] = {}  # request-named files at the last listing -> _version
        self._unclaimed: set[str] = set()  # request files that could not be claimed: said once, tried at each listing
        self._waiting: list[Path] = []  # claimed requests the daemon was too busy for, in processing/, oldest first
        # status files of the jobs that changed before the inbox started, the last of each: written at its start
        # (see _catch_up); None once it has started
        self._early: dict[Path, dict] | None = {}
        service.subscribe(self._on_job_event)

    async def start(self) -> None:
        """Create the folders, take up requests left from before, and start watching."""
        self._loop = asyncio.get_running_loop()
        self._share = ShareThread(f"inbox {self.inbox.name}")
        try:
            await self._fs(self._make_folders)
            await self._fs(self._hold)  # before processing/ is taken up as this daemon's own
            self._catch_up()
            await self._recover_claimed()
            self._observer = Observer()
            self._observer.start()
            await self._watch_folder()
        except BaseException:
            self.close()
            raise
        self._task = self._loop.create_task(self._run(), name="inbox")

    def close(self) -> None:
        self._early = None  # a start that failed: nothing more is kept for it
        if self._task is not None:
            self._task.cancel()
        if self._check is not None:
            self._check.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        if self._share is not None:
            if self._lock is not None:
                self._share.post(os.close, self._lock)  # closing releases it; on a share, closing is a call there
                self._lock = None
            self._share.close(timeout=0 if self._stuck else 5)  # the status files of the last events are written
            self._share = None

    async def _fs(self, call, *args):
        """``call(*args)`` on the inbox's own thread, awaited (see ShareThread): the one way the inbox's files are
        touched once the daemon runs. One not answered within NOT_ANSWERING_S is said once in the log, and its
        answer too."""
        answer = asyncio.wrap_future(self._share.submit(call, *args))
        try:
            done, _ = await asyncio.wait({answer}, timeout=NOT_ANSWERING_S)
            if not done:
                self._stuck = True
                log.warning("the inbox %s is not answering (a network share whose server is down?): its requests "
                            "wait until it answers", self.inbox)
                await asyncio.wait({answer})
                self._stuck = False
                log.warning("the inbox %s answers again", self.inbox)
        except asyncio.CancelledError:  # the inbox closes: what the share answers later is nobody's
            answer.cancel()
            raise
        return answer.result()

    async def _run(self) -> None:
        """Take the files events tell of, and look at the inbox's folders every FOLDER_CHECK_S, one at a time: a look
        stuck on a share that does not answer is never joined by a second one."""
        self._check = self._loop.call_later(FOLDER_CHECK_S, self._heard.put_nowait, None)
        while True:
            heard = await self._heard.get()
            try:
                if heard is None:
                    await self._check_folders()
                    await self._take_waiting()
                else:
                    await self.take(heard[0], written=heard[1])
            except Exception:  # a bug costs this file or this look, not the inbox
                log.exception("the inbox %s: looking at %s failed unexpectedly", self.inbox,
                              "its folders" if heard is None else heard[0].name)
            if heard is None:
                self._check = self._loop.call_later(FOLDER_CHECK_S, self._heard.put_nowait, None)

    def _hold(self) -> None:
        """Lock the folder now at the inbox's name for this daemon, or raise a BridgeError when another holds it.

        At its start a daemon takes up the requests it finds in ``processing/`` as left by its own last run: a
        second daemon on the same inbox (with another state folder, so its own journal) would take up those the
        first is running and run them again, paying MusicGPT twice for a paid one. The lock is the kernel's, on the
        folder itself (no file of ours among the producer's requests), so it goes with the process however that
        ends (``statelock.lock_folder``; Windows cannot lock a folder: there nothing is held)."""
        if self._lock is not None and _identity(self.inbox) == _identity(self._lock):
            return  # the folder this daemon holds, back at the inbox's name: its own lock is no other daemon's
        try:
            fd = lock_folder(self.inbox)
        except BlockingIOError:
            raise BridgeError(f"another daw-bridge daemon already watches the inbox {self.inbox}; stop it first, or "
                              "give this one another inbox", code="inbox_in_use") from None
        if self._lock is not None:
            os.close(self._lock)
        self._lock = fd

    def _folder_deleted(self, handler: "_Handler") -> None:
        # Called on the observer's thread; the watch is dropped on the loop, if it is still the one that saw it.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._handler is handler and self._lose())

    def _lose(self) -> None:
        """The watched folder is gone (its watch said so, or another stands at its name): stop watching it."""
        if self._watch is not None:
            self._observer.unschedule(self._watch)
            self._watch = None

    def _make_folders(self) -> None:
        for folder in (self.inbox, self.processing, self.processed, self.rejected, self.status):
            folder.mkdir(parents=True, exist_ok=True)

    async def _watch_folder(self) -> None:
        """Watch the inbox folder as it is now, and take what waits in it."""
        identity = await self._fs(_identity, self.inbox)
        # The folder itself, not a symlink to it: through one (an inbox under a linked ~/Music) the watch heard
        # nothing, and request files waited unanswered for the next start.
        self._real = await self._fs(os.path.realpath, self.inbox)
        self.service.inbox = Path(self._real)  # so that admitting a job does not look at the share (see admit)
        handler = _Handler(self._notify, self._real, lambda: self._folder_deleted(handler))
        self._watch = await self._fs(lambda: self._observer.schedule(handler, self._real, recursive=False,
                                                                     event_filter=_HEARD))
        self._handler = handler
        self._watched = identity
        await self.scan()  # anything that arrived before the observer watched it

    async def _check_folders(self) -> None:
        """Make the folders again if a producer's clean-up removed them: the watch dies with its folder (or follows
        it when moved), and request files dropped in a new inbox of the same name were never answered. A problem is
        said once, not at every look, until the inbox is watched again (a file at its name said two lines every 2 s)."""
        unmade, now, listed = await self._fs(self._look)
        if unmade is not None:  # e.g. a file named processed in the inbox, or the inbox's own name
            self._say(f"inbox folder {self.inbox} cannot be made again: {unmade}")
        if now is None or (now == self._watched and self._watch is not None):
            if now is not None:
                await self._rescan(listed)
            return
        self._say(f"the inbox folder {self.inbox} was removed or replaced: watching the one there now")
        self._lose()
        try:
            await self._fs(self._hold)
            await self._watch_folder()
        except (OSError, BridgeError) as exc:  # e.g. out of inotify watches: try again at the next check
            self._say(f"inbox folder {self.inbox} cannot be watched: {exc}")
            return
        self._said.clear()

    def _look(self) -> tuple[OSError | None, tuple[int, int] | None, dict | OSError]:
        """On the share's thread, in one trip (each trip wakes two threads): the folders made again (or why not), the
        inbox's identity, and its request files (or why they cannot be listed)."""
        try:
            self._make_folders()
            unmade = None
        except OSError as exc:
            unmade = exc
        now = _identity(self.inbox)
        try:
            listed = _request_files(self.inbox)
        except OSError as exc:
            listed = exc
        return unmade, now, listed

    def _say(self, problem: str) -> None:
        if problem not in self._said:
            self._said.add(problem)
            log.warning("%s", problem)

    async def scan(self) -> None:
        """Process every request file now waiting in the inbox."""
        for name in sorted(await self._fs(_request_files, self.inbox)):
            await self.take(self.inbox / name)
        # what stays (results' manifests, ...) is no news to _rescan
        self._remember(await self._fs(_request_files, self.inbox))

    async def _rescan(self, listed: dict[str, tuple[int, int, int]] | OSError) -> None:
        """Take the request files that are new or changed since the last listing, as an event would.

        On a network share the observer hears only this machine's writes: a request dropped there from another
        computer was seen only at the next start. One listing of the inbox itself (answered requests are in its
        sub-folders, never listed) and a stat of each request-named file, made on the share's thread with the rest
        of the look (``_look``): ~0.2 ms of CPU a look in the idle daemon beside 1000 answered requests
        (bench/inbox_rescan.py and its README).
        A file an event already took is gone from the inbox, and one seen by both is claimed by one rename, so it
        runs once; one still being written waits, as for an event, until it holds a whole JSON document."""
        problem = f"the inbox {self.inbox} cannot be listed"
        if isinstance(listed, OSError):  # e.g. a share gone away: the folder check makes it again or says so
            self._say(f"{problem}: {listed.strerror or listed}")
            return
        self._said = {said for said in self._said if not said.startswith(problem)}  # said again if it comes back
        for name, version in sorted(listed.items()):
            if self._listed.get(name) != version or name in self._unclaimed:
                await self.take(self.inbox / name, written=False)
        self._remember(listed)

    def _remember(self, listed: dict[str, tuple[int, int, int]]) -> None:
        self._listed = listed
        self._unclaimed &= listed.keys()  # gone: a file of that name later is news again

    def _notify(self, path: str, written: bool) -> None:
        # Called on the observer's thread: hand the file to the event loop, which owns the service.
        named = Path(path)
        if str(named.parent) == self._real:  # the watched folder's file, by the inbox's name
            named = self.inbox / named.name
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._heard.put_nowait, (named, written))

    async def take(self, path: Path, *, written: bool = True) -> None:
        """Claim one request file and process it; anything that is not a request file is left alone.

        ``written`` False: the file was just created or changed and its writer may still be filling it (one that
        writes in place instead of renaming a .part file). Until it holds a whole JSON document it is left for the
        event of its closing, which takes it whatever it holds (where the platform tells closes: Linux; elsewhere
        a broken one waits for the next start); it was rejected as empty while its writer was still writing.
        """
        if path.parent != self.inbox or path.name.startswith("."):
            return
        if path.name.lower().endswith(".json.txt"):  # a text editor's: the producer meant a request
            await self._reject(path, ValidationError("request", _text(path.name),
                                                     "ends in .json.txt (the text editor added .txt): save it as plain "
                                                     "text named ....json"))
            return
        if not _is_request_name(path.name):
            return
        if await self._fs(_is_folder, path):  # before _peek: Linux opens a folder for reading, and it was claimed
            await self._refuse_folder(path)   # like a file
            return
        whole, not_ours = await self._fs(_peek, path)
        if not written and not whole:
            return
        if not_ours:  # a result's manifest, or a file of the producer's: rejected/ would take it away for good
            if path.name not in self._not_ours_said:
                self._not_ours_said.add(path.name)
                log.warning("%s in the inbox %s is %s, not a request: it is left where it is (give the inbox a "
                            "folder of its own)", path.name, self.inbox, not_ours)
            return
        claimed = self.processing / path.name
        try:
            await self._fs(_claim, path, claimed)
        except FileNotFoundError:
            return  # taken by an earlier event for the same file, or withdrawn by the client
        except ValidationError as exc:
            await self._reject(path, exc)
            return
        except OSError as exc:
            # e.g. a file named processing in the inbox, a share's lock held by the computer writing it, a name too
            # long for processing/: it stays, and each listing tries again (no event may ever come for it again:
            # it waited for the daemon's next start)
            if path.name not in self._unclaimed:
                self._unclaimed.add(path.name)
                log.warning("request file %r cannot be claimed (tried again every %g s): %s", path.name,
                            FOLDER_CHECK_S, exc)
            return
        self._unclaimed.discard(path.name)
        await self._process(claimed)

    async def _process(self, claimed: Path, in_turn: bool = False) -> bool:
        """Read a claimed request and submit its job; True when it waits for room instead (``in_turn``: the one
        whose turn it is of those waiting)."""
        request_id = ""
        try:
            content = await self._fs(_read_request, claimed)
            command = osc_schema.load_request(content)
            request_id = command.args.get("request_id") or ""
            if command.name not in ("inpaint", "extend"):
                raise ValidationError("command", command.name, "is not available in request files "
                                                               "(use inpaint or extend)")
            digest = _digest(content)
            status = self._status_path(request_id or claimed.stem)
            known = self.service.job_from_request_file(_text(claimed.name), digest)
            if known is not None:  # the same file dropped again (a sync tool, a double click): not a new job
                log.info("request file %s was already run as job %s", claimed.name, known.job_id)
            elif self._waiting and not in_turn:  # behind the ones waiting for room, in the order they came
                raise Busy("requests wait for room")
            else:
                origin = {"kind": "file", "file": _text(claimed.name), "digest": digest, "status": str(status)}
                record = await self.service.take(command, origin)  # its files looked at in a thread
                known = record if record.origin is not origin else None  # its request_id's job, sent before
            if known is not None:
                # Answered with that job as it stands (its status file may be long gone, pruned after files_days,
                # and the sender waited on status/ for good), and followed to its end like the inbox's own jobs.
                if not known.state.finished:
                    self._followed.setdefault(known.job_id, set()).add(status)
                self._write_status(status, _status_of(known))
        except ValidationError as exc:
            await self._reject(claimed, exc, exc.request_id or request_id)
            return False
        except Busy:
            self._wait_for_room(claimed, request_id)
            return True
        except BridgeError as exc:
            await self._reject(claimed, exc, request_id)
            return False
        except OSError as exc:
            if not await self._fs(os.path.lexists, claimed):
                return False  # withdrawn from processing/ before it could be read: there is nothing left to answer
            await self._reject(claimed, BridgeError(f"request file {claimed.name} cannot be read: "
                                                    f"{exc.strerror or exc}", code="request_unreadable"), request_id)
            return False
        except Exception as exc:  # a bug costs this one request, not the inbox: it is rejected with a reason
            log.exception("request file %r failed unexpectedly", claimed.name)
            await self._reject(claimed, BridgeError(f"internal error ({type(exc).__name__}); the daemon's log has "
                                                    "the details", code="internal_error"), request_id)
            return False
        try:
            await self._fs(_move_into, claimed, self.processed)
        except OSError as exc:  # e.g. a file named processed in the inbox: the job runs; the file waits in processing/
            log.warning("request file %s was taken, but cannot be moved into %s: %s", claimed.name, self.processed,
                        exc.strerror or exc)
        return False

    def _wait_for_room(self, claimed: Path, request_id: str) -> None:
        """Keep a request the daemon is too busy for (max_jobs + max_queued jobs run or wait) in processing/, to be
        taken in its turn once a job has ended (or at the next start), and say so in its status file: request files
        are a queue of their own that costs nothing, where an OSC command is told to send again."""
        if claimed in self._waiting:
            return
        self._waiting.append(claimed)
        message = (f"waiting for room: max_jobs {self.service.config.max_jobs} + max_queued "
                   f"{self.service.config.max_queued} jobs are running or waiting; taken in its turn")
        log.info("request file %s is %s", claimed.name, message)
        self._write_status(self._status_path(request_id or claimed.stem),
                           {"request_id": request_id, "job_id": None, "state": "waiting", "progress": 0.0,
                            "message": message, "manifests": [], "error": None})

    async def _take_waiting(self) -> None:
        """Take the requests that wait for room, oldest first, until the daemon is busy again (at each look at the
        folders: a job that ended has made room by the next look)."""
        while self._waiting:
            if await self._process(self._waiting[0], in_turn=True):
                return
            self._waiting.pop(0)

    def prune(self, before: float, keep: Collection[Path] = ()) -> tuple[int, int]:
        """Delete answered requests, error files and status files last changed before ``before``: (files, bytes).

        ``keep`` names status files that stay whatever their age (those of unfinished jobs: a job waiting days for
        the producer still reports there). Requests still waiting in the inbox or in processing/ are never touched.
        Blocking, off the event loop: once the inbox is started, on its own thread, so that a share that does not
        answer holds up no other thread past the inbox's close (an executor's thread held up the daemon's stop for
        good); (0, 0) when the inbox closes first. A status file rewritten meanwhile is newer than ``before`` and stays.
        """
        if self._loop is None:  # not started: a pass of its own
            return self._prune(before, keep)
        share = self._share
        try:
            return share.submit(self._prune, before, keep).result() if share is not None else (0, 0)
        except CancelledError:  # let go at the inbox's close, the share not answering
            return 0, 0

    def _prune(self, before: float, keep: Collection[Path]) -> tuple[int, int]:
        keep = {Path(path) for path in keep}
        removed = freed = 0
        for folder in (self.processed, self.rejected, self.status):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                path = Path(entry.path)
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode) or info.st_mtime >= before or path in keep:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    log.warning("could not remove %s: %s", path, exc)
                    continue
                removed += 1
                freed += info.st_size
        return removed, freed

    async def _recover_claimed(self) -> None:
        # A crash between journaling a request's job and moving its file on: finish the move if the job exists
        # (found by the file's name and content, so a request without request_id is not run, or paid, twice).
        for claimed in sorted(await self._fs(lambda: list(self.processing.iterdir()))):
            if not _is_request_name(claimed.name):
                continue
            try:
                digest = _digest(await self._fs(_read_request, claimed))
            except (OSError, ValidationError):  # unreadable or invalid: _process rejects it below, with its reason
                digest = None
            if digest and self.service.job_from_request_file(_text(claimed.name), digest):
                await self._fs(_move_into, claimed, self.processed)
            else:
                await self._process(claimed)

    async def _refuse_folder(self, path: Path) -> None:
        """Answer a folder named like a request (``take.json/``) once, as a refused request, and leave it where it is.

        It was moved into rejected/ when the daemon found it at its start, contents and all (a tool still filling it
        lost its folder; one there stayed for good, as pruning removes files only, and a later refused request of
        that name could not be moved beside it), and ignored when it appeared while the daemon ran: its sender waited
        on status/ for good. Now both answer it in status/ (and rejected/'s error file) and touch nothing in it."""
        try:
            info = await self._fs(os.lstat, path)
        except OSError:
            return  # gone again
        seen = (path.name, info.st_dev, info.st_ino)
        if seen in self._folders_refused:
            return  # the same folder again (another look at the inbox): answered already
        self._folders_refused.add(seen)
        self._answer_refusal(path, ValidationError("request", _text(path.name), "is a folder, not a request file: it "
                                                   "is left where it is; write the request into a file of that name"))

    async def _reject(self, path: Path, exc: Exception, request_id: str = "") -> None:
        try:
            await self._fs(_set_aside, path, self.rejected)
        except FileNotFoundError:
            pass
        except OSError as problem:  # e.g. a name too long for rejected/
            log.warning("request file %r could not be moved aside: %s", path.name, problem)
        self._answer_refusal(path, exc, request_id)

    def _answer_refusal(self, path: Path, exc: Exception, request_id: str = "") -> None:
        """Say why the request ``path`` was refused: one line in the log, its error file and its status file."""
        error = _error_of(exc)
        log.warning("request file %s rejected: %s", path.name, error["message"])
        # rejected/ is made if need be: a symbolic link was removed, not moved there
        self._share.post(_write_answer, self.rejected / f"{path.stem}.error.json", error,
                         f"the error file for {path.name!r}")
        self._write_status(self._status_path(request_id or path.stem),
                           {"request_id": request_id, "job_id": None, "state": "failed", "progress": 0.0,
                            "message": "", "manifests": [], "error": error})

    def _status_path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:128].lstrip(".") or "request"
        # A name changed to be safe gets a mark of the original ("take a" and "take_a" stay apart), and so does one
        # past 128 bytes: 100 CJK characters (a request_id may hold 128) are 300 bytes, more than a file name's 255,
        # and the status file was never written.
        if safe != name or len(os.fsencode(safe)) > 128:
            while len(os.fsencode(safe)) > 119:
                safe = safe[:-1]
            safe = f"{safe}-{_digest(os.fsencode(name))[:8]}"
        return self.status / f"{safe}.json"

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        paths = self._followed.get(record.job_id, set())
        if record.state.finished:
            self._followed.pop(record.job_id, None)
        if record.origin.get("kind") == "file":
            paths = paths | {Path(record.origin["status"])}
        for path in paths:
            self._write_status(path, _status_of(record))

    def _catch_up(self) -> None:
        """At the start, once the inbox is this daemon's: write the status files of the jobs that changed before it
        started, and of every unfinished job from a request file as it stands now.

        The daemon takes up the journal's unfinished jobs before the inbox starts (its start waits for a share that
        may not answer), and a restart changes some of them at once: a paid submit the crash cut off becomes
        submission_unknown, a job whose song changed fails its check. Those events went nowhere, and a status file kept
        "submitting" (REAPER's script reads only it) until the producer ran 'jobs resolve' on a state never shown.
        A job left waiting for the producer changes no more at a restart: its status file, left stale by a daemon
        killed between the journal's write and the status file's (or by a daemon before this fix), is written too.
        """
        early, self._early = self._early or {}, None
        for record in self.service.active():
            if record.origin.get("kind") == "file":
                early[Path(record.origin["status"])] = _status_of(record)
        for path, status in early.items():
            self._write_status(path, status)

    def _write_status(self, path: Path, status: dict) -> None:
        """Write a status file in the background, on the share's thread (kept for the start before the inbox has
        started, see _catch_up; nothing once it is closed)."""
        if self._early is not None:
            self._early[path] = status
            return
        status["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self._share is not None:
            self._share.post(_write_answer, path, status, f"status file {path}")


class _Handler(FileSystemEventHandler):
    def __init__(self, notify, folder: str, lost):
        self._notify = notify
        self._folder = folder
        self._lost = lost

    def on_deleted(self, event: FileSystemEvent) -> None:
        # The folder itself: a new one made at once may get its inode, so its identity alone cannot tell.
        if event.is_directory and event.src_path == self._folder:
            self._lost()

    def on_created(self, event: FileSystemEvent) -> None:
        # A folder too: one named like a request is answered (take() tells it from a file)
        self._notify(event.src_path, written=event.is_directory)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._notify(event.src_path, written=False)

    def on_moved(self, event: FileSystemEvent) -> None:
        self._notify(event.dest_path, written=True)

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._notify(event.src_path, written=True)



def _status_of(record: JobRecord) -> dict:
    """A status file's content for a job as it stands."""
    summary = record.summary()
    return {"request_id": record.request_id, "job_id": record.job_id, "state": summary["state"],
            "progress": summary["progress"], "message": summary["message"], "manifests": summary["manifests"],
            "error": summary["error"]}


def _write_answer(path: Path, document: dict, what: str) -> None:
    """Write a status or error file (on the share's thread), its folder made again if a clean-up removed it since the
    last look at the folders; a failure is one line in the log (a 255-byte request name has no room for
    ".error.json": its status file tells)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(document, indent=2) + "\n")
    except OSError as exc:
        log.warning("could not write %s: %s", what, exc)


def _set_aside(path: Path, folder: Path) -> None:
    """Move a refused request file into ``folder``; a symbolic link is removed instead (what it names is not ours)."""
    if path.is_symlink():
        path.unlink()
    else:
        _move_into(path, folder)


def _move_into(path: Path, folder: Path) -> None:
    """Move a request file into one of the inbox's answer folders, made again first: a producer's clean-up may have
    removed it since the daemon last looked (every FOLDER_CHECK_S), and the file stayed where it was for good."""
    folder.mkdir(parents=True, exist_ok=True)
    os.replace(path, folder / path.name)


def _is_request_name(name: str) -> bool:
    return name.lower().endswith(".json") and not name.startswith(".")  # x.JSON too: the inbox is ours


def _request_files(folder: Path) -> dict[str, tuple[int, int, int]]:
    """The files in ``folder`` that ``take`` may act on (request names, and .json.txt ones it refuses), each with its
    version (inode, size, modification time in ns), so that a file written again or in place is looked at again."""
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if _is_request_name(entry.name) or entry.name.lower().endswith(".json.txt"):
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:  # gone meanwhile
                    continue
                found[entry.name] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return found


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder itself (a symbolic link to one is refused as a link, like any link)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _identity(folder: Path | int) -> tuple[int, int] | None:
    """(device, inode) of a folder, by name or open descriptor; None when there is none."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _claim(path: Path, claimed: Path) -> None:
    """Rename a request file into processing/, made again first if a producer's clean-up removed it since the
    daemon last looked at its folders: the rename found no folder, which read as the file already taken, and the
    request waited in the inbox unanswered until the next start. A symbolic link is refused."""
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise ValidationError("request", _text(path.name), "is a symbolic link; write request files into the inbox "
                                                           "itself")
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        if not os.path.lexists(path) or os.path.isdir(claimed.parent):
            raise  # the file is gone: taken by an earlier event, or withdrawn
        claimed.parent.mkdir(exist_ok=True)
        os.rename(path, claimed)


# Every key a request file may hold: a JSON document naming none of them is no request, not even a mistyped one.
_REQUEST_KEYS = frozenset({"command", *(arg.name for spec in osc_schema.COMMANDS.values() for arg in spec.arguments)})


def _peek(path: Path) -> tuple[bool, str]:
    """From one read of a request file before it is claimed: whether it is ready to claim (it holds a whole JSON
    document, or is no file a writer is filling: a link, a FIFO, one too big, one gone), and what it is when it is
    no request ("" when it may be one): a delivered result's manifest (the inbox is, or was, a drop folder), or a
    JSON object of the producer's or another program's (the inbox is a project folder, or ~) that names none of a
    request's keys. A request with a mistyped key still names others, and is answered."""
    try:
        document = json.loads(_read_request(path))
    except ValidationError as exc:
        return exc.rule != "is empty", ""
    except ValueError:  # not JSON yet: JSONDecodeError, UnicodeDecodeError
        return False, ""
    except (OSError, RecursionError):  # RecursionError: nested thousands deep, which no more writing mends
        return True, ""
    if isinstance(document, dict) and document.get("format") == osc_schema.MANIFEST_FORMAT:
        return True, "a delivered result's manifest"
    # An array is refused and answered; so is {} (a request emptied by mistake), and keys in other capitals
    # ("Command") count as a request's: its sender waits on status/ for an answer.
    if isinstance(document, dict) and document and not _REQUEST_KEYS.intersection(map(str.lower, document)):
        return True, "a JSON file naming none of a request's keys"
    return True, ""


def _read_request(path: Path) -> bytes:
    """The bytes of a request file: a regular file (a FIFO would block the daemon), not a link, at most 1 MiB."""
    try:
        file = open_regular(path, follow_links=False)
    except (IsADirectoryError, NotRegularFile):
        raise ValidationError("request", _text(path.name), "is not a regular file") from None
    with file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_REQUEST_BYTES:
            raise ValidationError("request", _text(path.name), f"is {size} bytes; a request file may be at most "
                                                               f"{MAX_REQUEST_BYTES}")
        raw = file.read(MAX_REQUEST_BYTES + 1)  # a file still growing is cut here, then refused as too big
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValidationError("request", _text(path.name), f"is more than {MAX_REQUEST_BYTES} bytes")
    if not raw.strip():
        raise ValidationError("request", _text(path.name), "is empty")
    return raw


def _text(name: str) -> str:
    """A file name as text: one that is not UTF-8 (a Latin-1 "d\xe9mo.json" from an old tool or a share) holds
    surrogates, which the journal and any JSON reader refuse; its odd bytes are shown as \xe9 instead."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _error_of(exc: Exception) -> dict:
    if isinstance(exc, ValidationError):
        return {"code": "invalid_argument", "field": exc.field, "message": str(exc)}
    return {"code": getattr(exc, "code", "error"), "field": "", "message": str(exc)}
