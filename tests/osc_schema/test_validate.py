"""Every rule a command's arguments must meet, and the exact words a producer reads when one is broken."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest

from osc_schema import COMMANDS, Command, ValidationError, error_reply, load_request, parse_osc, show

SONG = "/home/me/Music/song/audio/mix.wav"


def inpaint(*pairs, start=12.5, end=20.0, prompt="soft guitar solo") -> Command:
    return parse_osc("/bridge/inpaint", [SONG, start, end, prompt, *pairs])


def extend(*pairs, extend_after=35.0) -> Command:
    return parse_osc("/bridge/extend", [SONG, extend_after, *pairs])


def refusal(address: str, args: list) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_osc(address, args)
    return caught.value


def inpaint_refusal(*pairs, **positional) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        inpaint(*pairs, **positional)
    return caught.value


# ---- what a valid command becomes ----------------------------------------------------------------------------------

def test_a_bare_inpaint_gets_every_argument_with_its_default():
    assert inpaint() == Command("inpaint", {
        "source": SONG, "start": 12.5, "end": 20.0, "prompt": "soft guitar solo", "capture": None,
        "lyrics": "", "lyrics_section_to_replace": "", "gender": None, "num_outputs": 2, "backend": None, "delivery": None,
        "request_id": "", "position": 0.0, "item_id": None, "track_id": None, "take_id": None, "reply_port": None,
        "drop_folder": None})
    assert inpaint().address == "/bridge/inpaint"


def test_a_bare_extend_generates_thirty_seconds_with_an_empty_prompt():
    command = extend()
    assert command.args["duration"] == 30.0 and command.args["prompt"] == "" and command.args["num_outputs"] == 2
    assert "start" not in command.args and command.args["extend_after"] == 35.0


def test_a_script_sets_every_option_in_any_order():
    command = inpaint("drop_folder", "/home/me/Music/song/daw-bridge", "gender", "female", "num_outputs", 1,
                      "backend", "musicgpt", "delivery", "full", "request_id", "reaper-1700000000-1", "position", 30,
                      "item_id", "{A}", "track_id", "{T}", "take_id", "{K}", "reply_port", 9011, "lyrics", "la la",
                      "lyrics_section_to_replace", "la")
    assert command.args == {
        "source": SONG, "start": 12.5, "end": 20.0, "prompt": "soft guitar solo", "capture": None,
        "lyrics": "la la",
        "lyrics_section_to_replace": "la", "gender": "female", "num_outputs": 1, "backend": "musicgpt",
        "delivery": "full", "request_id": "reaper-1700000000-1", "position": 30.0, "item_id": "{A}",
        "track_id": "{T}", "take_id": "{K}", "reply_port": 9011, "drop_folder": "/home/me/Music/song/daw-bridge"}


def test_numbers_arrive_as_the_type_the_daemon_works_with():
    # OSC i for a time becomes a float; REAPER's float 2.0 for a count becomes the int 2.
    command = inpaint("num_outputs", 2.0, "reply_port", 9011.0, "position", -3, start=12, end=20)
    assert command.args["start"] == 12.0 and type(command.args["start"]) is float
    assert type(command.args["position"]) is float and command.args["position"] == -3.0
    assert command.args["num_outputs"] == 2 and type(command.args["num_outputs"]) is int
    assert command.args["reply_port"] == 9011 and type(command.args["reply_port"]) is int


def test_nil_for_an_optional_argument_means_not_given():
    assert inpaint("gender", None, "num_outputs", None).args["num_outputs"] == 2


def test_the_prompt_may_be_empty_here_because_only_the_musicgpt_backend_needs_one():
    assert inpaint(prompt="").args["prompt"] == ""


def test_context_reports_absent_keys_as_null_so_the_receiver_can_tell_them_from_zero():
    command = parse_osc("/bridge/context", ["end", 20.0, "item_id", "{A}"])
    assert command.args == {"source": None, "start": None, "end": 20.0, "position": None, "item_id": "{A}",
                            "track_id": None, "take_id": None, "drop_folder": None, "reply_port": None}
    assert parse_osc("/bridge/context", ["position", -12.0]).args["position"] == -12.0


def test_status_ping_and_cancel_take_their_few_arguments():
    assert parse_osc("/bridge/status", []).args == {"job_id": None, "reply_port": None}
    assert parse_osc("/bridge/status", ["job_id", "j-1"]).args["job_id"] == "j-1"
    assert parse_osc("/bridge/ping", ["reply_port", 9011]).args == {"reply_port": 9011}
    assert parse_osc("/bridge/cancel", ["j-20261121-190512-3f2a"]).args["job_id"] == "j-20261121-190512-3f2a"


@pytest.mark.parametrize("pairs", [
    ("num_outputs", 1), ("num_outputs", 2), ("duration", 600), ("duration", 0.001), ("lyrics", "x" * 3000),
    ("lyrics_section_to_extend", "x" * 3000), ("prompt", "x" * 1000), ("position", -1e6), ("position", 1e7),
    ("request_id", "x" * 128), ("item_id", "x" * 256), ("reply_port", 1), ("reply_port", 65535),
    ("drop_folder", "/" + "x" * 4095), ("request_id", "reaper 1: {GUID} é"),
])
def test_values_on_the_limit_are_accepted(pairs):
    assert extend(*pairs).args[pairs[0]] == pairs[1]


def test_limits_on_the_inpaint_side():
    assert inpaint("lyrics_section_to_replace", "x" * 3000).args["lyrics_section_to_replace"] == "x" * 3000
    assert inpaint(start=0.0, end=0.001).args["end"] == 0.001
    assert parse_osc("/bridge/inpaint", ["/" + "x" * 4095, 0, 1, ""]).args["source"].startswith("/x")


# ---- what a producer reads when a rule is broken ------------------------------------------------------------------

@pytest.mark.parametrize("pairs, positional, field, message", [
    ((), dict(end=10.0), "end", "end: 10.0 must be greater than start (12.5)"),
    ((), dict(end=12.5), "end", "end: 12.5 must be greater than start (12.5)"),
    ((), dict(start=-1), "start", "start: -1 must be at least 0"),
    ((), dict(start="12"), "start", "start: '12' must be a number, got string"),
    ((), dict(start=True), "start", "start: true must be a number, got boolean"),
    ((), dict(start=None), "start", "start: null must be a number, got null"),
    ((), dict(start=[1, 2]), "start", "start: [1, 2] must be a number, got array"),
    ((), dict(start=math.nan), "start", "start: nan must be a finite number"),
    ((), dict(end=math.inf), "end", "end: inf must be a finite number"),
    ((), dict(start=-math.inf), "start", "start: -inf must be a finite number"),
    ((), dict(prompt=7), "prompt", "prompt: 7 must be a string, got integer"),
    ((), dict(prompt=b"soft"), "prompt", "prompt: <blob of 4 bytes> must be a string, got blob"),
    ((), dict(prompt="x" * 1001), "prompt", "prompt: 1001 characters exceeds the limit of 1000"),
    ((), dict(prompt="soft\x00guitar"), "prompt", "prompt: 'soft\\x00guitar' must not contain NUL characters"),
    ((), dict(prompt="soft \ud800"), "prompt", "prompt: 'soft \\ud800' must be valid text (it holds a lone surrogate)"),
    (("num_outputs", 3), {}, "num_outputs", "num_outputs: 3 must be in range 1..2"),
    (("num_outputs", 0), {}, "num_outputs", "num_outputs: 0 must be in range 1..2"),
    (("num_outputs", 1.5), {}, "num_outputs", "num_outputs: 1.5 must be a whole number"),
    (("num_outputs", math.nan), {}, "num_outputs", "num_outputs: nan must be a whole number"),
    (("num_outputs", "two"), {}, "num_outputs", "num_outputs: 'two' must be an integer, got string"),
    (("num_outputs", False), {}, "num_outputs", "num_outputs: false must be an integer, got boolean"),
    (("gender", "robot"), {}, "gender", "gender: 'robot' must be one of male, female, neutral"),
    (("gender", "Male"), {}, "gender", "gender: 'Male' must be one of male, female, neutral"),
    (("backend", "cloud"), {}, "backend", "backend: 'cloud' must be one of local, musicgpt"),
    (("delivery", "whole"), {}, "delivery", "delivery: 'whole' must be one of patch, full"),
    (("lyrics", "x" * 3001), {}, "lyrics", "lyrics: 3001 characters exceeds the limit of 3000"),
    (("lyrics_section_to_replace", "x" * 3001), {}, "lyrics_section_to_replace",
     "lyrics_section_to_replace: 3001 characters exceeds the limit of 3000"),
    (("request_id", "x" * 129), {}, "request_id", "request_id: 129 characters exceeds the limit of 128"),
    (("request_id", "../../etc/passwd"), {}, "request_id", "request_id: '../../etc/passwd' must not contain / or \\"),
    (("request_id", "a\\b"), {}, "request_id", "request_id: 'a\\\\b' must not contain / or \\"),
    (("request_id", ".hidden"), {}, "request_id", "request_id: '.hidden' must not start with '.'"),
    (("request_id", "a\nb"), {}, "request_id", "request_id: 'a\\nb' must contain only printable characters"),
    (("position", -1e6 - 1), {}, "position", "position: -1000001.0 must be in range -1000000..10000000"),
    (("position", 1e7 + 1), {}, "position", "position: 10000001.0 must be in range -1000000..10000000"),
    (("item_id", "x" * 257), {}, "item_id", "item_id: 257 characters exceeds the limit of 256"),
    (("reply_port", 0), {}, "reply_port", "reply_port: 0 must be in range 1..65535"),
    (("reply_port", 65536), {}, "reply_port", "reply_port: 65536 must be in range 1..65535"),
    (("drop_folder", ""), {}, "drop_folder", "drop_folder: '' must not be empty"),
    (("drop_folder", "/" * 4097), {}, "drop_folder", "drop_folder: 4097 characters exceeds the limit of 4096"),
])
def test_a_broken_rule_names_field_value_and_rule(pairs, positional, field, message):
    error = inpaint_refusal(*pairs, **positional)
    assert (str(error), error.field, error.address) == (message, field, "/bridge/inpaint")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("args, field, message", [
    ([SONG, 35.0, "duration", 0], "duration", "duration: 0 must be greater than 0"),
    ([SONG, 35.0, "duration", 600.5], "duration", "duration: 600.5 must be at most 600"),
    ([SONG, 35.0, "lyrics_section_to_extend", "x" * 3001], "lyrics_section_to_extend",
     "lyrics_section_to_extend: 3001 characters exceeds the limit of 3000"),
    ([SONG, -0.5], "extend_after", "extend_after: -0.5 must be at least 0"),
    (["", 35.0], "source", "source: '' must not be empty"),
    (["/" * 4097, 35.0], "source", "source: 4097 characters exceeds the limit of 4096"),
    ([SONG, 35.0, "lyrics_section_to_replace", "la"], "lyrics_section_to_replace",
     "lyrics_section_to_replace: unknown argument of /bridge/extend (did you mean 'lyrics_section_to_extend'?)"),
])
def test_extend_rules(args, field, message):
    error = refusal("/bridge/extend", args)
    assert (str(error), error.field) == (message, field)


def test_cancel_and_status_need_a_real_job_id():
    assert str(refusal("/bridge/cancel", [""])) == "job_id: '' must not be empty"
    assert str(refusal("/bridge/cancel", [])) == "job_id: missing (required by /bridge/cancel)"
    assert str(refusal("/bridge/status", ["job_id", 7])) == "job_id: 7 must be a string, got integer"


def test_context_checks_the_range_only_when_both_ends_are_given():
    error = refusal("/bridge/context", ["start", 20.0, "end", 12.5])
    assert str(error) == "end: 12.5 must be greater than start (20.0)"
    assert parse_osc("/bridge/context", ["start", 20.0]).args["start"] == 20.0
    assert str(refusal("/bridge/context", ["num_outputs", 1])).startswith(
        "num_outputs: unknown argument of /bridge/context (arguments: source, start, end, position,")


# ---- mistakes in the shape of the message --------------------------------------------------------------------------

@pytest.mark.parametrize("args, field, message", [
    ([SONG, 12.5], "end", "end: missing (required by /bridge/inpaint)"),
    ([], "source", "source: missing (required by /bridge/inpaint)"),
    ([SONG, 12.5, 20.0, "", "gender"], "gender", "gender: has no value (keys and values come in pairs)"),
    ([SONG, 12.5, 20.0, "", "tempo"], "tempo",
     "tempo: unknown argument of /bridge/inpaint (arguments: source, start, end, prompt, capture, lyrics, "
     "lyrics_section_to_replace, gender, num_outputs, backend, delivery, request_id, position, item_id, track_id, "
     "take_id, reply_port, drop_folder)"),
    ([SONG, 12.5, 20.0, "", 5, 3], "", "/bridge/inpaint: 5 must be an argument name (a string), got integer"),
    ([SONG, 12.5, 20.0, "", "gender", "male", 2.0], "",
     "/bridge/inpaint: 2.0 must be an argument name (a string), got float"),
    ([SONG, 12.5, 20.0, "", "gender", "male", "gender", "female"], "gender", "gender: given twice"),
    ([SONG, 12.5, 20.0, "", "start", 3.0], "start", "start: given twice"),
    ([SONG, 12.5, 20.0, "", "lyric", "la"], "lyric",
     "lyric: unknown argument of /bridge/inpaint (did you mean 'lyrics'?)"),
    ([SONG, 12.5, 20.0, "", "colour", "red"], "colour",
     "colour: unknown argument of /bridge/inpaint (arguments: source, start, end, prompt, capture, lyrics, "
     "lyrics_section_to_replace, gender, num_outputs, backend, delivery, request_id, position, item_id, track_id, "
     "take_id, reply_port, drop_folder)"),
    ([SONG, 12.5, 20.0, "", "command", "extend"], "command",
     "command: unknown argument of /bridge/inpaint (arguments: source, start, end, prompt, capture, lyrics, "
     "lyrics_section_to_replace, gender, num_outputs, backend, delivery, request_id, position, item_id, track_id, "
     "take_id, reply_port, drop_folder)"),
])
def test_shape_mistakes_name_the_key(args, field, message):
    error = refusal("/bridge/inpaint", args)
    assert (str(error), error.field, error.address) == (message, field, "/bridge/inpaint")
    assert str(error).startswith(field or "/bridge/inpaint")  # clients may rely on the reason leading with it


def test_the_first_mistake_in_spec_order_is_reported_whatever_order_the_keys_came_in():
    error = inpaint_refusal("reply_port", 0, "num_outputs", 7, "gender", "robot", start=-1)
    assert error.field == "start"
    error = inpaint_refusal("reply_port", 0, "num_outputs", 7, "gender", "robot")
    assert error.field == "gender"


@pytest.mark.parametrize("address", ["/bridge/inpant", "/bridge/done", "/bridge/INPAINT", "/bridge/inpaint/",
                                     "bridge/inpaint", ""])
def test_an_unknown_address_is_named(address):
    error = refusal(address, [SONG, 12.5, 20.0, ""])
    listed = ", ".join(spec.address for spec in COMMANDS.values())
    assert str(error) == f"{address or repr(address)}: unknown address (commands: {listed})"
    assert (error.field, error.address) == ("", address or repr(address))


def test_a_rejected_message_keeps_its_request_id_for_the_error_reply():
    error = inpaint_refusal("request_id", "reaper-7", "num_outputs", 3)
    assert error.request_id == "reaper-7"
    assert error_reply(error) == ("/bridge/error", ["/bridge/inpaint", "reaper-7", "num_outputs",
                                                    "num_outputs: 3 must be in range 1..2"])
    # an invalid request_id is not echoed as if it were one
    assert inpaint_refusal("request_id", "../x", "num_outputs", 3).request_id == ""


# ---- huge values are never echoed back ----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["x" * 5_000_000, 12.5, 20.0, ""], "source: 5000000 characters exceeds the limit of 4096"),
    ([SONG, "x" * 5_000_000, 20.0, ""],
     "start: 'xxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxxxx' (5000000 characters) must be a number, "
     "got string"),
    ([SONG, 12.5, 20.0, b"\x00" * 5_000_000], "prompt: <blob of 5000000 bytes> must be a string, got blob"),
    ([SONG, 12.5, 20.0, "", "k" * 5_000_000, 1],
     "'kkkkkkkkkkkkkkkkkkkkkkkkkkk...kkkkkkkkkkkkkkkkkkkkkkkkkkkk' (5000000 characters): unknown argument of "
     "/bridge/inpaint (arguments: source, start, end, prompt, capture, lyrics, lyrics_section_to_replace, gender, num_outputs, "
     "backend, delivery, request_id, position, item_id, track_id, take_id, reply_port, drop_folder)"),
    ([SONG, 12.5, 20.0, "", "num_outputs", list(range(100_000))],
     "num_outputs: [0, 1, 2, 3, 4, 5, ...] must be an integer, got array"),
])
def test_a_huge_value_is_shortened_in_the_message(args, message):
    error = refusal("/bridge/inpaint", args)
    assert str(error) == message
    assert len(error.field) <= 128 and str(error).startswith(error.field)


def test_a_number_too_long_to_print_is_still_described():
    assert show(10 ** 5000) == "<integer of 16610 bits>"
    assert str(inpaint_refusal(start=10 ** 5000)) == "start: <integer of 16610 bits> must be a finite number"


# ---- the daemon's own checks use the same words -------------------------------------------------------------------

def test_the_daemon_raises_file_checks_in_the_same_form():
    error = ValidationError("end", 250.0, "is past the end of the source (180.000 s)")
    assert str(error) == "end: 250.0 is past the end of the source (180.000 s)"
    assert (error.field, error.value, error.rule) == ("end", 250.0, "is past the end of the source (180.000 s)")
    error = ValidationError("source", Path("/home/me/gone.wav"), "does not exist")
    assert str(error) == "source: '/home/me/gone.wav' does not exist"
    error.address = "/bridge/inpaint"
    assert error_reply(error) == ("/bridge/error", ["/bridge/inpaint", "", "source", str(error)])


def test_a_validation_error_survives_pickling_for_worker_processes():
    error = inpaint_refusal("request_id", "reaper-7", "gender", "robot")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.field, copy.value, copy.rule, copy.address, copy.request_id) == \
        (str(error), "gender", "robot", error.rule, "/bridge/inpaint", "reaper-7")


def test_a_number_with_a_decimal_comma_is_refused_with_a_hint_and_an_infinite_one_plainly():
    with pytest.raises(ValidationError) as refused:
        load_request('{"command": "inpaint", "source": "/s.wav", "start": "4,5", "end": 6, "prompt": ""}')
    assert str(refused.value) == ("start: '4,5' must be a number, got string (use a decimal point, and send it as a "
                                  "number: 4.5)")
    with pytest.raises(ValidationError) as refused:  # a whole-number field: no decimals to point at
        load_request('{"command": "inpaint", "source": "/s.wav", "start": 4, "end": 6, "prompt": "", '
                                '"num_outputs": "1,5"}')
    assert str(refused.value) == "num_outputs: '1,5' must be an integer, got string"
    with pytest.raises(ValidationError) as refused:  # a thousands separator as much as a decimal comma
        load_request('{"command": "inpaint", "source": "/s.wav", "start": "1,000", "end": 6, "prompt": ""}')
    assert str(refused.value) == ("start: '1,000' must be a number, got string (use a decimal point and no thousands "
                                  "separator, and send it as a number)")
    with pytest.raises(ValidationError) as refused:
        load_request('{"command": "inpaint", "source": "/s.wav", "start": 1e400, "end": 6, "prompt": ""}')
    assert str(refused.value) == "start: inf must be a finite number"
