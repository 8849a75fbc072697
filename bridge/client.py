"""A small OSC client for the daemon: used by ``daw-bridge send``, the demo, the tests and the benchmarks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import osc_schema
from bridge.frontends.osc_wire import MalformedPacket, Unencodable, decode, encode
from osc_schema import ValidationError


@dataclass(frozen=True)
class Reply:
    address: str
    args: list

    @property
    def name(self) -> str:
        return self.address.rsplit("/", 1)[-1]


def udp_address(host: str, port: int) -> tuple[int, tuple]:
    """The address family and socket address a datagram to ``host:port`` goes to: the first the resolver gives, as
    the daemon binds the first (an IPv4 socket cannot reach a daemon on ::1)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return family, address


class Unanswered(TimeoutError):
    """Nothing answered a command: no daemon listens there (yet), and the command was lost."""


class DaemonGone(ConnectionError):
    """The daemon running the job is no longer there (``run_job``'s ``running`` said so): no outcome will come."""


class BridgeClient:
    """Sends commands from a UDP socket of its own and reads the daemon's replies to it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9010, *, bind_host: str | None = None,
                 bind_port: int = 0):
        family, self.daemon = udp_address(host, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind((bind_host or ("::1" if family == socket.AF_INET6 else "127.0.0.1"), bind_port))
        except OSError:
            self.sock.close()
            raise

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "BridgeClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, name: str, **values) -> None:
        """Send a command by name, its arguments checked and ordered by the schema. Floats go as OSC doubles ("d"),
        as docs/osc.md asks of clients: a time arrives as it was given. ValidationError for a value the schema or
        OSC refuses (the CLI says it in one line)."""
        address, args = osc_schema.to_osc_args(name, values)
        try:
            datagram = encode(address, args, floats="d")
        except Unencodable as exc:  # past the schema's checks, only OSC's own limits are left (none a command meets)
            raise ValidationError("", None, exc.reason, shown="", subject=address) from None
        self.send_raw(datagram)

    def send_raw(self, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.daemon)

    def receive(self, timeout: float = 5.0) -> Reply | None:
        """The next reply, or None when nothing arrives within ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 1e-3))
        try:
            data, _ = self.sock.recvfrom(65536)
        except (socket.timeout, ConnectionRefusedError):
            return None
        try:
            address, args = decode(data)[0]
        except (MalformedPacket, IndexError):
            return Reply("", [])  # not a daemon's reply: something else wrote to our port
        return Reply(address, args)

    def wait_for(self, predicate, timeout: float = 30.0) -> Reply | None:
        """Read replies until one satisfies ``predicate``; None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            reply = self.receive(left)
            if reply is not None and predicate(reply):
                return reply
        return None

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether a daemon answers at the address."""
        self.send("ping")
        return self.wait_for(lambda r: r.name == "pong", timeout) is not None

    def first_reply(self, command: str, within: float) -> Reply | None:
        """The first reply to ``command``, just sent; None when no daemon took it. A daemon still working on it (a
        loaded machine, a source on a slow share) may take longer than ``within``: then a ping goes after it. No
        answer that long again means that nothing listens (or a daemon stopped mid-way). A pong means a daemon runs:
        it answers an inpaint or extend once it has looked at its files (in a thread: a source on a share that does
        not answer holds up no ping), so its answer is waited for that long again, and the pong is returned without
        it."""
        first = self.wait_for(lambda reply: True, within)
        if first is not None:
            return first
        self.send("ping")
        first = self.wait_for(lambda reply: True, within)
        if first is None or first.name != "pong" or command == "ping":
            return first
        return self.wait_for(lambda reply: reply.name != "pong", within) or first

    def run_job(self, name: str, timeout: float = 600.0, on_reply=None, heard_within: float | None = None,
                running: Callable[[], bool] | None = None, **values) -> tuple[Reply, list[Reply]]:
        """Send inpaint/extend (or ableton) and wait for its outcome: (done, failed, error, the state reply of a paid
        submit whose fate is unknown or, for ableton's context, context_set reply; every reply seen).
        ``heard_within``: Unanswered when no reply at all comes that soon (no daemon took the command).
        ``running``: whether the daemon still runs, asked each second while waiting (DaemonGone when not)."""
        deadline = time.monotonic() + timeout
        self.send(name, **values)
        seen: list[Reply] = []
        job_id = None

        def finished(reply: Reply) -> bool:
            nonlocal job_id
            if reply.name == "pong":  # the ping first_reply may have sent after a slow command
                return False
            seen.append(reply)
            if on_reply:
                on_reply(reply)
            if reply.name == "accepted" and reply.args[0] == values.get("request_id", reply.args[0]):
                job_id = job_id or reply.args[1]
            if reply.name in ("error", "context_set"):  # context_set: /bridge/ableton context, which makes no job
                return True
            if reply.name == "state" and "submission_unknown" in reply.args[1:2]:  # it waits for the producer now
                return reply.args[0] == job_id
            return reply.name in ("done", "failed") and reply.args[0] == job_id

        outcome = None
        if heard_within is not None:
            first = self.first_reply(name, min(heard_within, timeout))
            if first is None:
                raise Unanswered(f"no reply to {name} within {min(heard_within, timeout):.0f} s")
            outcome = first if finished(first) else None
        while outcome is None and (left := deadline - time.monotonic()) > 0:
            outcome = self.wait_for(finished, left if running is None else min(left, 1.0))
            if outcome is None and running is not None and not running():
                raise DaemonGone(f"the daemon stopped before {name} was done")
        if outcome is None:
            raise TimeoutError(f"no outcome for {name} within {timeout:.0f} s")
        return outcome, seen
