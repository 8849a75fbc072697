"""The daemon's audition: which job plays and what of it, through one output opened on first use.

Frontends (OSC, pads, voice) call :meth:`Audition.request`; everything slow (opening the output, reading and
loudness-matching a job's audio) happens off the event loop, and a job's programs are prepared as soon as it is
delivered when the output is already open, so a press then only swaps a reference the audio callback picks up.
Every look at a job's files (its decision, its audio) is made on one thread of the audition's own: they may be on a
share that does not answer, and a press stuck there holds up the presses after it, never the event loop or its pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.audition.program import (
    AuditionError,
    Programs,
    load_programs,
    readable_source,
)
from bridge.audition.sound_process import open_output
from bridge.decisions import Decision, latest
from bridge.exceptions import BridgeError
from bridge.models import JobRecord
from bridge.share import ShareThread
from osc_schema import ValidationError

if TYPE_CHECKING:
    from bridge.core.service import JobService

log = logging.getLogger(__name__)

KEEP_PREPARED = 3  # jobs whose programs stay in memory (a 20 s program is ~8 MB)


@dataclass(frozen=True)
class Playing:
    """What the audition plays now (the /bridge/auditioning reply)."""

    job_id: str = ""
    playing: str = "stopped"  # original | variant | stopped
    variant: int = 0
    gain_db: float = 0.0
    output: str = ""


Answer = Callable[[Playing | None, Exception | None], None]


class Audition:
    def __init__(self, service: JobService, settings: dict):
        self.service = service
        self.settings = settings
        self._output = None
        self._opening = asyncio.Lock()
        self._prepared: OrderedDict[str, Programs] = OrderedDict()
        self._now = Playing()
        self._ab_variant = 1  # the variant "ab" toggles to: the last one heard
        # where jobs' files are looked at: a press on a job whose files are on a share that does not answer took a
        # thread of the loop's pool, which admits every job, and each press again took another, until none was left;
        # they queue behind the stuck call now (the last press plays, see act)
        self._files = ShareThread("audition files")
        self._tasks: set[asyncio.Task] = set()
        self._asked = 0  # requests made so far: one that waited for its audio plays only if none came after it
        service.subscribe(self._on_job_event)

    def request(self, job: str, what: str, variant: int | None, answer: Answer) -> None:
        """Run :meth:`act` in the background; ``answer(playing, None)`` or ``answer(None, error)`` when done."""
        task = asyncio.get_running_loop().create_task(self.act(job, what, variant))
        self._tasks.add(task)

        def finished(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            if not task.cancelled():
                error = task.exception()
                if error is not None and not isinstance(error, (ValidationError, BridgeError)):
                    log.error("audition failed unexpectedly", exc_info=error)
                answer(task.result() if error is None else None, error)

        task.add_done_callback(finished)

    async def act(self, job: str, what: str, variant: int | None = None) -> Playing:
        """Play ``what`` of job ``job`` (or "last"); raises ValidationError or BridgeError with a one-line reason.

        The producer's last press wins: a request still opening the output or reading its job's audio when a later
        one (a stop included) arrives does not play, and says so, instead of overriding the later one when it is
        ready."""
        self._asked += 1
        asked = self._asked
        if what == "stop":
            if self._output is not None:
                self._output.mixer.stop()
            self._now = Playing(output=self._now.output)
            return self._now
        record = self.service.named(job)
        await self._files.run(check_not_settled, record)
        output = await self._open(asked)
        programs = await self._programs(record, output.sample_rate)
        if asked != self._asked:
            raise AuditionError(f"job {record.job_id}: not played, a later audition request came while its audio "
                                "was being read")
        kept = await self._files.run(check_not_settled, record)  # again: decided while its audio was being read
        in_place = self._now.job_id == record.job_id and output.mixer.playing
        number = self._choose(what, variant, len(programs.variants), in_place)
        if kept is not None and number not in (0, kept.choice):
            if what == "variant":
                raise AuditionError(f"job {record.job_id} kept variant {kept.choice} (decision {kept.seq}): variant "
                                    f"{number} is gone from the project")
            number = kept.choice  # next, previous, A/B: the one take left
        if number:
            self._ab_variant = number
            program, gain = programs.variants[number - 1], programs.gains_db[number - 1]
        else:
            program, gain = programs.original, 0.0
        output.mixer.play(program, None if in_place else 0)
        self._now = Playing(record.job_id, "variant" if number else "original", number, gain, output.name)
        return self._now

    def on_decision(self, made: Decision) -> None:
        """A decision listener: a job discarded (or kept as the original) while it plays stops, and is forgotten; a
        variant playing when another one is kept stops too."""
        if made.decision == "choose":
            return
        if made.choice == 0:
            self._prepared.pop(made.job_id, None)
        if self._now.job_id == made.job_id and (made.choice == 0 or self._now.variant not in (0, made.choice)):
            if self._output is not None:
                self._output.mixer.stop()
            self._now = Playing(output=self._now.output)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._files.close, 5)  # a call stuck on a share is left to end with the process
        if self._output is not None:
            output, self._output = self._output, None
            await asyncio.to_thread(output.close)

    # -- helpers ---------------------------------------------------------------------------------------------------


    def _choose(self, what: str, variant: int | None, count: int, in_place: bool) -> int:
        """The variant to play (0: the original)."""
        current = self._now.variant if in_place else 0
        if what == "original":
            return 0
        if what == "variant":
            number = variant or 1
            if number > count:
                raise ValidationError("variant", number, f"is not among this job's {count} variant(s)")
            return number
        if what == "next":
            return current % count + 1
        if what == "previous":
            return (current - 2) % count + 1 if current else count
        if what == "ab":
            return 0 if current else min(self._ab_variant, count)
        raise ValidationError("what", what, "is not an audition action")

    async def _open(self, asked: int):
        async with self._opening:
            if self._output is None and asked != self._asked:  # presses pile up while no output opens: try the last
                raise AuditionError("not played: a later audition request came while the output was opening")
            if self._output is not None and not self._output.alive:
                dead, self._output = self._output, None
                log.info("audition: the output's %s; opening it again", dead.gone)
                await asyncio.to_thread(dead.close)
            if self._output is None:
                self._output = await asyncio.to_thread(open_output, self.settings)
                log.info("audition plays through %s (%s, %d Hz)", self._output.name, self._output.kind,
                         self._output.sample_rate)
            return self._output

    async def _programs(self, record: JobRecord, sample_rate: int) -> Programs:
        programs = self._prepared.get(record.job_id)
        if programs is None or programs.sample_rate != sample_rate or await self._files.run(programs.changed):
            programs = await self._files.run(self._load, record, sample_rate)
            self._prepared[record.job_id] = programs
            while len(self._prepared) > KEEP_PREPARED:
                self._prepared.popitem(last=False)
        self._prepared.move_to_end(record.job_id)
        return programs

    def _load(self, record: JobRecord, sample_rate: int) -> Programs:
        with readable_source(self.service.config, record.spec) as source:
            return load_programs(record, sample_rate, self.settings["pre_roll_bars"], self.settings["post_roll_bars"],
                                 source, self.service.config)

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        if event != "done":
            return
        if self._output is not None:  # ready before the first press
            task = asyncio.get_running_loop().create_task(self._prepare_quietly(record))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _prepare_quietly(self, record: JobRecord) -> None:
        try:
            await self._programs(record, self._output.sample_rate)
        except BridgeError as exc:  # said again, in one line, to whoever presses
            log.info("audition: %s", exc)


def check_not_settled(record: JobRecord) -> Decision | None:
    """Raise AuditionError when the producer discarded the job (or kept the original, which is the same): both DAW
    sides took its takes out of the project, so playing one would present a take that is no longer there, and its
    original in context is the song as it now plays anyway. Else the job's keep of a variant, whose other takes are
    gone for the same reason, or None. The decision file says so, across restarts too; as for the DAW scripts, only
    the latest decision counts."""
    try:
        decided = latest(record)
    except BridgeError:  # unreadable: no DAW script could apply it either, so the takes are still in the project
        return None
    if decided is None or decided.decision == "choose":
        return None
    if decided.choice == 0:
        settled = "was discarded" if decided.decision == "discard" else "kept the original"
        raise AuditionError(f"job {record.job_id} {settled} (decision {decided.seq}): its variants are gone from "
                            "the project, so nothing of it is auditioned")
    return decided
