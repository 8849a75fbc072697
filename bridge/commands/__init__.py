"""The CLI's subcommands, one module each, imported only when used (so ``daw-bridge send`` starts fast)."""

import argparse
import math
import os
from pathlib import Path


def port_number(text: str) -> int:
    """argparse type of a UDP port: a number the socket would refuse with a traceback is a usage error instead."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} must be in range 1..65535")
    return port


def seconds(text: str) -> float:
    """argparse type of a wait in seconds: finite and positive (a socket timeout of nan or inf is a traceback)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0 or value > 86400:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 and at most 86400 seconds")
    return value


def path_argument(text: str) -> Path:
    """argparse type of a file or folder, ``~`` expanded: a ``~name`` of no user here, or a relative path while the
    current folder has been deleted, is a usage error instead of a traceback where the path is first used."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        head = text.split("/", 1)[0]
        reason = f"{head} is no user on this machine" if head != "~" else "~ names no home folder for this user"
        raise argparse.ArgumentTypeError(f"{text}: {reason}") from None
    if not path.is_absolute():
        try:
            os.getcwd()
        except FileNotFoundError:
            raise argparse.ArgumentTypeError(f"{text}: the current folder has been deleted; give the whole path, or "
                                             f"cd to a folder that exists") from None
    return path


def print_answer(command: str, reply, host: str, port: int, text, unheard: str = "") -> int:
    """Print the daemon's answer to a CLI command: ``text()`` on success (exit 0), the daemon's one-line reason on
    an error reply (exit 2), or that no daemon answered (exit 1; ``unheard``: the config's reason why a running
    one would not, ``Config.unheard_here``)."""
    if reply is None:
        print(f"no daemon answered on {host}:{port}: {unheard or 'start it with ' + repr('daw-bridge serve')}")
        return 1
    if reply.name == "error":
        print(f"daw-bridge {command}: {reply.args[-1]}")
        return 2
    print(text())
    return 0
