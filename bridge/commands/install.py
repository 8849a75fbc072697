"""``daw-bridge install TARGET`` / ``daw-bridge uninstall TARGET``: put the DAW scripts and the user service in place.

Each target computes what it would change (files to write or remove, lines of REAPER's ``reaper-kb.ini``, service
manager commands), then does it, printing one line per change. Running it twice changes nothing the second time;
``--dry-run`` prints the same lines as "would ..." and changes nothing. Targets are data (``TARGETS``): a new one
(the plugin bundles) is one more ``Target`` entry.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bridge import reapack_index
from bridge.commands import path_argument

ROOT = Path(__file__).resolve().parents[2]  # the source tree holding daw_scripts/ and service/
REAPER_PACKAGE = ROOT / reapack_index.PACKAGE_DIR
REAPER_FOLDER = "daw-bridge"  # under REAPER's Scripts folder
ARDOUR_SCRIPTS = ROOT / "daw_scripts" / "ardour"
ARDOUR_VERSIONS = (7, 8)
SERVICE_DIR = ROOT / "service"
SYSTEMD_UNIT = "daw-bridge.service"
LAUNCHD_LABEL = "com.daw-bridge.daemon"
WRITTEN_BY = "Written by `daw-bridge install service`"  # in every unit or agent install writes, and in no other
REAPER_OSC_PORT = 8000  # the port REAPER's README tells the producer to give REAPER's OSC control surface
IMPORT_NOW = "DAW Bridge - Import results now.lua"


class InstallError(Exception):
    """Something the user must fix first (no REAPER folder, files missing from this installation)."""


# ---- what a target changes -----------------------------------------------------------------------------------------

@dataclass
class Change:
    """One change: write ``content`` to ``path`` (bytes), remove ``path`` (content None), or run ``command``."""

    verb: str  # "write", "remove", "rmdir", "run"
    path: Path | None = None
    content: bytes | None = None
    command: list[str] | None = None
    note: str = ""


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # printed after the changes (the [notify] lines, status)

    def write(self, path: Path, content: bytes, note: str = "") -> None:
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current == content:
            self.unchanged.append(path)
        else:
            self.changes.append(Change("write", path, content, note=note))

    def remove(self, path: Path, note: str = "") -> None:
        if path.is_file() or path.is_symlink():
            self.changes.append(Change("remove", path, note=note))

    def rmdir_if_empty(self, path: Path, removing: set[Path]) -> None:
        """Remove ``path`` when nothing but files this plan removes is in it."""
        if path.is_dir() and all(child in removing for child in path.iterdir()):
            self.changes.append(Change("rmdir", path))

    def run(self, command: list[str], note: str = "") -> None:
        self.changes.append(Change("run", command=command, note=note))


def _atomic_write(path: Path, content: bytes) -> None:
    if path.is_symlink():  # a dotfiles link (reaper-kb.ini kept in a repository): write its file, keep the link
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def carry_out(plan: Plan, dry_run: bool, out=print) -> int:
    """Do (or with ``dry_run`` only describe) the plan; returns how many files were written or removed.

    A file change is printed once it is done, so what was printed is what was done when one fails (InstallError,
    naming the path and the reason; nothing after it is attempted)."""
    would = "would " if dry_run else ""
    files = 0
    failed = False
    for change in plan.changes:
        note = f" ({change.note})" if change.note else ""
        if change.verb == "run":
            out(f"{would}run: {shlex.join(change.command)}{note}")
            if not dry_run:
                failed |= not _run(change.command, out)
            continue
        if not dry_run:
            try:
                if change.verb == "write":
                    _atomic_write(change.path, change.content)
                    files += 1
                elif change.verb == "remove":
                    change.path.unlink()
                    files += 1
                elif change.verb == "rmdir":
                    change.path.rmdir()
            except OSError as exc:
                raise InstallError(f"cannot {change.verb} {change.path}: {exc.strerror or exc}; stopped there, the "
                                   f"changes printed above were made") from exc
        out(f"{would}{change.verb} {change.path}{note}")
    for path in plan.unchanged:
        out(f"unchanged {path}")
    for message in plan.messages:
        out(message)
    return -1 if failed else files


def _run(command: list[str], out) -> bool:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        out(f"  failed: {exc}")
        return False
    for line in (done.stdout + done.stderr).splitlines():
        out(f"  {line}")
    if done.returncode != 0:
        out(f"  exit status {done.returncode}")
    return done.returncode == 0


# ---- REAPER ---------------------------------------------------------------------------------------------------------

def reaper_resource_path() -> Path:
    """REAPER's resource folder on this platform (Options > Show REAPER resource path)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "REAPER"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "REAPER"
    return Path.home() / ".config" / "REAPER"


