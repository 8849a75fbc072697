"""Results as the daemon drops them into a REAPER project's drop folder, and how a test reads the takes they became."""

import json
import wave
from pathlib import Path

from osc_schema.spec import DECISION_FORMAT, DECISIONS_FOLDER

MIX = "/music/song/mix.wav"


def write_wav(path: Path, seconds: float, rate: int = 8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


def deliver(folder: Path, *, operation="inpaint", start=12.5, end=20.0, handle=1.0, position=0.0, variant=1,
            variants=2, delivery="patch", item=None, track=None, source=MIX, prompt="soft guitar solo",
            job="j-20261121-190512-3f2a", song_length=240.0, manifest_format="daw-bridge.manifest/1",
            confidence=None, joins=()) -> Path:
    """Drop one variant the way the daemon does (docs/formats.md): the audio first, then its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    if delivery == "patch":
        span_start, span_end = max(0.0, start - handle), end + (handle if operation == "inpaint" else 0.0)
    else:
        span_start, span_end = 0.0, max(song_length, end)
    stem = f"mix_{operation}_{start:.2f}-{end:.2f}_v{variant}_{job[-4:]}"
    write_wav(folder / f"{stem}.wav", span_end - span_start)
    manifest = {
        "format": manifest_format, "job_id": job, "request_id": "reaper-1700000000-1", "operation": operation,
        "variant": variant, "variants": variants, "backend": "local", "delivery": delivery,
        "audio": f"{stem}.wav", "sample_rate": 8000, "channels": 1, "frames": int((span_end - span_start) * 8000),
        "timeline": {"position": position + span_start, "length": span_end - span_start},
        "source": {"path": source, "start": start, "end": end, "span_start": span_start, "span_end": span_end,
                   "position": position},
        "ids": {"item": item, "track": track},
        "request": {"prompt": prompt, "lyrics": "", "lyrics_section": "", "gender": None, "num_outputs": variants},
        "splice": {"handle": handle, "joins": list(joins)}, "notes": {}, "created": "2026-11-21T19:05:20Z",
    }
    if confidence is not None:
        manifest["splice"]["confidence"] = confidence
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(manifest))
    return path


def bounds(item) -> tuple[float, float]:
    return item["position"], item["position"] + item["length"]


def active(item) -> dict:
    return item["takes"][item["active_take"] - 1]


def decision_json(job: str, seq: int, decision: str, choice: int | None, manifests: list[Path]) -> str:
    """A decision file's text, as the daemon publishes it (osc_schema/spec.py; indented, like the daemon's)."""
    return json.dumps({"format": DECISION_FORMAT, "job_id": job, "seq": seq, "decision": decision, "choice": choice,
                       "manifests": [m.name for m in manifests], "decided_at": "2026-11-21T19:07:00Z"}, indent=2) + "\n"


def decide(drop_folder: Path, job: str, seq: int, decision: str, choice: int | None, manifests: list[Path]) -> Path:
    """Publish the producer's decision on a job into the drop folder, as the daemon does."""
    return publish_decision(drop_folder, f"{job}.json", decision_json(job, seq, decision, choice, manifests))


def publish_decision(drop_folder: Path, name: str, text: str) -> Path:
    """Write a decision file aside and rename it into place, so a reader never sees half of it."""
    folder = drop_folder / DECISIONS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.part"
    temp.write_text(text, encoding="utf-8")
    return temp.replace(folder / name)
