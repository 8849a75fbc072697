"""The daemon's settings: a TOML file in the platform's config folder, overridden by command-line flags."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from bridge.files import NotRegularFile, open_regular
from bridge.settings_schema import ConfigError, check_values, defaults, toml_line_shown, validate

__all__ = ["Config", "ConfigError", "config_home", "from_table", "load", "state_home"]

_TOP = defaults("")  # every default is declared once, in bridge/settings_schema/spec.py
# The inbox's own folders (bridge/frontends/inbox.py): it moves request files through them, takes up processing/ as
# requests at its start and deletes what the others hold after [retention] files_days.
INBOX_FOLDERS = ("processing", "processed", "rejected", "status")


def inbox_owns(folder: Path, inbox: Path) -> str | None:
    """Why results must not go to ``folder`` (symlinks resolved) when the inbox owns it, else None."""
    part = _inbox_part(folder.resolve(), inbox.resolve())
    if part is None:
        return None
    if not part:
        return "is the inbox, which would take the results' manifests as request files"
    return (f"is the inbox's {part} folder, whose files the daemon moves and deletes as its own (the results would be "
            "lost)")


def _inbox_part(folder: Path, inbox: Path) -> str | None:
    """"" when ``folder`` is the inbox, the name of the inbox's own folder it is (INBOX_FOLDERS), else None; both
    already resolved."""
    if folder == inbox:
        return ""
    return folder.name if folder.parent == inbox and folder.name in INBOX_FOLDERS else None


def config_home() -> Path:
    """Where the config file lives by default on this platform."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "daw-bridge"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "daw-bridge"
    return _xdg("XDG_CONFIG_HOME", Path.home() / ".config") / "daw-bridge"


def _xdg(variable: str, fallback: Path) -> Path:
    """An XDG base folder: the variable's value when it is an absolute path, else ``fallback``. A relative one is
    ignored, as the XDG rules say: it named another folder for each folder a command ran in."""
    value = os.environ.get(variable) or ""
    return Path(value) if os.path.isabs(value) else fallback


def state_home() -> Path:
    """Where the journal, analysis cache and work files live by default."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "daw-bridge" / "state"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "daw-bridge"
    return _xdg("XDG_STATE_HOME", Path.home() / ".local" / "state") / "daw-bridge"


@dataclass(frozen=True)
class Config:
    """The validated settings (``bridge/settings_schema/spec.py`` says what each means); tables carry defaults."""

    osc_host: str = _TOP["osc_host"]
    osc_port: int = _TOP["osc_port"]
    allowed_senders: tuple[str, ...] = _TOP["allowed_senders"]
    inbox: Path = Path(_TOP["inbox"])
    drop_folder: Path | None = None  # None: "<folder of the source>/daw-bridge", unless the command names one
    project_roots: tuple[Path, ...] = tuple(Path(p) for p in _TOP["project_roots"])
    state_dir: Path = field(default_factory=state_home)
    captures_dir: Path | None = None  # None: where the audio plugin writes by default (bridge.captures.captures_root)
    backend: str = _TOP["backend"]
    delivery: str = _TOP["delivery"]
    handle: float = _TOP["handle"]
    max_jobs: int = _TOP["max_jobs"]
    max_queued: int = _TOP["max_queued"]
    log_level: str = _TOP["log_level"]
    local: dict = field(default_factory=lambda: defaults("local"))
    musicgpt: dict = field(default_factory=lambda: defaults("musicgpt"))
    midi: dict = field(default_factory=dict)  # optional tables: empty unless the file has them
    notify: dict = field(default_factory=dict)
    ableton: dict = field(default_factory=lambda: defaults("ableton"))
    audition: dict = field(default_factory=lambda: defaults("audition"))
    voice: dict = field(default_factory=lambda: defaults("voice"))
    retention: dict = field(default_factory=lambda: defaults("retention"))
    source_file: Path | None = None  # the file this was read from, for messages

    @property
    def daemon_host(self) -> str:
        """Where a command on this machine reaches the daemon: its osc_host, or loopback when it listens on all."""
        return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.osc_host, self.osc_host)

    @property
    def unheard_here(self) -> str:
        """Why a daemon with this config ignores the commands of send, jobs, plugin and doctor on this machine (an
        allowed_senders that lists none of the loopback addresses they send from), in words; "" when it hears them."""
        if not self.allowed_senders:
            return ""
        source = ipaddress.ip_address("::1" if ":" in self.daemon_host else "127.0.0.1")
        if any(source in ipaddress.ip_network(sender, strict=False) for sender in self.allowed_senders):
            return ""
        return (f"allowed_senders does not list {source}, so a daemon there ignores the commands of this machine: "
                f"add \"{source}\" to it")

    def in_project(self, path: Path) -> bool:
        """Whether ``path`` (already resolved) lies in a project root (resolved too, so symlinks cannot escape)."""
        return any(path.is_relative_to(root.resolve()) for root in self.project_roots)

    def state_in_inbox(self) -> str | None:
        """Why the daemon cannot run when the state folder is the inbox or one of its own folders, else None: the
        inbox takes the daemon's own .json files there (context.json, plugin-prompts.json) as request files and
        moves them to rejected/, and deletes what its answer folders hold."""
        try:
            state, inbox = self.state_dir.resolve(), self.inbox.resolve()
        except (OSError, RuntimeError):  # unresolvable: the daemon's start names the folder
            return None
        if (part := _inbox_part(state, inbox)) is None:
            return None
        where = f"the inbox's {part} folder" if part else f"the inbox {self.inbox}"
        return (f"state_dir {self.state_dir} is {where}, which would take the daemon's own files there "
                "(context.json) as request files: give each a folder of its own")

    def refused_by_roots(self) -> list[str]:
        """What the project roots refuse for every job, in words: an empty list of roots, or a configured folder
        (drop_folder, captures_dir) outside them; a drop_folder that is the inbox or one of its own folders."""
        if not self.project_roots:
            return [("project_roots is empty, so every job is refused: name the folders your projects live in, "
                     "e.g. project_roots = [\"~\"]")]
        roots = ", ".join(str(root) for root in self.project_roots)
        refused = []
        for name in ("drop_folder", "captures_dir"):
            folder = getattr(self, name)
            try:
                outside = folder is not None and not self.in_project(folder.resolve())
            except (OSError, RuntimeError):  # unresolvable: each job that uses it says why
                continue
            if outside:
                refused.append(f"{name} {folder} lies outside project_roots ({roots}), so every job that uses it "
                               f"is refused")
        try:
            owned = self.drop_folder is not None and inbox_owns(self.drop_folder, self.inbox)
        except (OSError, RuntimeError):
            owned = None
        if owned:
            refused.append(f"drop_folder {self.drop_folder} {owned}, so every job that uses it is refused")
        return refused

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite"

    @property
    def one_shot_journal_path(self) -> Path:
        """The jobs of ``daw-bridge inpaint|extend`` run without a daemon: kept apart, so a daemon never takes them
        up."""
        return self.state_dir / "one-shot-journal.sqlite"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    def with_overrides(self, **values) -> "Config":
        """A copy with the given settings replaced (None values are ignored), checked like the file's."""
        values = check_values({k: v for k, v in values.items() if v is not None}, "command line")
        return _expanded(replace(self, **_typed(values)))


