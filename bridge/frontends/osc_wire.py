"""OSC on the wire: encoding messages, and decoding datagrams safely. Every UDP listener of the daemon uses this.

python-osc parses a packet only after ``_structure_problem`` has passed it: on a bundle element of negative size
it loops forever, it recurses once per nested bundle, and it logs a root-logger warning for every unknown type tag
or unidentified bundle element (one 64 KB datagram could write tens of thousands of log lines).
"""

from __future__ import annotations

import asyncio
import logging

from pythonosc.osc_message_builder import BuildError, OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.parsing import osc_types

from osc_schema.spec import MAX_BUNDLE_DEPTH, MAX_MESSAGES, TYPE_TAGS

log = logging.getLogger(__name__)

_TYPE_FOR = {str: "s", int: "i"}
_FLOAT_TAGS = ("f", "d")
_BUNDLE = b"#bundle\x00"
_TYPE_TAGS = frozenset(TYPE_TAGS.encode())  # what python-osc decodes; anything else it would silently drop


class MalformedPacket(ValueError):
    """A datagram that is not OSC the daemon can decode; the message says why."""


class Unencodable(ValueError):
    """A value that does not fit the OSC type it goes as (an int past 32 bits, a float past 3.4e38 as "f")."""

    def __init__(self, address: str, reason: str):
        super().__init__(f"{address}: {reason}")
        self.address, self.reason = address, reason


def encode(address: str, args: list, *, floats: str = "f") -> bytes:
    """One OSC message as bytes; Unencodable when a value does not fit its type.

    ``floats``: the type tag every float goes as. "f" (32-bit) in what the daemon sends: its replies, as docs/osc.md
    lists their types, and its messages to DAWs and AbletonOSC. "d" (64-bit) in commands to the daemon, as
    docs/osc.md asks of clients: as "f" a position of 1234567.891 s arrives 16 ms off, 10.123457 s as
    10.123456954956055, and a number past 3.4e38 cannot be sent at all.
    """
    if floats not in _FLOAT_TAGS:
        raise ValueError(f"floats must be one of {_FLOAT_TAGS}, not {floats!r}")
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value, floats if isinstance(value, float) else _TYPE_FOR.get(type(value)))
    try:
        return builder.build().dgram
    except (BuildError, OverflowError) as exc:  # python-osc lets struct's OverflowError through (a float for "f")
        raise Unencodable(address, str(exc)) from None


def decode(data: bytes) -> list[tuple[str, list]]:
    """The (address, arguments) of every message in a datagram, bundles flattened; MalformedPacket if it is not OSC."""
    problem = _structure_problem(data)
    if problem is not None:
        raise MalformedPacket(problem)
    try:
        messages = [timed.message for timed in OscPacket(data).messages]
    except Exception as exc:  # python-osc raises ParseError, but also UnicodeDecodeError, IndexError, ...
        raise MalformedPacket(_describe(exc)) from None
    return [(message.address, _marked(message)) for message in messages]


class OtherValue:
    """An argument of a type no command takes (an RGBA colour, a MIDI message, a time tag), marked as such: python-osc
    gives a colour as a plain int, which was taken as an integer argument, and the others as tuples ("array")."""

    __slots__ = ("osc_type", "value")

    def __init__(self, osc_type: str, value):
        self.osc_type, self.value = osc_type, value

    def __repr__(self) -> str:
        return f"<{self.osc_type}>"


_OTHER_TYPES = {"r": "RGBA colour", "m": "MIDI message", "t": "time tag"}


def _marked(message) -> list:
    """A decoded message's arguments, with those of the tags in _OTHER_TYPES marked (see OtherValue)."""
    params = list(message.params)
    _, at = osc_types.get_string(message.dgram, 0)
    tags = osc_types.get_string(message.dgram, at)[0][1:] if at < len(message.dgram) else ""
    if not any(tag in _OTHER_TYPES for tag in tags):
        return params
    top, depth = [], 0  # one tag per argument: an array's tags stand for the one list it is
    for tag in tags:
        if depth == 0 and tag != "]":
            top.append(tag)
        depth += (tag == "[") - (tag == "]")
    return [OtherValue(_OTHER_TYPES[tag], value) if tag in _OTHER_TYPES else value for tag, value in zip(top, params)]


class OscSocket(asyncio.DatagramProtocol):
    """A UDP endpoint that decodes each datagram safely and hands every message to ``received``."""

    label = "OSC"
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" for something sent to a peer that went away: nothing to do.
        log.debug("%s socket: %s", self.label, exc)

    def datagram_received(self, data: bytes, sender: tuple) -> None:
        try:
            messages = decode(data)
        except MalformedPacket as exc:
            self.malformed(data, sender, str(exc))
            return
        for address, params in messages:
            self.received(address, params, sender)

    def malformed(self, data: bytes, sender: tuple, reason: str) -> None:
        log.debug("%s: malformed packet from %s: %s", self.label, sender, reason)

    def received(self, address: str, params: list, sender: tuple) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _structure_problem(data: bytes) -> str | None:
    """Why python-osc must not parse this packet (see MAX_BUNDLE_DEPTH), or None; one pass, no copies."""
    if data.startswith(b"/"):
        return _type_tag_problem(data, 0, len(data))
    if not data.startswith(_BUNDLE):
        return None  # python-osc refuses it quickly by itself
    messages = 0
    pending = [(0, len(data), 1)]
    while pending:
        start, end, depth = pending.pop()
        if depth > MAX_BUNDLE_DEPTH:
            return f"bundles nested more than {MAX_BUNDLE_DEPTH} deep"
        at = start + len(_BUNDLE) + 8  # the time tag
        while at < end:
            if end - at < 4:
                return f"bundle element at byte {at} is cut short"
            size = int.from_bytes(data[at:at + 4], "big", signed=True)
            at += 4
            if size <= 0 or size % 4 or size > end - at:
                return (f"bundle element at byte {at - 4} claims {size} bytes (must be a positive multiple of 4 "
                        f"within the packet)")
            if data.startswith(_BUNDLE, at):
                pending.append((at, at + size, depth + 1))
            elif data.startswith(b"/", at):
                messages += 1
                if messages > MAX_MESSAGES:
                    return f"more than {MAX_MESSAGES} messages in one packet"
                problem = _type_tag_problem(data, at, at + size)
                if problem:
                    return problem
            else:
                return f"bundle element at byte {at} is neither a message nor a bundle"
            at += size
    return None


def _type_tag_problem(data: bytes, start: int, end: int) -> str | None:
    """A type tag python-osc cannot decode in the message at data[start:end], or None."""
    nul = data.find(b"\x00", start, end)
    tags = start + ((nul - start) // 4 + 1) * 4  # the address is padded to a multiple of 4 bytes
    if nul < 0 or tags >= end or data[tags] != ord(","):
        return None  # no arguments, or malformed in a way python-osc reports by itself
    tags_end = data.find(b"\x00", tags, end)
    unknown = set(data[tags + 1:tags_end if tags_end >= 0 else end]) - _TYPE_TAGS
    if unknown:
        return (f"type tag {chr(min(unknown))!r} is not supported (supported: "
                f"{' '.join(chr(t) for t in sorted(_TYPE_TAGS))})")
    return None


def address_of(data: bytes) -> str:
    """The address of a packet that failed to parse, when it has a readable one."""
    head = data[:256].split(b"\x00", 1)[0]
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return ""
    return text if text.startswith("/") and text.isprintable() else ""


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
