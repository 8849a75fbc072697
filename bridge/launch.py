"""The installed ``daw-bridge`` command's entry point.

It only loads the command: Ctrl-C pressed while Python is still importing it (tens of milliseconds, longer on a
cold disk) ends it as Ctrl-C ends a running command, status 130 and no traceback, which ``bridge.cli.main`` cannot
do for the imports that come before it.
"""

from __future__ import annotations


def main() -> int:
    try:
        from bridge.cli import main as run
    except KeyboardInterrupt:
        return 130
    return run()