def load(path: Path | None = None) -> Config:
    """Read the config file (the default location when ``path`` is None; a missing default file means defaults)."""
    explicit = path is not None
    path = Path(path) if explicit else config_home() / "config.toml"
    if not path.exists():
        if explicit:
            raise ConfigError("config file not found", file=path)
        return from_table({})
    try:
        with open_regular(path, "utf-8-sig") as file:  # -sig: Windows Notepad starts UTF-8 with a BOM
            text = file.read()
    except NotRegularFile:  # /dev/zero would be read forever, a pipe with no writer waited for one
        raise ConfigError("is not a file (a device or a pipe)", file=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, text, path) from None
    return from_table(table, path, text=text)


def from_table(table: dict, source_file: Path | None = None, *, text: str | None = None) -> Config:
    """Build a Config from a parsed TOML table (``text``: the file's text, so errors can name the line)."""
    values = validate(table, text=text, source_file=source_file)
    config = _expanded(Config(**_typed(values), source_file=source_file))
    return _beside(config, Path(source_file).absolute().parent) if source_file is not None else config


def _beside(config: Config, folder: Path) -> Config:
    """The file's relative folders taken from the file's own folder, as [midi] mapping is: from the folder a command
    runs in, the service (run from /) and a 'daw-bridge jobs' typed elsewhere each used other folders."""
    place = lambda p: folder / p if p is not None and not p.is_absolute() else p  # noqa: E731
    return replace(config, inbox=place(config.inbox), drop_folder=place(config.drop_folder),
                   state_dir=place(config.state_dir), captures_dir=place(config.captures_dir),
                   project_roots=tuple(place(p) for p in config.project_roots))


def _typed(values: dict) -> dict:
    """Validated top-level values in the types Config holds: paths as Path, ``""`` and absent as None."""
    out = dict(values)
    for name in ("inbox", "drop_folder", "state_dir", "captures_dir"):
        if name in out:
            out[name] = Path(out[name]) if out[name] else None
    if out.get("state_dir", True) is None:
        out["state_dir"] = state_home()
    if "project_roots" in out:
        out["project_roots"] = tuple(Path(p) for p in out["project_roots"])
    return out


def _expanded(config: Config) -> Config:
    expand = lambda p: Path(os.path.expandvars(p)).expanduser() if p is not None else None  # noqa: E731
    return replace(config, inbox=expand(config.inbox), drop_folder=expand(config.drop_folder),
                   state_dir=expand(config.state_dir), captures_dir=expand(config.captures_dir),
                   project_roots=tuple(expand(p) for p in config.project_roots))


def _syntax_error(exc: Exception, text: str, path: Path) -> ConfigError:
    """tomllib's complaint as one line with the file's line number and what that line says."""
    message = str(exc)
    found = re.search(r"\(at line (\d+), column \d+\)|\(at end of document\)", message)
    lines = text.splitlines()
    line = int(found.group(1)) if found and found.group(1) else max(len(lines), 1)
    reason = message[:found.start()].strip() if found else message
    said = toml_line_shown(lines, line)  # 'api_key = sk-…' unquoted, 'api_key: "sk-…"': the key, not its value
    return ConfigError(f"not valid TOML: {reason}" + (f" in: {said}" if said else ""), file=path, line=line)
