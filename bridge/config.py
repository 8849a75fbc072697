"""The daemon's settings: a TOML file in the platform's config folder, overridden by command-line flags."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A setting is missing, of the wrong type, or out of range; the message names the file and the key."""


def config_home() -> Path:
    """Where the config file lives by default on this platform."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "daw-bridge"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "daw-bridge"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "daw-bridge"


def state_home() -> Path:
    """Where the journal, analysis cache and work files live by default."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "daw-bridge" / "state"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "daw-bridge"
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "daw-bridge"


@dataclass(frozen=True)
class Config:
    osc_host: str = "127.0.0.1"
    osc_port: int = 9010
    allowed_senders: tuple[str, ...] = ()  # required when osc_host is not a loopback address
    inbox: Path = Path("~/daw-bridge/inbox")
    drop_folder: Path | None = None  # None: "<folder of the source>/daw-bridge", unless the command names one
    project_roots: tuple[Path, ...] = (Path("~"),)
    state_dir: Path = field(default_factory=state_home)
    backend: str = "local"
    delivery: str = "patch"
    handle: float = 1.0  # seconds of untouched source on each side of a patch
    max_jobs: int = 4  # jobs generating at once; more wait their turn
    log_level: str = "info"
    local: dict = field(default_factory=dict)  # [local] table, read by the embedded engine
    musicgpt: dict = field(default_factory=dict)  # [musicgpt] table, read by the MusicGPT backend
    midi: dict = field(default_factory=dict)  # [midi] table, read by the MIDI frontend
    notify: dict = field(default_factory=dict)  # [notify] table: an OSC message to a DAW after each delivery
    ableton: dict = field(default_factory=dict)  # [ableton] table, read by the Ableton frontend
    retention: dict = field(default_factory=dict)  # [retention] table: how long finished jobs and files are kept
    source_file: Path | None = None  # the file this was read from, for messages

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    def with_overrides(self, **values) -> "Config":
        """A copy with the given settings replaced (None values are ignored), re-checked."""
        values = {k: v for k, v in values.items() if v is not None}
        return _checked(replace(self, **values), self.source_file)


_SCALARS = {"osc_host": str, "osc_port": int, "backend": str, "delivery": str, "handle": float, "max_jobs": int,
            "log_level": str}
_PATHS = {"inbox", "drop_folder", "state_dir"}
_TABLES = {"local", "musicgpt", "midi", "notify", "ableton", "retention"}


def load(path: Path | None = None) -> Config:
    """Read the config file (the default location when ``path`` is None; a missing default file means defaults)."""
    explicit = path is not None
    path = Path(path) if explicit else config_home() / "config.toml"
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {path}")
        return _checked(Config(), None)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return from_table(table, path)


def from_table(table: dict, source_file: Path | None = None) -> Config:
    """Build a Config from a parsed TOML table, naming the offending key on any error."""
    where = f"{source_file}: " if source_file else ""
    known = {f.name for f in fields(Config)} - {"source_file"}
    values: dict = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}unknown setting '{key}' (known: {', '.join(sorted(known))})")
        if key in _SCALARS:
            want = _SCALARS[key]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"{where}{key} must be {want.__name__}, got {value!r}")
        elif key in _PATHS:
            if not isinstance(value, str):
                raise ConfigError(f"{where}{key} must be a path string, got {value!r}")
            value = Path(value) if value else None
        elif key == "project_roots":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where}project_roots must be a list of folder paths")
            value = tuple(Path(v) for v in value)
        elif key == "allowed_senders":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}allowed_senders must be a list of IP addresses or networks")
            value = tuple(value)
        elif key in _TABLES and not isinstance(value, dict):
            raise ConfigError(f"{where}[{key}] must be a table")
        values[key] = value
    return _checked(Config(**values, source_file=source_file), source_file)


def _checked(config: Config, source_file: Path | None) -> Config:
    where = f"{source_file}: " if source_file else ""
    if not 0 < config.osc_port < 65536:
        raise ConfigError(f"{where}osc_port must be in range 1..65535, got {config.osc_port}")
    if config.backend not in ("local", "musicgpt"):
        raise ConfigError(f"{where}backend must be one of local, musicgpt, got {config.backend!r}")
    if config.delivery not in ("patch", "full"):
        raise ConfigError(f"{where}delivery must be one of patch, full, got {config.delivery!r}")
    if not 0 <= config.handle <= 10:
        raise ConfigError(f"{where}handle must be in range 0..10 seconds, got {config.handle}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}log_level must be one of debug, info, warning, error, got {config.log_level!r}")
    if config.max_jobs < 1:
        raise ConfigError(f"{where}max_jobs must be at least 1, got {config.max_jobs}")
    if config.notify and not isinstance(config.notify.get("address"), str):
        raise ConfigError(f"{where}[notify] needs address = \"/action/...\" (the DAW's OSC address to send)")
    if config.ableton:
        from bridge.frontends.ableton import AbletonSettings

        AbletonSettings.from_table(config.ableton, where)
    try:
        networks = tuple(ipaddress.ip_network(s, strict=False) for s in config.allowed_senders)
    except ValueError as exc:
        raise ConfigError(f"{where}allowed_senders: {exc}") from None
    if not _is_loopback(config.osc_host) and not networks:
        raise ConfigError(f"{where}osc_host {config.osc_host!r} listens beyond this machine: "
                          "list the addresses allowed to send in allowed_senders")
    expand = lambda p: Path(os.path.expandvars(p)).expanduser() if p is not None else None  # noqa: E731
    return replace(config, inbox=expand(config.inbox), drop_folder=expand(config.drop_folder),
                   state_dir=expand(config.state_dir),
                   project_roots=tuple(expand(p) for p in config.project_roots))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
