"""``daw-bridge send``: one command to a running daemon over OSC, replies printed as they come."""

from __future__ import annotations

import os

import osc_schema
from bridge.client import BridgeClient, Reply, Unanswered
from bridge.config import Config
from bridge.settings_schema import defaults
from osc_schema import ValidationError

_PARSE = {"int": int, "float": float, "string": str}


def parse_values(name: str, pairs: list[str]) -> dict:
    """KEY=VALUE words into typed values, using the schema's type for each key."""
    spec = osc_schema.COMMANDS.get(name)
    if spec is None:
        raise ValidationError("command", name, f"is not a command (one of {', '.join(osc_schema.COMMANDS)})")
    values, given = {}, {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        arg = spec.argument(key)
        if not sep or arg is None:
            known = ", ".join(a.name for a in spec.arguments) or "none"
            raise ValidationError(key or pair, pair, f"must be KEY=VALUE with a key of {name} ({known})")
        if key in given:  # 'start=1 end=5 start=2': the second silently won, which a typo makes easily
            raise ValidationError(key, text, f"is a second {key} (after {given[key]!r}): give each key once")
        given[key] = text
        try:
            values[key] = _PARSE[arg.type](text)
        except ValueError:
            raise ValidationError(key, text, f"must be {'an' if arg.type == 'int' else 'a'} {arg.type}") from None
        if arg.path and text:
            values[key] = _from_here(key, text)
    return values


def _from_here(key: str, text: str) -> str:
    """A path named on the command line, relative to the folder the producer stands in: the daemon, started
    elsewhere, refuses a relative one (it cannot know that folder)."""
    path = os.path.expanduser(text)
    if os.path.isabs(path):
        return text
    try:
        return os.path.join(os.getcwd(), path)
    except FileNotFoundError:
        raise ValidationError(key, text, "is relative, and the current folder has been deleted: give the whole "
                                         "path, or cd to a folder that exists") from None


def send(config: Config, args) -> int:
    try:
        values = parse_values(args.name, args.values)
        port = args.port or config.osc_port
        with BridgeClient(config.daemon_host, port) as client:
            answer = 5.0  # a daemon that listens answers at once; without an answer, the command was lost
            if args.name == "ableton":  # the daemon hears Live is not there after its timeout
                answer = max(answer, float(config.ableton.get("timeout", defaults("ableton")["timeout"])) + 2)
            if args.wait and args.name in ("inpaint", "extend", "ableton"):
                try:  # --timeout is the wait for the job's outcome here
                    outcome, _ = client.run_job(args.name, timeout=args.timeout or 600, on_reply=_print,
                                                heard_within=answer, **values)
                except Unanswered:  # not the outcome's wait: it waited in silence for all of it
                    return _unheard(config, port)
                return 0 if outcome.name in ("done", "context_set") else 1
            client.send(args.name, **values)
            replies = []
            reply = client.first_reply(args.name, args.timeout or answer)
            heard = reply is not None
            while reply is not None:
                if reply.name != "pong" or args.name == "ping":  # not the ping first_reply sent after a slow one
                    _print(reply)
                    replies.append(reply.name)
                reply = client.receive(0.3)
            if not replies and heard:  # a pong alone: the daemon runs, and is still on the command
                print(f"the daemon on {config.daemon_host}:{port} has not answered {args.name} yet (its source or drop "
                      "folder on a share that does not answer?): see 'daw-bridge jobs' before sending it again")
                return 1
            if not replies:
                return _unheard(config, port)
            return 1 if "error" in replies else 0  # the daemon refused the command: a script must see it
    except ValidationError as exc:
        print(f"daw-bridge send: {exc}")
        return 2
    except TimeoutError as exc:  # --wait: the daemon stopped mid-job, or the job outlasted the wait
        print(f"daw-bridge send: {exc}: the job goes on if the daemon runs (see 'daw-bridge jobs')")
        return 1


def _unheard(config: Config, port: int) -> int:
    why = config.unheard_here or ("is 'daw-bridge serve' running? If it is, it may still take the command: see "
                                  "'daw-bridge jobs' before sending it again")
    print(f"no reply from a daemon on {config.daemon_host}:{port} ({why})")
    return 1


def _print(reply: Reply) -> None:
    print(reply.address, *(repr(a) if isinstance(a, str) and " " in a else a for a in reply.args))
