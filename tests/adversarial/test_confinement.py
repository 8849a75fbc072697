"""Confinement: audio is read only inside the project roots, results land only in the drop folder, and no path, link
or name the producer's text controls leads anywhere else.

The daemon here has no drop folder configured, so results go to ``daw-bridge`` beside each source: the most
exposed set-up, since that folder is whatever the project holds at that name.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.adversarial.support import Daemon, files_under
from tests.conftest import DaemonProcess, Project, wait_for_pictures


@pytest.fixture(scope="module")
def confined(tmp_path_factory, demo_song_path):
    base = tmp_path_factory.mktemp("confined")
    project = Project(base / "project", demo_song_path)
    project.config.write_text(f'osc_port = {project.port}\ninbox = "{project.inbox}"\nstate_dir = "{project.state}"\n'
                              f'project_roots = ["{project.root}"]\n', encoding="utf-8")
    outside = base / "outside"
    (outside / "folder").mkdir(parents=True)
    shutil.copy(project.song, outside / "song.wav")
    before = {p: p.read_bytes() for p in files_under(outside)}
    daemon = Daemon(project).start()
    yield project, outside
    daemon.stop()
    assert {p: p.read_bytes() for p in files_under(outside)} == before, "something outside the roots changed"
    assert daemon.proc.returncode == 0


def _answer(project: Project, **command) -> tuple[str, list]:
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", **command)
        reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
    assert reply is not None, "no answer"
    return reply.name, reply.args


def _escapes(project: Project, outside: Path) -> dict[str, str]:
    """Source paths that lead out of the root (or nowhere), each made real on disk first."""
    audio = project.audio
    if not (audio / "out.wav").is_symlink():
        (audio / "out.wav").symlink_to(outside / "song.wav")
        (audio / "outdir").symlink_to(outside, target_is_directory=True)
        (audio / "loop.wav").symlink_to(audio / "loop.wav")
        (audio / "a.wav").symlink_to(audio / "b.wav")
        (audio / "b.wav").symlink_to(audio / "a.wav")
        os.mkfifo(audio / "pipe.wav")
        (audio / "folder.wav").mkdir()
    return {"system file": "/etc/passwd", "dot-dot": str(audio / ".." / ".." / "outside" / "song.wav"),
            "symlinked file": str(audio / "out.wav"), "symlinked folder": str(audio / "outdir" / "song.wav"),
            "self loop": str(audio / "loop.wav"), "two-link loop": str(audio / "a.wav"),
            "home": "~/../../etc/passwd", "relative": "audio/song.wav", "fifo": str(audio / "pipe.wav"),
            "folder": str(audio / "folder.wav"), "proc": "/proc/self/environ", "device": "/dev/zero"}


@pytest.mark.parametrize("story", ["system file", "dot-dot", "symlinked file", "symlinked folder", "self loop",
                                   "two-link loop", "home", "relative", "fifo", "folder", "proc", "device"])
def test_source_audio_is_read_only_inside_the_roots(confined, story):
    project, outside = confined
    name, args = _answer(project, source=_escapes(project, outside)[story], start=10.0, end=12.0, prompt="")
    assert name == "error", args
    assert args[2] == "source" and ("source:" in args[3] or "source audio" in args[3]), args
    assert not (project.audio / "daw-bridge").exists()


def test_a_drop_folder_leading_out_of_the_roots_is_refused(confined):
    project, outside = confined
    (project.root / "drop-out").symlink_to(outside / "folder", target_is_directory=True)
    named = {"outside": str(outside / "folder"), "symlink": str(project.root / "drop-out"),
             "dot-dot": str(project.root / ".." / "outside" / "folder"), "tilde": "~/daw-bridge-results"}
    for story, folder in named.items():
        name, args = _answer(project, source=str(project.song), start=10.0, end=12.0, prompt="", drop_folder=folder)
        assert name == "error" and args[2] == "drop_folder", (story, args)
    # Refused at once, not after the whole job at its delivery: a relative name (the daemon's working folder's,
    # which may lie in a root) and a file.
    for folder, rule in (("results", "must be an absolute path"), (str(project.song), "is not a folder")):
        name, args = _answer(project, source=str(project.song), start=10.0, end=12.0, prompt="", drop_folder=folder)
        assert name == "error" and args[2] == "drop_folder" and rule in args[3], args

    # No folder named: "daw-bridge" beside the source, which here is a link out of the project.
    beside = project.audio / "daw-bridge"
    beside.symlink_to(outside / "folder", target_is_directory=True)
    try:
        name, args = _answer(project, source=str(project.song), start=10.0, end=12.0, prompt="")
    finally:
        beside.unlink()
    assert name == "error" and args[2] == "drop_folder" and "outside" in args[3], args


def test_a_drop_folder_replaced_by_a_link_during_the_job_is_not_followed(confined):
    project, outside = confined
    beside = project.audio / "daw-bridge"
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", source=str(project.song), start=10.0, end=14.0, prompt="", num_outputs=1)
        accepted = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
        assert accepted.name == "accepted", accepted.args
        job_id = accepted.args[1]
        # Admitted with no folder there; now someone puts a link out of the project in its place.
        beside.symlink_to(outside / "folder", target_is_directory=True)
        try:
            outcome = client.wait_for(lambda r: r.name in ("done", "failed") and r.args[0] == job_id, timeout=120)
        finally:
            beside.unlink()
    assert outcome.name == "failed", outcome.args
    assert outcome.args[1] == "drop_folder_outside_roots" and "nothing was written" in outcome.args[2]


def test_file_names_made_from_the_producers_text_stay_plain_and_inside_the_drop_folder(confined):
    project, _ = confined
    hostile = project.audio / ("Mix ;rm -rf ~; `id` $HOME 'q' \"dq\" <>|*?\t\u202efdp.exe " + "\u00e9" * 80 + ".wav")
    shutil.copy(project.song, hostile)
    with BridgeClient("127.0.0.1", project.port) as client:
        outcome, _ = client.run_job("inpaint", source=str(hostile), start=10.0, end=14.0, prompt="",
                                          num_outputs=1, item_id="../../../etc/passwd", take_id="{take}\n",
                                          request_id="plain-1", timeout=120)
        assert outcome.name == "done", outcome.args
        # Text that would name a file is checked at the edge: no separators, no leading dot.
        for bad in ("../escape", "a/b", ".hidden", "x\\y"):
            client.send_raw(encode("/bridge/inpaint", [str(hostile), 10.0, 14.0, "", "request_id", bad]))
            error = client.wait_for(lambda r: r.name in ("error", "accepted"), timeout=10)
            assert error.name == "error" and error.args[2] == "request_id", (bad, error.args)
    drop = project.audio / "daw-bridge"
    wait_for_pictures(drop)
    made = sorted(p.name for p in files_under(drop))
    assert len(made) == 3 and all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in made), made  # wav, png, json
    manifest = Path(outcome.args[1])
    assert manifest.parent == drop and manifest.read_text().count("../../../etc/passwd") == 1  # copied, not used


@pytest.mark.parametrize("roots, drop, said", [
    ("[]", None, "project_roots is empty, so every job is refused"),
    (None, "/tmp/daw-bridge-elsewhere", "drop_folder /tmp/daw-bridge-elsewhere lies outside project_roots"),
])
def test_a_config_that_refuses_every_job_is_named_at_start(tmp_path, demo_song_path, roots, drop, said):
    """The daemon runs (each request is refused with the reason), and its log says why from the start."""
    project = Project(tmp_path / "project", demo_song_path)
    roots = roots or f'["{project.root}"]'
    project.config.write_text(f'osc_port = {project.port}\ninbox = "{project.inbox}"\nstate_dir = "{project.state}"\n'
                              f'project_roots = {roots}\n' + (f'drop_folder = "{drop}"\n' if drop else ""),
                              encoding="utf-8")
    daemon = DaemonProcess(project).start()
    try:
        kind, args = _answer(project, source=str(project.song), start=1.0, end=2.0, prompt="")
        assert kind == "error" and args[2] in ("source", "drop_folder"), args
    finally:
        daemon.stop()
    assert said in daemon.log.read_text()
