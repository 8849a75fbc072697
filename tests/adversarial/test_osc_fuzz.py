"""Ten thousand hostile OSC datagrams: each is answered with what was wrong, and the daemon stays up and small.

The datagrams (see ``hostile_osc``) come from python-osc's builders, from raw bytes, and from liblo's ``oscsend``.
They go out in batches, each datagram followed by a *fence*: ``/bridge/status job_id fence-N``, whose error reply
names N. The daemon handles datagrams one at a time in arrival order, so the replies between two fences belong to
the datagram between them, and a missing or extra reply is pinned to the datagram that caused it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections import Counter

import pytest
from pythonosc.osc_packet import OscPacket

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.adversarial.hostile_osc import Datagram, Hostile
from tests.adversarial.support import Daemon, journal_records, rss_kib, udp_drops
from tests.conftest import Project

TOTAL = 10_000
# A batch (with its fences) must fit the daemon socket's receive buffer (208 KiB here, counting the kernel's
# per-datagram overhead) even if the daemon reads nothing while it arrives, so the kernel never drops one.
BATCH_BYTES = 64 * 1024
BATCH_COUNT = 32
WARM_UP = 1_000  # datagrams before the memory baseline: python-osc, numpy and the allocator have settled by then
# After warm-up, resident memory may grow by at most 8 MiB over the remaining 9,000 datagrams: under 1 KiB each,
# less than one reply or one small datagram. Keeping any per-datagram object (a packet, a reply, an exception with
# its traceback) would exceed it; a 64 KB parse's transient buffers and allocator slack stay well below it.
RSS_GROWTH_KIB = 8 * 1024
LOG_GROWTH = 64 * 1024  # rejected datagrams are answered, not logged: a flood of log lines would fill a disk
REPLY_MAX = 2048  # a reply to a 64 KB datagram must still be small (values are shortened, never echoed whole)


@pytest.fixture(scope="module")
def target(tmp_path_factory, demo_song_path):
    """One daemon for the whole fuzz run, as a producer's machine would have it."""
    project = Project(tmp_path_factory.mktemp("fuzz") / "project", demo_song_path)
    daemon = Daemon(project).start()
    yield project, daemon
    daemon.stop()


class Collector:
    """The test's UDP socket: sends datagrams and fences, and reads replies as raw bytes."""

    def __init__(self, daemon_port: int):
        self.daemon = ("127.0.0.1", daemon_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # replies to a batch arrive faster than Python reads them: room for all of them
            self.sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.daemon)

    def replies(self, count: int | None = None, fence_id: str = "", timeout: float = 20.0) -> list:
        """(size, address, args) of the replies that come within ``timeout``: the next ``count`` of them, or every
        one up to and including the error reply naming ``fence_id`` (failing when it does not come)."""
        got = []
        deadline = time.monotonic() + timeout
        while (count is None or len(got) < count) and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                break
            message = OscPacket(data).messages[0].message
            got.append((len(data), message.address, list(message.params)))
            if fence_id and _fence_of(got[-1]) == fence_id:
                return got
        if fence_id:
            raise AssertionError(f"no reply to {fence_id} within {timeout} s; got {len(got)} replies: {got[-3:]}")
        return got

    def close(self) -> None:
        self.sock.close()


def _fence(number: int) -> tuple[str, bytes]:
    fence_id = f"fence-{number}"
    return fence_id, encode("/bridge/status", ["job_id", fence_id])


def _fence_of(reply: tuple) -> str | None:
    _, address, args = reply
    if address == "/bridge/error" and len(args) == 4 and args[2] == "job_id" and "'fence-" in args[3]:
        return args[3].split("'")[1]
    return None


# Commands that look at the producer's files in a thread (a share that does not answer must not hold up the
# daemon): their answer may come after the answer to a fence sent behind them.
_ADMITTED_APART = (b"/bridge/inpaint", b"/bridge/extend", b"/bridge/bars", b"/bridge/ableton", b"/bridge/decide",
                   b"/bridge/plugins", b"/bridge/plugin_prompt")


def _admitted_apart(datagram: Datagram) -> bool:
    return any(address in datagram.data for address in _ADMITTED_APART)


def _batches(datagrams: list[Datagram]):
    batch, size = [], 0
    for datagram in datagrams:
        if datagram.direct or _admitted_apart(datagram):  # oscsend sends these itself, one process each; the
            # others' answers are waited for before their fence is sent: a batch of its own
            if batch:
                yield batch
            yield [datagram]
            batch, size = [], 0
            continue
        if batch and (size + len(datagram.data) > BATCH_BYTES or len(batch) >= BATCH_COUNT):
            yield batch
            batch, size = [], 0
        batch.append(datagram)
        size += len(datagram.data)
    if batch:
        yield batch


