"""``daw-bridge midi``: list MIDI ports, learn a pad, and describe the session context pads act on."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bridge.commands import path_argument, seconds
from bridge.config import Config, ConfigError
from bridge.exceptions import BridgeError
from bridge.frontends.midi_mapping import (
    ACTIONS,
    COMMANDS,
    MappingError,
    Trigger,
    mapping_text,
    pad_text,
    parse_mapping,
)
from osc_schema import ValidationError

_RANGE_FROM = {"job": "the last command", "osc": "/bridge/context", "reaper": "REAPER's loop points",
               "ableton": "Ableton's loop brace", "restored": "the previous run"}
_NEW_MAPPING = "# daw-bridge MIDI mapping: see docs/midi-mapping.example.toml for every key.\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``daw-bridge midi`` (the parser itself lives in bridge/cli.py)."""
    parser.add_argument("action", choices=("ports", "learn"),
                        help="ports: list MIDI ports; learn: press a pad and its mapping entry is written")
    parser.add_argument("--port", help="the controller's port: name, glob or part of it (default: [midi] port)")
    parser.add_argument("--api", help="rtmidi API, e.g. UNIX_JACK or LINUX_ALSA (default: [midi] api)")
    parser.add_argument("--mapping", type=path_argument, help="learn: mapping file to add to (default: [midi] mapping)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--command", choices=COMMANDS, help="learn: the pad runs this command (default inpaint)")
    what.add_argument("--action", dest="pad_action", choices=ACTIONS, help="learn: the pad runs this action")
    parser.add_argument("--preset", help="learn: use this [presets.NAME] of the mapping")
    parser.add_argument("--set", dest="values", action="append", default=[], metavar="KEY=VALUE",
                        help="learn: a command argument for the pad, e.g. prompt='soft guitar' (repeatable)")
    parser.add_argument("--name", default="", help="learn: a name for the pad, shown in logs")
    parser.add_argument("--any-channel", action="store_true", help="learn: answer on every channel")
    parser.add_argument("--timeout", type=seconds, default=30.0, help="learn: seconds to wait for a press")
    parser.add_argument("--dry-run", action="store_true", help="learn: show the entry, write nothing")


def midi(config: Config, args) -> int:
    """Run ``daw-bridge midi ports|learn``; the exit status for the shell."""
    try:
        return ports(config, args) if args.action == "ports" else learn(config, args)
    except (MappingError, ValidationError, ConfigError) as exc:
        print(f"daw-bridge midi {args.action}: {exc}")
        return 2
    except OSError as exc:  # the MIDI system is not there (no JACK server, no ALSA sequencer)
        print(f"daw-bridge midi {args.action}: MIDI is not available: {exc}")
        return 1
    except BridgeError as exc:  # python-rtmidi is an extra
        print(f"daw-bridge midi {args.action}: {exc}")
        return 1


def ports(config: Config, args) -> int:
    """Print the ports a [midi] port / output_port setting can name."""
    from bridge.frontends.midi import PortProbe, midi_backend

    backend = midi_backend(args.api or config.midi.get("api"))
    probe = PortProbe(backend)
    try:
        inputs, outputs = probe.names()
    finally:
        probe.reset()
    print("inputs (pads: [midi] port):")
    for name in inputs or ["(none)"]:
        print(f"  {name}")
    print("outputs (LEDs: [midi] output_port):")
    for name in outputs or ["(none)"]:
        print(f"  {name}")
    return 0


