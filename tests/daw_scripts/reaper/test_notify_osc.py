"""The daemon triggers REAPER's importer the documented way: REAPER's stock OSC pattern file (Default.ReaperOSC)
has ``ACTION i/action s/action/str t/action/@ f/action/@/cc``: a numeric command id as an int on ``/action`` or in
the address (``/action/40044``), a named one (``_RS…``) as a *string argument* of ``/action/str``. The stand-in
below reads that line the way REAPER reads pattern lines (type prefix, address, ``@`` a numeric wildcard) and runs
only what matches; ``/action/_RS…`` with no argument matches nothing there."""

from __future__ import annotations

import re
import socket
import struct
import textwrap
import tomllib
from pathlib import Path

from bridge.commands import install
from bridge.frontends.notify import DawNotifier

from .conftest import REAPACK_ROOT

REPO = REAPACK_ROOT.parent.parent
# The line as REAPER ships it in OSC/Default.ReaperOSC; a custom pattern file needs it for the daemon's message.
STOCK_ACTION_LINE = "ACTION i/action s/action/str t/action/@ f/action/@/cc"


def osc_message(data: bytes) -> tuple[str, str, list]:
    """(address, type tags, arguments) of one OSC message; only the types a pattern line can ask for."""
    def string(at: int) -> tuple[str, int]:
        end = data.index(b"\0", at)
        return data[at:end].decode("utf-8"), (end + 4) & ~3

    address, at = string(0)
    tags, at = string(at)
    assert tags.startswith(","), "no type tag string"
    args = []
    for tag in tags[1:]:
        if tag == "s":
            value, at = string(at)
        elif tag == "i":
            (value,), at = struct.unpack(">i", data[at:at + 4]), at + 4
        elif tag == "f":
            (value,), at = struct.unpack(">f", data[at:at + 4]), at + 4
        else:
            raise AssertionError(f"type {tag} is not one REAPER's ACTION patterns take")
        args.append(value)
    return address, tags[1:], args


class ReaperActionSurface:
    """What REAPER's OSC control surface does with the ACTION line of a pattern file, and nothing more."""

    def __init__(self, pattern_file: str, command_ids: set[str]):
        [line] = [line for line in pattern_file.splitlines() if line.split()[:1] == ["ACTION"]]
        self.patterns = [(word[0], word[1:]) for word in line.split()[1:]]  # ("s", "/action/str"), ...
        self.command_ids = command_ids  # the named command ids REAPER knows (from reaper-kb.ini)
        self.ran: list[str | int] = []
        self.ignored: list[str] = []

    def receive(self, data: bytes) -> None:
        address, tags, args = osc_message(data)
        for kind, pattern in self.patterns:
            regex = "^" + re.escape(pattern).replace("@", r"(\d+)") + "$"
            m = re.match(regex, address)
            if not m:
                continue
            if kind == "s" and tags == "s" and args[0] in self.command_ids:
                self.ran.append(args[0])
                return
            if kind == "i" and tags == "i":
                self.ran.append(args[0])
                return
            if kind == "t" and m.groups() and tags in ("", "i", "f"):
                self.ran.append(int(m.group(1)))
                return
            if kind == "f" and m.groups() and tags == "f":
                self.ran.append(int(m.group(1)))
                return
        self.ignored.append(f"{address} ,{tags} {args}")


def kb_command_ids() -> set[str]:
    return {"_" + line.split()[3] for line in (install.reaper_kb_line(n) for n in install.reaper_actions())}


def deliver(table: dict, surface: ReaperActionSurface) -> None:
    """A delivery's notification from the daemon's own notifier, over real UDP, into the stand-in."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
        reaper.bind(("127.0.0.1", 0))
        reaper.settimeout(5)
        notifier = DawNotifier({**table, "port": reaper.getsockname()[1]})
        try:
            notifier(None, "done")
            surface.receive(reaper.recv(65536))
        finally:
            notifier.close()


def test_the_printed_notify_table_runs_the_import_action_through_the_stock_pattern():
    surface = ReaperActionSurface(STOCK_ACTION_LINE, kb_command_ids())
    table = tomllib.loads(install.notify_config())["notify"]

    deliver(table, surface)

    assert surface.ran == ["_" + install.reaper_command_id(install.IMPORT_NOW)] and surface.ignored == []


def test_the_undocumented_form_without_an_argument_is_not_run_by_the_stock_pattern():
    surface = ReaperActionSurface(STOCK_ACTION_LINE, kb_command_ids())
    command_id = "_" + install.reaper_command_id(install.IMPORT_NOW)

    deliver({"address": f"/action/{command_id}"}, surface)
    deliver({"address": "/action/str", "args": [command_id, 1]}, surface)  # a second argument: not "s"

    assert surface.ran == [] and len(surface.ignored) == 2


def test_numeric_ids_work_the_two_documented_ways():
    surface = ReaperActionSurface(STOCK_ACTION_LINE, set())
    deliver({"address": "/action", "args": [40044]}, surface)
    deliver({"address": "/action/40044"}, surface)
    assert surface.ran == [40044, 40044]


def test_the_readmes_show_the_stock_line_and_the_documented_notify_form():
    reaper_readme = (REAPACK_ROOT / "README.md").read_text(encoding="utf-8")
    assert STOCK_ACTION_LINE in reaper_readme
    main_readme = (REPO / "README.md").read_text(encoding="utf-8")
    for text in (reaper_readme, main_readme):
        tables = re.findall(r"^ *\[notify\][^\n]*\n(?: *[a-z].*\n)+", text, flags=re.M)
        assert tables, "no [notify] example"
        for example in tables:
            notify = tomllib.loads(re.sub(r"[ \t]+#.*", "", textwrap.dedent(example)))["notify"]
            assert notify["address"] == "/action/str"
            assert len(notify["args"]) == 1 and notify["args"][0].startswith("_RS")
    assert 'address = "/action/_RS' not in reaper_readme and "8000 /action/_RS" not in reaper_readme
