"""Hostile request files: each is moved aside with its reason, none stops the inbox, nothing leaves the roots.
(A folder named like a request is answered with its reason too, but left where it is: it may hold a producer's files.)

Some are in the inbox before the daemon starts (its start-up scan must survive them), the rest arrive while it
runs. At the end a good request is still delivered, and the folder outside the project is as it was.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.adversarial.support import Daemon, files_under
from tests.conftest import Project
from tests.frontends.test_inbox import drop_request, wait_for_status

MAX_REQUEST = 1 << 20


def _request(song: Path, **extra) -> dict:
    return {"command": "extend", "source": str(song), "extend_after": 20.0, "duration": 4.0, "num_outputs": 1,
            **extra}


def _hostile_contents(song: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (file content, what its error must mention)."""
    good = json.dumps(_request(song))
    texts = {
        "truncated": ('{"command": "inpaint", "source": "/x.wav", "sta', "not valid JSON"),
        "trailing-comma": ('{"command": "extend",}', "not valid JSON"),
        "single-quotes": ("{'command': 'extend'}", "not valid JSON"),
        "nan": (json.dumps(_request(song, extend_after=float("nan"))), "extend_after"),
        "infinity": (good.replace("20.0", "Infinity"), "extend_after"),
        "array": (f"[{good}]", "JSON object"),
        "null": ("null", "JSON object"),
        "number": ("42", "JSON object"),
        "string": ('"inpaint"', "JSON object"),
        "duplicate-key": ('{"command": "extend", "command": "inpaint"}', "given twice"),
        "deep-array": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        "deep-object": ('{"a":' * 50_000 + "1" + "}" * 50_000, "not valid JSON"),
        "huge-number": (good.replace("20.0", "1" + "0" * 5000), "not valid JSON"),
        "nul-byte": ('{"command": "extend"\x00}', "not valid JSON"),
        "control-char": ('{"command": "ext\x01end"}', "not valid JSON"),
        "lone-surrogate": (good.replace("extend_after", "prompt\": \"\\ud800\", \"extend_after"), "surrogate"),
        "many-keys": (json.dumps({"command": "extend", **{f"k{i}": i for i in range(20_000)}}), "unknown argument"),
        "not-a-request-command": ('{"command": "ping"}', "not available in request files"),
        "cancel-by-file": ('{"command": "cancel", "job_id": "j-1"}', "not available in request files"),
        "wrong-types": ('{"command": "inpaint", "source": 5, "start": "a", "end": [], "prompt": null}', "source"),
        "missing-fields": ('{"command": "inpaint"}', "missing"),
        "request-id-traversal": (json.dumps(_request(song, request_id="../../escape")), "request_id"),
        "request-id-hidden": (json.dumps(_request(song, request_id=".hidden")), "request_id"),
        "whitespace-only": (" \n\t\r\n ", "empty"),
        "empty": ("", "empty"),
    }
    contents = {name: (text.encode("utf-8", "surrogatepass"), why) for name, (text, why) in texts.items()}
    contents["bom-utf16"] = (good.encode("utf-16"), "not UTF-8")
    contents["latin1"] = (b'{"command": "extend", "prompt": "caf\xe9"}', "not UTF-8")
    contents["random-binary"] = (bytes(range(256)) * 64, "not UTF-8")
    contents["huge"] = (json.dumps(_request(song, prompt="p" * (2 * MAX_REQUEST))).encode(), "at most")
    contents["just-over"] = (b" " * (MAX_REQUEST - len(good) + 1) + good.encode(), "at most")
    return contents


def _outside_roots(project: Project, outside: Path) -> dict[str, tuple[dict, str]]:
    """Requests whose paths lead out of the project root (every one of them names an existing file)."""
    escape_song = outside / "song.wav"
    link_song = project.audio / "link-out.wav"
    link_song.symlink_to(escape_song)
    link_drop = project.root / "link-drop"
    link_drop.symlink_to(outside, target_is_directory=True)
    loop = project.audio / "loop.wav"
    loop.symlink_to(loop)
    return {
        "source-etc": (_request(Path("/etc/passwd")), "outside the configured project roots"),
        "source-dotdot": (_request(project.audio / ".." / ".." / outside.name / "song.wav"), "outside"),
        "source-symlink-out": (_request(link_song), "outside"),
        "source-symlink-loop": (_request(loop), "cannot be resolved"),
        "drop-folder-out": (_request(project.song, drop_folder=str(outside)), "outside"),
        "drop-folder-symlink-out": (_request(project.song, drop_folder=str(link_drop)), "outside"),
        "drop-folder-dotdot": (_request(project.song, drop_folder=str(project.root / ".." / outside.name)),
                               "outside"),
    }


@pytest.fixture(scope="module")
def inbox_project(tmp_path_factory, demo_song_path):
    base = tmp_path_factory.mktemp("inbox-fuzz")
    project = Project(base / "project", demo_song_path)
    outside = base / "outside"
    outside.mkdir()
    (outside / "song.wav").write_bytes(project.song.read_bytes())
    (outside / "secret.txt").write_text("not for the daemon\n")
    (outside / "request.json").write_text(json.dumps(_request(project.song)))
    return project, outside


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in files_under(folder)}


