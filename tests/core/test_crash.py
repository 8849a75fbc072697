"""A daemon killed mid-job finishes that job exactly once after a restart, and never shows a partial file."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from bridge.client import BridgeClient
from bridge.core.journal import Journal
from bridge.delivery import stem_for
from bridge.models import JobRecord, State
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


def test_a_restart_removes_the_half_files_deliveries_killed_mid_write_left_and_nothing_else(project, tmp_path):
    """A kill -9 while a delivery (or a decision) wrote left its hidden ``.part`` file in the drop folder; only a
    delivery of that same job again removed it, so one of a job never delivered again (cancelled, or gone with a
    journal moved away) stayed for good. A start now removes those, in every drop folder the daemon knows, and
    leaves alone what is not ours: the DAW scripts' own temporaries, look-alikes, links, and the temporaries of a
    one-shot command's job that may be being delivered right now."""
    mix = project.root / "mix"  # a folder the command names: only the journal knows it
    mix.mkdir()
    first = DaemonProcess(project).start()
    with BridgeClient("127.0.0.1", project.port) as client:
        outcome, _ = client.run_job("inpaint", source=str(project.song), start=10.0, end=14.0, prompt="",
                                    num_outputs=1, drop_folder=str(mix), timeout=300)
    assert outcome.name == "done", outcome
    job, stem = outcome.args[0], Path(outcome.args[1]).stem
    first.kill()

    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")
    lost = "song_inpaint_4.00-8.00_v1_c0ffee"  # a job of a journal that was moved away
    ours = [mix / f".{stem}.0123abcd.part", mix / "Kept" / f".{stem}.89abcdef.part",
            mix / ".daw-bridge-decisions" / f".{job}.4567cdef.part", project.drop / f".{lost}.deadbeef.part"]
    not_ours = [mix / f".{stem}.17646153351234.part",  # REAPER's companion names its temporaries so
                mix / f"{stem}.json.part",  # ...and Ardour's scripts so
                mix / f".{stem}.0123ABCD.part", mix / f".{stem}.0123abcd.part.bak", mix / f".{stem}.0123abc.part",
                mix / ".my song_inpaint_4.00-8.00_v1_c0ffee.0123abcd.part", mix / ".notes.0123abcd.part",
                mix / ".daw-bridge-decisions" / f".{stem}.0123abcd.part", project.drop / f".{job}.0123abcd.part"]
    for path in ours + not_ours:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"RIFF\x00\x00")  # half a WAV
    link = mix / f".{stem}.feedf00d.part"
    link.symlink_to(outside)
    folder_like_ours = mix / f".{stem}.aaaabbbb.part"
    folder_like_ours.mkdir()
    # a one-shot command's job, journaled as delivering in its own journal: its temporary may be being written
    busy = "j-20260101-000000-b0b0b0"
    journal = Journal(project.state / "journal.sqlite")
    spec = journal.get(job).spec
    journal.close()
    one_shot = Journal(project.state / "one-shot-journal.sqlite")
    record = JobRecord(job_id=busy, request_id="", origin={"kind": "cli"}, spec=replace(spec, job_id=busy),
                       state=State.DELIVERING)
    one_shot.insert(record)
    one_shot.close()
    being_written = mix / f".{stem_for(record.spec, 1)}.0f0f0f0f.part"
    being_written.write_bytes(b"RIFF")

    second = DaemonProcess(project).start()
    try:  # the clean-up runs in the background, once the daemon is up: its log line says when it is done
        deadline = time.monotonic() + 60
        while "temporary file(s)" not in second.log.read_text(encoding="utf-8") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        second.stop()
    assert "removed 4 hidden temporary file(s)" in second.log.read_text(encoding="utf-8")
    assert [path for path in ours if path.exists()] == []
    assert [path for path in not_ours if not path.is_file()] == []
    assert link.is_symlink() and outside.read_bytes() == b"RIFF" and folder_like_ours.is_dir()
    assert being_written.exists()
    assert (mix / f"{stem}.wav").exists() and (mix / f"{stem}.json").exists()  # the delivery itself stays
