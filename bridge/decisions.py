"""Keep or discard: a producer's decision on a delivered job's takes, from OSC, pads, the CLI or the voice.

Every trigger calls :meth:`Decisions.decide`. The daemon edits no DAW project itself: it publishes the decision as
one file per job in the job's drop folder (``osc_schema.DECISION_FORMAT``; the comment above it in
``osc_schema/spec.py`` is the contract), which the REAPER companion and Ardour's scripts apply as one undo step, and
it tells its listeners, so the plugin instance that made the job switches what it plays and the pads' LEDs follow.

The file holds the job's latest decision; the next one's ``seq`` is counted on from it, so the numbering survives a
restart without a journal column and the daemon never believes something the DAW scripts cannot see. It is also
counted past the highest seq the DAW scripts' ledgers beside the results (and the plugin instance that made the job,
in its capture index) record as applied: a script applies only a
seq above that, so a decision made after the file was moved away (as an unreadable one must be) or cleaned up with
its folder would otherwise be skipped as already applied. A kept
variant's audio is also linked into the drop folder's Kept folder, where Ableton Live's browser shows it. No audio
is ever deleted or moved here: a discard only records itself, and the DAW scripts take the takes out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import captures
from bridge.audio.wavio import discard, publish, stage_link, stage_text
from bridge.delivery import drop_folder_for
from bridge.exceptions import BridgeError
from bridge.files import open_regular
from bridge.models import JobRecord, State
from osc_schema import DECIDED_LEDGERS, DECISION_FORMAT, DECISIONS_FOLDER, KEPT_FOLDER, ValidationError

if TYPE_CHECKING:
    from bridge.core.service import JobService

log = logging.getLogger(__name__)

MAX_SEQ = 2**31 - 1  # /bridge/decided carries seq as an OSC int32: a higher number could be published, never sent
# A file, ledger line or capture index numbered MAX_SEQ or beyond counts as damaged (no decision could follow it), so
# the highest decision published is MAX_SEQ - 1: one numbered MAX_SEQ would make the job's own file unreadable.


@dataclass(frozen=True)
class Decision:
    """A published decision: what the producer decided about ``record``'s takes, and its number for that job."""

    record: JobRecord
    decision: str  # choose | keep | discard
    choice: int  # 0: the original; n: variant n (discard: always 0)
    seq: int  # 1, 2, ... per job
    decided_at: str  # ISO 8601, UTC

    @property
    def job_id(self) -> str:
        return self.record.job_id

    def to_json(self) -> dict:
        """The decision file's content, field for field as ``osc_schema.spec`` declares it."""
        return {"format": DECISION_FORMAT, "job_id": self.job_id, "seq": self.seq, "decision": self.decision,
                "choice": self.choice, "manifests": [Path(m).name for m in self.record.manifests],
                "decided_at": self.decided_at}

    def describe(self) -> str:
        return describe(self.job_id, self.decision, self.choice, self.seq)


Listener = Callable[[Decision], None]


def describe(job_id: str, decision: str, choice: int, seq: int) -> str:
    """A decision in one line for the producer (as /bridge/decided gives it), e.g. "j-1a2b: keep variant 2
    (decision 3)"; a discard names what goes (the variants), as REAPER's undo point does, not the original it keeps."""
    take = "the variants" if decision == "discard" else f"variant {choice}" if choice else "the original"
    return f"{job_id}: {decision} {take} (decision {seq})"


def decision_file(record: JobRecord) -> Path:
    """Where a job's decisions are published: ``<drop folder>/.daw-bridge-decisions/<job_id>.json``."""
    return drop_folder_for(record.spec) / DECISIONS_FOLDER / f"{record.job_id}.json"


def latest(record: JobRecord) -> Decision | None:
    """The job's latest decision, as its file holds it; None when nothing was decided yet."""
    path = decision_file(record)
    try:
        with open_regular(path, "utf-8") as file:  # a FIFO put in its place would hold the thread for good
            data = json.loads(file.read())
        decided = Decision(record, data["decision"], int(data["choice"]), int(data["seq"]), data["decided_at"])
        if not 0 <= decided.seq < MAX_SEQ:
            raise ValueError(f"seq {decided.seq} is not in 0..{MAX_SEQ - 1}")
        return decided
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, OverflowError) as exc:  # OverflowError: int(Infinity)
        raise BridgeError(f"the decision file {path} cannot be read ({type(exc).__name__}: {exc}); move it away to "
                          "decide again", code="decision_unreadable") from None


