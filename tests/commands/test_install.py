"""`daw-bridge install/uninstall TARGET`: what lands where, that a second run changes nothing, and that uninstall
leaves every folder (and REAPER's reaper-kb.ini) byte for byte as it was. Never the real home: HOME is a tmp folder."""

from __future__ import annotations

import plistlib
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridge import __version__
from bridge.cli import main
from bridge.commands import install
from bridge.settings_schema import check_table

# A reaper-kb.ini as REAPER writes it on Windows: CRLF, custom actions, key bindings, other scripts (one bound to a
# key by its command id), a MIDI-editor script, an extension's entry.
KB_LINES = [
    'ACT 0 0 "e5c2d7f1a3b44c7e9a1d2f3b4c5d6e7f" "Custom: my macro" 40001 40002 _SWS_SAVESEL',
    'KEY 1 65 40044 0',
    'KEY 9 83 40026 0',
    'SCR 4 0 RS7d3c0a0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60 "Custom: my_script.lua" "my_script.lua"',
    'SCR 4 32060 RS0a1b2c3d4e5f60718293a4b5c6d7e8f901234567 "Custom: MIDI thing.lua" "Other/MIDI thing.lua"',
    'KEY 1 70 _RS7d3c0a0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60 0',
    'SCR 4 0 RSdeadbeef "Custom: DAW Bridge - Extend.lua" "somewhere-else/DAW Bridge - Extend.lua"',
]
KB = ("\r\n".join(KB_LINES) + "\r\n").encode()



def reaper_files() -> int:
    """What install reaper writes: every script of the package, and reaper-kb.ini."""
    return len(list(install.REAPER_PACKAGE.glob("*.lua"))) + 1

