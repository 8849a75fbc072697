"""Checking commands and replies against the spec, with one wording for every trigger.

OSC messages, request files, MIDI mappings and the CLI all end in ``_build``, so the same mistake gets the same
message wherever it came from. Messages read ``<field>: <value> <rule>`` ("num_outputs: 3 must be in range 1..2"),
so a reason always starts with the field it is about; mistakes about the message as a whole (an unknown address) start
with the address. Values are shown shortened, so a 5 MB string is never echoed back.

Checks run in a fixed order whatever order the arguments came in: keys as given (unknown, repeated, non-string),
then missing positional arguments, then each argument in spec order, then rules between arguments.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import reprlib
from dataclasses import dataclass

from osc_schema.spec import ARGUMENTS, COMMANDS, FLOAT, INT, PREFIX, REPLIES, STRING, Arg, CommandSpec, ReplySpec

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 60
_SHOWN.maxother = 60
_SHOWN.maxlong = 40
_SHOWN.maxlist = _SHOWN.maxtuple = 6
_SHOWN.maxdict = 4
_SHOWN.maxlevel = 2
_NOTHING = object()
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]*,[0-9]+")


def show(value: object) -> str:
    """How a value appears in an error message: its repr, cut short so a huge value is never echoed back."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]  # as OSC and JSON spell them
    if isinstance(value, (bytes, bytearray)):
        return f"<blob of {len(value)} bytes>"
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = _SHOWN.repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = f"<{type_name(value)} of {value.bit_length()} bits>" if isinstance(value, int) else "<unprintable>"
    if isinstance(value, str) and len(text) < len(value) + 2:
        text += f" ({len(value)} characters)"
    return text


