"""OSC over UDP: commands in, replies out to the sender (or to the reply_port it asked for).

Every datagram gets an answer: a malformed packet or an invalid command is answered with ``/bridge/error`` naming
the problem, so a controller never has to guess why nothing happened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import osc_schema
from bridge import captures, plugin_prompts
from bridge.config import Config
from bridge.core.service import JobService
from bridge.decisions import Decision, Decisions
from bridge.exceptions import BridgeError, SourceError
from bridge.frontends.bars import bars_on_source, range_arguments, selection_request
from bridge.frontends.daw_feedback import bars_transport
from bridge.frontends.osc_wire import OscSocket, address_of, encode
from bridge.models import JobRecord
from bridge.share import ShareThread
from osc_schema import ValidationError

log = logging.getLogger(__name__)

_REPLY_ADDRESSES = frozenset(spec.address for spec in osc_schema.REPLIES.values())

# What /bridge/bars passes on to the job: every option of /bridge/inpaint and /bridge/extend but an extension's
# duration, which its bars give.
_BARS_OPTIONS = ("prompt", "lyrics", "lyrics_section_to_replace", "lyrics_section_to_extend", "gender",
                 "num_outputs", "backend", "delivery", "request_id")


class OscFrontend(OscSocket):
    def __init__(self, service: JobService, config: Config, decisions: Decisions | None = None):
        self.service = service
        self.config = config
        self.decisions = decisions  # /bridge/decide; not served without it
        self._allowed = [ipaddress.ip_network(n, strict=False) for n in config.allowed_senders]
        self.ableton = None  # the AbletonFrontend, when [ableton] enabled = true
        self.audition = None  # the daemon's Audition
        self.session = None  # the MIDI frontend's SessionContext, which follows the DAW's transport ([midi.daw])
        self._also_told: dict[str, set[tuple]] = {}  # job id -> senders of the same request again, until it ends
        self._admissions: set[asyncio.Task] = set()  # commands looking at files in a thread (see _later)
        # where the captures folder is looked at: it may be on a share that does not answer, and a plugin asking again
        # and again must not take a thread of the loop's pool each time (each would stay stuck there); the calls
        # queue behind the stuck one instead
        self._captures = ShareThread("captures")
        service.subscribe(self._on_job_event)
        if decisions is not None:
            decisions.subscribe(self._on_decision)

    async def start(self) -> tuple[str, int]:
        """Bind the UDP socket; return the address it listens on."""
        loop = asyncio.get_running_loop()
        host, port = self.config.osc_host, self.config.osc_port
        try:
            await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        except OSError as exc:
            raise BridgeError(f"cannot listen for OSC on {host}:{port}: {exc.strerror or exc} (is another daemon "
                              "or program using that port? osc_port sets another)", code="osc_port") from None
        return self.transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, sender: tuple) -> None:
        if not self._sender_allowed(sender[0]):
            log.warning("OSC datagram from %s dropped: not in allowed_senders", sender[0])
            return
        super().datagram_received(data, sender)

    def malformed(self, data: bytes, sender: tuple, reason: str) -> None:
        self._send(sender, *osc_schema.reply("error", address=address_of(data), request_id="", field="",
                                             reason=f"malformed OSC packet: {reason}"))

    def _is_own(self, target: tuple) -> bool:
        """Whether a datagram sent to ``target`` would come back to this socket: a reply there is read as a command,
        answered with an error sent there again, and so on, the daemon busy with itself for good."""
        if self.transport is None:
            return False
        host, port = self.transport.get_extra_info("sockname")[:2]
        if target[1] != port:
            return False
        try:
            own, there = ipaddress.ip_address(host), ipaddress.ip_address(target[0])
        except ValueError:
            return target[0] == host
        return there == own or (own.is_unspecified and there.is_loopback)

    # -- commands ------------------------------------------------------------------------------------------------

    def received(self, address: str, params: list, sender: tuple) -> None:
        if address in _REPLY_ADDRESSES:
            # A reply come to a daemon (another daemon's pong, sent here by a ping whose reply_port named this port):
            # answered as an unknown command, the two daemons answered each other's errors for good, a core each.
            log.debug("OSC reply %s from %s:%d dropped: replies are not commands", address, *sender[:2])
            return
        # Even a rejected message's reply goes to its reply_port when it names a valid one: a client sending from a
        # throwaway port (oscsend, many DAWs) listens only there.
        target = (sender[0], _reply_port_in(address, params) or sender[1])
        request_id = ""
        try:
            if self._is_own(target) and not self._is_own(sender):  # e.g. a DAW's reply port set to osc_port
                port, target = target[1], sender
                raise ValidationError("reply_port", port, "is the daemon's own OSC port: replies sent there would "
                                      "come back to it as commands; name the port your DAW or script listens on")
            command = osc_schema.parse_osc(address, params)
            request_id = command.args.get("request_id") or ""
            self._dispatch(command, target)
        except Exception as exc:  # even a bug costs this one command, not the listener; the sender hears of it
            self._refuse(target, address, request_id, exc)

    def _refuse(self, target: tuple, address: str, request_id: str, exc: Exception) -> None:
        """Tell ``target`` in one line why its message to ``address`` was refused; called where ``exc`` is handled,
        so a bug (no ValidationError or BridgeError) is logged with its traceback and costs this one message."""
        if not isinstance(exc, (ValidationError, BridgeError)):
            log.exception("OSC message %.100r failed unexpectedly", address)
        self._send(target, *_error_reply(address, request_id, exc))

    def _tell_end(self, target: tuple, record) -> None:
        """Send ``target`` how the job ended, now if it has, else when it does (its origin hears it anyway)."""
        if record.state.finished:
            self._send(target, *_outcome(record))
        elif target != _origin_target(record.origin):
            self._also_told.setdefault(record.job_id, set()).add(target)

    def _dispatch(self, command: osc_schema.Command, target: tuple) -> None:
        name, args = command.name, command.args
        if name in ("inpaint", "extend"):
            self._submit(command.address, command, {"kind": "osc", "host": target[0], "port": target[1]}, target)
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
            if args.get("job_id"):  # one job named (a plugin reopened with it): its end too, now or when it comes
                self._tell_end(target, records[0])
            self._send(target, *osc_schema.reply("status_listed", count=len(records)))
        elif name == "plugins":  # the captures folder, in a thread: it may be on a share that does not answer
            self._later(self._answer_from_captures(command, target, self._list_plugins))
        elif name == "plugin_prompt":
            self._later(self._answer_from_captures(command, target, self._set_prompt, args))
        elif name == "context":
            self.service.set_context(args)
            given = [key for key, value in args.items() if value is not None and key != "reply_port"]
            self._send(target, *osc_schema.reply("context_set", keys=",".join(given)))
        elif name == "bars":
            self._bars(command.address, args, target)
        elif name == "audition" and self.audition is not None:
            self.audition.request(args["job_id"], args["what"], args["variant"],
                                  lambda playing, error: self._send(target, *(
                                      osc_schema.reply("auditioning", **vars(playing)) if error is None
                                      else _error_reply(command.address, "", error))))
        elif name == "decide" and self.decisions is not None:
            self._later(self._decide(command.address, args, target))
        elif name == "ableton" and self.ableton is not None:
            self.ableton.dispatch(command, {"kind": "osc", "host": target[0], "port": target[1]},
                                  lambda error: self._send(target, *osc_schema.error_reply(error)),
                                  lambda reply: self._send(target, *reply))
        else:  # the schema knows a command this daemon does not serve (e.g. ableton while it is off)
            raise ValidationError("address", command.name, "is not served by this daemon")

    def _bars(self, address: str, args: dict, target: tuple) -> None:
        operation = args["operation"]
        for name in _BARS_OPTIONS:  # refused before the bars are chosen: nothing is sent for a mistyped request
            if args[name] is None:
                continue
            if operation == "context":
                raise ValidationError(name, args[name], "applies to a job: operation context only sets the bars the "
                                                        "pads act on")
            if osc_schema.COMMANDS[operation].argument(name) is None:
                takes = " and ".join(op for op in ("inpaint", "extend") if osc_schema.COMMANDS[op].argument(name))
                raise ValidationError(name, args[name], f"applies to operation {takes}, not {operation}")
        if operation == "context" and self.session is None:
            raise ValidationError("operation", operation, "needs [midi] in the daemon's config: the session context "
                                                          "is what its pads act on")
        self._later(self._bars_counted(address, args, target))

    async def _bars_counted(self, address: str, args: dict, target: tuple) -> None:
        """/bridge/bars once the transport is found: the plugin instances' capture indexes are read on the captures
        folder's thread (a FIFO there, or a share that does not answer, froze the whole daemon)."""
        operation = args["operation"]
        try:
            # without [midi] there is no session context: only a plugin instance's transport and capture
            selection, daw = (self.session.selection(), self.session.transport) if self.session is not None else (
                {}, None)
            transport, selection = await self._captures.run(bars_transport, self.config, selection, daw)
            chosen, start, end = bars_on_source(transport, selection, args["anchor"], args["bars"])
            self._send(target, *osc_schema.reply("selected", range=chosen.describe(), start=start, end=end,
                                                 tempo=float(transport.tempo),
                                                 beats_per_bar=float(transport.beats_per_bar)))
            if operation == "context":
                self.session.follow_bars(start, end, f"{chosen.describe()} at {transport.describe()}",
                                         selection.get("capture"))
                return
            if selection.get("source") is None and selection.get("capture") is None:
                raise ValidationError("source", None, "is not known yet: send /bridge/context or run one command "
                                                      "first", shown="")
            request = selection_request(operation, selection)
            request.update(range_arguments(operation, start, end))
            request.update({key: args[key] for key in _BARS_OPTIONS if args[key] is not None})
            command = osc_schema.parse_request(request)
        except Exception as exc:
            self._refuse(target, address, args.get("request_id") or "", exc)
            return
        await self._take(address, command, {"kind": "osc", "host": target[0], "port": target[1],
                                            "bars": chosen.with_tempo()}, target)

    def _submit(self, address: str, command: osc_schema.Command, origin: dict, target: tuple) -> None:
        """Submit an inpaint or extend, its admission's look at the source and drop folder in a thread (a project on
        a share that does not answer held up the whole daemon), and answer ``target`` as ``received`` does."""
        self._later(self._take(address, command, origin, target))

    def _later(self, answer) -> None:
        """Run ``answer``, a command whose files are looked at in a thread, in the background (see close)."""
        task = asyncio.get_running_loop().create_task(answer)
        self._admissions.add(task)
        task.add_done_callback(self._admissions.discard)

    async def _answer_from_captures(self, command: osc_schema.Command, target: tuple, call, *args) -> None:
        """Send ``target`` the replies ``call(*args)`` makes in a thread, or the error it raises."""
        try:
            replies = await self._captures.run(call, *args)
        except Exception as exc:
            self._refuse(target, command.address, command.args.get("request_id") or "", exc)
            return
        for reply in replies:
            self._send(target, *reply)

    def _list_plugins(self) -> list[tuple[str, list]]:
        found = captures.live_plugins(self.config)
        return [osc_schema.reply("plugin", **plugin) for plugin in found] + [
            osc_schema.reply("plugins_listed", count=len(found))]

    def _set_prompt(self, args: dict) -> list[tuple[str, list]]:
        plugin_prompts.set_prompt(self.config, args["capture"], args["prompt"])
        return [osc_schema.reply("plugin_prompt_set", capture=args["capture"], prompt=args["prompt"])]

    async def _decide(self, address: str, args: dict, target: tuple) -> None:
        """/bridge/decide, its drop folder read and written in a thread; answered as ``received`` does."""
        try:
            decided = await self.decisions.decide(args["job_id"], args["decision"], args["choice"])
        except Exception as exc:
            self._refuse(target, address, args.get("request_id") or "", exc)
            return
        if _origin_target(decided.record.origin) != target:  # else _on_decision answered it already
            self._send(target, *_decided(decided))

    async def _take(self, address: str, command: osc_schema.Command, origin: dict, target: tuple) -> None:
        try:
            record = await self.service.take(command, origin)
        except Exception as exc:
            self._refuse(target, address, command.args.get("request_id") or "", exc)
            return
        if record.origin is not origin:  # sent again: the sender hears of the job it already has, to its end
            self._send(target, *osc_schema.reply("accepted", request_id=record.request_id, job_id=record.job_id))
            self._send_state(target, record)
            self._tell_end(target, record)

    def close(self) -> None:
        for task in list(self._admissions):  # a look stuck on a share: its thread is left to the process's end
            task.cancel()
        # its calls only read: none needs finishing, and one stuck on a share (left to end with the process) holds
        # the daemon's stop, on the event loop, a second at most
        self._captures.close(timeout=1)
        super().close()

    # -- replies -------------------------------------------------------------------------------------------------

    def _on_job_event(self, record: JobRecord, event: str) -> None:
        targets = [_origin_target(record.origin)] + sorted(self._also_told.get(record.job_id, ()))
        if event in ("done", "failed"):
            self._also_told.pop(record.job_id, None)
        for target in filter(None, targets):
            if event == "accepted":
                self._send(target, *osc_schema.reply("accepted", request_id=record.request_id, job_id=record.job_id))
            elif event == "state":
                self._send_state(target, record)
            elif event == "done":
                self._send(target, *_done(record))
            elif event == "failed":
                self._send(target, *_failed(record))

    def _on_decision(self, decided: Decision) -> None:
        """Whoever sent the job (a plugin instance, a DAW script) hears of every decision on it, from any trigger,
        so a plugin switches what it plays; so does a plugin instance the job was restored into (its project
        reopened: the instance that sent it is gone, and this one has another reply port)."""
        origin = _origin_target(decided.record.origin)
        if origin is not None:
            self._send(origin, *_decided(decided))
        self._later(self._tell_followers(decided, origin))

    async def _tell_followers(self, decided: Decision, told: tuple | None) -> None:
        """``_on_decision``'s plugin instances, found in the captures folder in a thread (it may be on a share)."""
        try:
            ports = await self._captures.run(captures.reply_ports_following, self.config, decided.record.job_id)
        except (OSError, ValidationError) as exc:  # a captures_dir that cannot be read: the sender is still told
            log.debug("plugin instances following %s not found: %s", decided.record.job_id, exc)
            return
        for target in dict.fromkeys(("127.0.0.1", port) for port in ports):
            if target != told:
                self._send(target, *_decided(decided))

    def _send_state(self, target: tuple, record: JobRecord) -> None:
        self._send(target, *osc_schema.reply("state", job_id=record.job_id, state=record.state.value,
                                             progress=float(record.progress), message=record.message))

    def _send(self, target: tuple, address: str, args: list) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self._is_own(target):  # never to itself (a job journaled with such a reply_port, a reply come back)
            log.debug("reply %s to the daemon's own address %s dropped", address, target)
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