def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder`."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def changes(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"(would )?(write|remove|rmdir|run)\b", line)]


def cli(capsys, *argv) -> tuple[int, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


# ---- REAPER -----------------------------------------------------------------------------------------------------------

@pytest.fixture
def reaper(tmp_path):
    resource = tmp_path / "REAPER"
    (resource / "Scripts" / "Mine").mkdir(parents=True)
    (resource / "Scripts" / "Mine" / "tool.lua").write_text("-- mine\n")
    (resource / "reaper.ini").write_bytes(b"[REAPER]\r\nlastproject=x\r\n")
    (resource / "reaper-kb.ini").write_bytes(KB)
    return resource


def our_lines() -> list[str]:
    return [install.reaper_kb_line(name) for name in install.reaper_actions()]


def test_reaper_install_copies_the_scripts_and_registers_every_action_with_stable_ids(reaper, capsys):
    status, out = cli(capsys, "install", "reaper", "--resource-path", str(reaper))

    assert status == 0
    folder = reaper / "Scripts" / "daw-bridge"
    package = sorted(p.name for p in install.REAPER_PACKAGE.glob("*.lua"))
    assert sorted(p.name for p in folder.iterdir()) == package
    for name in package:
        assert (folder / name).read_bytes() == (install.REAPER_PACKAGE / name).read_bytes()
    kb = (reaper / "reaper-kb.ini").read_bytes()
    assert kb == KB + b"".join(line.encode() + b"\r\n" for line in our_lines())  # CRLF like the rest
    assert set(install.reaper_actions()) == {"DAW Bridge - Inpaint time selection.lua", "DAW Bridge - Extend.lua",
                                             "DAW Bridge - Companion.lua", "DAW Bridge - Import results now.lua",
                                             "DAW Bridge - Settings.lua", "DAW Bridge - Show result picture.lua"}
    for line in our_lines():
        m = re.fullmatch(r'SCR 4 0 (RS[0-9a-f]{40}) "Custom: (DAW Bridge - [^"]+\.lua)" "daw-bridge/\2"', line)
        assert m, line
        assert (folder / m.group(2)).is_file()
    # stable: the id is a function of the script's name only, the same on every machine
    assert install.reaper_command_id(install.IMPORT_NOW) == "RSf8b28651759318fd10d44620eedbc54863e89c70"
    assert f"write {reaper / 'reaper-kb.ini'} (6 actions)" in out
    assert f"install reaper: {reaper_files()} file(s) written" in out


def test_reaper_prints_a_notify_table_the_daemon_accepts_naming_the_import_action(reaper, capsys):
    _, out = cli(capsys, "install", "reaper", "--resource-path", str(reaper))

    table = tomllib.loads(out[out.index("[notify]"):out.index("install reaper:")])["notify"]
    settings = check_table("notify", table)
    assert settings["address"] == "/action/str"
    assert list(settings["args"]) == ["_" + install.reaper_command_id(install.IMPORT_NOW)]
    registered = [line for line in our_lines() if install.IMPORT_NOW in line]
    assert registered and registered[0].split()[3] == settings["args"][0][1:]


def test_reaper_install_twice_changes_nothing_and_uninstall_gives_back_the_folder_byte_for_byte(reaper, capsys):
    before = snapshot(reaper)
    cli(capsys, "install", "reaper", "--resource-path", str(reaper))
    installed = snapshot(reaper)

    status, out = cli(capsys, "install", "reaper", "--resource-path", str(reaper))
    assert status == 0 and not changes(out) and f"install reaper: 0 file(s) written, {reaper_files()} unchanged" in out
    assert snapshot(reaper) == installed

    status, out = cli(capsys, "uninstall", "reaper", "--resource-path", str(reaper))
    assert status == 0
    assert snapshot(reaper) == before
    assert (reaper / "reaper-kb.ini").read_bytes() == KB

    status, out = cli(capsys, "uninstall", "reaper", "--resource-path", str(reaper))
    assert status == 0 and not changes(out)
    assert snapshot(reaper) == before


def test_reaper_our_line_changed_by_hand_is_replaced_not_duplicated(reaper, capsys):
    cli(capsys, "install", "reaper", "--resource-path", str(reaper))
    kb = reaper / "reaper-kb.ini"
    first = our_lines()[0]
    kb.write_bytes(kb.read_bytes().replace(first.encode(), first.replace("SCR 4 0", "SCR 5 0").encode()))

    cli(capsys, "install", "reaper", "--resource-path", str(reaper))

    assert kb.read_bytes() == KB + b"".join(line.encode() + b"\r\n" for line in our_lines())


# (an empty reaper-kb.ini, which REAPER does not write, would be removed by uninstall like one install created)
@pytest.mark.parametrize("text", [b"KEY 1 65 40044 0", b"KEY 1 65 40044 0\nKEY 9 83 40026 0\n"],
                         ids=["no final newline", "LF"])
def test_reaper_kb_round_trip_on_other_shapes_of_file(reaper, capsys, text):
    (reaper / "reaper-kb.ini").write_bytes(text)
    before = snapshot(reaper)

    cli(capsys, "install", "reaper", "--resource-path", str(reaper))
    kb = (reaper / "reaper-kb.ini").read_bytes()
    assert kb.count(b"SCR 4 0 RS") == len(install.reaper_actions()) and b"\r" not in kb  # LF files stay LF
    assert kb.splitlines()[:len(text.splitlines())] == text.splitlines() or text == b"KEY 1 65 40044 0"
    cli(capsys, "uninstall", "reaper", "--resource-path", str(reaper))

    assert snapshot(reaper) == before


def test_reaper_without_kb_file_install_creates_it_and_uninstall_removes_it(reaper, capsys):
    (reaper / "reaper-kb.ini").unlink()
    before = snapshot(reaper)
    cli(capsys, "install", "reaper", "--resource-path", str(reaper))
    assert (reaper / "reaper-kb.ini").read_bytes().count(b"\n") == len(install.reaper_actions())
    cli(capsys, "uninstall", "reaper", "--resource-path", str(reaper))
    assert snapshot(reaper) == before


def test_reaper_dry_run_changes_nothing(reaper, capsys):
    before = snapshot(reaper)
    status, out = cli(capsys, "install", "reaper", "--resource-path", str(reaper), "--dry-run")
    assert status == 0 and f"would write {reaper / 'reaper-kb.ini'}" in out and "nothing changed" in out
    assert snapshot(reaper) == before


def test_reaper_default_resource_folder_is_under_home_and_must_exist(home, capsys):
    status, out = cli(capsys, "install", "reaper")
    assert status == 1 and f"no REAPER resource folder at {home / '.config' / 'REAPER'}" in out
    (home / ".config" / "REAPER").mkdir(parents=True)
    status, _ = cli(capsys, "install", "reaper")
    assert status == 0 and (home / ".config" / "REAPER" / "Scripts" / "daw-bridge" / install.IMPORT_NOW).is_file()


# ---- Ardour -----------------------------------------------------------------------------------------------------------

ARDOUR_FILES = ["daw_bridge_background_import.lua", "daw_bridge_import.lua", "daw_bridge_send.lua"]


def test_ardour_installs_into_the_versions_that_exist(home, capsys):
    (home / ".config" / "ardour8").mkdir(parents=True)
    before = snapshot(home)

    status, out = cli(capsys, "install", "ardour")

    assert status == 0
    assert sorted(p.name for p in (home / ".config" / "ardour8" / "scripts").iterdir()) == ARDOUR_FILES
    assert not (home / ".config" / "ardour7").exists()
    assert "install ardour: 3 file(s) written" in out
    assert "0 file(s) written, 3 unchanged" in cli(capsys, "install", "ardour")[1]

    cli(capsys, "uninstall", "ardour")
    assert snapshot(home) == before


def test_ardour_all_and_scripts_path(home, tmp_path, capsys):
    status, _ = cli(capsys, "install", "ardour", "--all")
    assert status == 0
    for version in (7, 8):
        assert sorted(p.name for p in (home / ".config" / f"ardour{version}" / "scripts").iterdir()) == ARDOUR_FILES
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "mine.lua").write_text("-- mine\n")
    before = snapshot(other)
    cli(capsys, "install", "ardour", "--scripts-path", str(other))
    assert sorted(p.name for p in other.iterdir()) == sorted(ARDOUR_FILES + ["mine.lua"])
    cli(capsys, "uninstall", "ardour", "--scripts-path", str(other))
    assert snapshot(other) == before


def test_ardour_without_a_config_folder_says_what_to_do(home, capsys):
    status, out = cli(capsys, "install", "ardour")
    assert status == 1 and "start Ardour once, or give --all or --scripts-path" in out
    assert snapshot(home) == {}


# ---- the service ------------------------------------------------------------------------------------------------------

def exec_start(unit: str) -> list[str]:
    [line] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line[len("ExecStart="):])


def environment(unit: str) -> dict[str, str]:
    return dict(shlex.split(line[len("Environment="):])[0].split("=", 1)
                for line in unit.splitlines() if line.startswith("Environment="))


def test_service_writes_a_systemd_unit_running_the_installed_daw_bridge(home, tmp_path, capsys):
    unit_path = tmp_path / "units" / "daw-bridge.service"

    status, out = cli(capsys, "install", "service", "--unit-path", str(unit_path), "--no-start")

    assert status == 0, out
    unit = unit_path.read_text()
    command = exec_start(unit)
    assert command[-1] == "serve" and ".local/bin" not in command[0]
    assert command[:-1] == install.daemon_command()
    done = subprocess.run([*command[:-1], "--version"], capture_output=True, text=True, cwd="/", timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), **environment(unit)})
    assert done.returncode == 0 and done.stdout.strip() == f"daw-bridge {__version__}"
    assert "Restart=on-failure" in unit and "[Install]" in unit and "WantedBy=default.target" in unit
    assert "systemctl" not in out  # --no-start

    status, out = cli(capsys, "install", "service", "--unit-path", str(unit_path), "--no-start")
    assert "0 file(s) written, 1 unchanged" in out
    cli(capsys, "uninstall", "service", "--unit-path", str(unit_path), "--no-start")
    assert not unit_path.exists()


def test_service_default_path_and_the_systemctl_commands_it_would_run(home, capsys):
    status, out = cli(capsys, "install", "service", "--dry-run", "--manager", "systemd")
    unit = home / ".config" / "systemd" / "user" / "daw-bridge.service"
    assert status == 0 and f"would write {unit}" in out
    assert "would run: systemctl --user daemon-reload" in out
    assert "would run: systemctl --user enable --now daw-bridge.service" in out
    assert "would run: systemctl --user --no-pager status daw-bridge.service" in out
    assert snapshot(home) == {}


def test_service_launchd_agent(home, tmp_path, capsys):
    agent = tmp_path / "com.daw-bridge.daemon.plist"

    status, out = cli(capsys, "install", "service", "--manager", "launchd", "--unit-path", str(agent), "--no-start")

    assert status == 0, out
    plist = plistlib.loads(agent.read_bytes())
    assert plist["Label"] == "com.daw-bridge.daemon"
    assert plist["ProgramArguments"] == [*install.daemon_command(), "serve"]
    assert plist["StandardOutPath"] == str(home / "Library" / "Logs" / "daw-bridge.log")
    done = subprocess.run([*plist["ProgramArguments"][:-1], "--version"], capture_output=True, text=True, cwd="/",
                          timeout=60, env={"PATH": "/usr/bin:/bin", **plist.get("EnvironmentVariables", {})})
    assert done.returncode == 0 and done.stdout.strip() == f"daw-bridge {__version__}"
    cli(capsys, "uninstall", "service", "--manager", "launchd", "--unit-path", str(agent), "--no-start")
    assert not agent.exists()


def test_service_falls_back_to_this_interpreter_with_the_source_tree_on_its_path(home, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.setattr(install.shutil, "which", lambda name: None)
    monkeypatch.setattr(install.Path, "with_name", lambda self, name: tmp_path / "nowhere" / name)
    unit_path = tmp_path / "daw-bridge.service"

    status, out = cli(capsys, "install", "service", "--unit-path", str(unit_path), "--no-start")

    assert status == 0, out
    unit = unit_path.read_text()
    command = exec_start(unit)
    assert command[1:] == ["-m", "bridge", "serve"]
    done = subprocess.run([*command[:-1], "--version"], capture_output=True, text=True, cwd="/", timeout=60,
                          env={"PATH": "/usr/bin:/bin", **environment(unit)})
    assert done.returncode == 0, done.stderr


def test_targets_are_data():
    assert list(install.TARGETS) == ["reaper", "ardour", "service", "plugin"]
    assert all(callable(t.plan) and callable(t.arguments) for t in install.TARGETS.values())


def test_a_service_command_that_does_not_start_is_named_in_one_line():
    """The interpreter lacks a package the daemon imports: the producer reads why, not a traceback."""
    with pytest.raises(install.InstallError) as caught:
        install.check_command([sys.executable, "-c", "import daw_bridge_no_such_module"], {})
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith("--version failed: ModuleNotFoundError: No module named "
                                      "'daw_bridge_no_such_module'")
