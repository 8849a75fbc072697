"""A daemon killed mid-job finishes that job exactly once after a restart, and never shows a partial file."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import soundfile as sf

from bridge.client import BridgeClient
from bridge.core.journal import Journal
from tests.conftest import DaemonProcess


class DropFolderWatcher(threading.Thread):
    """Looks at the drop folder as an importer would, as often as it can, and records anything half-made."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder = folder
        self.problems: list[str] = []
        self.looks = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.looks += 1
            for path in sorted(self.folder.glob("*")) if self.folder.exists() else []:
                if path.name.startswith("."):
                    continue
                try:
                    if path.suffix == ".json":
                        manifest = json.loads(path.read_text())
                        audio = path.parent / manifest["audio"]
                        if sf.info(str(audio)).frames != manifest["frames"]:
                            self.problems.append(f"{audio.name}: frames differ from its manifest")
                        if manifest["picture"] and not _whole_png(path.parent / manifest["picture"]):
                            self.problems.append(f"{manifest['picture']}: not a whole PNG under its manifest")
                    elif path.suffix == ".wav":
                        sf.info(str(path))
                    elif path.suffix == ".png":
                        if not _whole_png(path):
                            self.problems.append(f"{path.name}: visible before it was whole")
                    else:
                        self.problems.append(f"unexpected file {path.name}")
                except FileNotFoundError:
                    pass  # removed between listing and reading (rollback of a failed delivery)
                except Exception as exc:
                    self.problems.append(f"{path.name}: {exc}")

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _whole_png(path: Path) -> bool:
    """The PNG signature at the start and the IEND chunk at the end: no half-written picture."""
    data = path.read_bytes()
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")


def test_sigkill_mid_job_then_restart_delivers_that_job_exactly_once(project):
    watcher = DropFolderWatcher(project.drop)
    watcher.start()
    first = DaemonProcess(project).start()
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", source=str(project.song), start=10.0, end=15.0, prompt="", request_id="crash-1")
        generating = client.wait_for(lambda r: r.name == "state" and r.args[1] == "generating", timeout=60)
        assert generating is not None
    first.kill()
    assert project.visible_drop_files() == []

    second = DaemonProcess(project).start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(project.visible_drop_files()) < 6:
            time.sleep(0.1)
        time.sleep(0.5)  # anything extra would show up now
    finally:
        second.stop()
        watcher.stop()

    files = project.visible_drop_files()
    assert sorted(p.suffix for p in files) == [".json", ".json", ".png", ".png", ".wav", ".wav"], files
    journal = Journal(project.state / "journal.sqlite")
    jobs = journal.recent()
    journal.close()
    assert [(j.request_id, j.state.value) for j in jobs] == [("crash-1", "delivered")]
    assert watcher.problems == [] and watcher.looks > 10