def reaper_files() -> list[Path]:
    files = sorted(REAPER_PACKAGE.glob("*.lua"))
    if not files:
        raise InstallError(f"the REAPER scripts are not in this installation ({REAPER_PACKAGE}); install daw-bridge "
                           "from its source folder (python3 -m pip install -e .)")
    return files


def reaper_actions() -> list[str]:
    """The scripts that are actions (the package script and its ``[main]`` files), in the package's order."""
    return [name for package in reapack_index.packages(REAPER_PACKAGE) for name in package.actions]


def reaper_command_id(script: str) -> str:
    """The stable command id registered for ``script`` (without the leading "_"): "RS" + SHA-1 of its path under
    Scripts, so the same script always gets the same id, on every machine and every install."""
    return "RS" + hashlib.sha1(f"{REAPER_FOLDER}/{script}".encode("utf-8")).hexdigest()


def reaper_kb_line(script: str) -> str:
    """The reaper-kb.ini line registering ``script`` in the Main section: ``SCR flags section id "desc" "path"``."""
    return f'SCR 4 0 {reaper_command_id(script)} "Custom: {script}" "{REAPER_FOLDER}/{script}"'


def _is_ours(line: bytes, ids: set[bytes]) -> bool:
    fields = line.split(None, 4)
    return len(fields) >= 4 and fields[0] == b"SCR" and fields[3] in ids


def kb_without_ours(text: bytes, ids: set[bytes]) -> bytes:
    """reaper-kb.ini with our SCR lines (and only those) taken out, every other byte as it was."""
    return b"".join(line for line in text.splitlines(keepends=True) if not _is_ours(line, ids))


def kb_with_ours(text: bytes, lines: list[str]) -> bytes:
    """reaper-kb.ini with our SCR lines, each a whole line in the file's own line ending, after the other lines.

    Our lines are always complete lines, so taking them out again (uninstall) gives back the bytes there were."""
    ids = {line.split()[3].encode() for line in lines}
    rest = kb_without_ours(text, ids)
    newline = b"\r\n" if b"\r\n" in text or (not text and sys.platform == "win32") else b"\n"
    ours = b"".join(line.encode("utf-8") + newline for line in lines)
    body = rest.splitlines(keepends=True)
    if body and not body[-1].endswith((b"\n", b"\r")):  # an unterminated last line stays last, untouched
        return b"".join(body[:-1]) + ours + body[-1]
    return rest + ours


def notify_config(port: int = REAPER_OSC_PORT) -> str:
    """The [notify] table that runs "Import results now" through REAPER's stock OSC pattern (`s/action/str`)."""
    return (f'[notify]\nhost = "127.0.0.1"\nport = {port}\naddress = "/action/str"\n'
            f'args = ["_{reaper_command_id(IMPORT_NOW)}"]')


