"""OSC messages and request files are the same commands: same checks, same words, and a lossless round trip."""

from __future__ import annotations

import json
import math
import subprocess

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from osc_schema import COMMANDS, ValidationError, load_request, parse_osc, parse_request, to_osc_args
from osc_schema.generate import EXAMPLES, oscsend_argv
from tests.conftest import require_tool

NAMES = ", ".join(COMMANDS)  # as the errors list them

SONG = "/home/me/Music/song/audio/mix.wav"


def as_osc(request: dict) -> tuple[str, list]:
    """The OSC message a careless client would send for this request: no checks, positional first, then pairs."""
    values = dict(request)
    spec = COMMANDS[values.pop("command")]
    args = []
    for arg in spec.positional:
        if arg.name not in values:
            break
        args.append(values.pop(arg.name))
    for key, value in values.items():
        args += [key, value]
    return spec.address, args


def outcome(parse, *args):
    try:
        return parse(*args)
    except ValidationError as error:
        return (str(error), error.field, error.address, error.request_id)


MISTAKES = [
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 10.0, "prompt": "", "request_id": "r-1"},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "num_outputs": 3},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "num_outputs": "two"},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "num_outputs": 1.5},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "gender": "robot"},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "lyrics": "x" * 3001},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "colour": "red"},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": "", "lyric": "la"},
    {"command": "inpaint", "source": SONG, "start": 12.5},
    {"command": "inpaint", "source": SONG, "start": 12.5, "end": 20.0, "prompt": None},
    {"command": "inpaint", "source": SONG, "start": True, "end": 20.0, "prompt": ""},
    {"command": "inpaint", "source": SONG, "start": math.nan, "end": 20.0, "prompt": ""},
    {"command": "inpaint", "source": "", "start": 1.0, "end": 20.0, "prompt": ""},
    {"command": "inpaint", "source": SONG, "start": 1.0, "end": 20.0, "prompt": "a\x00b"},
    {"command": "inpaint", "source": SONG, "start": 1.0, "end": 20.0, "prompt": "", "request_id": "../x"},
    {"command": "extend", "source": SONG, "extend_after": 35.0, "duration": 0},
    {"command": "extend", "source": SONG, "extend_after": 35.0, "lyrics_section_to_extend": "x" * 3001},
    {"command": "extend", "source": SONG, "extend_after": [35.0]},
    {"command": "cancel", "job_id": ""},
    {"command": "status", "reply_port": 70000, "request_id": "r-2"},
    {"command": "context", "start": 20.0, "end": 10.0},
    {"command": "ping", "reply_port": "9011"},
]


@pytest.mark.parametrize("request_", MISTAKES, ids=lambda r: f"{r['command']}-{sorted(r)[-1]}")
def test_the_same_mistake_reads_the_same_from_osc_and_from_a_request_file(request_):
    from_file = outcome(parse_request, request_)
    assert isinstance(from_file, tuple), f"{request_} was accepted"
    assert outcome(parse_osc, *as_osc(request_)) == from_file
    assert outcome(load_request, json.dumps(request_)) == from_file


def test_a_repeated_key_is_caught_in_a_request_file_too():
    text = '{"command": "inpaint", "source": "%s", "start": 1, "end": 2, "prompt": "", "gender": "male", ' \
           '"gender": "female"}' % SONG
    assert outcome(load_request, text) == outcome(
        parse_osc, "/bridge/inpaint", [SONG, 1, 2, "", "gender", "male", "gender", "female"])
    assert outcome(load_request, text)[0] == "gender: given twice"


def test_nan_written_into_a_request_file_reads_like_nan_over_osc():
    text = '{"command": "extend", "source": "%s", "extend_after": NaN}' % SONG
    assert outcome(load_request, text) == outcome(parse_osc, "/bridge/extend", [SONG, math.nan])


@pytest.mark.parametrize("content, message", [
    (b'{"command": "ping"', "request: not valid JSON (Expecting ',' delimiter at line 1, column 19)"),
    (b'{"command": "ping", "reply_port": 9\xff}', "request: not UTF-8 text (bad byte at offset 35)"),
    (b'[1, 2]', "request: [1, 2] must be a JSON object, got array"),
    (b'{"source": "x"}', f"command: missing (a request names one of {NAMES})"),
    (b'{"command": "render"}', f"command: 'render' must be one of {NAMES}"),
    (b'{"command": 7}', f"command: 7 must be one of {NAMES}"),
    (b'{"command": "ping", "command": "ping"}', "command: given twice"),
    (b'[' * 100_000 + b']' * 100_000, "request: not valid JSON (nested too deeply)"),
])
def test_a_broken_request_file_says_what_is_wrong(content, message):
    with pytest.raises(ValidationError) as caught:
        load_request(content)
    assert str(caught.value) == message


