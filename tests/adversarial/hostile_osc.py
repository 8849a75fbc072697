"""Hostile OSC datagrams, made three ways: python-osc's builders, raw bytes, and liblo's ``oscsend``.

Each ``Datagram`` knows how many replies the daemon owes for it: one for anything malformed or invalid, one per
message for a well-formed bundle. No datagram here is a valid command that is answered with silence (a valid
``/bridge/context``, or ``/bridge/status`` while no job runs), and none names a real source, so none starts a job.
The generator is seeded: the same run throws the same 10,000 datagrams.
"""

from __future__ import annotations

import math
import random
import struct
import subprocess
import time
from dataclasses import dataclass

from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

import osc_schema

UDP_MAX = 65507  # the largest UDP payload over IPv4 (loopback's MTU is larger still)
COMMANDS = [spec.address for spec in osc_schema.COMMANDS.values()]
# Commands whose valid forms are always answered: every other valid command still needs a source, a job or a
# running Ableton link that this daemon does not have. ping, status and context get a deliberate flaw instead.
ALWAYS_ANSWERED = [a for a in COMMANDS if a.rsplit("/", 1)[1] not in ("ping", "status", "context")]
NAMES = [name for name in osc_schema.ARGUMENTS if name != "reply_port"]  # replies must come back to the test

STRINGS = ["", "x", "/nonexistent/song.wav", "song.wav", "~/song.wav", "/etc/passwd", "../../etc/passwd",
           "/tmp/../etc/shadow", "\u00e9t\u00e9", "\U0001f3b8" * 8, "a" * 300, "b" * 5000, "\x01\x02\x7f",
           "robot", "male", "patch", "full", "local", "musicgpt", "inpaint", "j-20260101-000000-abcdef", "NaN",
           "/" + "d" * 300 + "/song.wav", "C:\\Users\\song.wav", "%s%s%n", "' OR 1=1 --", "\u202eevil"]
NUMBERS = [0, -1, 1, 2, 3, 7, 2 ** 31 - 1, -2 ** 31, 65535, 65536, 2 ** 40, -2 ** 63]
FLOATS = [0.0, -0.0, 1.5, -1.0, 12.0, 20.0, 1e30, -1e30, 1e-40, math.nan, math.inf, -math.inf, 3.4e38]


@dataclass(frozen=True)
class Datagram:
    data: bytes
    origin: str  # python-osc | raw | liblo
    kind: str  # what is hostile about it, for the figures
    replies: int = 1  # replies the daemon owes for it
    direct: tuple | None = None  # liblo sends this one itself: the oscsend argument list (after host and port)