def type_name(value: object) -> str:
    """The name a producer knows a value's type by (OSC and JSON agree on these)."""
    if value is None:
        return "null"
    if isinstance(getattr(value, "osc_type", None), str):  # an OSC type no argument takes (bridge's osc_wire)
        return value.osc_type
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                       ((bytes, bytearray), "blob"), ((list, tuple), "array"), (dict, "object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


class ValidationError(ValueError):
    """A value broke a rule of the address space.

    ``field`` is the argument at fault, ``value`` what was given, ``rule`` what it must satisfy, and the message
    always starts with the field: ``f"{field}: {show(value)} {rule}"`` ("num_outputs: 3 must be in range 1..2"), or
    ``f"{field}: {rule}"`` when the value is beside the point ("end: missing (required by /bridge/inpaint)"). A
    mistake about the message as a whole has field "" and starts with the address instead (``subject``).
    ``parse_osc``/``parse_request`` also set ``address`` and ``request_id`` ("" when unknown) for the
    ``/bridge/error`` reply (see ``error_reply``).

    The daemon raises it too, for checks that need the file, in the same words:
    ``ValidationError("end", 250.0, "is past the end of the source (180.0 s)")``.
    """

    def __init__(self, field: str, value: object = None, rule: str = "", *, shown: str | None = None,
                 subject: str | None = None):
        self.field = field
        self.value = value
        self.rule = rule
        self.shown = show(value) if shown is None else shown
        self.subject = field if subject is None else subject
        self.address = ""
        self.request_id = ""
        super().__init__(f"{self.subject}: {self.shown} {rule}" if self.shown else f"{self.subject}: {rule}")

    def __reduce__(self):
        return type(self), (self.field, self.value, self.rule), self.__dict__


@dataclass(frozen=True)
class Command:
    """A validated command: ``args`` holds every argument the command takes, absent ones at their default."""

    name: str
    args: dict

    @property
    def address(self) -> str:
        return PREFIX + self.name


def _number(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else repr(limit)


def _check_range(arg: Arg, given: object, value: float) -> None:
    low, high = arg.min, arg.max
    if low is not None and high is not None and not arg.min_exclusive:
        if not low <= value <= high:
            raise ValidationError(arg.name, given, f"must be in range {_number(low)}..{_number(high)}")
        return
    if low is not None and (value <= low if arg.min_exclusive else value < low):
        raise ValidationError(arg.name, given, f"must be {'greater than' if arg.min_exclusive else 'at least'} "
                                               f"{_number(low)}")
    if high is not None and value > high:
        raise ValidationError(arg.name, given, f"must be at most {_number(high)}")


def _check_string(arg: Arg, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(arg.name, value, f"must be a string, got {type_name(value)}")
    if arg.shorten is not None and len(value) > arg.shorten:
        value = value[:arg.shorten - 1] + "…"
    if arg.min_length and len(value) < arg.min_length:
        raise ValidationError(arg.name, value, "must not be empty" if arg.min_length == 1
                              else f"must be at least {arg.min_length} characters long")
    if arg.max_length is not None and len(value) > arg.max_length:  # before any scan, so huge text costs nothing
        raise ValidationError(arg.name, value, f"exceeds the limit of {arg.max_length}",
                              shown=f"{len(value)} characters")
    if "\x00" in value:
        raise ValidationError(arg.name, value, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(arg.name, value, "must be valid text (it holds a lone surrogate)") from None
    if arg.choices and value not in arg.choices:
        raise ValidationError(arg.name, value, f"must be one of {', '.join(arg.choices)}")
    if arg.file_safe:
        if not value.isprintable():
            raise ValidationError(arg.name, value, "must contain only printable characters")
        if "/" in value or "\\" in value:
            raise ValidationError(arg.name, value, "must not contain / or \\")
        if value.startswith("."):
            raise ValidationError(arg.name, value, "must not start with '.'")
    return value


def _check(arg: Arg, value: object) -> object:
    """The value, checked against ``arg`` and converted to its type (int 3 for a float field becomes 3.0)."""
    if arg.type == STRING:
        return _check_string(arg, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        noun = "a number" if arg.type == FLOAT else "an integer"
        raise ValidationError(arg.name, value, f"must be {noun}, got {type_name(value)}{_decimal_comma(arg, value)}")
    if arg.type == INT:
        if isinstance(value, float):
            if not value.is_integer():  # REAPER sends every number as a float: 2.0 is fine, 1.5 is not
                raise ValidationError(arg.name, value, "must be a whole number")
        number: float = int(value)
    else:
        try:
            number = float(value) + 0.0  # + 0.0: a negative zero is 0 (as -0.0 it named a result "-0.00-4.00")
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ValidationError(arg.name, value, "must be a finite number")
    _check_range(arg, value, number)
    return number


def _decimal_comma(arg: Arg, value: object) -> str:
    """A hint for a number written with a decimal comma, as a locale that uses one spells it ("4,5")."""
    if arg.type != FLOAT or not isinstance(value, str) or not _DECIMAL_COMMA.fullmatch(value.strip()):
        return ""
    if len(value.strip().rsplit(",", 1)[1]) == 3:  # "1,000": a thousands separator as much as a decimal comma
        return " (use a decimal point and no thousands separator, and send it as a number)"
    return f" (use a decimal point, and send it as a number: {float(value.strip().replace(',', '.'))!r})"


def _missing(address: str, name: str) -> ValidationError:
    return ValidationError(name, None, f"missing (required by {address})", shown="")


def _key_label(key: str) -> str:
    """A key or address as it starts a message: itself when it reads as a name, else shown (shortened, escaped)."""
    return key if key and len(key) <= 64 and key.isprintable() else show(key)


def _admit_key(spec: CommandSpec, raw: dict, key: object) -> None:
    if not isinstance(key, str):
        raise ValidationError("", key, f"must be an argument name (a string), got {type_name(key)}",
                              subject=spec.address)
    if spec.argument(key) is None:
        names = [arg.name for arg in spec.arguments]
        close = difflib.get_close_matches(key, names, n=1) if len(key) <= 64 else []
        hint = f"did you mean {close[0]!r}?" if close else f"arguments: {', '.join(names) or 'none'}"
        raise ValidationError(_key_label(key), None, f"unknown argument of {spec.address} ({hint})", shown="")
    if key in raw:
        raise ValidationError(key, None, "given twice", shown="")


def _build(spec: CommandSpec, raw: dict, pairs: list, lone_key: object = _NOTHING) -> Command:
    for key, value in pairs:
        _admit_key(spec, raw, key)
        raw[key] = value
    if lone_key is not _NOTHING:
        _admit_key(spec, raw, lone_key)
        raise ValidationError(lone_key, None, "has no value (keys and values come in pairs)", shown="")
    for arg in spec.positional:
        if arg.name not in raw and spec.alternative(arg.name) is None:
            raise _missing(spec.address, arg.name)
    args = {}
    for arg in spec.arguments:
        value = raw.get(arg.name)
        # null (JSON) or nil (OSC) for an optional argument means "not given"; a positional one must be real, unless
        # another argument may stand in for it (then nil or "" leaves its slot empty)
        required = arg in spec.positional and not (spec.alternative(arg.name) and value in (None, ""))
        args[arg.name] = _check(arg, value) if required or value is not None else arg.default
    for first, second in spec.either:
        if args[first] is not None and args[second] is not None:
            raise ValidationError(second, raw[second], f"cannot be given with {first}: name the audio by one of "
                                                       f"them (send {first} as nil)")
        if args[first] is None and args[second] is None:
            raise ValidationError(first, None, f"missing (required by {spec.address}, or {second} instead)",
                                  shown="")
    for arg in spec.arguments:
        other = arg.greater_than
        if other and args[arg.name] is not None and args[other] is not None and not args[arg.name] > args[other]:
            raise ValidationError(arg.name, raw[arg.name], f"must be greater than {other} ({show(raw[other])})")
    return Command(spec.name, args)


def _request_id_in(pairs: list) -> str:
    """The request_id among raw pairs when it is a valid one, so even a rejected message's reply can carry it."""
    for key, value in pairs:
        if key == "request_id":
            try:
                return _check(ARGUMENTS["request_id"], value)
            except ValidationError:
                return ""
    return ""


def _located(error: ValidationError, address: str, pairs: list) -> ValidationError:
    error.address = address
    error.request_id = _request_id_in(pairs)
    return error


def _command_at(address: object) -> CommandSpec:
    if isinstance(address, str) and address.startswith(PREFIX) and address[len(PREFIX):] in COMMANDS:
        return COMMANDS[address[len(PREFIX):]]
    shown = _key_label(address) if isinstance(address, str) else show(address)
    known = ", ".join(spec.address for spec in COMMANDS.values())
    error = ValidationError("", address, f"unknown address (commands: {known})", shown="", subject=shown)
    error.address = shown
    raise error


def parse_osc(address: str, args: list) -> Command:
    """Validate an OSC message as python-osc decodes it: positional arguments, then ``key, value`` pairs."""
    spec = _command_at(address)
    given = list(args)
    count = len(spec.positional)
    raw = {arg.name: value for arg, value in zip(spec.positional, given)}
    rest = given[count:]
    pairs = list(zip(rest[0::2], rest[1::2]))
    try:
        if len(given) < count:
            raise _missing(spec.address, spec.positional[len(given)].name)
        return _build(spec, raw, pairs, rest[-1] if len(rest) % 2 else _NOTHING)
    except ValidationError as error:
        raise _located(error, spec.address, pairs) from None


def _parse_pairs(pairs: list) -> Command:
    names = [value for key, value in pairs if key == "command"]
    known = ", ".join(COMMANDS)
    if not names:
        raise ValidationError("command", None, f"missing (a request names one of {known})", shown="")
    if len(names) > 1:
        raise ValidationError("command", None, "given twice", shown="")
    if not isinstance(names[0], str) or names[0] not in COMMANDS:
        raise ValidationError("command", names[0], f"must be one of {known}")
    spec = COMMANDS[names[0]]
    rest = [(key, value) for key, value in pairs if key != "command"]
    try:
        return _build(spec, {}, rest)
    except ValidationError as error:
        raise _located(error, spec.address, rest) from None


def parse_request(data: dict) -> Command:
    """Validate a request (a request file's JSON object, a MIDI mapping's action): ``"command"`` names it."""
    if not isinstance(data, dict):
        raise ValidationError("", data, f"must be a JSON object, got {type_name(data)}", subject="request")
    return _parse_pairs(list(data.items()))


class _JsonObject(dict):
    """A decoded JSON object that remembers its pairs, so a repeated key is caught instead of silently kept."""

    def __init__(self, pairs: list):
        super().__init__(pairs)
        self.pairs = pairs


def load_request(text: str | bytes) -> Command:
    """Validate a request file's content (UTF-8 JSON); unlike ``json.loads``, a repeated key is an error."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError("", None, f"not UTF-8 text (bad byte at offset {error.start})", shown="",
                                  subject="request") from None
    try:
        data = json.loads(text, object_pairs_hook=_JsonObject)
    except json.JSONDecodeError as error:
        raise ValidationError("", None, f"not valid JSON ({error.msg} at line {error.lineno}, column "
                                        f"{error.colno})", shown="", subject="request") from None
    except (ValueError, RecursionError) as error:  # a number with thousands of digits, nesting thousands deep
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ValidationError("", None, f"not valid JSON ({reason})", shown="", subject="request") from None
    return _parse_pairs(data.pairs) if isinstance(data, _JsonObject) else parse_request(data)


def to_osc_args(name: str, values: dict) -> tuple[str, list]:
    """Address and arguments of a valid command: positional values, then a pair for each optional value given."""
    spec = COMMANDS.get(name)
    if spec is None:
        raise ValidationError("command", name, f"must be one of {', '.join(COMMANDS)}")
    pairs = list(values.items())
    try:
        command = _build(spec, {}, pairs)
    except ValidationError as error:
        raise _located(error, spec.address, pairs) from None
    args = [command.args[arg.name] for arg in spec.positional]
    for arg in spec.options:
        if values.get(arg.name) is not None:
            args += [arg.name, command.args[arg.name]]
    return spec.address, args


def _reply_spec(name: str) -> ReplySpec:
    spec = REPLIES.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValidationError("", name, f"is not a reply (replies: {', '.join(REPLIES)})", subject="reply")
    return spec


def reply(name: str, **values) -> tuple[str, list]:
    """Address and arguments of a reply, after checking its argument names and types (long text is cut)."""
    spec = _reply_spec(name)
    args = []
    for arg in spec.args:
        if arg.name not in values:
            raise _missing(spec.address, arg.name)
        args.append(_check(arg, values.pop(arg.name)))
    if spec.repeated is not None:
        items = values.pop(spec.repeated.name, _NOTHING)
        if items is _NOTHING:
            raise _missing(spec.address, spec.repeated.name)
        if not isinstance(items, (list, tuple)) or not items:
            raise ValidationError(spec.repeated.name, items, f"must be a non-empty list, got {type_name(items)}")
        args += [_check(spec.repeated, item) for item in items]
    if values:
        key = next(iter(values))
        raise ValidationError(_key_label(key), None, f"unknown argument of {spec.address}", shown="")
    return spec.address, args


def parse_reply(address: str, args: list) -> tuple[str, dict]:
    """Reply name and named values of a reply as a client receives it (the inverse of ``reply``)."""
    name = address[len(PREFIX):] if isinstance(address, str) and address.startswith(PREFIX) else None
    if name not in REPLIES:
        known = ", ".join(spec.address for spec in REPLIES.values())
        raise ValidationError("", address, f"unknown reply address (replies: {known})", shown="",
                              subject=_key_label(address) if isinstance(address, str) else show(address))
    spec = REPLIES[name]
    given = list(args)
    if len(given) < len(spec.args) + (spec.repeated is not None):
        names = [arg.name for arg in spec.args] + ([spec.repeated.name] if spec.repeated else [])
        raise _missing(spec.address, names[len(given)])
    values = {arg.name: _check(arg, value) for arg, value in zip(spec.args, given)}
    extra = given[len(spec.args):]
    if spec.repeated is not None:
        values[spec.repeated.name] = [_check(spec.repeated, item) for item in extra]
    elif extra:
        raise ValidationError("", None, f"takes {len(spec.args)} arguments, got {len(given)}", shown="",
                              subject=spec.address)
    return spec.name, values


def error_reply(error: ValidationError) -> tuple[str, list]:
    """The ``/bridge/error`` reply telling a client why its message was rejected."""
    return reply("error", address=error.address, request_id=error.request_id, field=error.field, reason=str(error))