def applied_seq(record: JobRecord) -> int:
    """The highest seq of the job's decisions that a DAW script's ledger records as applied; 0 for none (an
    unreadable ledger counts as none: the script reading it sees none either, and so does a line whose seq is not
    written in ASCII digits). BridgeError when a ledger records one no decision can follow (MAX_SEQ or beyond: a
    damaged line), since a decision numbered below it would be skipped there as applied."""
    folder = drop_folder_for(record.spec)
    highest = 0
    for name in DECIDED_LEDGERS.values():
        try:
            with open_regular(folder / name) as ledger:  # a FIFO or a device is no ledger: it would never answer
                text = ledger.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            job_id, _, seq = line.rstrip().partition("\t") if "\t" in line else line.rstrip().partition(" ")
            if job_id == record.job_id and seq.isascii() and seq.isdigit():
                digits = seq.lstrip("0") or "0"
                if len(digits) > len(str(MAX_SEQ)) or int(digits) >= MAX_SEQ:  # int() of 4300+ digits raises
                    raise BridgeError(f"the ledger {folder / name} records decision {seq:.20} of job {record.job_id}, "
                                      f"past the highest a decision can be numbered ({MAX_SEQ}); take that line out "
                                      "to decide again", code="decision_unreadable")
                highest = max(highest, int(digits))
    return highest