class Hostile:
    """The generator. ``batch(n)`` returns n datagrams mixing every kind, in a seeded random order."""

    def __init__(self, seed: int = 2026, oscsend: str | None = None):
        self.rng = random.Random(seed)
        self.oscsend = oscsend

    # -- values and messages -------------------------------------------------------------------------------------

    def value(self, depth: int = 0):
        """(value, python-osc type or None to let it guess) of any type OSC can carry."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.3:
            return rng.choice(STRINGS), "s"
        if pick < 0.45:
            number = rng.choice(NUMBERS)
            return number, "h" if number.bit_length() > 31 else "i"
        if pick < 0.6:
            return rng.choice(FLOATS), rng.choice("fd")
        if pick < 0.7:
            return rng.choice([True, False, None]), None
        if pick < 0.78:
            return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 4, 37, 300]))) or b"\x00", "b"
        if pick < 0.84:
            return tuple(rng.randrange(256) for _ in range(4)), "m"
        if pick < 0.9:
            return rng.randrange(2 ** 32), "r"
        if depth < 3:  # an array, maybe nested
            items = [self.value(depth + 1) for _ in range(rng.randrange(0, 4))]
            return [v for v, _ in items], [t or _guess(v) for v, t in items]
        return rng.choice(STRINGS), "s"

    def message(self, address: str | None = None) -> bytes:
        """A well-formed message to a known command with hostile arguments (or a deliberate flaw)."""
        rng = self.rng
        address = address or rng.choice(ALWAYS_ANSWERED if rng.random() < 0.85 else COMMANDS)
        builder = OscMessageBuilder(address)
        for _ in range(rng.randrange(0, 5)):
            _add(builder, *self.value())
        for _ in range(rng.randrange(0, 4)):
            key = rng.choice(NAMES) if rng.random() < 0.7 else self.value()
            if isinstance(key, tuple):
                _add(builder, *key)
            else:
                builder.add_arg(key, "s")
            _add(builder, *self.value())
        if not address.endswith(tuple(a.rsplit("/", 1)[1] for a in ALWAYS_ANSWERED)):
            builder.add_arg("tempo", "s")  # an unknown key: ping, status and context must answer with an error
            builder.add_arg(120, "i")
        return builder.build().dgram

    def unknown_address(self) -> bytes:
        rng = self.rng
        address = rng.choice(["/bridge/Inpaint", "/bridge/ping/extra", "/bridge/", "/", "/live/song/get/tempo",
                              "/bridge/" + "x" * rng.randrange(1, 2000), "/bridge/in\u00e9paint",
                              "/" + "".join(chr(rng.randrange(1, 0x2FF)) for _ in range(rng.randrange(1, 40))),
                              "/bridge/*", "/bridge/{ping,status}", "/bridge/?ing", "//bridge//ping"])
        builder = OscMessageBuilder(address)
        for _ in range(rng.randrange(0, 3)):
            _add(builder, *self.value())
        return builder.build().dgram

    def huge(self) -> bytes:
        """One message close to the UDP limit: a huge string in a place that takes a string, or a huge key."""
        rng = self.rng
        address = rng.choice(["/bridge/inpaint", "/bridge/extend", "/bridge/cancel", "/bridge/ping"])
        size = rng.randrange(UDP_MAX - 400, UDP_MAX - 200)
        builder = OscMessageBuilder(address)
        text = rng.choice("ab\u00e9/") * (size // 2 if rng.random() < 0.5 else size // 4)
        where = rng.randrange(3)
        if where == 0:  # a huge source or job id
            builder.add_arg(text, "s")
        elif where == 1:  # a huge key
            builder.add_arg(text, "s")
            builder.add_arg(1, "i")
            builder = _with_prefix(address, builder)
        else:  # a huge value after a real key
            builder.add_arg("/nonexistent.wav", "s")
            builder.add_arg(1.0, "f")
            builder.add_arg(2.0, "f")
            builder.add_arg(text, "s")
        return builder.build().dgram[:UDP_MAX]

    def bundle(self, depth: int = 1, budget: list | None = None) -> tuple[OscBundle, int]:
        """A well-formed bundle (maybe nested) of hostile messages, and how many messages it holds in all."""
        rng = self.rng
        budget = budget if budget is not None else [rng.randrange(1, 20)]
        builder = OscBundleBuilder(rng.choice([IMMEDIATELY, time.time() - 3600, time.time() + 3600]))
        count = 0
        for _ in range(rng.randrange(1, 5)):
            if budget[0] <= 0:
                break
            if depth < 4 and rng.random() < 0.3:
                inner, n = self.bundle(depth + 1, budget)
                if n:
                    builder.add_content(inner)
                    count += n
            else:
                budget[0] -= 1
                builder.add_content(OscMessage(self.message()))
                count += 1
        if count == 0 and depth == 1:
            builder.add_content(OscMessage(self.message()))
            count = 1
        return builder.build(), count

    # -- raw bytes -----------------------------------------------------------------------------------------------

    def truncated(self) -> bytes:
        # Cut from a command that always answers: a cut context or status message can leave a valid one that
        # rightly answers nothing (no keys to set, no job running), which is not what this datagram tests.
        data = self.message(self.rng.choice(ALWAYS_ANSWERED))
        return data[:self.rng.randrange(0, len(data))]

    def flipped(self) -> bytes:
        data = bytearray(self.message())
        for _ in range(self.rng.randrange(1, 6)):
            at = self.rng.randrange(len(data))
            data[at] = self.rng.randrange(256) if self.rng.random() < 0.5 else data[at] ^ (1 << self.rng.randrange(8))
        return bytes(data)

    def bad_type_tags(self) -> bytes:
        rng = self.rng
        address = _osc_string(rng.choice(COMMANDS).encode())
        tags = rng.choice([",Sc", ",I", ",x", ",\xff", ",s\x01s", "sss", ",[[[", ",]]", ",ss[", ",ffffffff",
                           ",t", ",b", "," + "T" * rng.randrange(1, 3000), ",iiiiiiiiiiii", "," + "S" * 40,
                           ",s" + "\x7f" * 3, ",?"])
        body = bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 4, 8, 16, 64])))
        return address + _osc_string(tags.encode("latin-1")) + body

    def non_utf8(self) -> bytes:
        rng = self.rng
        bad = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80\x80", b"\xfe\xfe\xff"])
        if rng.random() < 0.3:  # in the address
            return _osc_string(b"/bridge/" + bad + b"ping") + _osc_string(b",")
        address = _osc_string(rng.choice(COMMANDS).encode())
        words = [b"/nonexistent/" + bad + b".wav", b"request_id", b"r" + bad, b"prompt", bad * 10]
        count = rng.randrange(1, 4)
        return address + _osc_string(b"," + b"s" * count) + b"".join(_osc_string(rng.choice(words))
                                                                     for _ in range(count))

    def oversized(self) -> bytes:
        rng = self.rng
        kind = rng.randrange(4)
        if kind == 0:
            return bytes(rng.randrange(256) for _ in range(256)) * (UDP_MAX // 256) + b"\x00" * (UDP_MAX % 256)
        if kind == 1:  # an address of 64 KB
            return _osc_string(b"/" + b"a" * (UDP_MAX - 8))[:UDP_MAX]
        if kind == 2:  # thousands of integer arguments
            count = (UDP_MAX - 40) // 5
            return _osc_string(b"/bridge/ping") + _osc_string(b"," + b"i" * count) + b"\x00\x00\x00\x01" * count
        depth = 16000  # arrays nested sixteen thousand deep
        return _osc_string(b"/bridge/cancel") + _osc_string(b"," + b"[" * depth + b"]" * depth)

    def random_bytes(self) -> bytes:
        rng = self.rng
        head = rng.choice([b"", b"/", b"#", b"#bundle", b"#bundle\x00", b"/bridge/", b"\x00\x00\x00\x00"])
        return head + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2000)))

    def hostile_bundle(self) -> bytes:
        """A bundle python-osc would choke on (negative sizes loop it forever) or that no DAW would send."""
        rng = self.rng
        head = b"#bundle\x00" + struct.pack(">Q", 1)
        message = self.message()
        kind = rng.randrange(8)
        if kind == 0:
            return head + struct.pack(">i", rng.choice([-4, -8, -16, -2 ** 31]))
        if kind == 1:
            return head + struct.pack(">i", 0) + struct.pack(">i", len(message)) + message
        if kind == 2:  # claims more than is there
            return head + struct.pack(">i", len(message) + rng.choice([4, 400, 2 ** 30])) + message
        if kind == 3:  # not a multiple of 4
            return head + struct.pack(">i", len(message) - 1) + message[:-1]
        if kind == 4:  # neither a message nor a bundle inside
            return head + struct.pack(">i", 8) + b"garbage!"
        if kind == 5:  # nested deeper than anyone needs (python-osc recurses once per level)
            inner = message
            for _ in range(rng.choice([5, 50, 2000])):
                inner = head + struct.pack(">i", len(inner)) + inner
                if len(inner) > UDP_MAX - 40:
                    break
            return inner
        if kind == 6:  # hundreds of messages in one datagram: one reply each would be an amplifier
            ping = _osc_string(b"/bridge/ping")
            return head + (struct.pack(">i", len(ping)) + ping) * rng.choice([33, 500, 3000])
        return head[:rng.randrange(8, 16)]  # a header cut short

    # -- liblo ---------------------------------------------------------------------------------------------------

    def liblo(self, reply_port: int | None = None) -> tuple[list[str], bytes]:
        """An oscsend argument list (address, types, values) and the datagram liblo makes of it.

        With ``reply_port``, the message ends in a well-placed ``reply_port`` pair, so that oscsend can send it itself
        and the daemon's answer still reaches the test.
        """
        rng = self.rng
        # An unknown address has no reply_port anyone could trust: its answer goes to the port it came from.
        address = rng.choice(ALWAYS_ANSWERED + ["/bridge/ping"] + (["/bridge/nonsense"] if reply_port is None else []))
        spec = next((s for s in osc_schema.COMMANDS.values() if s.address == address), None)
        types, values = "", []

        def add(kind: str) -> None:
            nonlocal types
            types += kind
            values.extend({
                "s": [rng.choice(["/nonexistent.wav", "x" * rng.choice([1, 40, 3000]), "robot", "male", ""])],
                "S": ["symbol"], "i": [str(rng.choice(NUMBERS[:9]))], "f": [rng.choice(["1.5", "-3", "nan"])],
                "d": [rng.choice(["12.5", "1e300", "inf"])], "h": [str(rng.choice(NUMBERS))], "c": ["z"],
                "m": ["90457f00"]}.get(kind, []))

        if reply_port is None:
            for _ in range(rng.randrange(0, 6)):
                add(rng.choice("sSifdhcmTFN"))
            if address.endswith("ping"):
                add("s")
        else:
            for _ in spec.positional if spec else ():
                add(rng.choice("sifdhTFN"))
            if rng.random() < 0.5:
                types += "s"
                values.append(rng.choice(NAMES))
                add(rng.choice("sifdhTFN"))
        if address.endswith("ping"):  # an unknown key: ping must answer with an error
            types += "si"
            values += ["tempo", "120"]
        if reply_port is not None:
            types += "si"
            values += ["reply_port", str(reply_port)]
        args = [address, types, *values]
        data = subprocess.run([self.oscsend, "-", *args], capture_output=True, check=True, timeout=10).stdout
        return args, data

    # -- the mix -------------------------------------------------------------------------------------------------

    def batch(self, total: int, reply_port: int) -> list[Datagram]:
        """``total`` datagrams: about 40 % from python-osc, 48 % raw, 12 % from liblo (when oscsend is there)."""
        share = {"python-osc": 0.40, "raw": 0.48, "liblo": 0.12 if self.oscsend else 0.0}
        liblo = int(total * share["liblo"])
        direct = min(30, liblo)
        pyosc = int(total * share["python-osc"])
        raw = total - liblo - pyosc
        out: list[Datagram] = []
        made = [("wrong types and values", self.message, 0.72), ("unknown addresses", self.unknown_address, 0.10),
                ("huge strings", self.huge, 0.04)]
        for kind, make, part in made:
            out += [Datagram(make(), "python-osc", kind) for _ in range(int(pyosc * part))]
        while len(out) < pyosc:
            bundle, count = self.bundle()
            out.append(Datagram(bundle.dgram, "python-osc", "nested bundles", replies=count))
        raws = [("truncated", self.truncated, 0.30), ("bit flips", self.flipped, 0.30),
                ("bad type tags", self.bad_type_tags, 0.11), ("non-UTF-8", self.non_utf8, 0.11),
                ("oversized", self.oversized, 0.01), ("random bytes", self.random_bytes, 0.08)]
        start = len(out)
        for kind, make, part in raws:
            out += [Datagram(make(), "raw", kind) for _ in range(int(raw * part))]
        while len(out) - start < raw:
            out.append(Datagram(self.hostile_bundle(), "raw", "hostile bundles"))
        for _ in range(liblo - direct):
            args, data = self.liblo()
            out.append(Datagram(data, "liblo", "oscsend types (S, c, m, h, T, F, N)"))
        for _ in range(direct):
            args, data = self.liblo(reply_port)
            out.append(Datagram(data, "liblo", "sent by oscsend itself", direct=tuple(args)))
        self.rng.shuffle(out)
        return out


def _add(builder: OscMessageBuilder, value, kind) -> None:
    builder.add_arg(value, kind)


def _guess(value):
    return OscMessageBuilder()._get_arg_type(value)


def _with_prefix(address: str, builder: OscMessageBuilder) -> OscMessageBuilder:
    """Positional arguments a command needs before its keys (so a huge key is read as a key)."""
    spec = next(s for s in osc_schema.COMMANDS.values() if s.address == address)
    out = OscMessageBuilder(address)
    for arg in spec.positional:
        out.add_arg("/nonexistent.wav" if arg.type == "string" else 1.0, "s" if arg.type == "string" else "f")
    for kind, value in builder.args:
        out.add_arg(value, kind)
    return out


def _osc_string(raw: bytes) -> bytes:
    """Bytes as an OSC string: NUL-terminated, padded to a multiple of 4."""
    return raw + b"\x00" * (4 - len(raw) % 4)
