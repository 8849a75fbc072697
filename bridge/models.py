"""The shared types every layer speaks: what a job is, the states it moves through, what a backend returns.

A leaf module, like Mopidy's ``models``: core, backends, audio and frontends import it, and it imports none of
them, so no lower layer ever needs the core.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable


LAST = "last"  # the job id that means the job delivered most recently (audition, decisions)


class State(str, Enum):
    """A job's life. Each state is journaled before the step it names has effects outside the process."""

    ACCEPTED = "accepted"
    EXPORTING = "exporting"
    SUBMITTING = "submitting"  # intent recorded, the backend's answer not yet
    SUBMITTED = "submitted"
    GENERATING = "generating"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUBMISSION_UNKNOWN = "submission_unknown"  # a paid submit may have happened: the producer decides

    @property
    def finished(self) -> bool:
        return self in (State.DELIVERED, State.FAILED, State.CANCELLED)

    @property
    def waiting_for_producer(self) -> bool:
        return self is State.SUBMISSION_UNKNOWN


@dataclass(frozen=True)
class SourceInfo:
    """What the source file's header says; read once when the command is admitted."""

    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class JobSpec:
    """A validated, admitted command: everything a backend and the delivery need, nothing else.

    Times are seconds in the *source file's* time. ``position`` is where the source's time 0 sits on the DAW
    timeline, so a result spanning source time ``t`` goes at ``position + t``.
    """

    job_id: str
    operation: str  # "inpaint" | "extend"
    source: Path
    source_info: SourceInfo
    backend: str
    start: float | None = None  # inpaint
    end: float | None = None  # inpaint
    extend_after: float | None = None  # extend
    duration: float | None = None  # extend: seconds of new material
    prompt: str = ""
    lyrics: str = ""
    lyrics_section: str = ""  # lyrics_section_to_replace / _to_extend
    gender: str | None = None
    num_outputs: int = 2
    delivery: str = "patch"  # "patch" | "full"
    handle: float = 1.0  # seconds of untouched source kept on each side of a patch
    position: float = 0.0
    drop_folder: Path | None = None
    request_id: str = ""
    ids: dict[str, str] = field(default_factory=dict)  # item / track / take identifiers for the importer

    @property
    def edit_start(self) -> float:
        """Source time where new material begins."""
        return self.start if self.operation == "inpaint" else self.extend_after

    @property
    def edit_end(self) -> float:
        """Source time where new material ends (for extend, may lie past the end of the file)."""
        return self.end if self.operation == "inpaint" else self.extend_after + self.duration

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["source"] = str(self.source)
        data["drop_folder"] = str(self.drop_folder) if self.drop_folder else None
        return data

    @classmethod
    def from_json(cls, data: dict) -> "JobSpec":
        data = dict(data)
        data["source"] = Path(data["source"])
        data["source_info"] = SourceInfo(**data["source_info"])
        data["drop_folder"] = Path(data["drop_folder"]) if data.get("drop_folder") else None
        return cls(**data)


@dataclass
class Rendered:
    """One variant, ready to deliver.

    ``path`` is a WAV in the job's work folder at the source's sample rate and channel count. It covers source time
    ``span_start`` onwards, and already contains its joins: its first ``handle`` seconds (and, for inpaint, its last)
    equal the source sample for sample outside the crossfades, so a patch is this file placed at
    ``position + span_start`` and a full-song delivery is the source with this span swapped in.
    """

    variant: int  # 1-based
    path: Path
    span_start: float
    splice: dict = field(default_factory=dict)  # joins, confidences, crossfades, alignment offsets: for the manifest
    notes: dict = field(default_factory=dict)  # backend-specific manifest fields (title, lyrics, engine note)

    def to_json(self) -> dict:
        return {"variant": self.variant, "path": str(self.path), "span_start": self.span_start,
                "splice": self.splice, "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict) -> "Rendered":
        return cls(data["variant"], Path(data["path"]), data["span_start"], data["splice"], data["notes"])


@dataclass
class JobRecord:
    """A job as the journal holds it."""

    job_id: str
    request_id: str
    origin: dict
    spec: JobSpec
    state: State
    progress: float = 0.0
    message: str = ""
    prepared: dict | None = None
    receipt: dict | None = None
    rendered: list | None = None
    manifests: list[str] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    created: float = 0.0
    updated: float = 0.0

    @property
    def task_named_by_producer(self) -> bool:
        """Whether its task id is one the producer typed in (``jobs resolve --task-id``): it may be the wrong one."""
        return (self.receipt or {}).get("named_by") == "producer"

    def public_receipt(self) -> dict | None:
        """The receipt as it may be shown to a person: without secrets (a webhook secret lets anyone post results)."""
        if self.receipt is None:
            return None
        return {k: v for k, v in self.receipt.items() if "secret" not in k}

    def summary(self) -> dict:
        """What ``daw-bridge jobs`` and status files show."""
        return {"job_id": self.job_id, "request_id": self.request_id, "operation": self.spec.operation,
                "source": str(self.spec.source), "range": [self.spec.edit_start, self.spec.edit_end],
                "backend": self.spec.backend, "state": self.state.value, "progress": round(self.progress, 3),
                "message": self.message, "manifests": self.manifests,
                "error": {"code": self.error_code, "message": self.error_message} if self.error_code else None,
                "task_id": (self.receipt or {}).get("task_id"), "created": self.created, "updated": self.updated,
                **({"bars": self.origin["bars"]} if self.origin.get("bars") else {})}  # a range chosen in bars


Progress = Callable[[float, str], None]
"""progress(fraction 0..1 of the backend's own work, short note)"""
