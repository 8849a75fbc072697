"""What an audio plugin instance's requests ask for: its own prompt, or one of the daemon's named presets.

A plugin without a GUI cannot type a prompt, so the daemon keeps one per instance (``daw-bridge plugin prompt
INSTANCE "text"`` or ``/bridge/plugin_prompt``), in ``<state_dir>/plugin-prompts.json`` so it outlives a restart.
The plugin's Preset parameter chooses: 0 means that text, n the n-th ``[presets.NAME]`` table of the MIDI mapping
file (the daemon's named presets, numbered in the order the file declares them). The plugin records the Preset
value with each request in its capture's index, which the daemon reads when the request arrives. What the preset
or the text gives fills only what the request left at its default, and the result is validated like any command.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import osc_schema
from bridge import captures
from bridge.audio.wavio import write_text_atomic
from bridge.config import Config
from bridge.frontends.midi_mapping import MappingError, mapping_file, mapping_text, parse_mapping
from osc_schema import Command, ValidationError

log = logging.getLogger(__name__)

PROMPTS = "plugin-prompts.json"
_SETTING = threading.Lock()  # the daemon sets prompts in threads: one read-and-rewrite of the file at a time


def _prompts_file(config: Config) -> Path:
    return config.state_dir / PROMPTS


def _stored(config: Config) -> dict[str, str]:
    try:
        data = json.loads(_prompts_file(config).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # a damaged file loses the texts, never the daemon; the next set rewrites it
        log.warning("the plugin instances' prompts cannot be read (%s): none is used until one is set again", exc)
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) \
        else {}


def set_prompt(config: Config, capture: str, prompt: str) -> None:
    """Keep ``prompt`` for the instance (an existing capture; "" clears it), written atomically."""
    captures.capture_folder(config, capture)
    with _SETTING:
        prompts = _stored(config)
        prompts[capture] = prompt  # "" kept too: a cleared prompt is not taken from a name the instance had before
        path = _prompts_file(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(prompts, indent=2, ensure_ascii=False))


def mapping_path(config: Config) -> Path:
    """The MIDI mapping file, resolved as the [midi] table resolves it (beside the config file when relative)."""
    return mapping_file(config.midi.get("mapping"), config.source_file)


def presets(config: Config) -> list[tuple[str, dict]]:
    """The daemon's named presets, (name, arguments), numbered from 1 in the mapping file's order; none without it."""
    path = mapping_path(config)
    try:
        text = mapping_text(path)  # a pipe is refused, not read until a writer comes
    except FileNotFoundError:
        return []
    except MappingError as exc:
        raise ValidationError("preset", None, f"the presets cannot be read: {exc}", shown="") from None
    try:
        return list(parse_mapping(text, path).presets.items())  # the file's own checks, with its line numbers
    except MappingError as exc:
        raise ValidationError("preset", None, f"the presets cannot be used: {exc}", shown="") from None


def _request_preset(index: dict, request_id: str) -> int:
    """The Preset parameter the instance recorded with this request in its capture index (0 when none)."""
    requests = index.get("requests")
    for request in requests if isinstance(requests, list) else []:
        if isinstance(request, dict) and request_id and request.get("request_id") == request_id:
            preset = request.get("preset")
            return preset if isinstance(preset, int) and not isinstance(preset, bool) else 0
    return 0


def _earlier_prompt(config: Config, index: dict) -> str:
    """The prompt kept under a name the instance had before in its project (the capture index's "was", newest
    first): a plugin gets a new name each time its project is reopened, and its prompt was lost with the old one."""
    stored = _stored(config)
    earlier = index.get("was")
    names = [name for name in earlier if isinstance(name, str)] if isinstance(earlier, list) else []
    return next((stored[name] for name in names if stored.get(name)), "")


def with_instance_prompt(config: Config, command: Command, index: dict) -> Command:
    """An inpaint/extend of a capture, filled from the preset its request names in the capture's ``index``, else
    from the instance's text."""
    capture = command.args["capture"]
    preset = _request_preset(index, command.args.get("request_id") or "")
    if preset:
        known = presets(config)
        if not 0 < preset <= len(known):  # a number the plugin never sends (negative, too big)
            names = ", ".join(f"{n} {name}" for n, (name, _) in enumerate(known, 1))
            raise ValidationError("preset", preset, f"is not one of the daemon's presets ({names})" if known else
                                  f"names a preset, but the daemon has none ([presets.NAME] in {mapping_path(config)})")
        fill = known[preset - 1][1]
    else:
        stored = _stored(config)
        fill = {"prompt": stored[capture] if capture in stored else _earlier_prompt(config, index)}
    spec = osc_schema.COMMANDS[command.name]
    raw = {k: v for k, v in command.args.items() if v is not None}
    for key, value in fill.items():
        arg = spec.argument(key)
        if arg is not None and raw.get(key, arg.default) == arg.default:
            raw[key] = value
    return osc_schema.parse_request({"command": command.name, **raw})
