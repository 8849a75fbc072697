"""``daw-bridge jobs``: what the daemon is doing and has done, read straight from the journal; what changes a job
(cancel, retry, resolve, and the decisions choose, keep, discard) goes to the running daemon, except that retry and
resolve of a one-shot command's job (``daw-bridge inpaint|extend``, which no daemon holds) run in this command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import osc_schema
from bridge.client import BridgeClient
from bridge.commands import print_answer
from bridge.config import Config
from bridge.core.journal import Journal
from bridge.exceptions import BridgeError
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
    if not config.journal_path.exists():
        if args.action != "list" and args.job_id:
            print(f"daw-bridge jobs: no job {args.job_id}")
            return 2
        print("no jobs yet")
        return 0
    try:
        journal = Journal(config.journal_path)
    except BridgeError as exc:
        print(f"daw-bridge jobs: {exc}")
        return 2
    try:
        if args.action == "list":
            if not args.json:
                from bridge.commands.midi import context_lines

                for line in context_lines(config):
                    print(line)
            return _list(journal, args.json)
        if not args.job_id:
            print(f"daw-bridge jobs {args.action}: name a job id (see 'daw-bridge jobs')")
            return 2
        try:
            record = journal.get(args.job_id)
        except BridgeError as exc:  # a damaged row: the journal says which, the rest of it still works
            print(f"daw-bridge jobs: {exc}")
            return 2
        if record is None:
            print(f"daw-bridge jobs: no job {args.job_id}")
            return 2
        if args.action == "show":
            print(json.dumps({**record.summary(), "pictures": _pictures(record.manifests),
                              "decision": _decision(record), "spec": record.spec.to_json(),
                              "receipt": record.public_receipt()}, indent=2))
            return 0
        return _ask_daemon(config, args)
    finally:
        journal.close()


def _pictures(manifests: list[str]) -> list[str | None]:
    """Each delivered variant's picture, as its manifest names it (None: not drawn yet, drawn without success, or the manifest is gone)."""
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


def _list(journal: Journal, as_json: bool) -> int:
    records = journal.recent()
    if as_json:
        print(json.dumps([r.summary() for r in records], indent=2))
        return 0
    if not records:
        print("no jobs yet")
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
        rng = r.origin.get("bars") or f"{r.spec.edit_start:.2f}-{r.spec.edit_end:.2f}s"
        detail = r.error_message or r.message or (f"{len(r.manifests)} variant(s)" if r.manifests else "")
        print(f"{r.job_id}  {when}  {r.spec.operation:<7} {r.spec.backend:<8} {r.state.value:<18} "
              f"{r.spec.source.name} {rng}  {detail}")
    return 0


def _ask_daemon(config: Config, args) -> int:
    """cancel, retry and resolve change a job the daemon owns, so they go to the daemon, not the journal."""
    values = {"job_id": args.job_id}
    if args.action == "resolve":
        values["task_id"] = args.task_id or ""
    with BridgeClient("127.0.0.1", config.osc_port) as client:
        client.send(args.action, **values)
        reply = client.wait_for(lambda r: r.name in ("state", "error"), timeout=3)
    return print_answer(f"jobs {args.action}", reply, config.osc_port, lambda: f"{reply.args[0]}: {reply.args[1]}")


def _decide(config: Config, args) -> int:
    """choose, keep, discard: the daemon publishes the decision for the DAW scripts and tells the job's plugin."""
    from bridge.decisions import describe

    if not args.job_id:
        print(f"daw-bridge jobs {args.action}: name a job id, or 'last' for the job delivered last")
        return 2
    try:
        with BridgeClient("127.0.0.1", config.osc_port) as client:
            client.send("decide", job_id=args.job_id, decision=args.action, choice=args.choice)
            reply = client.wait_for(lambda r: r.name in ("decided", "error"), timeout=3)
    except ValidationError as exc:  # refused before sending, by the same schema the daemon checks with
        print(f"daw-bridge jobs {args.action}: {exc}")
        return 2
    return print_answer(f"jobs {args.action}", reply, config.osc_port, lambda: describe(*reply.args))
