"""``daw-bridge jobs``: what the daemon is doing and has done, read straight from the journal; what changes a job
(cancel, retry, resolve, and the decisions choose, keep, discard) goes to the running daemon, except that retry and
resolve of a one-shot command's job (``daw-bridge inpaint|extend``, which no daemon holds) run in this command."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import osc_schema
from bridge import logs
from bridge.client import BridgeClient
from bridge.commands import print_answer
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.exceptions import BridgeError
from bridge.models import LAST, JobRecord
from osc_schema import ValidationError

_DECISIONS = osc_schema.ARGUMENTS["decision"].choices  # choose, keep, discard


def jobs(config: Config, args) -> int:
    if args.action in _DECISIONS:  # the daemon checks the job (or finds "last") and answers in one line
        return _decide(config, args)
    if args.choice is not None:
        print(f"daw-bridge jobs {args.action}: takes no take number ({args.choice}); only choose and keep do")
        return 2
    if args.action == "resolve" and args.job_id and bool(args.task_id) == bool(args.not_submitted):
        print("daw-bridge jobs resolve: give either --task-id ID or --not-submitted")
        return 2
    if args.action in ("resolve", "retry") and args.job_id:
        from bridge.commands.one_shot import settle_one_shot

        settled = settle_one_shot(config, args.action, args.job_id, args.task_id)
        if settled is not None:  # a one-shot command's job: no daemon holds it, this command settles it
            return settled
    journals, unread = _open_journals(config)
    try:
        if args.action == "list":
            _say(unread)
            if not args.json:
                from bridge.commands.midi import context_lines

                for line in context_lines(config):
                    print(line)
            recent = [(r, j.path == config.one_shot_journal_path) for j in journals for r in j.recent()]
            listed = _list(sorted(recent, key=lambda pair: -pair[0].created)[:50], args.json, bool(unread))
            return 2 if unread else listed
        if not args.job_id:
            print(f"daw-bridge jobs {args.action}: name a job id (see 'daw-bridge jobs')")
            return 2
        try:
            record, journal = next(((r, j) for j in journals if (r := j.get(args.job_id)) is not None), (None, None))
        except BridgeError as exc:  # a damaged row: the journal says which, the rest of it still works
            print(f"daw-bridge jobs: {exc}")
            return 2
        if record is None:
            _say(unread)  # it may be in the journal that cannot be read
            print(f"daw-bridge jobs: no job {logs.one_line(args.job_id)}"
                  + (" in the journal that can be read" if unread else ""))
            return 2
        if args.action == "show":
            print(json.dumps({**record.summary(), "pictures": _pictures(record.manifests),
                              "decision": _decision(record), "spec": record.spec.to_json(),
                              "receipt": record.public_receipt()}, indent=2))
            return 0
        if journal.path == config.one_shot_journal_path:  # only its retry and resolve are run here (above)
            return _refuse_one_shot(args)
        return _ask_daemon(config, args)
    finally:
        for journal in journals:
            journal.close()


def _open_journals(config: Config) -> tuple[list[Journal], list[str]]:
    """The daemon's journal and the one-shot commands' (those that exist), and a line for each that cannot be
    opened: a damaged one, or one on a disk that refuses it (read-only, no permission), does not keep the other from
    answering."""
    journals, unread = [], []
    for path in (config.journal_path, config.one_shot_journal_path):
        if not path.exists():
            continue
        try:
            journals.append(Journal(path))
        except BridgeError as exc:
            unread.append(f"daw-bridge jobs: {exc}")
    return journals, unread


def _refuse_one_shot(args) -> int:
    """cancel and the decisions go to the daemon, which never holds a one-shot command's job."""
    print(f"daw-bridge jobs {args.action}: job {args.job_id} is a one-shot command's (daw-bridge inpaint|extend), "
          "which only retry and resolve reach; stop a running one with Ctrl-C where it runs")
    return 2


def _say(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def _pictures(manifests: list[str]) -> list[str | None]:
    """Each delivered variant's picture, as its manifest names it (None: not drawn yet, drawn without success, or the
    manifest is gone)."""
    pictures = []
    for manifest in manifests:
        try:
            name = json.loads(Path(manifest).read_text(encoding="utf-8")).get("picture")
        except (OSError, ValueError, AttributeError):
            name = None
        pictures.append(str(Path(manifest).with_name(name)) if isinstance(name, str) and name else None)
    return pictures


def _decision(record) -> dict | None:
    """The job's latest decision as its file holds it (None: nothing decided yet)."""
    from bridge.decisions import latest

    try:
        decided = latest(record)
    except BridgeError as exc:
        return {"error": str(exc)}
    return decided.to_json() if decided is not None else None


def _list(records: list[tuple[JobRecord, bool]], as_json: bool, unread: bool = False) -> int:
    """Each job with whether a one-shot command ran it, newest first (``unread``: a journal could not be read)."""
    if as_json:
        print(json.dumps([{**r.summary(), "one_shot": one_shot} for r, one_shot in records], indent=2))
        return 0
    if not records:
        print("no jobs in a journal that can be read" if unread else "no jobs yet")
    for r, one_shot in records:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
        rng = r.origin.get("bars") or f"{r.spec.edit_start:.2f}-{r.spec.edit_end:.2f}s"
        detail = r.error_message or r.message or (f"{len(r.manifests)} variant(s)" if r.manifests else "")
        by = " (one-shot)" if one_shot else ""
        # one line each, whatever a song's name holds (a newline, a terminal's escape sequence)
        print(logs.one_line(f"{r.job_id}  {when}  {r.spec.operation:<7} {r.spec.backend:<8} {r.state.value:<18} "
                            f"{r.spec.source.name} {rng}  {detail}{by}"))
    return 0


def _ask_daemon(config: Config, args) -> int:
    """cancel, retry and resolve change a job the daemon owns, so they go to the daemon, not the journal."""
    values = {"job_id": args.job_id}
    if args.action == "resolve":
        values["task_id"] = args.task_id or ""
    with BridgeClient(config.daemon_host, config.osc_port) as client:
        client.send(args.action, **values)
        reply = client.wait_for(lambda r: r.name in ("state", "error"), timeout=3)
    return print_answer(f"jobs {args.action}", reply, config.daemon_host, config.osc_port,
                        lambda: f"{reply.args[0]}: {reply.args[1]}", config.unheard_here)


def _decide(config: Config, args) -> int:
    """choose, keep, discard: the daemon publishes the decision for the DAW scripts and tells the job's plugin."""
    from bridge.decisions import describe

    if not args.job_id:
        print(f"daw-bridge jobs {args.action}: name a job id, or 'last' for the job delivered last")
        return 2
    if args.job_id != LAST:
        from bridge.commands.one_shot import lookup

        with contextlib.suppress(BridgeError):  # a damaged one-shot journal: the daemon answers for its own jobs
            if lookup(config.one_shot_journal_path, args.job_id) is not None:
                return _refuse_one_shot(args)
    try:
        with BridgeClient(config.daemon_host, config.osc_port) as client:
            client.send("decide", job_id=args.job_id, decision=args.action, choice=args.choice)
            reply = client.wait_for(lambda r: r.name in ("decided", "error"), timeout=3)
    except ValidationError as exc:  # refused before sending, by the same schema the daemon checks with
        print(f"daw-bridge jobs {args.action}: {exc}")
        return 2
    return print_answer(f"jobs {args.action}", reply, config.daemon_host, config.osc_port,
                        lambda: describe(*reply.args), config.unheard_here)
