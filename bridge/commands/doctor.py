"""``daw-bridge doctor``: is everything in place for the daemon to work?"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from bridge.client import BridgeClient, udp_address
from bridge.config import Config, config_home


def doctor(config: Config) -> int:
    checks: list[tuple[bool, str]] = []
    where = config.source_file or f"{config_home() / 'config.toml'} (not present: defaults)"
    checks.append((True, f"config: {where}"))
    osc, daemon_running = _osc(config)
    checks.append(osc)
    checks.extend(_ableton(config, daemon_running))
    for label, folder in (("inbox", config.inbox), ("state folder", config.state_dir),
                          ("drop folder", config.drop_folder)):
        if folder is not None:
            checks.append(_writable(label, folder))
    if config.drop_folder is None:
        checks.append((True, "drop folder: 'daw-bridge' beside each source (or as each command names it)"))
    for root in config.project_roots:
        checks.append((root.is_dir(), f"project root {root}" + ("" if root.is_dir() else ": not a folder")))
    checks.extend((False, refusal) for refusal in config.refused_by_roots())
    if (clash := config.state_in_inbox()) is not None:
        checks.append((False, clash))
    checks.extend(_backends(config))
    checks.extend(_notify(config))
    checks.extend(_pads_and_voice(config))
    for ok, text in checks:
        print(f"{'ok ' if ok else 'BAD'}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


def _osc(config: Config) -> tuple[tuple[bool, str], bool]:
    """The OSC port's check, and whether a daemon answers there."""
    where = f"OSC {config.osc_host}:{config.osc_port}"
    try:
        with BridgeClient(config.osc_host, config.osc_port) as client:
            if client.ping(timeout=0.5):
                return (True, f"{where}: a daemon is answering"), True
    except OSError as exc:  # e.g. an osc_host no name service knows: the daemon could not listen there either
        return (False, f"{where}: cannot be reached ({exc.strerror or exc})"), False
    family, address = udp_address(config.osc_host, config.osc_port)  # resolved above, by the client
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.bind(address)
        return (True, f"{where}: free (no daemon running)"), False
    except OSError as exc:
        if config.unheard_here:  # the daemon itself, most likely, not answering this machine
            return (False, f"{where}: taken, and nothing answers: {config.unheard_here}"), False
        return (False, f"{where}: taken by another program ({exc.strerror})"), False
    finally:
        probe.close()


def _notify(config: Config) -> list[tuple[bool, str]]:
    """[notify]'s host: one no name service knows would tell the DAW nothing, and the daemon only says so at start."""
    if not config.notify:
        return []
    from bridge.frontends.notify import resolve

    host, port = config.notify["host"], config.notify["port"]  # filled in by the config check
    try:
        resolve(host, port)
    except OSError as exc:
        return [(False, f"notify {host}:{port}: cannot be resolved ({exc.strerror or exc}), so the DAW is never told "
                        f"of results")]
    return [(True, f"notify {host}:{port} {config.notify['address']} after each delivery")]


def _ableton(config: Config, daemon_running: bool) -> list[tuple[bool, str]]:
    """[ableton]'s reply port (taken by another program, the daemon would not start) and whether Live answers."""
    if not config.ableton.get("enabled"):
        return []
    from bridge.frontends.ableton import AbletonSettings
    from bridge.frontends.osc_wire import MalformedPacket, decode, encode

    settings = AbletonSettings.from_table(config.ableton)
    where = f"Ableton: AbletonOSC at {settings.host}:{settings.port}, answering on port {settings.reply_port}"
    if daemon_running:
        return [(True, f"{where}: the running daemon listens there")]
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            probe.bind((settings.host, settings.reply_port))
        except OSError as exc:
            return [(False, f"{where}: taken by another program ({exc.strerror}); the daemon would not start")]
        probe.sendto(encode("/live/test", []), (settings.host, settings.port))
        deadline = time.monotonic() + settings.timeout
        while True:  # AbletonOSC answers /live/test with "ok"; anything else it sends meanwhile is passed over
            probe.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                if any(address == "/live/test" for address, _ in decode(probe.recv(65536))):
                    return [(True, f"{where}: Live answers")]
            except MalformedPacket:
                continue
    except OSError:  # no answer within [ableton] timeout (or port unreachable): Live is not there now
        return [(True, f"{where}: free; Live does not answer now (not running, or AbletonOSC not chosen as a "
                       "Control Surface)")]
    finally:
        probe.close()


def _writable(label: str, folder: Path) -> tuple[bool, str]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return False, f"{label} {folder}: cannot create ({exc.strerror})"
    ok = os.access(folder, os.W_OK)
    return ok, f"{label} {folder}" + ("" if ok else ": not writable")


def _backends(config: Config) -> list[tuple[bool, str]]:
    from bridge.daemon import make_backends

    try:
        backends = make_backends(config)
    except Exception as exc:  # report, do not crash: this is the command people run when things are wrong
        return [(False, f"backends: {exc}")]
    results = []
    for name, backend in backends.items():
        report = asyncio.run(backend.describe())
        detail = ", ".join(f"{k}={v}" for k, v in report.items() if k != "name")
        results.append((True, f"backend {name}: {detail or 'ready'}"))
        asyncio.run(backend.close())
    if "musicgpt" not in backends:
        results.append((True, "backend musicgpt: not configured (set MUSICGPT_API_KEY to use it)"))
    return results


def _pads_and_voice(config: Config) -> list[tuple[bool, str]]:
    """What the daemon checks when it starts [midi] and [voice]: the settings, the mapping, the modules they need."""
    import importlib.util

    from bridge.exceptions import BridgeError
    from bridge.settings_schema import ConfigError

    results: list[tuple[bool, str]] = []
    mapping = None
    if config.midi.get("port"):
        from bridge.frontends.midi import MidiSettings, midi_backend
        from bridge.frontends.midi_mapping import load_mapping

        try:
            settings = MidiSettings.from_table(config.midi, config.source_file)
            mapping = load_mapping(settings.mapping)
            midi_backend(settings.api)
            results.append((True, f"MIDI: {len(mapping.pads)} pad(s) mapped from {settings.mapping}, port like "
                                  f"{settings.port!r}"))
        except (BridgeError, ConfigError) as exc:
            results.append((False, f"MIDI: {exc}"))
    if config.voice.get("enabled"):
        if not config.midi.get("port"):
            results.append((False, "voice: [voice] enabled needs [midi] with a talk or listen pad"))
        elif mapping is not None and (problem := mapping.why_voice_never_listens()) is not None:
            results.append((False, f"voice: {problem}"))
        elif importlib.util.find_spec("pocketsphinx") is None:
            results.append((False, "voice: needs pocketsphinx: pip install 'daw-bridge[voice]'"))
        elif mapping is not None:
            results.append((True, "voice: pocketsphinx, talk or listen pad mapped"))
    return results
