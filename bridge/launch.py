"""The installed ``daw-bridge`` command's entry point.

It only loads the command and runs it: Ctrl-C pressed while Python is still importing it (tens of milliseconds,
longer on a cold disk), or while the command builds its options (which import the MIDI, voice and plugin commands'
modules: about 0.1 s), ends it as Ctrl-C ends a running command, status 130 and no traceback, which
``bridge.cli.main`` cannot do for what comes before its own handler.
"""

from __future__ import annotations


def main() -> int:
    try:
        from bridge.cli import main as run

        return run()
    except KeyboardInterrupt:
        return 130
