"""What a job is: the validated request it runs, and the states it moves through."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


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
