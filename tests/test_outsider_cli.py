"""The command line as an outsider first meets it: odd terminals, full disks, deleted folders, odd home folders."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import ROOT, daemon_environment


def _run(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("cwd", ROOT)
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "bridge", *args], stderr=subprocess.PIPE, text=True, timeout=600,
                          env=daemon_environment(env), preexec_fn=ask_to_die_with_parent, check=False, **kwargs)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_sent_to_a_full_disk_is_named_in_one_line(project):
    # 'daw-bridge doctor > report.txt' on a full disk ended in an OSError traceback from print()
    with open("/dev/full", "w") as full:
        result = _run("doctor", "--config", str(project.config), stdout=full)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == ["daw-bridge: cannot write the output: No space left on device"]


def test_a_terminal_that_is_not_utf8_shows_a_japanese_folder_name_escaped(project):
    # A latin-1 terminal: the doctor's line naming a project root called 歌 ended in a UnicodeEncodeError traceback
    song_folder = project.root / "歌"
    song_folder.mkdir()
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(
        f'project_roots = ["{project.root}"]', f'project_roots = ["{project.root}", "{song_folder}"]'),
        encoding="utf-8")
    result = _run("doctor", "--config", str(project.config), env={"PYTHONIOENCODING": "latin-1"})
    assert "Traceback" not in result.stderr, result.stderr
    assert f"project root {project.root}/\\u6b4c" in result.stdout, result.stdout