def learn(config: Config, args) -> int:
    """Wait for the next press on the controller, show it, and append its ``[[pad]]`` entry to the mapping."""
    from bridge.commands.send import parse_values
    from bridge.frontends.midi import MidiSettings, PortProbe, match_port, midi_backend, press_of

    table = {**config.midi, **{k: v for k, v in (("port", args.port), ("api", args.api)) if v}}
    if args.mapping:
        table["mapping"] = str(args.mapping)
    if not table.get("port"):  # a [midi] table read from the file has every key, port None when unset
        raise ConfigError("name the controller's port with --port or [midi] port (see 'daw-bridge midi ports')")
    settings = MidiSettings.from_table(table, config.source_file)
    command = None if args.pad_action else (args.command or "inpaint")
    values = parse_values(command, args.values) if command else {}
    if args.pad_action and (args.values or args.preset):
        raise ValidationError("action", args.pad_action, "takes no command arguments (--set, --preset)")
    if args.preset:
        values = {"preset": args.preset, **values}

    path = settings.mapping
    before = _mapping_text(path)
    parse_mapping(before, path)  # a mapping the daemon would refuse is named before the producer presses anything

    backend = midi_backend(settings.api)
    probe = PortProbe(backend)
    try:
        inputs = probe.names()[0]
    finally:
        probe.reset()
    name = match_port(settings.port, inputs)
    if name is None:
        print(f"no MIDI input like {settings.port!r}; inputs: {', '.join(inputs) or 'none'}")
        return 1
    print(f"listening on {name}: press the pad (within {args.timeout:g} s)", flush=True)
    press = _next_press(backend, name, args.timeout, press_of)
    if press is None:
        print(f"nothing pressed on {name} within {args.timeout:g} s")
        return 1
    kind, number, channel = press
    trigger = Trigger(kind, number, None if args.any_channel else channel)
    print(f"heard {kind} {number} on channel {channel}")

    entry = pad_text(trigger, command, args.pad_action, values, args.name)
    text = before + ("" if before.endswith("\n\n") else "\n" if before.endswith("\n") else "\n\n") + entry
    parse_mapping(text, path)  # refuses a duplicate or a bad argument before anything is written
    if args.dry_run:
        print(entry, end="")
        return 0
    from bridge.audio.wavio import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    except OSError as exc:  # not "MIDI is not available": the press was heard, the file is what failed
        print(entry, end="")
        raise MappingError(f"{path}: cannot be written ({exc.strerror or exc}): add the entry above by hand") \
            from None
    print(f"added to {path}:\n{entry}", end="")
    return 0


def _mapping_text(path: Path) -> str:
    """The mapping's text to add to (a new file's header when there is none yet)."""
    try:
        return mapping_text(path)
    except FileNotFoundError:
        return _NEW_MAPPING


def _next_press(backend, name: str, timeout: float, press_of) -> tuple[str, int, int] | None:
    cc_values: dict = {}
    deadline = time.monotonic() + timeout
    with backend.open_input(name) as port:
        while time.monotonic() < deadline:
            for message in port.iter_pending():
                press = press_of(message, cc_values)
                if press is not None:
                    return press
            time.sleep(0.005)
    return None


def context_lines(config: Config) -> list[str]:
    """What ``daw-bridge jobs`` prints about the session context pads act on ([] when there is none)."""
    from bridge.frontends.daw_feedback import read_context

    data = read_context(config.state_dir)
    if not data or not data["context"]:
        return []
    context = data["context"]
    source = context.get("source")
    start, end = context.get("start"), context.get("end")
    where = (f"{start:.2f}-{end:.2f} s" if isinstance(start, (int, float)) and isinstance(end, (int, float))
             else f"after {end:.2f} s" if isinstance(end, (int, float)) else "no range yet")
    what = (Path(source).name if source else f"plugin capture {context['capture']}" if context.get("capture")
            else "(no source yet)")
    first = f"pads act on: {what} {where}"
    if isinstance(context.get("position"), (int, float)) and context["position"]:
        first += f", item at {context['position']:.2f} s on the timeline"
    updated = data.get("updated")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(updated)) if isinstance(updated, (int, float)) else "?"
    origin = data.get("range_from")
    told = data.get("bars") if origin == "bars" else _RANGE_FROM.get(origin, "unknown")
    second = f"  range from {told}, updated {when}"
    return [first, second + (f"; source {source}" if source else "")]
