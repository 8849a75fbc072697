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

log = logging.getLogger(__name__)

_TYPE_FOR = {str: "s", int: "i", float: "f"}


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
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as exc:  # python-osc raises ParseError, but also UnicodeDecodeError, IndexError, ...
            self._send(sender, *osc_schema.reply("error", address=_address_of(data), request_id="", field="",
                                                 reason=f"malformed OSC packet: {_describe(exc)}"))
            return
        for message in messages:
            self._handle(message.address, list(message.params), sender)

    # -- commands ------------------------------------------------------------------------------------------------

    def _handle(self, address: str, params: list, sender: tuple) -> None:
        try:
            command = osc_schema.parse_osc(address, params)
        except ValidationError as exc:
            self._send(sender, *osc_schema.error_reply(exc))
            return
        target = (sender[0], command.args.get("reply_port") or sender[1])
        try:
            self._dispatch(command, target)
        except ValidationError as exc:
            exc.address, exc.request_id = address, command.args.get("request_id") or ""
            self._send(target, *osc_schema.error_reply(exc))
        except BridgeError as exc:  # the source audio cannot be read: the sender's to fix, so an error reply
            self._send(target, *osc_schema.reply("error", address=address, field="source", reason=str(exc),
                                                 request_id=command.args.get("request_id") or ""))

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
