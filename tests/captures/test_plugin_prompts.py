"""Prompts for a plugin instance without a GUI: its own text set from the command line, or a named preset chosen by
its Preset parameter. Real daemon, real OSC, the real CLI; the capture index is written as the plugin writes it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

import osc_schema
from bridge import plugin_prompts
from bridge.client import BridgeClient
from bridge.config import load as load_config
from tests.conftest import DaemonProcess, Project

from .test_capture_source import INSTANCE, write_capture

MAPPING = """\
[presets.guitar]
prompt = "soft guitar solo"
num_outputs = 1

[presets.keys]
prompt = "warm rhodes chords"
backend = "local"
"""


def cli(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", "plugin", *args, "--config", str(project.config)],
                          check=False, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def instance(tmp_path_factory, demo_song_path):
    project = Project(tmp_path_factory.mktemp("prompts") / "project", demo_song_path)
    captures = project.root / "captures"
    song, _ = sf.read(str(project.song), dtype="float32", always_2d=True)
    write_capture(captures / INSTANCE, song)
    project.write_config(f'captures_dir = "{captures}"\n')
    (project.root / "midi-mapping.toml").write_text(MAPPING)  # beside the config: the [midi] table's default
    process = DaemonProcess(project).start()
    yield project, captures / INSTANCE / "index.json"
    process.stop()


def press(project: Project, index_path, request_id: str, preset: int, **values):
    """What the plugin does on Inpaint: record the request (with its Preset value) in the index, then send it."""
    index = json.loads(index_path.read_text())
    index["requests"].append({"operation": "inpaint", "start": 12.0, "end": 14.0, "request_id": request_id,
                              "preset": preset})
    index_path.write_text(json.dumps(index))
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", **{"source": None, "start": 12.0, "end": 14.0, "prompt": "", "capture": INSTANCE,
                                  "request_id": request_id, **values})
        reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
        if reply is not None and reply.name == "accepted":
            client.send("cancel", job_id=reply.args[1])  # only what was admitted matters here
            client.wait_for(lambda r: r.name == "state", timeout=10)
    return reply


def job_spec(project: Project, job_id: str) -> dict:
    shown = subprocess.run([sys.executable, "-m", "bridge", "jobs", "show", job_id, "--config", str(project.config)],
                           check=False, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    return json.loads(shown.stdout)["spec"]


def test_an_instance_without_a_gui_gets_the_prompt_set_from_the_command_line(instance):
    project, index = instance
    done = cli(project, "prompt", INSTANCE, "dusty drum break")
    assert (done.returncode, done.stdout) == (0, f"{INSTANCE}: prompt 'dusty drum break'\n")
    spec = job_spec(project, press(project, index, "p-own", 0).args[1])
    assert spec["prompt"] == "dusty drum break"
    # a prompt the request carries itself wins; "" clears the instance's text
    spec = job_spec(project, press(project, index, "p-given", 0, prompt="brass stabs").args[1])
    assert spec["prompt"] == "brass stabs"
    assert cli(project, "prompt", INSTANCE, "").returncode == 0
    assert job_spec(project, press(project, index, "p-cleared", 0).args[1])["prompt"] == ""


def test_the_preset_parameter_chooses_among_the_daemons_named_presets(instance):
    project, index = instance
    listed = cli(project, "presets")
    assert listed.returncode == 0
    assert "Preset 1: guitar  prompt='soft guitar solo', num_outputs=1" in listed.stdout
    assert "Preset 2: keys  prompt='warm rhodes chords', backend='local'" in listed.stdout
    spec = job_spec(project, press(project, index, "p-guitar", 1).args[1])
    assert (spec["prompt"], spec["num_outputs"]) == ("soft guitar solo", 1)
    spec = job_spec(project, press(project, index, "p-keys", 2, num_outputs=2).args[1])
    assert (spec["prompt"], spec["num_outputs"]) == ("warm rhodes chords", 2)  # the request's own value wins
    refused = press(project, index, "p-none", 5)
    assert refused.name == "error" and refused.args[1:] == [
        "p-none", "preset", "preset: 5 is not one of the daemon's presets (1 guitar, 2 keys)"]


def test_a_prompt_for_an_unknown_instance_is_refused_in_one_line(instance):
    project, _ = instance
    done = cli(project, "prompt", "999-9", "anything")
    assert done.returncode == 2
    assert done.stdout.startswith("daw-bridge plugin: capture: '999-9' is not a capture in ")
    assert "Traceback" not in done.stdout + done.stderr
    done = cli(project, "prompt", INSTANCE)
    assert done.returncode == 2 and "needs INSTANCE and TEXT" in done.stdout


def test_the_live_instances_are_listed_by_name_for_the_prompt_command(instance):
    project, _ = instance
    done = cli(project, "list")
    assert done.returncode == 0, done.stdout
    [line] = done.stdout.splitlines()
    assert line.startswith(f"{INSTANCE}  LV2  pid ") and line.endswith("played 0.000–30.000, 40.000–50.000 s")


def test_a_reopened_instance_takes_the_prompt_kept_under_its_earlier_name_and_a_cleared_one_stays_cleared(instance):
    """The project was reopened: the plugin has a new name, and its index lists the name it had ("was"). The prompt
    kept under that name is its prompt; once the producer clears the new name's prompt, none is taken from before."""
    project, index_path = instance
    captures_dir = index_path.parent.parent
    for name in ("earlier-1", "reopened-2"):
        (captures_dir / name).mkdir()
    config = load_config(project.config)
    index = {**json.loads(index_path.read_text()), "requests": [], "was": ["earlier-1"]}
    request = osc_schema.parse_request({"command": "inpaint", "source": None, "start": 12.0, "end": 14.0,
                                        "prompt": "", "capture": "reopened-2", "request_id": "p-reopened"})
    assert cli(project, "prompt", "earlier-1", "tape-saturated bass").returncode == 0
    assert plugin_prompts.with_instance_prompt(config, request, index).args["prompt"] == "tape-saturated bass"
    assert cli(project, "prompt", "reopened-2", "").returncode == 0
    assert plugin_prompts.with_instance_prompt(config, request, index).args["prompt"] == ""
