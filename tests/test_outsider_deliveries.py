"""What an outsider checks in each delivery from the embedded engine, through a real daemon: the file has the
source's rate, channels and a lossless subtype; its length is the manifest's frames; the manifest places it where
the range is; a full delivery is the song's length with everything outside the range bit-identical to the source;
no sample goes beyond full scale where the source had none."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge import delivery
from bridge.audio.region import probe
from bridge.client import BridgeClient
from bridge.exceptions import Cancelled, DeliveryError
from bridge.models import JobSpec, Rendered
from tests.conftest import DaemonProcess, Project
from tests.songs import real_music, write

LOSSLESS = {"PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}




@pytest.fixture(scope="module")
def hot_float_song(tmp_path_factory):
    """40 s of a real, loudly mastered song as a 96 kHz float WAV whose peak is exactly full scale."""
    import soxr

    audio, rate = real_music("music001.ogg", 40, start=10)
    audio = soxr.resample(audio, rate, 96000, quality="HQ")
    audio = audio / np.max(np.abs(audio))
    return write(tmp_path_factory.mktemp("hot") / "hot.wav", audio.astype(np.float32), 96000, subtype="FLOAT")


@pytest.fixture
def hot_project(tmp_path, hot_float_song):
    project = Project(tmp_path / "project", hot_float_song)
    daemon = DaemonProcess(project).start()
    yield project
    daemon.stop()


def _deliveries(project: Project, operation: str, **values) -> list[tuple[dict, np.ndarray, sf._SoundFileInfo]]:
    with BridgeClient("127.0.0.1", project.port) as client:
        outcome, _ = client.run_job(operation, source=str(project.song), prompt="", timeout=300, **values)
    assert outcome.name == "done", outcome.args
    found = []
    for path in sorted(project.drop.glob("*.json")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        audio_path = project.drop / manifest["audio"]
        found.append((manifest, sf.read(audio_path, dtype="float64", always_2d=True)[0], sf.info(str(audio_path))))
    assert len(found) == values["num_outputs"]
    return found


def _check_promises(project: Project, manifest: dict, audio: np.ndarray, info, position: float = 0.0) -> None:
    source = sf.info(str(project.song))
    assert (info.samplerate, info.channels) == (source.samplerate, source.channels)
    assert info.subtype in LOSSLESS and info.frames == manifest["frames"] == len(audio)
    span_start = manifest["source"]["span_start"]
    assert manifest["timeline"]["position"] == pytest.approx(position + span_start, abs=1e-9)
    assert manifest["source"]["span_end"] == pytest.approx(span_start + info.frames / info.samplerate, abs=1e-9)
    assert not np.isnan(audio).any()


def test_a_float_song_mastered_to_full_scale_comes_back_without_overs(hot_project):
    original, rate = sf.read(hot_project.song, dtype="float64", always_2d=True)
    assert np.max(np.abs(original)) <= 1.0
    for manifest, audio, info in _deliveries(hot_project, "inpaint", start=10.0, end=14.0, num_outputs=2,
                                             delivery="full"):
        _check_promises(hot_project, manifest, audio, info)
        assert info.subtype == "FLOAT" and len(audio) == len(original)
        # untouched outside the range and its handles
        first, last = int(9.0 * rate), int(15.0 * rate)
        assert np.array_equal(audio[:first], original[:first]) and np.array_equal(audio[last:], original[last:])
        peak = float(np.max(np.abs(audio)))
        assert peak <= 1.0, f"variant {manifest['variant']} peaks at {20 * np.log10(peak):+.2f} dBFS"
        # nor held at the ceiling: material turned up to match its surroundings is turned up only as far as its
        # peaks allow (clipped, as PCM is when written, it was heard as distortion)
        clipped = int(np.count_nonzero(np.abs(audio) >= 1.0))
        assert clipped <= np.count_nonzero(np.abs(original) >= 1.0), f"{clipped} samples at full scale"
        assert all(p["gain_db"] <= 0 or 10 ** (p["gain_db"] / 20) <= 1.0 / np.max(np.abs(original)) + 1e-3
                   for p in manifest["splice"]["passages"])


def test_a_drop_folder_removed_while_the_result_is_written_is_made_again_and_the_job_delivered(project):
    """The producer cleans the project while a job delivers and the drop folder goes: a delivery that begins a moment
    later makes the folder again, but one under way failed with 'No such file or directory', leaving the producer to
    retry it. Here the daemon is paused (SIGSTOP) the moment a hidden temporary of the job shows, and the folder is
    removed only if no manifest is out yet, so the removal always lands mid-delivery."""
    daemon = DaemonProcess(project).start()
    removed_mid_delivery = 0
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            for attempt in range(10):
                folder = project.root / f"results-{attempt}"
                watcher = _RemoveMidDelivery(folder, daemon.proc.pid)
                watcher.start()
                try:
                    outcome, _ = client.run_job("inpaint", source=str(project.song), start=10.0, end=14.0,
                                                prompt="", num_outputs=2, delivery="full", drop_folder=str(folder),
                                                timeout=300)
                finally:
                    watcher.stop()
                if not watcher.removed:
                    continue  # the delivery was out before a temporary was seen: nothing was tried
                removed_mid_delivery += 1
                assert outcome.name == "done", outcome.args
                for manifest in map(Path, outcome.args[1:]):
                    assert manifest.parent == folder and (folder / json.loads(manifest.read_text())["audio"]).is_file()
                if removed_mid_delivery == 2:
                    break
            assert client.ping(timeout=5)
    finally:
        daemon.stop()
    assert removed_mid_delivery, "the folder was never removed while a delivery was under way"
    assert "went away while the result was written; writing it again" in daemon.log.read_text(encoding="utf-8")


class _RemoveMidDelivery(threading.Thread):
    """Removes ``folder`` while the daemon is paused with a hidden temporary in it and no manifest out yet."""

    def __init__(self, folder: Path, pid: int):
        super().__init__(daemon=True)
        self.folder, self.pid = folder, pid
        self.removed = False
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.0005):  # not a spin: the daemon it watches needs the core
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                continue
            if not any(name.endswith(".part") for name in names):
                continue
            os.kill(self.pid, signal.SIGSTOP)
            try:
                if not any(name.endswith(".json") and not name.startswith(".") for name in os.listdir(self.folder)):
                    shutil.rmtree(self.folder)
                    self.removed = True
            finally:
                os.kill(self.pid, signal.SIGCONT)
            return

    def stop(self) -> None:
        self._halt.set()
        self.join()


def a_rendered_inpaint(tmp_path: Path, demo_song_path: Path) -> tuple[JobSpec, Path]:
    """An inpaint of 1-3 s of a copy of the demo song and its work folder, whose v1.wav is ready to deliver."""
    song = tmp_path / "song.wav"
    shutil.copy(demo_song_path, song)
    work = tmp_path / "work"
    work.mkdir()
    audio, rate = sf.read(str(song), frames=4 * 44100, dtype="float32", always_2d=True)
    sf.write(str(work / "v1.wav"), audio, rate, subtype="FLOAT")
    return JobSpec(job_id="j-20260101-000000-abcdef", operation="inpaint", source=song, source_info=probe(song),
                   backend="local", start=1.0, end=3.0, drop_folder=tmp_path / "drop"), work


def test_a_delivery_whose_folder_went_away_as_it_published_still_takes_a_cancel_before_its_retry(tmp_path,
                                                                                                 demo_song_path):
    """The folder removed at the very moment the files were renamed into place: the delivery took back what it had
    published, but its gate still counted the files as out, so a cancel before the daemon's retry was refused as
    'already delivered' with nothing in the drop folder (and the retry then published what was cancelled)."""
    spec, work = a_rendered_inpaint(tmp_path, demo_song_path)

    class FolderGoesAsItPublishes(delivery.CommitGate):
        def publish(self, staged):
            shutil.rmtree(spec.drop_folder)  # the producer cleaning the project, at the worst moment
            super().publish(staged)

    gate = FolderGoesAsItPublishes()
    with pytest.raises(DeliveryError):
        delivery.deliver(spec, [Rendered(1, work / "v1.wav", 0.0)], gate)
    assert not spec.drop_folder.exists() or not any(spec.drop_folder.iterdir())
    assert gate.close(), "a cancel now is refused as if the files were out"
    with pytest.raises(Cancelled):  # and the retry publishes nothing
        delivery.deliver(spec, [Rendered(1, work / "v1.wav", 0.0)], gate)
    assert not any(spec.drop_folder.iterdir())


def test_a_backends_figure_that_is_no_number_leaves_the_manifest_readable_by_strict_json(tmp_path, demo_song_path):
    """Python writes a NaN as a bare NaN, which no DAW script's JSON reader takes: REAPER's refused the manifest
    ("unexpected 'N'") and the result with it (an outside probe). A figure that is no number is written as null."""
    spec, work = a_rendered_inpaint(tmp_path, demo_song_path)
    splice = {"confidence": float("nan"), "joins": [{"at": 1.0, "confidence": float("inf")}]}
    [manifest_path] = [p for p in delivery.deliver(spec, [Rendered(1, work / "v1.wav", 0.0, splice)])
                       if p.suffix == ".json"]

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    manifest = json.loads(manifest_path.read_text(), parse_constant=refuse)
    assert manifest["splice"]["confidence"] is None and manifest["splice"]["joins"][0]["confidence"] is None