def _wait_for_error_files(rejected: Path, names: list[str], timeout: float = 60) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    found: dict[str, dict] = {}
    while time.monotonic() < deadline and len(found) < len(names):
        for name in names:
            path = rejected / f"{name}.error.json"
            if name not in found and path.exists():
                found[name] = json.loads(path.read_text())
        time.sleep(0.05)
    missing = sorted(set(names) - set(found))
    assert not missing, f"no error file for {missing}"
    return found


def test_hostile_request_files_are_each_moved_aside_with_their_reason(inbox_project, figures):
    project, outside = inbox_project
    inbox = project.inbox
    inbox.mkdir(parents=True)
    before_outside = _snapshot(outside)

    # Waiting before the daemon starts: its first scan meets them.
    early = {"early-directory": "is a folder", "early-fifo": "not a regular file", "early-broken": "not valid JSON"}
    (inbox / "early-directory.json").mkdir()
    (inbox / "early-directory.json" / "inside.json").write_text("{")
    os.mkfifo(inbox / "early-fifo.json")
    (inbox / "early-broken.json").write_text("{")
    (inbox / "early-loop.json").write_text(json.dumps(_request(project.audio / "early-loop.wav")))
    (project.audio / "early-loop.wav").symlink_to(project.audio / "early-loop.wav")
    early["early-loop"] = "cannot be resolved"
    with open(inbox / "early-sparse.json", "wb") as sparse:  # ten gigabytes that take no room: never read
        sparse.truncate(10 << 30)
    early["early-sparse"] = "at most"

    daemon = Daemon(project).start()
    try:
        expected = dict(early)
        for name, (content, why) in _hostile_contents(project.song).items():
            drop_request(inbox, name, content)
            expected[name] = why
        for name, (request, why) in _outside_roots(project, outside).items():
            drop_request(inbox, name, request)
            expected[name] = why
        os.mkfifo(inbox / ".late-fifo.part")
        os.rename(inbox / ".late-fifo.part", inbox / "late-fifo.json")
        expected["late-fifo"] = "not a regular file"
        (inbox / "late-directory.json").mkdir()
        expected["late-directory"] = "is a folder"

        links = {"link-to-request": outside / "request.json", "link-to-secret": outside / "secret.txt",
                 "link-dangling": outside / "nothing.json", "link-to-root": Path("/")}
        for name, target in links.items():
            (inbox / f"{name}.json").symlink_to(target)
            expected[name] = "symbolic link"

        odd_names = {"x" * 240: "not valid JSON", "new\nline": "not valid JSON"}
        for name in odd_names:
            drop_request(inbox, name, "{")
        expected.update(odd_names)
        os.rename(_bytes_file(inbox, b".odd.part", b"{"), os.path.join(os.fsencode(inbox), b"\xff\xfe-name.json"))
        expected[os.fsdecode(b"\xff\xfe-name")] = "not valid JSON"

        vanished = 0
        for n in range(100):  # withdrawn by the client as soon as they appear
            path = drop_request(inbox, f"vanishing-{n}", _request(project.song))
            try:
                path.unlink()
                vanished += 1
            except FileNotFoundError:
                pass  # the daemon claimed it first: it runs as a job, which is fine

        errors = _wait_for_error_files(inbox / "rejected", list(expected))
        drop_request(inbox, "good", _request(project.song, request_id="good"))
        good = wait_for_status(inbox, "good", timeout=120)
        assert daemon.alive()
    finally:
        daemon.stop()

    problems = []
    for name, why in expected.items():
        error = errors[name]
        if why not in error["message"] and why != error["field"]:
            problems.append(f"{name!r}: {error}")
        if not error["message"] or not error["code"]:
            problems.append(f"{name!r}: error without reason {error}")
    assert not problems, "\n".join(problems)
    assert good["state"] == "delivered", good
    # Moved aside, each one but the folders: nothing but ignored names stays in the inbox, nothing is half-claimed.
    folders = ["early-directory.json", "late-directory.json"]
    assert sorted(p.name for p in inbox.iterdir() if p.name.endswith(".json")) == folders
    assert (inbox / "early-directory.json" / "inside.json").read_text() == "{", "a folder's content was touched"
    assert list((inbox / "processing").iterdir()) == []
    for name in expected:
        target = inbox / "rejected" / f"{name}.json"
        assert os.path.lexists(target) or name in links or f"{name}.json" in folders, f"{name!r} not moved aside"
    assert _snapshot(outside) == before_outside, "something outside the project root changed"
    allowed = (project.audio, project.drop)
    stray = [p for p in files_under(project.root)
             if p.suffix == ".wav" and p.parent not in allowed and project.state not in p.parents]
    assert stray == [], "audio was written outside the drop folder"

    figures["request files"] = {
        "hostile files survived": len(expected), "rejected with a reason": len(errors),
        "withdrawn before the daemon read them": vanished, "good request afterwards": good["state"]}


def _bytes_file(folder: Path, name: bytes, content: bytes) -> bytes:
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as out:
        out.write(content)
    return path
