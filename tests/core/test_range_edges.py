"""Ranges at the edges of what a DAW can send, through a real daemon over UDP: a negative zero, and ranges or
extensions shorter than one sample (which were "delivered" as results holding no new audio)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.client import BridgeClient


def _first_answer(client: BridgeClient, address: str, args: list):
    """Send with every float as an OSC double (``d``), as a DAW sending precise times does."""
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value, "d" if isinstance(value, float) else "s")
    client.send_raw(builder.build().dgram)
    return client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)


@pytest.mark.parametrize("address, args, field", [
    ("/bridge/inpaint", [5e-324, 1e-323, ""], "end"),          # doubles: both round to frame 0
    ("/bridge/inpaint", [10.0, 10.00001, ""], "end"),          # under one frame at 44.1 kHz
    ("/bridge/extend", [10.0, "duration", 1e-300], "duration"),
], ids=["denormal range", "sub-sample range", "sub-sample extension"])
def test_less_than_one_sample_is_refused_naming_the_field(project, daemon, client, address, args, field):
    reply = _first_answer(client, address, [str(project.song), *args])
    assert reply is not None and reply.name == "error", reply
    assert reply.args[2] == field and "less than one sample" in reply.args[3]
    assert project.visible_drop_files() == []


def test_a_negative_zero_start_is_zero_in_the_manifest_and_the_file_name(project, daemon, client):
    done, _ = client.run_job("inpaint", source=str(project.song), start=-0.0, end=2.0, prompt="", num_outputs=1)
    assert done.name == "done", done
    manifest = json.loads(Path(done.args[1]).read_text())
    assert math.copysign(1, manifest["source"]["start"]) == 1.0
    assert "-0.00" not in Path(done.args[1]).name and "-0.00" not in manifest["audio"]


def test_a_request_id_used_again_for_another_request_is_refused(project, daemon, client):
    # A DAW counting its ids from 1 again after a restart: the old job's results were answered as this one's
    first = dict(source=str(project.song), start=12.0, end=14.0, prompt="", num_outputs=1, request_id="daw-1")
    done, replies = client.run_job("inpaint", **first)
    assert done.name == "done", done
    assert [r.name for r in replies].count("accepted") == 1  # a new request is not taken for one sent again
    client.send("inpaint", **first)  # the same request again (a resent datagram): the same job, nothing new
    again = client.wait_for(lambda r: r.name in ("accepted", "state", "error"), timeout=10)
    assert again.name != "error" and done.args[0] in again.args, again
    client.send("inpaint", **{**first, "start": 20.0, "end": 22.0})
    other = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
    assert other.name == "error" and other.args[2] == "request_id" and done.args[0] in other.args[3], other
    assert len([p for p in project.visible_drop_files() if p.suffix == ".json"]) == 1