def plan_reaper(args, installing: bool) -> Plan:
    plan = Plan()
    resource = Path(args.resource_path).expanduser() if args.resource_path else reaper_resource_path()
    if not resource.is_dir():
        raise InstallError(f"no REAPER resource folder at {resource} (start REAPER once, or give --resource-path)")
    folder = resource / "Scripts" / REAPER_FOLDER
    kb = resource / "reaper-kb.ini"
    lines = [reaper_kb_line(name) for name in reaper_actions()]
    try:
        kb_text = kb.read_bytes()
    except FileNotFoundError:
        kb_text = None
    if installing:
        for source in reaper_files():
            plan.write(folder / source.name, source.read_bytes())
        plan.write(kb, kb_with_ours(kb_text or b"", lines), note=f"{len(lines)} actions")
        plan.messages += [
            "REAPER reads reaper-kb.ini when it starts and writes it when it quits: quit REAPER before installing,",
            "or run this again after it quits. The actions are 'Custom: DAW Bridge - ...' in the Actions list.",
            "",
            "To import results the moment they arrive, give REAPER an OSC control surface (Options > Preferences >",
            f"Control/OSC/web > Add > OSC, local listen port {REAPER_OSC_PORT}, pattern config Default) and add to the",
            "daemon's config file:",
            "",
            notify_config(),
        ]
    else:
        removing = set()
        for name in {p.name for p in reaper_files()}:
            if (folder / name).exists():
                plan.remove(folder / name)
                removing.add(folder / name)
        plan.rmdir_if_empty(folder, removing)
        if kb_text is not None:
            ids = {line.split()[3].encode() for line in lines}
            rest = kb_without_ours(kb_text, ids)
            if rest != kb_text:
                if rest:
                    plan.write(kb, rest, note="our actions taken out")
                else:  # only our lines were there: the file was ours
                    plan.remove(kb, note="it held only our actions")
        scripts = resource / "Scripts"
        if folder.is_dir() and all(c in removing for c in folder.iterdir()):
            if scripts.is_dir() and list(scripts.iterdir()) == [folder]:
                plan.changes.append(Change("rmdir", scripts))
    return plan


# ---- Ardour ---------------------------------------------------------------------------------------------------------

def ardour_config_folders() -> list[Path]:
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Preferences"
        return [base / f"Ardour{v}" for v in ARDOUR_VERSIONS]
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return [base / f"Ardour{v}" for v in ARDOUR_VERSIONS]
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [base / f"ardour{v}" for v in ARDOUR_VERSIONS]


def ardour_files() -> list[Path]:
    files = sorted(ARDOUR_SCRIPTS.glob("*.lua"))
    if not files:
        raise InstallError(f"the Ardour scripts are not in this installation ({ARDOUR_SCRIPTS})")
    return files


def plan_ardour(args, installing: bool) -> Plan:
    plan = Plan()
    if args.scripts_path:
        targets = [Path(args.scripts_path).expanduser()]
    else:
        configs = ardour_config_folders()
        chosen = configs if args.all else [c for c in configs if c.is_dir()]
        if not chosen:
            raise InstallError("no Ardour configuration folder (" + ", ".join(str(c) for c in configs) +
                               "): start Ardour once, or give --all or --scripts-path")
        targets = [c / "scripts" for c in chosen]
    for folder in targets:
        if installing:
            for source in ardour_files():
                plan.write(folder / source.name, source.read_bytes())
        else:
            removing = {folder / p.name for p in ardour_files() if (folder / p.name).exists()}
            for path in sorted(removing):
                plan.remove(path)
            if removing and not args.scripts_path:
                plan.rmdir_if_empty(folder, removing)
    if installing:
        plan.messages.append("In Ardour: Edit > Lua Scripts > Script Manager > Action Scripts: add 'DAW Bridge: "
                             "Inpaint or extend' and 'DAW Bridge: Import results' to two slots.")
    return plan


# ---- the user service -------------------------------------------------------------------------------------------------

def daemon_command() -> list[str]:
    """The command that runs the daw-bridge actually installed: the console script beside this interpreter, else
    the one on PATH, else this interpreter with ``-m bridge``."""
    beside = Path(sys.executable).with_name("daw-bridge" + (".exe" if sys.platform == "win32" else ""))
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("daw-bridge")
    if found:
        return [found]
    return [sys.executable, "-m", "bridge"]


def _bridge_importable_from_anywhere(command: list[str]) -> dict[str, str]:
    """Environment the unit needs so ``command`` finds this bridge package when run from "/" (a source tree that
    is not installed needs PYTHONPATH)."""
    if command[1:2] != ["-m"]:
        return {}
    probe = subprocess.run([*command, "--version"], capture_output=True, text=True, cwd="/", timeout=60)
    return {} if probe.returncode == 0 else {"PYTHONPATH": str(ROOT)}


