"""A plugin's capture is a source like any other: real capture folders, a real daemon, real OSC."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import osc_schema
from bridge.captures import export_job_source
from bridge.client import BridgeClient
from bridge.config import load
from bridge.core.admission import admit
from bridge.exceptions import SourceError
from bridge.frontends.osc_wire import encode
from tests.conftest import DaemonProcess, Project

RATE = 44100
INSTANCE = f"{os.getpid()}-1"  # this process stands in for the host: it runs, so the instance is live


def write_capture(folder: Path, song: np.ndarray) -> np.ndarray:
    """A capture as the plugin writes it: 0-30 s played, a gap, 40-50 s, then 10-20 s again (a newer take, quieter).
    Returns the timeline as the capture holds it (newest take wins), zero where nothing was played."""
    folder.mkdir(parents=True)
    takes = [(0.0, song[:30 * RATE]), (40.0, song[:10 * RATE]), (10.0, 0.8 * song[10 * RATE:20 * RATE])]
    timeline = np.zeros((50 * RATE, 2), dtype=np.float32)
    spans = []
    for number, (start, audio) in enumerate(takes, 1):
        name = f"span-{number:06d}.wav"
        sf.write(str(folder / name), audio.astype(np.float32), RATE, subtype="FLOAT")
        first = int(start * RATE)
        timeline[first:first + len(audio)] = audio
        spans.append({"file": name, "sample_rate": RATE, "timeline_start_frame": first, "frames": len(audio)})
    index = {"format": "daw-bridge.capture/1", "instance": folder.name, "plugin_format": "LV2", "channels": 2,
             "sample_format": "float32", "spans": spans, "dropped_blocks": 0, "requests": []}
    (folder / "index.json").write_text(json.dumps(index, indent=2))
    return timeline


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def captured(tmp_path_factory, demo_song_path):
    project = Project(tmp_path_factory.mktemp("captures") / "project", demo_song_path)
    captures = project.root / "captures"
    song, _ = sf.read(str(project.song), dtype="float32", always_2d=True)
    timeline = write_capture(captures / INSTANCE, song)
    project.write_config(f'captures_dir = "{captures}"\n')
    before = digest(captures / INSTANCE)
    process = DaemonProcess(project).start()
    yield project, timeline
    process.stop()
    assert digest(captures / INSTANCE) == before, "the capture was modified"


def send(project: Project, address: str, args: list, want=("error",), timeout: float = 10.0):
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send_raw(encode(address, args))
        return client.wait_for(lambda r: r.name in want, timeout)


def test_an_inpaint_of_a_capture_delivers_at_its_timeline_position_from_the_newest_take(captured):
    project, timeline = captured
    with BridgeClient("127.0.0.1", project.port) as client:
        outcome, replies = client.run_job("inpaint", capture=INSTANCE, start=12.0, end=16.0, prompt="",
                                          num_outputs=1, request_id="cap-1", timeout=300)
    assert outcome.name == "done", outcome.args
    manifest = json.loads(Path(outcome.args[1]).read_text())
    assert manifest["ids"] == {"capture": INSTANCE}
    position = manifest["timeline"]["position"]
    assert manifest["source"]["position"] == pytest.approx(0.0)  # the export starts where the played stretch does
    assert position == pytest.approx(manifest["source"]["span_start"]) and position <= 12.0
    assert position + manifest["timeline"]["length"] >= 16.0
    audio, rate = sf.read(str(Path(outcome.args[1]).parent / manifest["audio"]), dtype="float32", always_2d=True)
    assert rate == RATE
    first = int(round(position * RATE))
    expected = timeline[first:first + len(audio)]
    # outside the joins the delivered audio is the captured audio (the newer, quieter take at 10-20 s)
    edge = int(0.3 * RATE)
    np.testing.assert_array_equal(audio[:edge], expected[:edge])
    np.testing.assert_array_equal(audio[-edge:], expected[-edge:])
    # the exported source goes with the job's work folder once the job is delivered (after its pictures are drawn)
    work, deadline = project.state / "work" / outcome.args[0], time.monotonic() + 30
    while work.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not work.exists()


def test_the_export_is_written_at_the_jobs_export_step_and_again_when_its_work_folder_is_gone(captured):
    """Admission only checks and plans (on the daemon's loop); the export step writes the file (in a thread)."""
    project, timeline = captured
    config = load(project.config)
    command = osc_schema.parse_osc("/bridge/inpaint", [None, 12.0, 16.0, "", "capture", INSTANCE])
    spec = admit(command, config, {"local"})
    assert not spec.source.exists()  # nothing written at admission
    assert export_job_source(config, spec) == spec.source
    audio, rate = sf.read(str(spec.source), dtype="float32", always_2d=True)
    first = round(spec.position * rate)
    np.testing.assert_array_equal(audio, timeline[first:first + len(audio)])
    shutil.rmtree(spec.source.parent)  # the work folder cleaned away (retention, a retry after a failure)
    export_job_source(config, spec)
    np.testing.assert_array_equal(sf.read(str(spec.source), dtype="float32", always_2d=True)[0], audio)
    shutil.rmtree(spec.source.parent)

    gone = replace(spec, ids={"capture": "999-9"})  # the capture deleted meanwhile: the job fails in one line
    with pytest.raises(SourceError, match="capture: '999-9' is not a capture in"):
        export_job_source(config, gone)


@pytest.mark.parametrize("start,end,reason", [
    (32.0, 36.0, "play 31.0–37.0 s once more; the capture has none of it (0.0–30.0, 40.0–50.0 s)"),
    (27.0, 33.0, "play 30.0–34.0 s once more; the capture has 26.0–30.0 s of it"),
    (1.0, 48.0, "play 30.0–40.0 s once more; the capture has 0.0–30.0, 40.0–49.0 s of it"),
])
def test_a_range_not_played_yet_is_refused_naming_the_span_to_play(captured, start, end, reason):
    project, _ = captured
    reply = send(project, "/bridge/inpaint", [None, start, end, "", "capture", INSTANCE])
    assert reply is not None and reply.name == "error"
    assert reply.args[2] == "capture"
    assert reply.args[3] == (f"capture: '{INSTANCE}' has not played all of {start - 1:.1f}–{end + 1:.1f} s (the "
                             f"range and its context) yet: {reason}")


def test_source_and_capture_together_are_refused_in_one_line(captured):
    project, _ = captured
    reply = send(project, "/bridge/inpaint", [str(project.song), 1.0, 2.0, "", "capture", INSTANCE])
    assert reply.name == "error" and reply.args[2] == "capture"
    assert reply.args[3] == (f"capture: '{INSTANCE}' cannot be given with source: name the audio by one of them "
                             "(send source as nil)")
    reply = send(project, "/bridge/extend", [None, 5.0])
    assert reply.args[2] == "source"
    assert reply.args[3] == "source: missing (required by /bridge/extend, or capture instead)"


def test_an_unknown_or_escaping_capture_is_refused(captured):
    project, _ = captured
    for name, words in (("999-9", "is not a capture in"), ("..", "must not start with '.'"),
                        ("a/b", "must not contain / or \\")):
        reply = send(project, "/bridge/inpaint", [None, 1.0, 2.0, "", "capture", name])
        assert reply.args[2] == "capture" and words in reply.args[3], reply.args


def test_the_live_plugin_instances_are_listed(captured):
    project, _ = captured
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("plugins")
        replies = []
        end = client.wait_for(lambda r: replies.append(r) or r.name == "plugins_listed", 10)
    assert end is not None and end.args == [1]
    plugin = [r for r in replies if r.name == "plugin"]
    assert len(plugin) == 1
    capture, label, pid, plugin_format, age, played = plugin[0].args
    assert (capture, label, pid, plugin_format) == (INSTANCE, "", os.getpid(), "LV2")
    assert 0 <= age < 600 and played == "0.000–30.000, 40.000–50.000 s"


def test_a_captures_folder_outside_the_project_roots_is_refused(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    outside = tmp_path / "elsewhere" / "captures"
    song, _ = sf.read(str(project.song), dtype="float32", always_2d=True)
    write_capture(outside / INSTANCE, song)
    project.write_config(f'captures_dir = "{outside}"\n')
    process = DaemonProcess(project).start()
    try:
        reply = send(project, "/bridge/inpaint", [None, 12.0, 16.0, "", "capture", INSTANCE])
        assert reply.args[2] == "capture"
        assert f"the captures folder {outside} is outside the configured project roots" in reply.args[3]
        reply = send(project, "/bridge/plugins", [], want=("error", "plugin", "plugins_listed"))
        assert reply.name == "error" and "outside the configured project roots" in reply.args[3]
    finally:
        process.stop()
    # said at start too, not only when the first request is refused
    assert f"captures_dir {outside} lies outside project_roots ({project.root})" in process.log.read_text()
    work = project.state / "work"
    assert not work.exists() or not any(work.iterdir()), "a refused capture left an export behind"
