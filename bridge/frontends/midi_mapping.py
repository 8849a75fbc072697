"""The MIDI mapping file: which pad (note on, control change or program change) runs which command or action.

A mapping is TOML (see ``docs/midi-mapping.example.toml``)::

    [presets.guitar]                # named bundles of command arguments, shared by pads
    prompt = "soft guitar solo"
    num_outputs = 2

    [[pad]]
    note = 36                       # or cc = 20, or program = 5 (0..127, as sent on the wire)
    channel = 10                    # 1..16 as printed on the hardware; leave out to answer on any channel
    command = "inpaint"             # inpaint | extend: arguments checked by osc_schema like any other trigger
    anchor = "last"                 # optional: whole bars from the DAW's play cursor ([midi.daw]) instead of the
    bars = 2                        #   selection: last | this | next, and how many (/bridge/bars in docs/osc.md)
    preset = "guitar"
    backend = "local"               # the pad's own arguments win over its preset's

    [[pad]]
    cc = 21
    action = "cancel"               # cancel | retry | rerun_other_backend: act on the last job;
                                    # audition_original, _variant_1, _variant_2, _next, _previous, _ab, _stop:
                                    # play the last delivered job; choose_original, choose_variant_1,
                                    # choose_variant_2, keep, discard: decide on it (lit: the chosen take)

    [leds]                          # values sent back for a pad's LED (velocity or CC value: colour on many pads)
    on = 127
    off = 0

Every mistake is refused when the daemon starts, naming the file, the line and the rule. tomllib gives no line
numbers, so ``_Lines`` finds them by scanning the text for the table header and the key.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import osc_schema
from bridge.audition.actions import PAD_ACTIONS
from bridge.config import config_home
from bridge.exceptions import BridgeError
from bridge.files import NotRegularFile, open_regular
from bridge.settings_schema import defaults
from osc_schema import ValidationError, show
from osc_schema.validate import type_name

KINDS = ("note", "cc", "program")
COMMANDS = ("inpaint", "extend")
# Pad actions that decide on the last delivered job (/bridge/decide) → (decision, choice); keep takes the chosen one.
DECISION_ACTIONS: dict[str, tuple[str, int | None]] = {
    "choose_original": ("choose", 0),
    **{f"choose_variant_{n}": ("choose", n) for n in range(1, int(osc_schema.ARGUMENTS["choice"].max) + 1)},
    "keep": ("keep", None),
    "discard": ("discard", None),
}
# Push-to-talk ([voice]): talk records while held, listen for a moment after the press; confirm lets a paid command
# heard by voice run.
VOICE_ACTIONS = ("talk", "listen", "confirm")
# audition_* and the decisions act on the last delivered job
ACTIONS = ("cancel", "retry", "rerun_other_backend", *PAD_ACTIONS, *DECISION_ACTIONS, *VOICE_ACTIONS)
# Arguments a pad normally takes from the session context (the DAW's selection) rather than from the mapping.
CONTEXT_ARGS = ("source", "start", "end", "extend_after", "position", "item_id", "track_id", "take_id",
                "drop_folder")
_BARS_SET = ("start", "end", "extend_after", "duration")  # what a pad's bars decide at each press
_PAD_KEYS = set(KINDS) | {"channel", "command", "action", "preset", "name", "anchor", "bars"}
_FRONTEND_ARGS = {"request_id": "is set by the MIDI frontend for each press",
                  "reply_port": "has no meaning for a MIDI pad"}
_LED_KEYS = ("on", "off", "done", "failed")


class MappingError(BridgeError):
    """The mapping file cannot be used; the message names the file, the line and the rule."""

    code = "invalid_mapping"


@dataclass(frozen=True)
class Trigger:
    """The message a pad sends: a note on, a control change reaching 64 (from below 32), or a program change."""

    kind: str  # note | cc | program
    number: int  # 0..127
    channel: int | None  # 1..16; None answers on every channel

    def describe(self) -> str:
        where = f" on channel {self.channel}" if self.channel else " on any channel"
        return f"{self.kind} {self.number}{where}"


@dataclass(frozen=True)
class Pad:
    trigger: Trigger
    command: str | None  # inpaint | extend
    action: str | None  # one of ACTIONS
    args: dict  # preset arguments merged with the pad's own, already checked against osc_schema
    line: int | None
    name: str = ""
    bars: tuple[str, int] | None = None  # (anchor, count): whole bars from the DAW's play cursor, not the selection

    def describe(self) -> str:
        return f"{self.name} ({self.trigger.describe()})" if self.name else self.trigger.describe()


@dataclass(frozen=True)
class Leds:
    on: int = 127  # while a job from the pad runs
    off: int = 0
    done: int = 127  # the flashes after a delivery
    failed: int = 127  # the (faster, longer) flashes after a failure


@dataclass(frozen=True)
class Mapping:
    pads: tuple[Pad, ...]
    leds: Leds = field(default_factory=Leds)
    path: Path | None = None
    presets: dict[str, dict] = field(default_factory=dict)  # [presets.NAME] -> arguments, in the file's order

    def find(self, kind: str, number: int, channel: int) -> Pad | None:
        """The pad for a message (channel 1..16): one mapped on that channel wins over one mapped on any."""
        anywhere = None
        for pad in self.pads:
            t = pad.trigger
            if t.kind == kind and t.number == number:
                if t.channel == channel:
                    return pad
                if t.channel is None and anywhere is None:
                    anywhere = pad
        return anywhere

    def why_voice_never_listens(self) -> str | None:
        """Why [voice] would never hear a word with this mapping (no pad holds the microphone open), or None."""
        if any(pad.action in ("talk", "listen") for pad in self.pads):
            return None
        return f"no talk or listen pad in {self.path}, so the daemon never listens"


def mapping_file(value: str | None, config_file: Path | None) -> Path:
    """The mapping file a ``[midi] mapping`` value names (its default when None): ``~`` and ``$VARS`` expanded, a
    relative path taken from the config file's folder."""
    mapping = Path(os.path.expandvars(value or defaults("midi")["mapping"])).expanduser()
    return mapping if mapping.is_absolute() else (config_file.parent if config_file else config_home()) / mapping


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; MappingError names the line of the first mistake."""
    try:
        text = mapping_text(path)
    except FileNotFoundError:
        raise MappingError(f"MIDI mapping file not found: {path} (copy docs/midi-mapping.example.toml there, or "
                           f"create it with 'daw-bridge midi learn')") from None
    return parse_mapping(text, path)


def mapping_text(path: Path) -> str:
    """A mapping file's text; FileNotFoundError when there is none, MappingError when it cannot be read."""
    path = Path(path)
    try:
        with open_regular(path, "utf-8-sig") as file:  # -sig: Windows Notepad starts UTF-8 with a BOM
            return file.read()
    except FileNotFoundError:
        raise
    except NotRegularFile as exc:  # a FIFO was read until a writer came: for good, SIGTERM unheard meanwhile
        raise MappingError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: cannot be read: {exc}") from None