def check_command(command: list[str], env: dict[str, str]) -> str:
    """Run ``command --version`` as the service manager would (from "/"); its output, or InstallError."""
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, cwd="/", timeout=60,
                              env={**os.environ, **env})
    except OSError as exc:
        raise InstallError(f"{shlex.join(command)} does not run: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise InstallError(f"{shlex.join(command)} --version failed: {said[-1]}")  # a traceback's last line says why
    return done.stdout.strip()


def _systemd_quote(word: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _service_template(name: str) -> str:
    try:
        return (SERVICE_DIR / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InstallError(f"the service files are not in this installation ({SERVICE_DIR}); install daw-bridge "
                           "from its source folder (python3 -m pip install -e .)") from None


def systemd_unit(command: list[str], env: dict[str, str], serve: tuple[str, ...] = ("serve",)) -> str:
    template = _service_template(SYSTEMD_UNIT)
    exec_start = "ExecStart=" + " ".join(_systemd_quote(w) for w in [*command, *serve])
    extra = "".join(f"\nEnvironment={_systemd_quote(f'{k}={v}')}" for k, v in env.items())
    text, count = re.subn(r"(?m)^ExecStart=.*$", lambda _: exec_start + extra, template)
    if count != 1:
        raise InstallError(f"{SERVICE_DIR / SYSTEMD_UNIT} has no single ExecStart= line")
    return re.sub(r"(?m)^# %h is your home folder.*\n", f"# {WRITTEN_BY} for the daw-bridge installed here.\n", text)


def launchd_plist(command: list[str], env: dict[str, str], serve: tuple[str, ...] = ("serve",)) -> str:
    from xml.sax.saxutils import escape

    template = _service_template(f"{LAUNCHD_LABEL}.plist")
    strings = "".join(f"\n        <string>{escape(w)}</string>" for w in [*command, *serve])
    arguments = f"<key>ProgramArguments</key>\n    <array>{strings}\n    </array>"
    if env:
        arguments += "\n    <key>EnvironmentVariables</key>\n    <dict>" + "".join(
            f"\n        <key>{escape(k)}</key>\n        <string>{escape(v)}</string>" for k, v in env.items()) \
            + "\n    </dict>"
    text, count = re.subn(r"<key>ProgramArguments</key>\s*<array>.*?</array>", lambda _: arguments, template,
                          flags=re.S)
    if count != 1:
        raise InstallError(f"{SERVICE_DIR / LAUNCHD_LABEL}.plist has no ProgramArguments")
    return text.replace("__HOME__", escape(str(Path.home()))).replace("<!-- launchd agent:",
                                                                      f"<!-- {WRITTEN_BY}. launchd agent:", 1)


def _keep_a_unit_not_ours(path: Path, installing: bool) -> None:
    """InstallError when ``path`` holds a unit or agent that install did not write (one made by hand from the
    README's steps, perhaps with flags or environment of the producer's own): it is neither replaced nor removed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return
    if WRITTEN_BY not in text:
        raise InstallError(f"{path} was not written by 'daw-bridge install service' (your own?): " +
                           ("nothing was changed; move it away to install ours, or give --unit-path" if installing
                            else "left in place; remove it yourself"))


def _serve_arguments(args) -> tuple[str, ...]:
    """``serve``, with ``--config FILE`` when the install names one: checked now, and absolute (the service runs from
    "/"), rather than found wrong by a service manager restarting a daemon that cannot start."""
    if getattr(args, "config", None) is None:
        return ("serve",)
    from bridge.config import load

    config = Path(args.config).absolute()
    load(config)  # ConfigError: one line naming the file, the line and the rule; nothing is written
    return ("serve", "--config", str(config))


def plan_service(args, installing: bool) -> Plan:
    plan = Plan()
    serve = _serve_arguments(args) if installing else ("serve",)
    manager = args.manager or ("launchd" if sys.platform == "darwin" else "systemd")
    if manager == "systemd":
        unit = Path(args.unit_path).expanduser() if args.unit_path else \
            Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user" / SYSTEMD_UNIT
        systemctl = ["systemctl", "--user"]
        name = unit.name
        _keep_a_unit_not_ours(unit, installing)
        if installing:
            command = daemon_command()
            env = _bridge_importable_from_anywhere(command)
            version = check_command(command, env)
            plan.write(unit, systemd_unit(command, env, serve).encode("utf-8"),
                       note=f"runs {shlex.join([*command, *serve])}: {version}")
            if not args.no_start:
                plan.run([*systemctl, "daemon-reload"])
                plan.run([*systemctl, "enable", "--now", name])
                plan.run([*systemctl, "--no-pager", "status", name])
            plan.messages.append(f"logs: journalctl --user -u {name} -f")
        else:
            if not args.no_start and unit.exists():
                plan.run([*systemctl, "disable", "--now", name])
            plan.remove(unit)
            if not args.no_start and unit.exists():
                plan.run([*systemctl, "daemon-reload"])
    elif manager == "launchd":
        agent = Path(args.unit_path).expanduser() if args.unit_path else \
            Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        _keep_a_unit_not_ours(agent, installing)
        if installing:
            command = daemon_command()
            env = _bridge_importable_from_anywhere(command)
            version = check_command(command, env)
            plan.write(agent, launchd_plist(command, env, serve).encode("utf-8"),
                       note=f"runs {shlex.join([*command, *serve])}: {version}")
            if not args.no_start:
                plan.run(["launchctl", "unload", str(agent)], note="if it was loaded")
                plan.run(["launchctl", "load", "-w", str(agent)])
                plan.run(["launchctl", "list", LAUNCHD_LABEL])
            plan.messages.append(f"logs: {Path.home() / 'Library' / 'Logs' / 'daw-bridge.log'}")
        else:
            if not args.no_start and agent.exists():
                plan.run(["launchctl", "unload", "-w", str(agent)])
            plan.remove(agent)
    return plan


# ---- the audio plugin ---------------------------------------------------------------------------------------------------

PLUGIN_BUILD = ROOT / "daw_scripts" / "plugin" / "build"
PLUGIN_NAME = "DawBridge"
PLUGIN_FORMATS = ("lv2", "vst3", "clap")  # each a bundle DawBridge.<format> (a folder, or one file for CLAP)


def plugin_folders() -> dict[str, Path]:
    """Where each format's per-user plugins live on this platform (what DAWs scan without being told)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Audio" / "Plug-Ins"
        return {"lv2": base / "LV2", "vst3": base / "VST3", "clap": base / "CLAP"}
    if sys.platform == "win32":
        common = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "Programs" / "Common"
        roaming = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
        return {"lv2": roaming / "LV2", "vst3": common / "VST3", "clap": common / "CLAP"}
    return {"lv2": Path.home() / ".lv2", "vst3": Path.home() / ".vst3", "clap": Path.home() / ".clap"}


def _files_of(bundle: Path) -> list[Path]:
    """A bundle's files, relative to it (a CLAP bundle on Linux/Windows is one file: [Path()])."""
    if bundle.is_file():
        return [Path()]
    return sorted(p.relative_to(bundle) for p in bundle.rglob("*") if p.is_file())


def plan_plugin(args, installing: bool) -> Plan:
    plan = Plan()
    folders = plugin_folders()
    for fmt in PLUGIN_FORMATS:
        override = getattr(args, f"{fmt}_path")
        destination = (Path(override).expanduser() if override else folders[fmt]) / f"{PLUGIN_NAME}.{fmt}"
        if installing:
            built = PLUGIN_BUILD / f"{PLUGIN_NAME}.{fmt}"
            if not PLUGIN_BUILD.parent.is_dir():
                raise InstallError(f"the plugin's source is not in this installation ({PLUGIN_BUILD.parent}); "
                                   "install daw-bridge from its source folder (python3 -m pip install -e .)")
            if not built.exists():
                raise InstallError(f"the plugin is not built ({built} is missing): run make -C "
                                   f"{PLUGIN_BUILD.parent} first")
            for relative in _files_of(built):
                plan.write(destination / relative, (built / relative).read_bytes())
        elif destination.exists():
            removing = {destination / relative for relative in _files_of(destination)}
            for path in sorted(removing):
                plan.remove(path)
            # the bundle's folders, deepest first, once nothing but what goes is in them
            # (and the format's default folder, as install made it, when nothing else is in it)
            folders_of_ours = sorted((p for p in destination.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for folder in folders_of_ours + ([destination] if destination.is_dir() else []) \
                    + ([destination.parent] if not override else []):
                before = len(plan.changes)
                plan.rmdir_if_empty(folder, removing)
                if len(plan.changes) > before:
                    removing.add(folder)
    if installing:
        plan.messages.append("Rescan plugins in the DAW; the plugin is 'daw-bridge' (LV2 urn:daw-bridge:plugin, "
                             "VST3, CLAP org.daw-bridge.plugin).")
    return plan


# ---- targets and the command line -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    name: str
    help: str
    plan: Callable[[argparse.Namespace, bool], Plan]
    arguments: Callable[[argparse.ArgumentParser], None]


def _reaper_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resource-path", type=path_argument,
                   help="REAPER's resource folder (default: the platform's, e.g. ~/.config/REAPER)")


def _ardour_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scripts-path", type=path_argument, help="an Ardour scripts folder (default: those of "
                   "~/.config/ardour7 and ~/.config/ardour8 that exist)")
    p.add_argument("--all", action="store_true", help="both Ardour 7 and 8, also one not started yet")


def _service_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--unit-path", type=path_argument, help="the unit or agent file (default: ~/.config/systemd/user/"
                   "daw-bridge.service, macOS: ~/Library/LaunchAgents/com.daw-bridge.daemon.plist)")
    p.add_argument("--no-start", action="store_true", help="write or remove the file only; do not run "
                   "systemctl/launchctl")
    p.add_argument("--manager", choices=("systemd", "launchd"), help=argparse.SUPPRESS)
    # 'install --config FILE service' was taken and the unit ran the default config all the same: the daemon's
    # config file is the service's, named before or after TARGET (SUPPRESS keeps one given before)
    p.add_argument("--config", type=path_argument, default=argparse.SUPPRESS, help="the config file the service's "
                   "daemon reads (default: the platform config folder's)")


def _plugin_arguments(p: argparse.ArgumentParser) -> None:
    defaults = plugin_folders()
    for fmt in PLUGIN_FORMATS:
        p.add_argument(f"--{fmt}-path", type=path_argument, help=f"the folder for the {fmt.upper()} bundle (default: "
                       f"{defaults[fmt]})")


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("reaper", "REAPER: the scripts into its resource folder, the actions into reaper-kb.ini", plan_reaper,
           _reaper_arguments),
    Target("ardour", "Ardour 7/8: the Lua scripts into its scripts folders", plan_ardour, _ardour_arguments),
    Target("service", "the daemon as a systemd user unit (Linux) or launchd agent (macOS), started", plan_service,
           _service_arguments),
    Target("plugin", "the audio plugin's built bundles (LV2, VST3, CLAP) into the per-user plugin folders",
           plan_plugin, _plugin_arguments),
)}


def add_arguments(p: argparse.ArgumentParser, installing: bool) -> None:
    targets = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    for target in TARGETS.values():
        sub = targets.add_parser(target.name, help=target.help, description=target.help)
        sub.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
        target.arguments(sub)


def run(args: argparse.Namespace, installing: bool) -> int:
    target = TARGETS[args.target]
    started = time.monotonic()
    try:
        try:
            plan = target.plan(args, installing)
        except OSError as exc:  # a file where a folder must be, a folder we may not read
            what = f"cannot read {exc.filename}" if exc.filename else "cannot plan the install"
            raise InstallError(f"{what}: {exc.strerror or exc}; nothing was changed") from exc
        files = carry_out(plan, args.dry_run)
    except InstallError as exc:
        print(f"daw-bridge: {exc}", file=sys.stderr)
        return 1
    verb = "install" if installing else "uninstall"
    if args.dry_run:
        print(f"{verb} {target.name}: dry run, {len(plan.changes)} change(s) shown, nothing changed")
        return 0
    if files < 0:
        print(f"{verb} {target.name}: files done, but a command failed (see above)")
        return 1
    print(f"{verb} {target.name}: {files} file(s) {'written' if installing else 'removed or rewritten'}, "
          f"{len(plan.unchanged)} unchanged, {time.monotonic() - started:.2f} s")
    return 0