def plugin_applied_seq(config, record: JobRecord) -> int:
    """The seq of the decision the plugin instance that made the job records as applied to it in its capture index
    (``job.decision.seq``, saved with the host's project too); 0 for none. The plugin keeps no ledger beside the
    results, and it ignores a decision numbered no higher than that one as a repeat."""
    name = record.spec.ids.get("capture")
    if not name or config is None:
        return 0
    try:
        _, index = captures.read_index(config, name)
    except (ValidationError, BridgeError, OSError):  # the instance's folder is gone: nothing of it left to tell
        return 0
    job = index.get("job")
    decided = job.get("decision") if isinstance(job, dict) and job.get("job_id") == record.job_id else None
    seq = decided.get("seq") if isinstance(decided, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < MAX_SEQ else 0


class Decisions:
    """Decides on delivered jobs for every trigger, and tells listeners (OSC, pads) each decision published."""

    def __init__(self, service: JobService):
        self.service = service
        self._listeners: list[Listener] = []
        # job id -> its decisions' turn, for as long as a decision holds or waits for it
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def decide(self, job: str, decision: str, choice: int | None = None) -> Decision:
        """Publish ``decision`` (choose, keep, discard) on job ``job`` (or "last") and take ``choice``.

        Raises ValidationError (field named, one line) for a decision that cannot be taken, and BridgeError when
        the drop folder cannot take it; either way nothing was written.

        The drop folder is read and written in a thread: made on the event loop, a decision on a job whose drop
        folder is on a share that stopped answering froze the whole daemon (OSC, MIDI, every job). A job's decisions
        take turns, each numbered from the one before it; the listeners are told on the loop.
        """
        record = self._delivered(job)
        job_id = record.job_id
        if (turn := self._turns.get(job_id)) is None:
            turn = self._turns[job_id] = asyncio.Lock()
        async with turn:
            # a decision's hidden temporaries are not the start's leftovers to sweep while it is written
            self.service.deciding.add(job_id)
            try:
                made = await asyncio.to_thread(_make, getattr(self.service, "config", None), record, decision,
                                               choice)
            finally:
                self.service.deciding.discard(job_id)
        log.info("decided %s", made.describe())
        for listener in self._listeners:
            try:
                listener(made)
            except Exception:  # a broken listener must not undo a published decision
                log.exception("listener failed on the decision on job %s", made.job_id)
        return made

    def _delivered(self, job: str) -> JobRecord:
        record = self.service.named(job)
        if record.state is not State.DELIVERED:
            raise ValidationError("job_id", job, f"is {record.state.value}: only a delivered job's takes can be "
                                                 "decided")
        return record


def _make(config, record: JobRecord, decision: str, choice: int | None) -> Decision:
    """The decision's file work (any thread): read the job's latest decision and the ledgers, check the new one
    against them, and publish it."""
    previous = latest(record)
    if previous is not None and previous.decision != "choose" and previous.choice == 0:  # keep 0 is a discard
        settled = "was discarded" if previous.decision == "discard" else "kept the original"
        raise ValidationError("job_id", record.job_id, f"{settled} (decision {previous.seq}): its takes are "
                                                       "gone, so nothing more can be decided")
    choice = _checked_choice(decision, choice, len(record.manifests), previous)
    back_to_original = decision == "discard" or decision == "keep" and choice == 0  # every DAW side: a discard
    if previous is not None and previous.decision == "keep" and not back_to_original and choice != previous.choice:
        # both DAW sides took the other takes out at that keep: no script could make this one sound
        raise ValidationError("choice", choice, f"cannot be taken: {record.job_id} kept variant {previous.choice} "
                                                f"(decision {previous.seq}), so its other takes are gone")
    applied = max(applied_seq(record), plugin_applied_seq(config, record))
    seq = max(previous.seq if previous else 0, applied) + 1
    if seq >= MAX_SEQ:  # it would be read back as damaged, and no decision could follow it
        raise BridgeError(f"job {record.job_id}: no decision can follow decision {seq - 1}, the highest one "
                          f"numbered; move its decision file {decision_file(record)} away and take its lines out of "
                          "the DAW scripts' ledgers beside it to decide again; nothing was decided",
                          code="decision_unreadable")
    made = Decision(record, decision, choice, seq, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _publish(config, made)
    return made


def _checked_choice(decision: str, choice: int | None, variants: int, previous: Decision | None) -> int:
    if decision == "discard":
        if choice is not None:
            raise ValidationError("choice", choice, "is not taken by discard (it always goes back to the original)")
        return 0
    if choice is None:
        if decision == "choose":
            raise ValidationError("choice", None, "missing: choose needs the take, 0 for the original or 1.."
                                                  f"{variants} for a variant", shown="")
        return previous.choice if previous is not None else 1  # keep: the take chosen last
    if choice > variants:
        raise ValidationError("choice", choice, f"is not among this job's {variants} variant(s)")
    return choice


def _publish(config, made: Decision) -> None:
    """The kept take's link (for keep) and then the decision file, each staged and renamed into place together."""
    path = decision_file(made.record)
    folder = path.parent.parent
    staged: list[tuple[Path, Path]] = []
    _check_in_project(config, path.parent)
    try:
        if made.decision == "keep" and made.choice:
            audio = _audio_of(Path(made.record.manifests[made.choice - 1]))
            kept = folder / KEPT_FOLDER / audio.name
            _check_in_project(config, kept.parent)
            kept.parent.mkdir(exist_ok=True)
            staged.append((stage_link(kept, audio), kept))
        path.parent.mkdir(exist_ok=True)
        staged.append((stage_text(path, json.dumps(made.to_json(), indent=2) + "\n"), path))
        publish(staged)
    except OSError as exc:
        discard(temporary for temporary, _ in staged)
        missing = f"{exc.filename} is no longer there" if isinstance(exc, FileNotFoundError) else (
            exc.strerror or str(exc))
        raise BridgeError(f"cannot publish the decision in the drop folder {folder}: {missing}; nothing was decided",
                          code="decision_failed") from None


def _check_in_project(config, folder: Path) -> None:
    """Refuse to write into ``folder`` (the decisions or the Kept folder) when it resolves out of the project roots
    (a symlink put there, or in place of the drop folder): the decision is the project's, written nowhere else."""
    if config is None:
        return
    try:
        resolved = folder.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise BridgeError(f"the folder {folder} cannot be resolved ({exc}); nothing was decided",
                          code="decision_failed") from None
    if not config.in_project(resolved):
        raise BridgeError(f"the folder {folder} leads outside the project roots (to {resolved}); nothing was decided",
                          code="decision_outside_roots")


def _audio_of(manifest: Path) -> Path:
    """The audio file a variant's manifest names."""
    try:
        name = json.loads(manifest.read_text(encoding="utf-8"))["audio"]
    except (ValueError, KeyError, TypeError) as exc:
        raise OSError(f"{manifest.name} cannot be read ({type(exc).__name__}: {exc})") from None
    return manifest.with_name(Path(name).name)
