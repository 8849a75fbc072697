"""``daw-bridge plugin``: the audio plugin's instances, as the daemon sees them — list them, set an instance's prompt
(for a plugin without a GUI), list the presets its Preset parameter chooses from."""

from __future__ import annotations

import argparse

from bridge import plugin_prompts
from bridge.client import BridgeClient
from bridge.commands import port_number, print_answer
from bridge.config import Config
from osc_schema import ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "prompt", "presets"),
                        help="list: the live instances; prompt INSTANCE TEXT: the prompt its requests get with "
                             "Preset 0 (\"\" clears it); presets: what Preset 1, 2, ... choose")
    parser.add_argument("instance", nargs="?", help="prompt: the instance, as 'daw-bridge plugin list' names it")
    parser.add_argument("text", nargs="?", help="prompt: what its new material should sound like")
    parser.add_argument("--port", type=port_number, help="daemon OSC port (default: from the config)")


def run(config: Config, args) -> int:
    try:
        if args.action == "presets":
            return _presets(config)
        if args.action == "prompt" and (args.instance is None or args.text is None):
            print("daw-bridge plugin prompt: needs INSTANCE and TEXT, e.g. daw-bridge plugin prompt 1234-1 "
                  "\"soft guitar\" ('daw-bridge plugin list' names the instances)")
            return 2
        host, port = config.daemon_host, args.port or config.osc_port
        with BridgeClient(host, port) as client:
            if args.action == "prompt":
                client.send("plugin_prompt", capture=args.instance, prompt=args.text)
                reply = client.wait_for(lambda r: r.name in ("plugin_prompt_set", "error"), timeout=3)
                return print_answer("plugin", reply, host, port, lambda: f"{reply.args[0]}: prompt {reply.args[1]!r}",
                                    config.unheard_here)
            client.send("plugins")
            lines: list[str] = []
            reply = client.wait_for(lambda r: lines.append(_plugin_line(r.args)) if r.name == "plugin"
                                    else r.name in ("plugins_listed", "error"), timeout=3)
            return print_answer("plugin", reply, host, port, lambda: "\n".join(lines) or "no live plugin instances",
                                config.unheard_here)
    except ValidationError as exc:
        print(f"daw-bridge plugin {args.action}: {exc}")
        return 2


def _plugin_line(args: list) -> str:
    capture, label, pid, plugin_format, age, played = args
    return f"{capture}  {plugin_format or '?':<4} pid {pid}  {age:.0f} s ago  played {played or 'nothing yet'}" \
        + (f"  ({label})" if label else "")


def _presets(config: Config) -> int:
    known = plugin_prompts.presets(config)
    print("Preset 0: the instance's own prompt ('daw-bridge plugin prompt INSTANCE TEXT')")
    if not known:
        print(f"no named presets: add [presets.NAME] tables to {plugin_prompts.mapping_path(config)}")
    for number, (name, values) in enumerate(known, 1):
        print(f"Preset {number}: {name}  " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
    return 0
