"""Turning a validated command into a job spec: the checks that need the file system and the config."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from pathlib import Path

from bridge import captures, plugin_prompts
from bridge.audio.region import check_unchanged, probe
from bridge.config import Config, inbox_owns
from bridge.exceptions import SourceError
from bridge.models import JobSpec
from osc_schema import Command, ValidationError

# A range may end this close past the file's end (DAW rounding of item lengths) and is clamped to it.
_END_TOLERANCE = 0.01


def new_job_id() -> str:
    return f"j-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _resolved(field: str, given: str, path: Path) -> Path:
    """``path`` with every symlink resolved; a loop or an unreadable component is the producer's to fix."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ValidationError(field, given, f"cannot be resolved ({exc})") from None


def _home_of_daemon(given: str, expanded: Path) -> str:
    """For a path given from ``~`` that landed outside the roots: where the daemon took it to be. Its ``~`` is the
    home of the user it runs as (a service's, a container's, another machine's), not necessarily the producer's."""
    if not given.startswith("~"):
        return ""
    return (f": the daemon took {given!r} to be {expanded}, in a home on its machine, which may not be yours: give "
            f"the absolute path instead")


def _no_home(given: str) -> str:
    """For a relative path: why, and what a ``~`` in it did (``~name`` of no user the daemon knows stays as given)."""
    if given.startswith("~"):
        return f" ({given.split('/', 1)[0]} is no user's home on the daemon's machine)"
    return " (the daemon cannot tell which folder it is relative to)"


def admit(command: Command, config: Config, backends: set[str], inbox: Path | None = None) -> JobSpec:
    """Check a validated inpaint/extend command against the file system and the config; return its JobSpec.

    ``inbox``: the inbox with its symlinks resolved, when the caller knows it: resolving it looks at the inbox, which
    on a share that stopped answering held every job's admission, and the daemon's event loop with it.
    Raises ValidationError (naming the field) for anything the producer can fix, SourceError for unreadable audio.
    """
    capture_index = None
    if command.args.get("capture"):
        capture_index = captures.read_index(config, command.args["capture"])  # read once
        command = plugin_prompts.with_instance_prompt(config, command, capture_index[1])  # preset or own text
    args = dict(command.args)
    job_id = new_job_id()
    capture_plan = capture_drop = None
    position = args.get("position") or 0.0
    if args.get("capture"):
        # A plugin's capture: times are timeline seconds; the played range plus context becomes the job's source,
        # exported into its work folder at the job's export step, with position its timeline start.
        if position:
            raise ValidationError("position", position, "must not be given with capture (its times are timeline "
                                                        "seconds already)")
        if command.name == "inpaint":
            need = (args["start"] - config.handle, args["end"] + config.handle)
        else:
            need = (args["extend_after"] - config.handle, args["extend_after"])
        capture_plan = captures.plan(config, args["capture"], *need, index=capture_index)
        position = capture_plan.position
        for key in ("start", "end", "extend_after"):
            if args.get(key) is not None:
                args[key] = args[key] - position
        resolved = config.work_dir / job_id / f"capture-{args['capture']}.wav"
        capture_drop = captures.results_folder(config, args["capture"])
        info = capture_plan.info
    else:
        source = Path(os.path.expanduser(args["source"]))
        if not source.is_absolute():
            raise ValidationError("source", args["source"], f"must be an absolute path{_no_home(args['source'])}")
        resolved = _resolved("source", args["source"], source)
        if not config.in_project(resolved):
            roots = ", ".join(str(r) for r in config.project_roots)
            raise ValidationError("source", args["source"], f"is outside the configured project roots ({roots})"
                                                            f"{_home_of_daemon(args['source'], source)}")
        info = probe(resolved)
    duration = info.duration

    backend = args.get("backend") or config.backend
    if backend not in backends:
        raise ValidationError("backend", backend, f"is not available (configured: {', '.join(sorted(backends))})")

    drop_folder = config.drop_folder or capture_drop
    if args.get("drop_folder"):
        named = Path(os.path.expanduser(args["drop_folder"]))
        if not named.is_absolute():  # it would be the daemon's working folder's, whatever the DAW meant
            raise ValidationError("drop_folder", args["drop_folder"],
                                  f"must be an absolute path{_no_home(args['drop_folder'])}")
        drop_folder = _resolved("drop_folder", args["drop_folder"], named)
    # Whichever folder results will go to (named here, configured, or beside the source) must resolve into the
    # roots: a "daw-bridge" folder that is a symlink out of the project is refused, not followed.
    effective = drop_folder or resolved.parent / "daw-bridge"
    if not config.in_project(_resolved("drop_folder", str(effective), effective)):
        raise ValidationError("drop_folder", args.get("drop_folder") or str(effective),
                              "is outside the configured project roots" +
                              (_home_of_daemon(args["drop_folder"], effective) if args.get("drop_folder") else ""))
    # Found otherwise only when the finished (perhaps paid) job is delivered: the folder, or the nearest of its
    # parents that exists, must be a folder (a file of the producer's called "daw-bridge" beside the song too).
    existing = _nearest_existing("drop_folder", args.get("drop_folder") or str(effective), effective)
    if not existing.is_dir():
        where = "" if existing == effective else f" ({existing} is a file)"
        raise ValidationError("drop_folder", args.get("drop_folder") or str(effective), f"is not a folder{where}")
    if (refusal := _unwritable(existing, made=existing != effective)) is not None:
        raise ValidationError("drop_folder", args.get("drop_folder") or str(effective), refusal)
    target = _resolved("drop_folder", str(effective), effective)
    inbox = inbox or _resolved("inbox", str(config.inbox), config.inbox)
    # inbox_owns resolves the inbox again: asked only where it may say yes
    if inbox in (target, target.parent) and (owned := inbox_owns(target, inbox)):
        # Manifests are .json files: the inbox would take each as a request file and move it to rejected/, out of
        # every importer's sight (an inbox named "daw-bridge" beside the songs is the default drop folder too); its
        # answer folders' files are deleted after [retention] files_days, results and all.
        raise ValidationError("drop_folder", args.get("drop_folder") or str(effective), owned)

    ids = {k[:-3]: args[k] for k in ("item_id", "track_id", "take_id") if args.get(k)}
    if capture_plan is not None:
        ids["capture"] = args["capture"]
    common = dict(job_id=job_id, operation=command.name, source=resolved, source_info=info, backend=backend,
                  prompt=args.get("prompt") or "", lyrics=args.get("lyrics") or "",
                  gender=args.get("gender"), num_outputs=args.get("num_outputs") or 2,
                  delivery=args.get("delivery") or config.delivery, handle=config.handle,
                  position=position, drop_folder=drop_folder, request_id=args.get("request_id") or "", ids=ids)
    return _spec(command, args, common, duration)