def _problems_with(datagram: Datagram, replies: list[tuple[int, str, list]]) -> str | None:
    """Why these replies are not a proper answer to this datagram, or None."""
    if len(replies) != datagram.replies:
        return f"{len(replies)} replies, expected {datagram.replies}"
    for size, address, args in replies:
        if address != "/bridge/error" or len(args) != 4:
            return f"answered {address} {args!r:.200}"
        about, _, field, reason = args
        if size > REPLY_MAX:
            return f"a {size}-byte reply"
        # The reason names the problem: "malformed OSC packet: <why>", "<field>: <value> <rule>", or, for a
        # mistake about the whole message, "<address>: <rule>".
        named = reason.startswith((f"{field}:",) if field else ("malformed OSC packet: ", f"{about}:"))
        if not named or len(reason.split(": ", 1)[-1].strip()) < 3:
            return f"reason does not name the problem: field={field!r} reason={reason!r:.200}"
    return None


def test_ten_thousand_hostile_datagrams_are_each_answered_and_survived(target, figures):
    project, daemon = target
    oscsend = shutil.which("oscsend")
    if oscsend is None and os.environ.get("CI") == "true":
        pytest.fail("oscsend (liblo-tools) is not installed, and CI must send liblo's datagrams too")
    collector = Collector(project.port)
    datagrams = Hostile(oscsend=oscsend).batch(TOTAL, collector.port)
    log_before = daemon.log.stat().st_size
    rss = {"start": rss_kib(daemon.pid)}
    failures: list[str] = []
    sent: Counter = Counter()
    replies_seen = 0
    fences = 0
    try:
        for number, batch in enumerate(_batches(datagrams)):
            fence_ids, early = [], []
            for datagram in batch:
                if datagram.direct:
                    subprocess.run([oscsend, "127.0.0.1", str(project.port), *datagram.direct], check=True,
                                   timeout=10, capture_output=True)
                else:
                    collector.send(datagram.data)
                if _admitted_apart(datagram):
                    early = collector.replies(datagram.replies)
                fence_id, fence = _fence(fences)
                fences += 1
                collector.send(fence)
                fence_ids.append(fence_id)
            replies = early + collector.replies(fence_id=fence_ids[-1])
            segment: list = []
            fence_at = 0
            for reply in replies:
                if _fence_of(reply) is None:
                    segment.append(reply)
                    continue
                datagram = batch[fence_at]
                assert _fence_of(reply) == fence_ids[fence_at], "fences answered out of order"
                problem = _problems_with(datagram, segment)
                if problem:
                    failures.append(f"{datagram.origin}/{datagram.kind}: {problem}; datagram {datagram.data[:80]!r}")
                replies_seen += len(segment)
                segment = []
                fence_at += 1
            assert fence_at == len(batch), f"{len(batch) - fence_at} fences unanswered"
            for datagram in batch:
                sent[(datagram.origin, datagram.kind)] += 1
            if "warm" not in rss and sum(sent.values()) >= WARM_UP:
                rss["warm"] = rss_kib(daemon.pid)
            if number % 25 == 0:
                with BridgeClient("127.0.0.1", project.port) as client:
                    assert client.ping(timeout=5), f"no pong after {sum(sent.values())} datagrams"
        rss["end"] = rss_kib(daemon.pid)
        drops = udp_drops(project.port)
    finally:
        collector.close()

    log_growth = daemon.log.stat().st_size - log_before
    # Known, reported: osc_schema words an empty argument name as nothing (": unknown argument of ..."); see
    # test_an_empty_argument_name_is_named_in_its_error below, which fails loudly once the schema is fixed.
    known = [f for f in failures if "reason=': unknown argument" in f]
    failures = [f for f in failures if f not in known]
    figures["OSC fuzz"] = {
        "datagrams survived": f"{sum(sent.values())} (+{fences} fences), daemon still answering ping",
        "by origin": dict(Counter(origin for origin, _ in sent.elements())),
        "by kind": {f"{o}/{k}": n for (o, k), n in sorted(sent.items())},
        "error replies": replies_seen, "kernel drops at the daemon's socket": drops,
        "VmRSS KiB start / after warm-up / end": f"{rss['start']} / {rss['warm']} / {rss['end']}",
        "daemon log growth (bytes)": log_growth, "unanswered or wrongly answered": len(failures),
        "answered, but an empty argument name is not shown (osc_schema, reported)": len(known)}

    assert daemon.alive()
    assert not failures, f"{len(failures)} datagrams not properly answered, e.g.:\n" + "\n".join(failures[:8])
    assert sum(sent.values()) == TOTAL and drops == 0, f"{drops} datagrams dropped by the kernel"
    assert rss["end"] - rss["warm"] < RSS_GROWTH_KIB, rss
    assert log_growth < LOG_GROWTH, daemon.log.read_text()[-3000:]
    assert journal_records(project) == [], "a hostile datagram started a job"
    assert project.visible_drop_files() == []


def test_an_empty_argument_name_is_named_in_its_error(target):
    project, _ = target
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send_raw(encode("/bridge/cancel", ["j-1", "", 5]))
        reply = client.wait_for(lambda r: True, timeout=5)
    assert reply is not None and reply.address == "/bridge/error"
    assert reply.args[3].startswith("'': unknown argument"), reply.args