def parse_mapping(text: str, path: Path | str = "mapping") -> Mapping:
    """Check a mapping's text; MappingError names the line of the first mistake."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    lines = _Lines(text)

    def fail(line: int | None, where: str, reason: str) -> MappingError:
        at = f", line {line}" if line else ""
        return MappingError(f"{path}{at}: {where}: {reason}")

    for key in table:
        if key not in ("pad", "presets", "leds"):
            raise fail(lines.key(None, 0, key) or lines.header(key, 0), key,
                       "unknown table or key (a mapping holds [[pad]] entries, [presets.NAME] and [leds])")
    presets = _presets(table.get("presets", {}), lines, fail)
    leds = _leds(table.get("leds", {}), lines, fail)
    entries = table.get("pad", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise fail(lines.key(None, 0, "pad"), "pad", "must be written as [[pad]] tables")
    pads: list[Pad] = []
    for index, entry in enumerate(entries):
        pad = _pad(entry, index, presets, lines, fail)
        for other in pads:
            if other.trigger == pad.trigger:
                raise fail(pad.line, f"pad {index + 1}", f"{pad.trigger.describe()} is already mapped by the pad "
                                                         f"at line {other.line}")
        pads.append(pad)
    return Mapping(tuple(pads), leds, Path(path), presets)


def _presets(table: object, lines: "_Lines", fail) -> dict[str, dict]:
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise fail(lines.header("presets", 0) or lines.key(None, 0, "presets"), "presets",
                   "must hold tables, e.g. [presets.guitar] with prompt = \"...\"")
    for name, args in table.items():
        for key in args:
            if key in _PAD_KEYS or key in _FRONTEND_ARGS:
                raise fail(lines.key(f"presets.{name}", 0, key), f"preset {name!r}",
                           f"{key!r} belongs in a [[pad]], not in a preset" if key in _PAD_KEYS
                           else f"{key!r} {_FRONTEND_ARGS[key]}")
    return table


def _leds(table: object, lines: "_Lines", fail) -> Leds:
    if not isinstance(table, dict):
        raise fail(lines.key(None, 0, "leds"), "leds", "must be a table: [leds] with on, off, done, failed")
    values = {}
    for key, value in table.items():
        line = lines.key("leds", 0, key)
        if key not in _LED_KEYS:
            raise fail(line, "[leds]", f"unknown key {key!r} (keys: {', '.join(_LED_KEYS)})")
        try:
            values[key] = _midi_number(key, value, 0, 127)
        except ValidationError as exc:
            raise fail(line, "[leds]", str(exc)) from None
    return Leds(**values)


def _pad(entry: dict, index: int, presets: dict, lines: "_Lines", fail) -> Pad:
    header = lines.header("[pad]", index)
    where = f"pad {index + 1}"

    def key_line(key: str) -> int | None:
        return lines.key("[pad]", index, key) or header

    kinds = [k for k in KINDS if k in entry]
    if len(kinds) != 1:
        raise fail(key_line(kinds[1]) if kinds else header, where,
                   "needs exactly one of note, cc, program" + (f" (it has {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    try:
        number = _midi_number(kind, entry[kind], 0, 127)
        channel = _midi_number("channel", entry["channel"], 1, 16) if "channel" in entry else None
    except ValidationError as exc:
        raise fail(key_line(exc.field), where, str(exc)) from None
    trigger = Trigger(kind, number, channel)
    where = f"pad {index + 1} ({trigger.describe()})"

    name = entry.get("name", "")
    if not isinstance(name, str):
        raise fail(key_line("name"), where, f"name: {show(name)} must be a string, got {type_name(name)}")
    command, action = entry.get("command"), entry.get("action")
    if (command is None) == (action is None):
        raise fail(header, where, "needs exactly one of command (inpaint, extend) or action "
                                  f"({', '.join(ACTIONS)})")
    args = {k: v for k, v in entry.items() if k not in _PAD_KEYS}
    if action is not None:
        if action not in ACTIONS:
            raise fail(key_line("action"), where, f"action: {show(action)} must be one of {', '.join(ACTIONS)}")
        for key in [*args, *(key for key in ("anchor", "bars") if key in entry)]:
            raise fail(key_line(key), where, f"{key!r}: an action pad takes no command arguments")
        if "preset" in entry:
            raise fail(key_line("preset"), where, "'preset': an action pad takes no command arguments")
        if action == "talk" and kind == "program":  # its take never ended: nothing was ever decoded
            raise fail(key_line("action"), where, "action: 'talk' records while the pad is held, and a program change "
                                                  "is never let go: map it to a note or a cc, or use 'listen' (3 s "
                                                  "from the press)")
        return Pad(trigger, None, action, {}, header, name)

    if command not in COMMANDS:
        raise fail(key_line("command"), where, f"command: {show(command)} must be one of {', '.join(COMMANDS)}")
    preset_name = entry.get("preset")
    preset: dict = {}
    if preset_name is not None:
        if preset_name not in presets:
            known = ", ".join(presets) or "none defined"
            raise fail(key_line("preset"), where, f"preset: {show(preset_name)} is not a [presets.NAME] table "
                                                  f"(presets: {known})")
        preset = presets[preset_name]
    for key, value in list(preset.items()) + list(args.items()):
        if key in _FRONTEND_ARGS:
            raise fail(key_line(key) if key in args else lines.key(f"presets.{preset_name}", 0, key), where,
                       f"{key!r} {_FRONTEND_ARGS[key]}")
    merged = {**preset, **args}
    try:
        osc_schema.parse_request({"command": command, **_stand_ins(command, merged), **merged})
    except ValidationError as exc:
        if exc.field in args or exc.field not in preset:
            raise fail(key_line(exc.field) if exc.field in args else header, where, str(exc)) from None
        raise fail(lines.key(f"presets.{preset_name}", 0, exc.field), f"{where}, preset {preset_name!r}",
                   str(exc)) from None
    bars = None
    if "anchor" in entry or "bars" in entry:  # checked as /bridge/bars would check them
        try:
            checked = osc_schema.parse_request({"command": "bars", "operation": command, "bars": 1,
                                                **{key: entry[key] for key in ("anchor", "bars") if key in entry}}).args
        except ValidationError as exc:
            raise fail(key_line(exc.field), where, str(exc)) from None
        bars = (checked["anchor"], checked["bars"])
        for key in _BARS_SET:
            if key in merged:  # the bars would override it at each press, as /bridge/bars refuses it
                raise fail(key_line(key) if key in args else lines.key(f"presets.{preset_name}", 0, key), where,
                           f"{key!r}: a pad with bars takes its range from them")
    return Pad(trigger, command, None, merged, header, name, bars)


def _stand_ins(command: str, given: dict) -> dict:
    """Values the session context supplies at press time, so the mapping's own arguments can be checked now.

    A pad without a prompt sends an empty one (the embedded engine needs none; MusicGPT refuses it at submit).
    """
    values: dict = {"source": "/selection.wav", "prompt": ""}
    if command == "inpaint":
        start = given.get("start", 0.0)
        values["start"] = start
        values["end"] = start + 1.0 if isinstance(start, (int, float)) and not isinstance(start, bool) else 1.0
    else:
        values["extend_after"] = 0.0
    return {k: v for k, v in values.items() if k not in given}


def _midi_number(key: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(key, value, f"must be an integer, got {type_name(value)}")
    if not low <= value <= high:
        raise ValidationError(key, value, f"must be in range {low}..{high}")
    return value


def pad_text(trigger: Trigger, command: str | None = None, action: str | None = None,
             args: dict | None = None, name: str = "") -> str:
    """A ``[[pad]]`` entry as TOML text, for ``daw-bridge midi learn`` to append to the mapping."""
    out = ["[[pad]]"]
    if name:
        out.append(f"name = {_toml_value(name)}")
    out.append(f"{trigger.kind} = {trigger.number}")
    if trigger.channel is not None:
        out.append(f"channel = {trigger.channel}")
    out.append(f"action = {_toml_value(action)}" if action else f"command = {_toml_value(command)}")
    for key, value in (args or {}).items():
        out.append(f"{key} = {_toml_value(value)}")
    return "\n".join(out) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON's string escapes are all valid in TOML


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]#]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


class _Lines:
    """Where tables and keys sit in the mapping's text (1-based lines), found by scanning it.

    Lines inside multi-line strings are skipped, so a prompt that happens to contain ``[[pad]]`` cannot confuse it.
    """

    def __init__(self, text: str):
        self._sections: list[tuple[str, int, list[tuple[str, int]]]] = [("", 0, [])]  # (name, header line, keys)
        inside: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if inside is not None:
                if line.count(inside) % 2:
                    inside = None
                continue
            header = _HEADER.match(line)
            if header and len(header.group(1)) == len(header.group(3)):
                name = _normalise(header.group(2))
                self._sections.append((f"[{name}]" if header.group(1) == "[[" else name, number, []))
                continue
            key = _KEY.match(line)
            if key:
                self._sections[-1][2].append((key.group(1).strip("\"'"), number))
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    inside = quote
                    break

    def _section(self, name: str | None, occurrence: int):
        found = [s for s in self._sections if s[0] == (name or "")]
        return found[occurrence] if occurrence < len(found) else None

    def header(self, name: str, occurrence: int) -> int | None:
        """The line of the occurrence-th header named ``name`` ("[pad]" for [[pad]], "presets.x" for [presets.x])."""
        section = self._section(name, occurrence)
        return section[1] or None if section else None

    def key(self, section: str | None, occurrence: int, key: str) -> int | None:
        """The line of ``key`` inside a section (None: the top of the file); None when it cannot be found."""
        found = self._section(section, occurrence)
        return next((line for name, line in found[2] if name == key), None) if found else None


def _normalise(name: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in name.split("."))
