"""Every trigger names the audition's actions the same way: a spoken command and a pad map onto /bridge/audition."""

from __future__ import annotations

import osc_schema
from bridge.audition.actions import PAD_ACTIONS, WHATS, from_voice
from bridge.frontends.midi_mapping import ACTIONS, parse_mapping
from bridge.voice.grammar import sentences, to_command


def test_each_spoken_audition_command_is_a_valid_audition():
    spoken = {s: from_voice(to_command(s)) for s in sentences()}
    assert spoken["bridge audition two"] == ("variant", 2)
    assert spoken["bridge audition original"] == ("original", None)
    assert spoken["bridge next"] == ("next", None) and spoken["bridge stop"] == ("stop", None)
    assert spoken["bridge keep"] is None and spoken["bridge inpaint this bar"] is None
    for what, variant in filter(None, spoken.values()):
        params = ["last", what] + (["variant", variant] if variant else [])
        if variant and variant > osc_schema.ARGUMENTS["variant"].max:
            continue  # "audition three": a job has at most two variants, the daemon says so in one line
        assert osc_schema.parse_osc("/bridge/audition", params).args["what"] in WHATS


def test_every_audition_pad_action_is_accepted_by_a_mapping():
    text = "".join(f'[[pad]]\nnote = {36 + n}\naction = "{action}"\n\n' for n, action in enumerate(PAD_ACTIONS))
    mapping = parse_mapping(text)
    assert [pad.action for pad in mapping.pads] == list(PAD_ACTIONS)
    assert set(PAD_ACTIONS) <= set(ACTIONS)
