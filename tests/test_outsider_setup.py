"""Set-up as an outsider first tries it, where an earlier version broke a promise: a DAW folder that is read-only,
a user's file where install puts a folder, a daw-bridge installed from a wheel (no service/ or plugin source beside
it). Each ends in one line naming the path and the reason, exit status 1, the user's files as they were, and no
line claiming a change that was not made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.commands import install
from tests.adversarial.support import read_only, small_tmpfs
from tests.conftest import ROOT, daemon_environment, free_udp_port


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _cli(capsys, *argv) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def reaper(home):
    resource = home / ".config" / "REAPER"
    (resource / "Scripts" / "Mine").mkdir(parents=True)
    (resource / "Scripts" / "Mine" / "tool.lua").write_text("-- mine\n")
    (resource / "reaper-kb.ini").write_bytes(b'KEY 1 65 40044 0\nSCR 4 0 RSmine "Custom: tool.lua" "Mine/tool.lua"\n')
    return resource


def test_a_read_only_reaper_scripts_folder_is_one_line_and_registers_no_action(reaper, capsys):
    before = _snapshot(reaper)
    with read_only(reaper / "Scripts"):
        status, out, err = _cli(capsys, "install", "reaper")
    assert status == 1, out + err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"daw-bridge: cannot write {reaper / 'Scripts' / 'daw-bridge'}") and "Read-only" in err, err
    # nothing was written, so nothing is said to be, and reaper-kb.ini names no script that is not there
    assert not any(line.startswith("write ") for line in out.splitlines()), out
    assert _snapshot(reaper) == before


def test_a_read_only_reaper_kb_after_the_scripts_says_which_changes_were_made(reaper, capsys):
    kb = reaper / "reaper-kb.ini"
    before = kb.read_bytes()
    ours = reaper / "Scripts" / "daw-bridge"
    ours.mkdir()
    with read_only(reaper), small_tmpfs(ours, "4m"):  # our folder writable, the one holding reaper-kb.ini not
        status, out, err = _cli(capsys, "install", "reaper")
        written = sorted(line.removeprefix("write ") for line in out.splitlines() if line.startswith("write "))
        assert written == sorted(str(p) for p in ours.iterdir()) and len(written) == len(install.reaper_files())
    assert status == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"daw-bridge: cannot write {kb}: Read-only file system; stopped there"), err
    assert kb.read_bytes() == before


def test_a_users_file_where_our_scripts_folder_goes_is_kept(reaper, home, capsys):
    mine = reaper / "Scripts" / "daw-bridge"
    mine.write_text("my notes, not a folder\n")
    status, out, err = _cli(capsys, "install", "reaper")
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "Not a directory" in err and "nothing was changed" in err, err
    assert mine.read_text() == "my notes, not a folder\n"

    (home / ".config" / "ardour8").mkdir(parents=True)
    (home / ".config" / "ardour8" / "scripts").write_text("mine\n")
    status, out, err = _cli(capsys, "install", "ardour")
    assert status == 1 and err.count("\n") == 1 and "Not a directory" in err, err
    assert (home / ".config" / "ardour8" / "scripts").read_text() == "mine\n"


def test_a_read_only_unit_folder_is_one_line(home, tmp_path, capsys):
    units = tmp_path / "units"
    with read_only(units):
        status, out, err = _cli(capsys, "install", "service", "--no-start", "--unit-path",
                                str(units / "daw-bridge.service"))
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"daw-bridge: cannot write {units / 'daw-bridge.service'}"), err
    assert list(units.iterdir()) == []


def test_installed_from_a_wheel_service_and_plugin_say_what_to_do(home, tmp_path, monkeypatch, capsys):
    # a non-editable install has bridge/ in site-packages and neither service/ nor daw_scripts/ beside it
    site = tmp_path / "site-packages"
    monkeypatch.setattr(install, "SERVICE_DIR", site / "service")
    monkeypatch.setattr(install, "PLUGIN_BUILD", site / "daw_scripts" / "plugin" / "build")
    status, out, err = _cli(capsys, "install", "service", "--no-start", "--dry-run")
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "not in this installation" in err and "pip install -e ." in err, err
    status, out, err = _cli(capsys, "install", "plugin", "--dry-run")
    assert status == 1 and "not in this installation" in err and "make -C" not in err, err


def _doctor_with(tmp_path, capsys, mapping: str, voice: bool = False) -> tuple[int, list[str]]:
    (tmp_path / "pads.toml").write_text(mapping, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'osc_port = {free_udp_port()}\nproject_roots = ["{tmp_path}"]\n'
                      '[midi]\nport = "nanoPAD*"\nmapping = "pads.toml"\n'
                      + ("[voice]\nenabled = true\n" if voice else ""), encoding="utf-8")
    status, out, err = _cli(capsys, "doctor", "--config", str(config))
    return status, [line for line in out.splitlines() if line[5:].startswith(("MIDI", "voice"))]


def test_doctor_says_bad_to_a_mapping_the_daemon_would_refuse_at_start(home, tmp_path, capsys):
    twice = '[[pad]]\nnote = 36\ncommand = "inpaint"\n\n[[pad]]\nnote = 36\naction = "cancel"\n'
    status, lines = _doctor_with(tmp_path, capsys, twice)
    assert status == 1 and lines == [f"BAD  MIDI: {tmp_path / 'pads.toml'}, line 5: pad 2: note 36 on any channel is "
                                     "already mapped by the pad at line 1"], lines
    status, lines = _doctor_with(tmp_path, capsys, '[[pad]]\nnote = 36\naction = "explode"\n')
    assert status == 1 and "action: 'explode' must be one of" in lines[0], lines

    # voice with pads that never open the microphone: the daemon only warns in its log and never listens
    status, lines = _doctor_with(tmp_path, capsys, '[[pad]]\nnote = 36\ncommand = "inpaint"\n', voice=True)
    assert status == 1 and lines[0].startswith("ok   MIDI: 1 pad(s) mapped"), lines
    assert lines[1].startswith("BAD  voice: no talk or listen pad"), lines
    status, lines = _doctor_with(tmp_path, capsys, '[[pad]]\nnote = 36\naction = "talk"\n', voice=True)
    assert status == 0 and [line[:8] for line in lines] == ["ok   MID", "ok   voi"], lines


@pytest.mark.parametrize("manager, template", [("systemd", "daw-bridge.service"),
                                               ("launchd", "com.daw-bridge.daemon.plist")])
def test_a_unit_made_by_hand_as_the_readme_says_is_neither_replaced_nor_removed(home, tmp_path, capsys, manager,
                                                                                 template):
    # README, "Running as a user service", by hand: the shipped file copied, its command set to the producer's own
    unit = tmp_path / template
    text = (install.SERVICE_DIR / template).read_text().replace("%h/.local/bin/daw-bridge serve",
                                                                "/opt/db/bin/daw-bridge serve --config /srv/db.toml")
    unit.write_text(text.replace("__HOME__/.local/bin/daw-bridge", "/opt/db/bin/daw-bridge"))
    mine = unit.read_bytes()
    for verb in ("install", "uninstall"):
        status, out, err = _cli(capsys, verb, "service", "--manager", manager, "--unit-path", str(unit), "--no-start")
        assert status == 1 and err.count("\n") == 1 and "not written by 'daw-bridge install service'" in err, err
        assert unit.read_bytes() == mine
    # the one install writes is its own to replace and to take out again
    unit.unlink()
    for verb in ("install", "install", "uninstall"):
        status, out, err = _cli(capsys, verb, "service", "--manager", manager, "--unit-path", str(unit), "--no-start")
        assert status == 0, out + err
    assert not unit.exists()


def test_the_readmes_plain_install_without_the_midi_and_voice_extras_answers_in_one_line(home, tmp_path):
    # `pip install .` as the README's first command does: neither python-rtmidi nor pocketsphinx is there
    missing = tmp_path / "without-extras"
    missing.mkdir()
    for module in ("rtmidi", "pocketsphinx"):
        (missing / f"{module}.py").write_text(f"raise ImportError(\"No module named '{module}'\")\n")
    env = {**daemon_environment({"HOME": str(home)}), "PYTHONPATH": f"{missing}:{ROOT}"}
    recording = tmp_path / "take.wav"
    recording.write_bytes(b"RIFF")
    for argv, status, says in ((["midi", "ports"], 1, "pip install 'daw-bridge[midi]'"),
                               (["midi", "learn", "--port", "nanoPAD"], 1, "pip install 'daw-bridge[midi]'"),
                               (["voice", "grammar"], 2, "pip install 'daw-bridge[voice]'"),
                               (["voice", "decode", str(recording)], 2, "pip install 'daw-bridge[voice]'")):
        done = subprocess.run([sys.executable, "-m", "bridge", *argv], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)
        said = (done.stdout + done.stderr).strip()
        assert done.returncode == status and "Traceback" not in said and said.count("\n") == 0, (argv, said)
        assert said.endswith(says), (argv, said)


def test_a_config_and_a_mapping_saved_by_windows_notepad_with_a_bom_are_read(home, tmp_path, capsys):
    bom = "\ufeff"
    (tmp_path / "pads.toml").write_text(bom + '[[pad]]\nnote = 36\naction = "talk"\n', encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(f'{bom}osc_port = {free_udp_port()}\nproject_roots = ["{tmp_path}"]\n'
                      '[midi]\nport = "nanoPAD*"\nmapping = "pads.toml"\n', encoding="utf-8")
    status, out, err = _cli(capsys, "doctor", "--config", str(config))
    assert status == 0, out + err
    assert f"ok   MIDI: 1 pad(s) mapped from {tmp_path / 'pads.toml'}" in out


def test_a_reaper_kb_kept_in_a_dotfiles_repository_stays_a_link(reaper, tmp_path, capsys):
    kept = tmp_path / "dotfiles" / "reaper-kb.ini"
    kept.parent.mkdir()
    kb = reaper / "reaper-kb.ini"
    kept.write_bytes(kb.read_bytes())
    before = kept.read_bytes()
    kb.unlink()
    kb.symlink_to(kept)
    assert _cli(capsys, "install", "reaper")[0] == 0
    assert kb.is_symlink() and b"DAW Bridge - Extend.lua" in kept.read_bytes()
    assert _cli(capsys, "uninstall", "reaper")[0] == 0
    assert kb.is_symlink() and kept.read_bytes() == before