def check_source(config: Config, spec: JobSpec) -> None:
    """Raise SourceError when the job's source is no longer the file admitted: its path now leads elsewhere (a link
    put in its place, or in a parent's) or out of the project roots, or it holds audio of another length, rate or
    channel count. Admission looked once; a retry, or a start after a crash, reads the path again, maybe days later,
    and a paid job would upload whatever is there. Any thread (the source may be on a share)."""
    if "capture" in spec.ids:  # its source is the job's own export of the capture, made by its first step
        return
    try:
        now = spec.source.resolve(strict=True)
    except FileNotFoundError:
        raise SourceError(f"source audio is gone since the job was accepted: {spec.source}",
                          code="source_missing") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise SourceError(f"source audio cannot be resolved ({exc}): {spec.source}", code="source_unreadable") from None
    if now != spec.source or not config.in_project(now):
        raise SourceError(f"source audio {spec.source} now leads to {now} (a link put in its place since the job was "
                          "accepted): nothing was read from it", code="source_changed")
    check_unchanged(now, spec.source_info)


def _nearest_existing(field: str, given: str, folder: Path) -> Path:
    """``folder``, or the nearest of its parents that exists. Path.exists() raises for what is neither there nor
    missing (a name longer than the file system takes, a parent the daemon may not search): that is the producer's
    to fix, not an internal error."""
    for candidate in (folder, *folder.parents):
        try:
            candidate.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise ValidationError(field, given, f"cannot be used ({exc.strerror or exc})") from None
        return candidate
    return Path(folder.anchor)  # not reached: the root is there


def _unwritable(folder: Path, *, made: bool) -> str | None:
    """Why results cannot go into ``folder`` (the drop folder, or the nearest of its parents that exists, in which it
    is to be ``made``), or None. Asked by making a hidden folder there and removing it: a read-only disk or another
    user's folder, and the folders that refuse even root (/sys), all answer that as delivery would."""
    try:
        probe = tempfile.mkdtemp(prefix=".daw-bridge-probe-", dir=folder)
    except OSError as exc:
        return (f"cannot be made: {folder} takes no new folder" if made else "cannot be written") + \
            f" ({exc.strerror or exc})"
    with contextlib.suppress(OSError):
        os.rmdir(probe)
    return None


def _spec(command: Command, args: dict, common: dict, duration: float) -> JobSpec:
    # A range or an extension shorter than one sample is no audio at all: it was "delivered" as an empty result.
    rate = common["source_info"].sample_rate
    if command.name == "inpaint":
        start, end = args["start"], args["end"]
        if start >= duration:
            raise ValidationError("start", start, f"is past the end of the source ({duration:.3f} s)")
        if end > duration + _END_TOLERANCE:
            raise ValidationError("end", end, f"is past the end of the source ({duration:.3f} s)")
        if (min(end, duration) - start) * rate < 1:
            raise ValidationError("end", end, f"leaves less than one sample (1/{rate} s) after start ({start})")
        return JobSpec(**common, start=start, end=min(end, duration),
                       lyrics_section=args.get("lyrics_section_to_replace") or "")
    after = args["extend_after"]
    if after > duration + _END_TOLERANCE:
        raise ValidationError("extend_after", after, f"is past the end of the source ({duration:.3f} s)")
    seconds = args.get("duration") or 30.0
    if seconds * rate < 1:
        raise ValidationError("duration", seconds, f"is less than one sample (1/{rate} s)")
    return JobSpec(**common, extend_after=min(after, duration), duration=seconds,
                   lyrics_section=args.get("lyrics_section_to_extend") or "")
