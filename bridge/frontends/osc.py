"""OSC over UDP: commands in, replies out to the sender (or to the reply_port it asked for).

Every datagram gets an answer: a malformed packet or an invalid command is answered with ``/bridge/error`` naming
the problem, so a controller never has to guess why nothing happened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

import osc_schema
from bridge.config import Config
from bridge.core.journal import JobRecord
from bridge.core.service import JobService
from bridge.exceptions import BridgeError
from osc_schema import ValidationError
from osc_schema.spec import MAX_BUNDLE_DEPTH, MAX_MESSAGES, TYPE_TAGS

log = logging.getLogger(__name__)

_TYPE_FOR = {str: "s", int: "i", float: "f"}
_BUNDLE = b"#bundle\x00"
# python-osc parses a packet only after _structure_problem has passed it: on a bundle element of negative size it
# loops forever, it recurses once per nested bundle, and it logs a root-logger warning for every unknown type tag or
# unidentified bundle element (one 64 KB datagram can write tens of thousands of log lines).
_TYPE_TAGS = frozenset(TYPE_TAGS.encode())  # what python-osc decodes; anything else it would silently drop


def encode(address: str, args: list) -> bytes:
    """One OSC message as bytes."""
    builder = OscMessageBuilder(address)
    for value in args:
        builder.add_arg(value, _TYPE_FOR.get(type(value)))
    return builder.build().dgram


class OscFrontend(asyncio.DatagramProtocol):
    def __init__(self, service: JobService, config: Config):
        self.service = service
        self.config = config
        self.transport: asyncio.DatagramTransport | None = None
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in config.allowed_senders]
        self.ableton = None  # the AbletonFrontend, when [ableton] enabled = true
        service.subscribe(self._on_job_event)

    async def start(self) -> tuple[str, int]:
        """Bind the UDP socket; return the address it listens on."""
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.config.osc_host, self.config.osc_port))
        return self.transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- asyncio protocol ----------------------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" for a reply to a client that went away: nothing to do.
        log.debug("OSC socket error: %s", exc)

    def datagram_received(self, data: bytes, sender: tuple) -> None:
        if not self._sender_allowed(sender[0]):
            log.warning("OSC datagram from %s dropped: not in allowed_senders", sender[0])
            return
        try:
            problem = _structure_problem(data)
            if problem is None:
                messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # python-osc raises ParseError, but also UnicodeDecodeError, IndexError, ...
            problem = _describe(exc)
        if problem is not None:
            self._send(sender, *osc_schema.reply("error", address=_address_of(data), request_id="", field="",
                                                 reason=f"malformed OSC packet: {problem}"))
            return
        for message in messages:
            self._handle(message.address, list(message.params), sender)

    # -- commands ------------------------------------------------------------------------------------------------

    def _handle(self, address: str, params: list, sender: tuple) -> None:
        # Even a rejected message's reply goes to its reply_port when it names a valid one: a client sending from a
        # throwaway port (oscsend, many DAWs) listens only there.
        target = (sender[0], _reply_port_in(address, params) or sender[1])
        request_id = ""
        try:
            command = osc_schema.parse_osc(address, params)
            request_id = command.args.get("request_id") or ""
            self._dispatch(command, target)
        except ValidationError as exc:
            if not exc.address:  # raised by the daemon's own checks, after parsing
                exc.address, exc.request_id = address, request_id
            self._send(target, *osc_schema.error_reply(exc))
        except BridgeError as exc:  # the source audio cannot be read: the sender's to fix, so an error reply
            self._send(target, *osc_schema.reply("error", address=address, field="source", reason=str(exc),
                                                 request_id=request_id))
        except Exception as exc:  # a bug costs this one command, not the listener; the sender still hears of it
            log.exception("OSC message %.100r failed unexpectedly", address)
            shown = address if len(address) <= 128 else address[:125] + "..."  # the reply must stay small
            self._send(target, *osc_schema.reply("error", address=shown, field="", request_id=request_id,
                                                 reason=f"internal error ({type(exc).__name__}); the daemon's log "
                                                        "has the details"))

    def _dispatch(self, command: osc_schema.Command, target: tuple) -> None:
        name, args = command.name, command.args
        if name in ("inpaint", "extend"):
            self.service.submit(command, {"kind": "osc", "host": target[0], "port": target[1]})
        elif name == "ping":
            self._send(target, *osc_schema.reply("pong", version=osc_schema.VERSION))
        elif name in ("cancel", "retry", "resolve"):
            if name == "cancel":
                record = self.service.cancel(args["job_id"])
            elif name == "retry":
                record = self.service.retry(args["job_id"])
            else:
                record = self.service.resolve_submission(args["job_id"], args["task_id"] or None)
            if record is None:
                raise ValidationError("job_id", args["job_id"], "is not a known job")
            self._send_state(target, record)
        elif name == "status":
            records = [self.service.get(args["job_id"])] if args.get("job_id") else self.service.active()
            if records == [None]:
                raise ValidationError("job_id", args["job_id"], "is not a known job")
            for record in records:
                self._send_state(target, record)
        elif name == "context":
            self.service.set_context(args)
        elif name == "ableton" and self.ableton is not None:
            self.ableton.dispatch(command, {"kind": "osc", "host": target[0], "port": target[1]},
                                  lambda error: self._send(target, *osc_schema.error_reply(error)))
        else:  # the schema knows a command this daemon does not serve (e.g. ableton while it is off)
            raise ValidationError("address", command.name, "is not served by this daemon")

    # -- replies -------------------------------------------------------------------------------------------------

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        origin = record.origin
        if origin.get("kind") != "osc":
            return
        target = (origin["host"], origin["port"])
        if event == "accepted":
            self._send(target, *osc_schema.reply("accepted", request_id=record.request_id, job_id=record.job_id))
        elif event == "state":
            self._send_state(target, record)
        elif event == "done":
            self._send(target, *osc_schema.reply("done", job_id=record.job_id, manifests=record.manifests))
        elif event == "failed":
            self._send(target, *osc_schema.reply("failed", job_id=record.job_id, code=record.error_code or "",
                                                 message=record.error_message or ""))

    def _send_state(self, target: tuple, record: JobRecord) -> None:
        self._send(target, *osc_schema.reply("state", job_id=record.job_id, state=record.state.value,
                                             progress=float(record.progress), message=record.message))

    def _send(self, target: tuple, address: str, args: list) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.transport.sendto(encode(address, args), target)
        except OSError as exc:
            log.debug("could not reply to %s: %s", target, exc)

    def _sender_allowed(self, host: str) -> bool:
        if not self._allowed:
            return True  # bound to loopback (the config refuses a wider bind without an allowlist)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in network for network in self._allowed)


def _reply_port_in(address: str, params: list) -> int | None:
    """The valid reply_port among a message's key, value pairs, whether or not the rest of the message is valid."""
    spec = next((s for s in osc_schema.COMMANDS.values() if s.address == address), None)
    if spec is None:
        return None
    rest = params[len(spec.positional):]
    for key, value in zip(rest[0::2], rest[1::2]):
        if key == "reply_port":
            try:
                return osc_schema.parse_osc(osc_schema.COMMANDS["ping"].address, [key, value]).args["reply_port"]
            except ValidationError:
                return None
    return None


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


def _address_of(data: bytes) -> str:
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
