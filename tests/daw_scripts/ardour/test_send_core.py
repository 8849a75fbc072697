"""The send script's core under lua5.4: a region and a range become source times, a checked request, one OSC
message the daemon's own validator accepts; what cannot be mapped is refused in words a producer can act on."""

from __future__ import annotations

import pytest

import osc_schema
from tests.daw_scripts.ardour.conftest import lua_string

RATE = 44100

# the song at 2 s on the timeline, its first 1.5 s trimmed off, 30 s long, one stereo file
SONG = """{ name = "song", id = "192", kind = "audio", position = 88200, start = 66150, length = 1323000,
  sources = { { path = "/music/song.wav", channel = 0, id = "189" }, { path = "/music/song.wav", channel = 1, id = "190" } } }"""


def test_a_range_maps_into_source_time_and_goes_as_one_message_the_daemon_accepts(lua):
    mapped, message = lua(f"""
local info = {SONG}
local mapping = SEND.map_range(info, 10 * {RATE}, 16 * {RATE}, {RATE})
local request = SEND.request("inpaint", "/music/song.wav", mapping, {{ prompt = "soft guitar solo", num_outputs = 2 }},
    {{ item_id = info.id, track_id = "121", drop_folder = "/music/session/daw-bridge" }})
local address, tags, args = SEND.osc_message("inpaint", request)
report(mapping)
report({{ address = address, tags = tags, args = args }})
""")
    assert mapped == {"start": 9.5, "end": 15.5, "position": 0.5}  # 10 s - 2 s + 1.5 s; source 0 sits at 0.5 s
    command = osc_schema.parse_osc(message["address"], message["args"])
    assert command.name == "inpaint"
    assert {k: command.args[k] for k in ("source", "start", "end", "prompt", "num_outputs", "position", "item_id",
                                         "track_id", "drop_folder")} == {
        "source": "/music/song.wav", "start": 9.5, "end": 15.5, "prompt": "soft guitar solo", "num_outputs": 2,
        "position": 0.5, "item_id": "192", "track_id": "121", "drop_folder": "/music/session/daw-bridge"}
    assert command.args["request_id"].startswith("ardour-")
    tags = dict(zip(message["args"][4::2], message["tags"][5::2]))
    assert message["tags"][:4] == "sdds" and tags["position"] == "d" and tags["num_outputs"] == "i"  # doubles


def test_extend_continues_after_the_ranges_end(lua):
    [message] = lua(f"""
local mapping = SEND.map_range({SONG}, 20 * {RATE}, nil, {RATE})
local request = SEND.request("extend", "/music/song.wav", mapping, {{ prompt = "", duration = 12.0 }}, {{}})
local address, tags, args = SEND.osc_message("extend", request)
report({{ address = address, args = args }})
""")
    command = osc_schema.parse_osc(message["address"], message["args"])
    assert (command.name, command.args["extend_after"], command.args["duration"], command.args["position"]) == (
        "extend", 19.5, 12.0, 0.5)


@pytest.mark.parametrize("region, first, last, refusal", [
    ('{ name = "drums", kind = "midi", position = 0, start = 0, length = 441000, sources = {} }', 1, 2,
     "The region 'drums' is MIDI: daw-bridge replaces audio. Bounce it to audio first"),
    ('{ name = "comp", kind = "audio", position = 0, start = 0, length = 441000, sources = { { id = "7" } } }', 1, 2,
     "The region 'comp' does not play a file (a compound or generated region): bounce it first"),
    ('{ name = "swap", kind = "audio", position = 0, start = 0, length = 441000, sources = { '
     '{ path = "/a.wav", channel = 1, id = "1" }, { path = "/a.wav", channel = 0, id = "2" } } }', 1, 2,
     "The region 'swap' plays channels of a.wav in an order daw-bridge cannot send (channel 1 twice or out of order)"),
    (SONG, 1, 5, "The range 1.00 s to 5.00 s is not inside the region 'song' (2.00 s to 32.00 s). Make it lie "
                 "within one region, or combine the regions first"),
    (SONG, 30, 33, "The range 30.00 s to 33.00 s is not inside the region 'song' (2.00 s to 32.00 s)."),
])
def test_what_cannot_be_mapped_is_refused_with_the_reason_and_the_way_out(lua, region, first, last, refusal):
    [outcome] = lua(f"""
local info = {region}
local storage, why = SEND.storage(info)
if storage then
  local mapping
  mapping, why = SEND.map_range(info, {first * RATE}, {last * RATE}, {RATE})
end
report({{ refusal = why }})
""")
    assert outcome["refusal"].startswith(refusal)


def test_one_mono_file_per_channel_is_sent_as_one_interleaved_file_named_after_its_sources(lua):
    [outcome] = lua("""
local info = { name = "mix", kind = "audio", position = 0, start = 0, length = 10, sources = {
  { path = "/s/interchange/s/audiofiles/mix%L.wav", channel = 0, id = "31" },
  { path = "/s/interchange/s/audiofiles/mix%R.wav", channel = 0, id = "32" } } }
report({ storage = SEND.storage(info), path = SEND.interleaved_path(info, "/s/daw-bridge") })
""")
    assert outcome == {"storage": "files", "path": "/s/daw-bridge/sources/mix-31-32.wav"}


@pytest.mark.parametrize("choices, field, rule", [
    ('{ prompt = string.rep("a", 1001) }', "prompt", "is 1001 characters long; the limit is 1000."),
    ('{ prompt = "", num_outputs = 3 }', "num_outputs", "is 3; it must be at most 2."),
    ('{ prompt = "", gender = "robot" }', "gender", "must be one of male, female, neutral."),
])
def test_values_the_daemon_would_refuse_are_named_before_anything_is_sent(lua, choices, field, rule):
    [outcome] = lua(f"""
local mapping = SEND.map_range({SONG}, 10 * {RATE}, 16 * {RATE}, {RATE})
local request = SEND.request("inpaint", "/music/song.wav", mapping, {choices}, {{}})
local name, why = SEND.check("inpaint", request)
report({{ field = name, rule = why }})
""")
    assert (outcome["field"], outcome["rule"] + ".") == (field, rule)


@pytest.mark.parametrize("typed", ["C:\\new take", "lo-fi \\n tape\\", "verse\nchorus", "\\\\n", "plain café ♪"])
def test_the_dialogs_last_answers_come_back_as_typed(lua, typed):
    [read] = lua(f"""
local line = SEND.settings_line("prompt", {lua_string(typed)})
assert(not line:find("\\n"), "one line per answer")
local key, value = SEND.settings_entry(line)
report({{ key = key, value = value }})
""")
    assert read == {"key": "prompt", "value": typed}