def test_a_request_file_saved_by_windows_notepad_with_a_bom_is_read():
    text = json.dumps({"command": "extend", "source": SONG, "extend_after": 35})
    assert load_request(b"\xef\xbb\xbf" + text.encode()).args["extend_after"] == 35.0


def test_a_request_file_with_null_for_optional_keys_uses_the_defaults():
    command = load_request(json.dumps({"command": "extend", "source": SONG, "extend_after": 35, "gender": None,
                                       "duration": None}))
    assert command.args["gender"] is None and command.args["duration"] == 30.0


VALID = [{"command": name, **values} for _, name, values in EXAMPLES] + [
    {"command": "inpaint", "source": SONG, "start": 0, "end": 1, "prompt": "", "lyrics": "la\nla",
     "lyrics_section_to_replace": "la", "gender": "neutral", "num_outputs": 2.0, "backend": "local",
     "delivery": "patch", "request_id": "r 1", "position": -2.5, "item_id": "", "track_id": "{T}",
     "take_id": "{K}", "drop_folder": "/home/me/Music/song/daw-bridge"},
    {"command": "extend", "source": SONG, "extend_after": 0, "lyrics_section_to_extend": "new words",
     "duration": 0.25, "num_outputs": 1},
    {"command": "context", "source": SONG, "take_id": "{K}", "drop_folder": "/tmp/d", "track_id": "{T}"},
]


@pytest.mark.parametrize("request_", VALID, ids=lambda r: r["command"])
def test_to_osc_args_round_trips_through_parse_osc(request_):
    values = {key: value for key, value in request_.items() if key != "command"}
    address, args = to_osc_args(request_["command"], values)
    assert parse_osc(address, args) == parse_request(request_) == load_request(json.dumps(request_))
    # only what the client gave travels; defaults are filled on arrival
    positional = COMMANDS[request_["command"]].positional  # a slot left to an alternative travels as nil
    assert len(args) == len(positional) + 2 * (len(values) - sum(arg.name in values for arg in positional))


@pytest.mark.parametrize("request_", VALID, ids=lambda r: r["command"])
def test_a_command_survives_the_wire_encoded_by_python_osc(request_):
    values = {key: value for key, value in request_.items() if key != "command"}
    address, args = to_osc_args(request_["command"], values)
    builder = OscMessageBuilder(address)
    for arg in args:  # times as doubles, as the docs advise; python-osc would pick f for a float
        builder.add_arg(arg, "d" if isinstance(arg, float) else None)
    message = OscMessage(builder.build().dgram)
    assert parse_osc(message.address, list(message.params)) == parse_request(request_)


def test_a_float32_time_arrives_rounded_which_is_why_the_docs_advise_doubles():
    builder = OscMessageBuilder("/bridge/extend")
    builder.add_arg(SONG)
    builder.add_arg(1234.5678, "f")
    message = OscMessage(builder.build().dgram)
    received = parse_osc(message.address, list(message.params)).args["extend_after"]
    assert received != 1234.5678 and abs(received - 1234.5678) < 1e-4


def test_to_osc_args_refuses_what_the_daemon_would_refuse():
    with pytest.raises(ValidationError) as caught:
        to_osc_args("inpaint", {"source": SONG, "start": 12.5, "end": 10.0, "prompt": "", "request_id": "r-1"})
    assert (str(caught.value), caught.value.request_id) == ("end: 10.0 must be greater than start (12.5)", "r-1")
    with pytest.raises(ValidationError) as caught:
        to_osc_args("render", {})
    assert str(caught.value) == f"command: 'render' must be one of {NAMES}"


def test_to_osc_args_leaves_out_optional_keys_given_as_none():
    assert to_osc_args("status", {"job_id": None, "reply_port": 9011}) == ("/bridge/status", ["reply_port", 9011])


@pytest.mark.parametrize("title, name, values", EXAMPLES, ids=[name for _, name, _ in EXAMPLES])
def test_the_documented_oscsend_lines_send_what_the_daemon_accepts(title, name, values):
    require_tool("oscsend")
    argv = oscsend_argv(name, values, host="-")  # liblo writes the raw message to stdout instead of a socket
    sent = subprocess.run(argv, capture_output=True, check=True, timeout=10).stdout
    message = OscMessage(sent)
    assert parse_osc(message.address, list(message.params)) == parse_request({"command": name, **values})
