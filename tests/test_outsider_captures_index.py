"""A capture's index.json is the plugin's, read by the daemon: whatever it holds, a malformed, huge, linked or piped
index is refused in one line naming the capture (never an internal error, never a wait), and one bad instance never
hides the others from /bridge/plugins. Capture folders written by hand as the plugin writes them; the daemon's own
paths (admission, the job's export step, the instance listing and its OSC replies, the bars transport)."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import osc_schema
from bridge.captures import export_job_source, live_plugins, live_transports
from bridge.client import BridgeClient
from bridge.config import Config
from bridge.core.admission import admit
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.exceptions import SourceError
from bridge.frontends.daw_feedback import bars_transport
from bridge.frontends.osc import OscFrontend
from bridge.frontends.osc_wire import encode
from osc_schema import ValidationError
from tests.captures.test_plugin_prompts import MAPPING
from tests.conftest import free_udp_port
from tests.frontends.test_midi import HeldBackend

RATE = 8000  # small span files; the lowest rate a capture may have
SECONDS = 20
GOOD = f"{os.getpid()}-lv2-1"  # this process stands in for the host: it runs, so the instance is live
BAD = f"{os.getpid()}-lv2-2"


def write_instance(captures: Path, name: str, index: dict | None = None, span: dict | None = None,
                   raw: dict[str, str] | None = None) -> Path:
    """A capture folder as the plugin writes it (one 20 s stereo span at 0 s, this process's pid), with ``index``
    and ``span`` overriding its index's fields and ``raw`` replacing quoted placeholders by JSON text (1e400)."""
    folder = captures / name
    folder.mkdir(parents=True)
    audio = np.random.default_rng(1).uniform(-0.1, 0.1, (SECONDS * RATE, 2)).astype(np.float32)
    sf.write(str(folder / "span-000001.wav"), audio, RATE, subtype="FLOAT")
    entry = {"file": "span-000001.wav", "sample_rate": RATE, "timeline_start_frame": 0, "frames": len(audio),
             **(span or {})}
    data = {"format": "daw-bridge.capture/1", "instance": name, "plugin_format": "LV2", "channels": 2,
            "sample_format": "float32", "spans": [entry], "dropped_blocks": 0, "requests": [], "reply_port": 0,
            **(index or {})}
    text = json.dumps(data, indent=2)  # float("inf") is written Infinity, as a JSON reader takes it
    for placeholder, value in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), value)
    (folder / "index.json").write_text(text)
    return folder


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(state_dir=tmp_path / "state", project_roots=(tmp_path,), captures_dir=tmp_path / "captures",
                  backend="local", osc_port=free_udp_port())


def inpaint(config: Config, name: str, start: float = 8.0, end: float = 12.0, request_id: str = ""):
    command = osc_schema.parse_osc("/bridge/inpaint", [None, start, end, "", "capture", name,
                                                       "request_id", request_id])
    return admit(command, config, {"local"})


def one_line_refusal(call, *args, **kwargs) -> str:
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    reason = str(caught.value)
    assert "\n" not in reason
    return reason


MALFORMED = [
    ("frames Infinity", {}, {"frames": float("inf")}, None, "malformed span"),
    ("start Infinity", {}, {"timeline_start_frame": float("inf")}, None, "malformed span"),
    ("sample rate 1e400", {}, {"sample_rate": "RATE"}, {"RATE": "1e400"}, "malformed span"),
    ("start 10**400", {}, {"timeline_start_frame": "START"}, {"START": "1" + "0" * 400}, "malformed span"),
    ("spans a number", {"spans": 5}, {}, None, "malformed span list"),
    ("channels text", {"channels": "abc"}, {}, None, "malformed channel count"),
    ("channels a list", {"channels": [1]}, {}, None, "malformed channel count"),
    ("channels negative", {"channels": -1}, {}, None, "malformed channel count"),
    ("channels 100000", {"channels": 100000}, {}, None, "malformed channel count"),
    ("rate 1e9, frames 1e12", {}, {"sample_rate": 1e9, "frames": 1e12}, None, "malformed span"),
]