def _error_reply(address: str, request_id: str, error: Exception) -> tuple[str, list]:
    """The /bridge/error telling a sender why its message to ``address`` was refused: the field at fault, "source"
    for source audio that cannot be read (the sender's to fix), and no detail of a bug (the log has it)."""
    if isinstance(error, ValidationError):
        if not error.address:  # raised by the daemon's own checks, after parsing
            error.address, error.request_id = address, request_id
        return osc_schema.error_reply(error)
    if isinstance(error, BridgeError):
        return osc_schema.reply("error", address=address, request_id=request_id, reason=str(error),
                                field="source" if isinstance(error, SourceError) else "")
    shown = address if len(address) <= 128 else address[:125] + "..."  # the reply must stay small
    return osc_schema.reply("error", address=shown, field="", request_id=request_id,
                            reason=f"internal error ({type(error).__name__}); the daemon's log has the details")


def _origin_target(origin: dict) -> tuple[str, int] | None:
    """Where a job's own replies go: the OSC sender (or reply_port) that started it; None for pads, files, CLI."""
    return (origin["host"], origin["port"]) if origin.get("kind") == "osc" else None


def _outcome(record: JobRecord) -> tuple[str, list]:
    """/bridge/done or /bridge/failed for a job that has ended."""
    return _done(record) if record.state.value == "delivered" else _failed(record)


def _done(record: JobRecord) -> tuple[str, list]:
    return osc_schema.reply("done", job_id=record.job_id, manifests=record.manifests)


def _failed(record: JobRecord) -> tuple[str, list]:
    return osc_schema.reply("failed", job_id=record.job_id, code=record.error_code or "",
                            message=record.error_message or "")


def _decided(decided: Decision) -> tuple[str, list]:
    return osc_schema.reply("decided", job_id=decided.job_id, decision=decided.decision, choice=decided.choice,
                            seq=decided.seq)


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
