"""The plugin host's transport in a capture index, as the daemon reads it and counts bars from it.

Indexes are written as the plugin writes them (``transport`` beside the spans) into a real captures folder; the
plugin's own writing of them, under jalv and DawDreamer, is in tests/plugin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bridge.captures import HostTransport, host_transport, live_transports
from bridge.commands.midi import context_lines
from bridge.config import Config
from bridge.frontends.bars import Transport, bar_range
from bridge.frontends.daw_feedback import CONTEXT_FILE, SessionContext, bars_transport
from bridge.models import JobSpec, SourceInfo
from osc_schema import ValidationError

NOW = 1_800_000_000.0


def write_index(captures: Path, name: str, transport: dict | None) -> None:
    """An instance's index as the plugin writes it (this process's pid: a live instance)."""
    folder = captures / name
    folder.mkdir(parents=True)
    index = {"format": "daw-bridge.capture/1", "instance": name, "plugin_format": "LV2", "channels": 2,
             "spans": [], "dropped_blocks": 0, "requests": [], "reply_port": 0}
    if transport is not None:
        index["transport"] = transport
    (folder / "index.json").write_text(json.dumps(index, indent=2))


def reported(playing=True, position=13.0, tempo=120.0, beats_per_bar=4, observed=NOW - 0.25, heard=None) -> dict:
    return {"playing": playing, "position": position, "tempo": tempo, "beats_per_bar": beats_per_bar,
            "observed": observed, "heard": [[0.0, 12.9, 120.0, 4]] if heard is None else heard}


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(state_dir=tmp_path / "state", project_roots=(tmp_path,), captures_dir=tmp_path / "captures")


def test_the_index_transport_is_read_and_the_cursor_moves_on_while_the_host_plays():
    found = host_transport({"transport": reported(heard=[[0.0, 8.5, 118.0, 4], [8.5, 12.9, 120.0, 4]])}, "1-lv2-1")
    assert found == HostTransport(True, 13.0, NOW - 0.25, 120.0, 4.0, ((0.0, 8.5, 118.0, 4.0), (8.5, 12.9, 120.0, 4.0)))
    assert found.cursor(NOW) == pytest.approx(13.25)
    assert host_transport({"transport": reported(playing=False)}, "1-lv2-1").cursor(NOW) == 13.0  # stopped: stays
    assert host_transport({"spans": []}, "1-lv2-1") is None  # a plugin from before transport reports


@pytest.mark.parametrize("change", [{"playing": "yes"}, {"position": -1.0}, {"tempo": None}, {"heard": [[0, 1, 2]]},
                                    {"observed": float("nan")}])
def test_a_malformed_transport_is_refused_in_one_line(change):
    with pytest.raises(ValidationError, match=r"^capture: '1-lv2-1' has a malformed transport in its index: \{"):
        host_transport({"transport": {**reported(), **change}}, "1-lv2-1")


def test_the_one_live_instance_counts_and_its_capture_becomes_the_selection(config):
    write_index(config.captures_dir, f"{os.getpid()}-lv2-1", reported())
    write_index(config.captures_dir, f"{os.getpid()}-lv2-2", None)  # reports none: not in the way
    transport, selection = bars_transport(config, {}, None, now=NOW)
    assert selection == {"capture": f"{os.getpid()}-lv2-1"}
    assert (transport.daw, transport.cursor, transport.tempo) == ("plugin", 13.25, 120.0)
    assert transport.describe() == "120 BPM, 4 beats a bar, from the plugin host's play cursor"
    assert bar_range(transport, "last", 2).describe() == "bars 5-6 (8.000-12.000 s)"
    # a file chosen (/bridge/context) keeps its source: bars on its timeline, from the host's cursor
    assert bars_transport(config, {"source": "/song.wav", "position": 4.0}, None, now=NOW)[1] == {
        "source": "/song.wav", "position": 4.0}


def test_the_selected_capture_wins_over_the_daw_feedback_and_the_feedback_over_an_unselected_instance(config):
    name = f"{os.getpid()}-lv2-1"
    write_index(config.captures_dir, name, reported(playing=False, position=30.0, tempo=90.0, beats_per_bar=3,
                                                    heard=[]))
    reaper = Transport("reaper", 5.0, 120.0)
    transport, _ = bars_transport(config, {"capture": name, "start": 1.0, "end": 2.0}, reaper, now=NOW)
    assert (transport.daw, transport.cursor, transport.tempo, transport.beats_per_bar) == ("plugin", 30.0, 90.0, 3.0)
    assert bars_transport(config, {"source": "/song.wav"}, reaper, now=NOW) == (reaper, {"source": "/song.wav"})


def test_a_tempo_change_the_plugin_heard_is_refused_with_where_it_changed(config):
    name = f"{os.getpid()}-lv2-1"
    write_index(config.captures_dir, name, reported(heard=[[0.0, 8.0, 100.0, 4], [8.0, 12.9, 120.0, 4]]))
    transport, _ = bars_transport(config, {"capture": name}, None, now=NOW)
    with pytest.raises(ValidationError, match=r"^bars: tempo changes inside bars 4-6 \(100 → 120 BPM at 8\.0 s\)"):
        bar_range(transport, "last", 3)


@pytest.mark.parametrize("transport, reason", [
    (reported(tempo=0.0), "reports no tempo: its host gives the plugin no bar and beat position"),
    (reported(observed=NOW - 30), "last reported its host's transport 30 s ago while playing: is the host"),
    (None, "reports no host transport yet"),
])
def test_a_selected_capture_without_a_usable_transport_is_refused(config, transport, reason):
    name = f"{os.getpid()}-vst3-1"
    write_index(config.captures_dir, name, transport)
    with pytest.raises(ValidationError, match=rf"^capture: '{name}' {reason}"):
        bars_transport(config, {"capture": name}, None, now=NOW)


def test_two_instances_and_no_selection_is_refused_naming_them(config):
    for n in (1, 2):
        write_index(config.captures_dir, f"{os.getpid()}-lv2-{n}", reported())
    assert len(live_transports(config, NOW)) == 2
    with pytest.raises(ValidationError, match=r"^bars: need one play cursor, and 2 plugin instances report their "
                                              r"host's \(\d+-lv2-1, \d+-lv2-2\): press Inpaint or Extend in the one"):
        bars_transport(config, {}, None, now=NOW)


class _Service:
    def __init__(self, config: Config):
        self.config = config
        self.context: dict = {}


def test_a_plugin_job_leaves_its_capture_selected_in_timeline_seconds(config, tmp_path):
    context = SessionContext(_Service(config), config.state_dir / CONTEXT_FILE)
    context.values.update(source="/song.wav", position=4.0)
    export = tmp_path / "work" / "j-1" / "capture-1-lv2-1.wav"  # the admission's export starts at 6 s
    context.follow_job(JobSpec(job_id="j-1", operation="inpaint", source=export, source_info=SourceInfo(48000, 2, 960000, "WAV/FLOAT"),
                               backend="local", start=6.0, end=8.0, position=6.0, ids={"capture": "1-lv2-1"}), None)
    assert context.selection() == {"capture": "1-lv2-1", "start": 12.0, "end": 14.0}
    context.flush()
    assert context_lines(config)[0] == "pads act on: plugin capture 1-lv2-1 12.00-14.00 s"  # daw-bridge jobs
    context.values.update(source="/other.wav")  # /bridge/context names a file: the capture is no longer chosen
    assert "capture" not in context.selection()