@pytest.mark.parametrize("index, span, raw, reason", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_index_is_refused_at_admission_in_one_line_and_the_other_instances_are_still_listed(
        config, index, span, raw, reason):
    write_instance(config.captures_dir, GOOD)
    write_instance(config.captures_dir, BAD, index, span, raw)
    assert one_line_refusal(inpaint, config, BAD).startswith(f"capture: '{BAD}' has a {reason}")
    listed = {item["capture"]: item for item in live_plugins(config)}
    assert listed[GOOD]["played"] == "0.000–20.000 s"
    assert inpaint(config, GOOD).source_info.channels == 2  # the good instance still takes jobs


def test_an_export_larger_than_the_span_files_hold_is_refused_before_it_is_allocated(config):
    """An index claiming 10**12 frames admits a range its span file does not hold: the export step refuses it in
    one line (it used to size the whole range in memory first: 3 TB, a MemoryError, an internal error)."""
    write_instance(config.captures_dir, BAD, span={"frames": 10 ** 12})
    spec = inpaint(config, BAD, start=1.0, end=10_000_000.0)
    with pytest.raises(SourceError, match=rf"^capture: '{BAD}' span span-000001\.wav is shorter than its index says"):
        export_job_source(config, spec)
    assert not spec.source.exists()


def test_a_span_file_that_is_a_pipe_fails_the_export_in_one_line_without_waiting(config):
    folder = write_instance(config.captures_dir, GOOD)
    spec = inpaint(config, GOOD)
    fifo = folder / "span-000001.wav"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        with pytest.raises(SourceError, match=rf"^capture: '{GOOD}' span span-000001\.wav cannot be read \(.*is not a "
                                              r"regular file \(a pipe or a device\)\)$"):
            _within(5, export_job_source, config, spec)
    finally:
        _unblock(fifo)
    assert not spec.source.exists()


@pytest.mark.parametrize("folder, index", [("4294967296-1", {}), (f"{os.getpid()}-lv2-3", {"pid": 10 ** 20}),
                                           (f"{os.getpid()}-lv2-4", {"pid": -5}),
                                           ("99999999999999999999999999-1", {"instance": None})])
def test_a_pid_no_process_can_have_is_an_instance_whose_process_ended(config, folder, index):
    write_instance(config.captures_dir, GOOD)
    write_instance(config.captures_dir, folder, {"transport": {
        "playing": True, "position": 3.0, "tempo": 120.0, "beats_per_bar": 4, "observed": time.time(),
        "heard": [[0.0, 3.0, 120.0, 4]]}, **index})
    listed = {item["capture"]: item["pid"] for item in live_plugins(config)}
    assert listed == {GOOD: os.getpid(), folder: 0}  # changed just now: listed, as any instance is; no pid known
    for capture, pid in listed.items():  # each one goes out as a /bridge/plugin reply: its pid an OSC int32
        encode(*osc_schema.reply("plugin", capture=capture, label="", pid=pid, plugin_format="", age=0.0, played=""))
    assert folder not in live_transports(config)  # not live: its transport is not a play cursor
    later = time.time() + 3600  # its index unchanged for an hour: not listed (its pid names no running process)
    assert [item["capture"] for item in live_plugins(config, later)] == [GOOD]
    transport, selection = bars_transport(config, {}, None)
    assert selection == {} and transport is None  # GOOD reports no transport, the other is not live


def _unblock(fifo: Path) -> None:
    """Let a reader stuck on ``fifo`` go (it reads an empty file) so no thread is left waiting."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as exc:
        assert exc.errno == errno.ENXIO  # nobody reading it


def _within(seconds: float, call, *args):
    """call(*args) in a thread; its result (or exception), or TimeoutError when it waits longer than ``seconds``."""
    box: dict = {}

    def run():
        try:
            box["value"] = call(*args)
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"{call.__name__} still waits after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_a_pipe_for_an_index_is_refused_and_passed_over_without_waiting(config):
    write_instance(config.captures_dir, GOOD)
    fifo = write_instance(config.captures_dir, BAD) / "index.json"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        assert [item["capture"] for item in _within(5, live_plugins, config)] == [GOOD]
        with pytest.raises(ValidationError) as caught:
            _within(5, inpaint, config, BAD)
        assert str(caught.value) == (f"capture: '{BAD}' has an index.json that is not a regular file (a pipe, a "
                                     "device or a folder): refused")
    finally:
        _unblock(fifo)
        _unblock(fifo)


def test_an_index_that_is_a_link_out_of_the_captures_folder_is_not_read(config, tmp_path):
    write_instance(config.captures_dir, GOOD)
    folder = write_instance(config.captures_dir, BAD, {"name": "secret-elsewhere"})
    outside = tmp_path / "elsewhere.json"
    (folder / "index.json").rename(outside)
    (folder / "index.json").symlink_to(outside)
    assert [item["label"] for item in live_plugins(config)] == [""]  # GOOD only; the linked file's name not shown
    assert one_line_refusal(inpaint, config, BAD) == (f"capture: '{BAD}' has an index.json that is a symbolic link "
                                                      "(the plugin writes a file): refused, not followed")


@pytest.mark.parametrize("heard", [[[0.0, math.nan, 120.0, 4]], [[0.0, 8.0, math.nan, 4], [8.0, 12.9, 120.0, 4]],
                                   [[0.0, 8.0, 100.0, math.inf]]])
def test_a_non_finite_number_in_what_the_plugin_heard_is_a_malformed_transport(config, heard):
    transport = {"playing": True, "position": 13.0, "tempo": 120.0, "beats_per_bar": 4, "observed": time.time(),
                 "heard": heard}
    write_instance(config.captures_dir, GOOD, {"transport": transport})
    assert one_line_refusal(bars_transport, config, {"capture": GOOD}, None).startswith(
        f"capture: '{GOOD}' has a malformed transport in its index: ")
    assert live_transports(config) == {}  # not a play cursor for a press that names no capture either


@pytest.mark.parametrize("mapping, reason", [
    (False, "names a preset, but the daemon has none"),
    (True, "is not one of the daemon's presets (1 guitar, 2 keys)")])
@pytest.mark.parametrize("preset", [-1, -2, 3])
def test_a_preset_number_out_of_range_is_refused_in_one_line(config, tmp_path, mapping, reason, preset):
    if mapping:
        (tmp_path / "pads.toml").write_text(MAPPING)
        config = Config(**{**config.__dict__, "midi": {"mapping": str(tmp_path / "pads.toml")}})
    write_instance(config.captures_dir, GOOD, {"requests": [
        {"operation": "inpaint", "start": 8.0, "end": 12.0, "request_id": "r-1", "preset": preset}]})
    assert one_line_refusal(inpaint, config, GOOD, request_id="r-1").startswith(f"preset: {preset} {reason}")


def test_bridge_plugins_lists_the_good_instances_whatever_the_bad_ones_hold(config):
    """The listing over real UDP, from an in-process daemon: every bad kind of instance at once, and the good one."""
    write_instance(config.captures_dir, GOOD)
    for n, (_, index, span, raw, _) in enumerate(MALFORMED, 10):
        write_instance(config.captures_dir, f"{os.getpid()}-lv2-{n}", index, span, raw)
    write_instance(config.captures_dir, "4294967296-1")
    write_instance(config.captures_dir, f"{os.getpid()}-lv2-3", {"pid": 10 ** 20})
    os.mkfifo(write_instance(config.captures_dir, f"{os.getpid()}-lv2-4").joinpath("index.json.fifo"))
    piped = config.captures_dir / f"{os.getpid()}-lv2-4" / "index.json"
    piped.unlink()
    piped.parent.joinpath("index.json.fifo").rename(piped)

    async def story():
        journal = Journal(config.journal_path)
        service = JobService(config, journal, {"local": HeldBackend("local")})
        osc = OscFrontend(service, config)
        try:
            await osc.start()
            with BridgeClient("127.0.0.1", config.osc_port) as client:
                client.send("plugins")
                replies = []
                while (reply := await asyncio.to_thread(client.wait_for, lambda r: True, 10)) is not None:
                    replies.append(reply)
                    if reply.name in ("plugins_listed", "error"):
                        break
            return replies
        finally:
            _unblock(piped)  # a reader still waiting on it (there should be none) lets go
            osc.close()
            await service.close()
            journal.close()

    replies = asyncio.run(story())
    assert replies and replies[-1].name == "plugins_listed", replies
    listed = {r.args[0]: r.args for r in replies if r.name == "plugin"}
    assert replies[-1].args[0] == len(listed) == len(MALFORMED) + 3  # the piped one passed over
    assert listed[GOOD][1:3] == ["", os.getpid()] and listed[GOOD][-1] == "0.000–20.000 s"
    assert listed["4294967296-1"][2] == 0 and listed[f"{os.getpid()}-lv2-3"][2] == 0
