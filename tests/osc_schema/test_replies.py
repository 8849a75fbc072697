"""What the daemon sends back: every reply checked before it leaves, and readable again by a client."""

from __future__ import annotations

import pytest

from osc_schema import REPLIES, STATES, ValidationError, parse_reply, reply


def refusal(name: str, **values) -> str:
    with pytest.raises(ValidationError) as caught:
        reply(name, **values)
    return str(caught.value)


SENT = [
    ("accepted", {"request_id": "reaper-1700000000-1", "job_id": "j-20261121-190512-3f2a"},
     ["reaper-1700000000-1", "j-20261121-190512-3f2a"]),
    ("state", {"job_id": "j-1", "state": "generating", "progress": 0.4, "message": "waiting for MusicGPT"},
     ["j-1", "generating", 0.4, "waiting for MusicGPT"]),
    ("done", {"job_id": "j-1", "manifests": ["/d/mix_v1.json", "/d/mix_v2.json"]},
     ["j-1", "/d/mix_v1.json", "/d/mix_v2.json"]),
    ("failed", {"job_id": "j-1", "code": "auth_failed", "message": "The API key was refused."},
     ["j-1", "auth_failed", "The API key was refused."]),
    ("error", {"address": "/bridge/inpaint", "request_id": "", "field": "end",
               "reason": "end: 10.0 must be greater than start (12.5)"},
     ["/bridge/inpaint", "", "end", "end: 10.0 must be greater than start (12.5)"]),
    ("plugin", {"capture": "4821-1", "label": "", "pid": 4821, "plugin_format": "LV2", "age": 0.5,
                "played": "0.000–12.000 s"}, ["4821-1", "", 4821, "LV2", 0.5, "0.000–12.000 s"]),
    ("plugins_listed", {"count": 1}, [1]),
    ("status_listed", {"count": 0}, [0]),
    ("context_set", {"keys": "start,end"}, ["start,end"]),
    ("plugin_prompt_set", {"capture": "4821-1", "prompt": "soft guitar"}, ["4821-1", "soft guitar"]),
    ("auditioning", {"job_id": "j-1", "playing": "variant", "variant": 2, "gain_db": -1.5, "output": "daw-bridge"},
     ["j-1", "variant", 2, -1.5, "daw-bridge"]),
    ("selected", {"range": "bars 5-6 (8.000-12.000 s)", "start": 4.0, "end": 8.0, "tempo": 120.0,
                  "beats_per_bar": 4.0}, ["bars 5-6 (8.000-12.000 s)", 4.0, 8.0, 120.0, 4.0]),
    ("decided", {"job_id": "j-1", "decision": "keep", "choice": 2, "seq": 3}, ["j-1", "keep", 2, 3]),
    ("heard", {"text": "bridge keep", "command": '{"command": "keep"}', "confidence": 0.8, "outcome": "accepted",
               "message": ""}, ["bridge keep", '{"command": "keep"}', 0.8, "accepted", ""]),
    ("pong", {"version": "1.0.0"}, ["1.0.0"]),
]


@pytest.mark.parametrize("name, values, args", SENT, ids=[name for name, _, _ in SENT])
def test_a_reply_goes_out_in_declared_order_and_a_client_reads_it_back(name, values, args):
    address = f"/bridge/{name}"
    assert reply(name, **values) == (address, args)
    assert parse_reply(address, args) == (name, values)


def test_every_declared_reply_is_covered_above():
    assert {name for name, _, _ in SENT} == set(REPLIES)


def test_progress_may_be_given_as_an_int_and_leaves_as_a_float():
    address, args = reply("state", job_id="j-1", state="delivered", progress=1, message="")
    assert args[2] == 1.0 and type(args[2]) is float


@pytest.mark.parametrize("name, values, message", [
    ("state", dict(job_id="j", state="finished", progress=0.5, message=""),
     "state: 'finished' must be one of " + ", ".join(STATES)),
    ("state", dict(job_id="j", state="generating", progress=1.5, message=""), "progress: 1.5 must be in range 0..1"),
    ("state", dict(job_id="j", state="generating", progress="half", message=""),
     "progress: 'half' must be a number, got string"),
    ("state", dict(job_id="j", state="generating", progress=0.5), "message: missing (required by /bridge/state)"),
    ("state", dict(job_id="j", state="generating", progress=0.5, message="", eta=3),
     "eta: unknown argument of /bridge/state"),
    ("accepted", dict(request_id=None, job_id="j"), "request_id: null must be a string, got null"),
    ("done", dict(job_id="j"), "manifests: missing (required by /bridge/done)"),
    ("done", dict(job_id="j", manifests=[]), "manifests: [] must be a non-empty list, got array"),
    ("done", dict(job_id="j", manifests="/d/a.json"), "manifests: '/d/a.json' must be a non-empty list, got string"),
    ("done", dict(job_id="j", manifests=["/d/a.json", 2]), "manifests: 2 must be a string, got integer"),
    ("pong", dict(version=1), "version: 1 must be a string, got integer"),
    ("welcome", dict(), f"reply: 'welcome' is not a reply (replies: {', '.join(REPLIES)})"),
])
def test_a_malformed_reply_is_a_bug_caught_before_sending(name, values, message):
    assert refusal(name, **values) == message


def test_a_long_explanation_is_cut_rather_than_refused():
    address, args = reply("failed", job_id="j-1", code="backend_error", message="x" * 50_000)
    assert len(args[2]) == 1000 and args[2].endswith("…")
    address, args = reply("error", address="/x", request_id="", field="", reason="y" * 1001)
    assert len(args[3]) == 1000


@pytest.mark.parametrize("address, args, message", [
    ("/bridge/done", ["j-1"], "manifests: missing (required by /bridge/done)"),
    ("/bridge/pong", ["1.0.0", "extra"], "/bridge/pong: takes 1 arguments, got 2"),
    ("/bridge/state", ["j-1", "generating", "0.5", ""], "progress: '0.5' must be a number, got string"),
    ("/bridge/inpaint", [], "/bridge/inpaint: unknown reply address (replies: "
                            f"{', '.join(spec.address for spec in REPLIES.values())})"),
])
def test_a_client_refuses_a_reply_it_cannot_read(address, args, message):
    with pytest.raises(ValidationError) as caught:
        parse_reply(address, args)
    assert str(caught.value) == message
