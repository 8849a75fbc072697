"""Every UDP listener of the daemon (commands, AbletonOSC answers, DAW loop points) decodes through one guard."""

from __future__ import annotations

import struct
import threading

import pytest

from bridge.frontends.ableton import AbletonClient
from bridge.frontends.daw_feedback import ReaperFeedback
from bridge.frontends.osc import OscFrontend
from bridge.frontends.osc_wire import MalformedPacket, OscSocket, Unencodable, decode, encode

BUNDLE = b"#bundle\x00" + b"\x00" * 8


def nested(depth: int) -> bytes:
    packet = encode("/bridge/ping", [])
    for _ in range(depth):
        packet = BUNDLE + struct.pack(">i", len(packet)) + packet
    return packet


HOSTILE = {
    "negative element size": BUNDLE + struct.pack(">i", -4) + b"\x00" * 4,  # sent python-osc into an endless loop
    "bundles nested deep": nested(6),
    "too many messages": BUNDLE + b"".join(struct.pack(">i", 16) + encode("/bridge/ping", []) for _ in range(40)),
    "unknown type tag": b"/bridge/ping\x00\x00\x00\x00,S\x00\x00abc\x00",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_datagram_is_refused_quickly_with_a_reason(name):
    outcome = {}

    def attempt():
        try:
            decode(HOSTILE[name])
        except MalformedPacket as exc:
            outcome["reason"] = str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "decoding hung"
    assert outcome.get("reason"), outcome


def test_a_well_formed_bundle_is_flattened_in_order():
    packet = BUNDLE + b"".join(struct.pack(">i", len(m)) + m
                               for m in (encode("/a", [1, "x"]), encode("/b", [2.5])))
    assert decode(packet) == [("/a", [1, "x"]), ("/b", [2.5])]
    assert decode(nested(3)) == [("/bridge/ping", [])]


@pytest.mark.parametrize("listener", [OscFrontend, AbletonClient, ReaperFeedback])
def test_every_listener_decodes_through_the_guard(listener):
    assert issubclass(listener, OscSocket)
    assert "datagram_received" not in vars(listener) or listener is OscFrontend  # OscFrontend adds the allowlist


def test_a_command_goes_in_doubles_and_a_reply_keeps_the_float32_docs_osc_lists():
    """A client's times go as 'd', as docs/osc.md asks: as 'f' a DAW position of 1234567.891 s arrived 16 ms off and
    1e39 could not be encoded at all. The daemon's replies keep the 'f' docs/osc.md lists for them (the plugin and
    OSC surfaces read them so), and a value no type can carry is one ValueError saying why, not struct's own."""
    times = [1234567.891, 10.123457, 1e39]
    command = encode("/bridge/inpaint", ["song.wav", *times], floats="d")
    assert decode(command) == [("/bridge/inpaint", ["song.wav", *times])] and b",sddd\x00" in command
    reply = encode("/bridge/state", ["j-1", "generating", 0.25, ""])
    assert b",ssfs\x00" in reply and decode(reply) == [("/bridge/state", ["j-1", "generating", 0.25, ""])]
    for unfit in (1e39, 2 ** 40):
        with pytest.raises(Unencodable, match="^/bridge/state: "):
            encode("/bridge/state", [unfit])
