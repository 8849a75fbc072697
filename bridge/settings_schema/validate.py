"""One validator for the whole config file: every error is one line with file, line, key, value and rule.

    /home/me/.config/daw-bridge/config.toml:7: [local] workers = "two": must be a whole number

Validated tables carry every key: absent ones with their default (None where absent means "not set"), and
sub-tables that are not optional filled in the same way. Validating a validated table again gives it back unchanged,
so a settings class may check the table it is handed whether or not the config loader already did.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from bridge.logs import scrub
from bridge.settings_schema.locate import key_lines, line_of
from bridge.settings_schema.spec import (
    BOOL,
    FLOAT,
    INT,
    LIST,
    NUMBER,
    PATH,
    STRING,
    TOP,
    Key,
    Table,
    all_tables,
    find_table,
    may_hold_a_secret,
)

_MISSING = object()  # a required key that is absent
_NO_VALUE = object()  # an error about a table, or about the file as a whole


class ConfigError(ValueError):
    """A setting is unknown, missing, of the wrong type or out of range; ``str()`` is one line naming it all."""

    def __init__(self, rule: str, *, file: Path | str | None = None, line: int | None = None, key: str = "",
                 value: object = _NO_VALUE, secret: bool = False):
        self.file, self.line, self.key, self.value, self.rule = file, line, key, value, rule
        where = f"{file}:{line}" if file is not None and line is not None else str(file or "config")
        if not key:
            what = ""
        elif value is _NO_VALUE:
            what = f" {key}"
        elif value is _MISSING:
            what = f" {key} is missing"
        else:
            what = f" {key} = {'<hidden>' if secret else show(value)}"
        super().__init__(f"{where}:{what}{':' if what else ''} {rule}")


def show(value: object, limit: int = 60) -> str:
    """A value as it would be written in TOML, cut to ``limit`` characters; a web address without its
    ``user:password@`` or its query (a gateway's or a tunnel's credentials), as every log line has it."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, Path)):
        text = json.dumps(scrub(str(value)), ensure_ascii=False)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(item, limit) for item in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {show(v, limit)}" for k, v in value.items()) + "}"
    elif value is None:
        text = "(not set)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


_WORD = re.compile(r"[^\s=:\[\]{},]+")  # a key's name (bare, quoted or dotted), or a word of a value
_ASSIGNED = re.compile(r"\s*(?:\[[^\]]*\]\s*)?([^\s=:\[\]{},]+)\s*=(.*)")  # key = value (after a [table] on the line)


def toml_line_shown(lines: list[str], line: int, limit: int = 60) -> str:
    """Line ``line`` (1-based) of a config file, to quote in a syntax error, with a credential hidden: whatever
    follows a key that may hold one, however it was written ('api_key = sk-…', 'api_key: "sk-…"' as YAML has it),
    and the whole line when it continues such a key's value (a multi-line string or list opened above it); web
    addresses without their user:password@ and query. Cut to ``limit`` characters."""
    said = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    for above in range(line - 2, -1, -1):  # the nearest assignment above: its value may run on to this line
        if (assigned := _ASSIGNED.match(lines[above])) is not None or lines[above].lstrip().startswith("["):
            if assigned is not None and _secret_word(assigned.group(1)) and re.search(r'"""|\'\'\'|[\[{]',
                                                                                      assigned.group(2)):
                said = "<hidden>" if said else ""
            break
    for word in _WORD.finditer(said):
        if _secret_word(word.group()):
            separator = re.match(r"\s*[=:]*\s*", said[word.end():]).group()
            said = said[:word.end()] + (separator or " ") + "<hidden>"
            break
    said = scrub(said)
    return said if len(said) <= limit else said[:limit - 1] + "…"


def _secret_word(word: str) -> bool:
    return may_hold_a_secret(word.strip("\"'").rsplit(".", 1)[-1])


def key_name(path: tuple[str, ...], is_table: bool = False) -> str:
    """``[midi.daw] host`` for a key in a table, ``osc_port`` at the top level, ``[midi.daw]`` for a table."""
    if is_table:
        return f"[{'.'.join(path)}]"
    return f"[{'.'.join(path[:-1])}] {path[-1]}" if len(path) > 1 else path[-1]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: localhost or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(document: dict, *, text: str | None = None, source_file: Path | None = None) -> dict:
    """The whole config file checked and filled in; ConfigError for the first mistake in the file."""
    check = _Check(source_file, text)
    out = check.table(TOP, document, ())
    _ableton_ports(check, out)
    _notify_port(check, out)
    _voice_reply_port(check, out)
    check.raise_first()
    return out


def _notify_port(check: "_Check", out: dict) -> None:
    """[notify] sent to the daemon's own OSC port (osc_port copied into it): each notice reached the daemon, not the
    DAW, and nobody was told."""
    notify = out.get("notify") or {}
    if notify and _reaches_daemon(out, notify.get("host", ""), notify["port"]):
        check.fail(("notify", "port"), "is osc_port too: each notice would reach the daemon itself, not the DAW",
                   value=notify["port"])


def _voice_reply_port(check: "_Check", out: dict) -> None:
    """[voice] reply_port on the daemon's own OSC port (osc_port copied into it): each /bridge/heard reached the
    daemon, which refused it as an unknown command, and the control surface showing takes heard nothing."""
    voice = out.get("voice") or {}
    if voice.get("reply_port") is not None and _reaches_daemon(out, voice["reply_host"], voice["reply_port"]):
        check.fail(("voice", "reply_port"), "is osc_port too: each /bridge/heard would reach the daemon itself, not "
                   "the control surface", value=voice["reply_port"])


def _reaches_daemon(out: dict, host: str, port: int) -> bool:
    """Whether OSC sent to ``host``:``port`` lands on the daemon's own osc_port ("localhost" is 127.0.0.1)."""
    if port != out["osc_port"]:
        return False
    osc_host, host = ("127.0.0.1" if name == "localhost" else name for name in (out["osc_host"], host))
    # a daemon listening on every interface hears this machine's loopback, not another machine's port
    return osc_host == host or is_loopback(host) and osc_host in ("0.0.0.0", "::")


def _ableton_ports(check: "_Check", out: dict) -> None:
    """[ableton]'s reply port on a port the daemon or AbletonOSC already listens on: the daemon could not start, or
    would hear its own questions as Live's answers. Named at the key the file writes (the other may be a default)."""
    ableton = out.get("ableton") or {}
    if not ableton.get("enabled"):
        return
    reply, written = ("ableton", "reply_port"), ("ableton", "reply_port") in check.lines
    # "localhost" is 127.0.0.1 to the Ableton socket (IPv4 only), so it clashes with 127.0.0.1 whichever key says it
    ipv4 = {"localhost": "127.0.0.1"}
    osc_host, live_host = (ipv4.get(host, host) for host in (out["osc_host"], ableton["host"]))
    if ableton["reply_port"] == out["osc_port"] and osc_host in (live_host, "0.0.0.0", "::"):
        why = "the daemon listens for commands on osc_port, AbletonOSC answers on [ableton] reply_port (11001)"
        path, other = (reply, "osc_port") if written else (("osc_port",), "[ableton] reply_port")
    elif ableton["reply_port"] == ableton["port"]:
        why = "AbletonOSC listens on [ableton] port and answers on reply_port (11000 and 11001)"
        path, other = (reply, "[ableton] port") if written else (("ableton", "port"), "[ableton] reply_port")
    else:
        return
    check.fail(path, f"is {other} too: {why}", value=ableton["reply_port"])


def check_table(name: str, table: object, source_file: Path | None = None) -> dict:
    """One table (``"midi"``, ``"musicgpt.webhook"``) checked and filled in, for a settings class handed it."""
    return _Check(source_file, None).table(find_table(name), table, tuple(name.split(".")))


def check_values(values: dict, where: str) -> dict:
    """Top-level values from somewhere other than the file (``where``: e.g. "command line"), checked one by one."""
    check = _Check(where, None)
    out = {}
    for name, value in values.items():
        key = TOP.key(name)
        if key is None:
            raise ConfigError("unknown key", file=where, key=name, value=value)
        out[name] = check.value(key, value, (name,))
        check.raise_first()
    return out


class _Check:
    def __init__(self, source_file, text: str | None):
        self.source_file = source_file
        self.errors: list[ConfigError] = []
        try:
            self.lines = key_lines(text) if text else {}
        except (ValueError, IndexError):  # tomllib read it, so this is a scanner bug: errors lose their line only
            self.lines = {}

    def fail(self, path: tuple[str, ...], rule: str, *, value: object = _NO_VALUE, is_table: bool = False,
             secret: bool = False) -> None:
        self.errors.append(ConfigError(rule, file=self.source_file, line=line_of(self.lines, path),
                                       key=key_name(path, is_table), value=value, secret=secret))

    def raise_first(self) -> None:
        """The first mistake in the file; a missing key only when nothing written is wrong."""
        if self.errors:
            raise min(self.errors, key=lambda error: (error.value is _MISSING, error.line or math.inf))

    def table(self, spec: Table, given: object, path: tuple[str, ...]) -> dict:
        out = self._table(spec, given, path)
        self.raise_first()
        return out

    def _table(self, spec: Table, given: object, path: tuple[str, ...]) -> dict:
        if not isinstance(given, dict):
            self.fail(path, "must be a table", value=given, is_table=True)
            return {}
        out: dict = {}
        for name, value in given.items():
            key, sub = spec.key(name), spec.table(name)
            if sub is not None:
                out[name] = self._table(sub, value, path + (name,))
            elif key is not None:
                out[name] = self.value(key, value, path + (name,))
            else:
                self._unknown(spec, name, value, path)
        for key in spec.keys:
            if key.name not in given:
                if key.required:
                    self.fail(path + (key.name,), f"required when {spec.title} is present", value=_MISSING)
                out[key.name] = key.default
        for sub in spec.tables:
            short = sub.name.rsplit(".", 1)[-1]
            if short not in given and not sub.optional:
                out[short] = self._table(sub, {}, path + (short,))
        for key in spec.keys:
            needed = key.beyond_loopback_needs
            if needed and isinstance(out.get(key.name), str) and not is_loopback(out[key.name]) and not out[needed]:
                self.fail(path + (key.name,), f"listens beyond this machine: list the addresses allowed to reach it "
                          f"in {key_name(path + (needed,))}", value=out[key.name])
        return out

    def _unknown(self, spec: Table, name: str, value: object, path: tuple[str, ...]) -> None:
        is_table = isinstance(value, dict)
        known = [key.name for key in spec.keys] + [sub.name.rsplit(".", 1)[-1] for sub in spec.tables]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        elsewhere = [key_name(tuple(t.name.split(".")) + (name,) if t.name else (name,))
                     for t in all_tables() if t is not spec and t.key(name) is not None]
        if close:
            hint = f"did you mean {key_name(path + (close[0],), is_table=spec.table(close[0]) is not None)}?"
        elif elsewhere:
            hint = f"did you mean {elsewhere[0]}?"
        else:
            hint = f"known in {spec.title}: {', '.join(known)}"
        self.fail(path + (name,), f"unknown {'table' if is_table else 'key'}; {hint}",
                  value=_NO_VALUE if is_table else value, is_table=is_table, secret=may_hold_a_secret(name))

    def value(self, key: Key, value: object, path: tuple[str, ...]):
        if value is None and key.nullable:
            return None
        if isinstance(value, str) and value in key.words:
            return key.words[value]
        converted, rule = (value, "must not contain a NUL character") if _holds_nul(value) else _typed(key, value)
        if rule is None:
            rule = _limits(key, converted)
        if rule is not None:
            self.fail(path, rule, value=value, secret=key.secret)
            return value
        return converted.lower() if key.fold_case else converted


def _holds_nul(value: object) -> bool:
    """TOML lets a string hold \\u0000, which no path, host or address can: the OS call that first used it would end
    the command in a traceback (ValueError: embedded null byte)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(isinstance(item, str) and "\0" in item for item in items)


def _typed(key: Key, value: object) -> tuple[object, str | None]:
    """The value in its Python type, or the rule it breaks."""
    words = "".join(f' or "{word}"' for word in key.words)
    if key.type == BOOL:
        return value, None if isinstance(value, bool) else "must be true or false"
    if key.type == INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
        return value, None if ok else f"must be a whole number{words}"
    if key.type == FLOAT:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return (float(value), None) if ok else (value, f"must be a number{words}")
    if key.type == STRING:
        return value, None if isinstance(value, str) else f"must be text in quotes{words}"
    if key.type == PATH:
        ok = isinstance(value, (str, os.PathLike))
        return (os.fspath(value), _home_known(os.fspath(value))) if ok else (value, "must be a path in quotes")
    if key.type == LIST:
        items = " or ".join("text in quotes" if item == STRING else "numbers" for item in key.items)
        if not isinstance(value, (list, tuple)):
            return value, f"must be a list of {items}, e.g. [{_example(key)}]"
        for item in value:
            if not (isinstance(item, str) and STRING in key.items
                    or isinstance(item, (int, float)) and not isinstance(item, bool) and NUMBER in key.items):
                return value, f"must be a list of {items} ({show(item)} is not)"
        return tuple(value), None
    raise AssertionError(f"unknown type {key.type} in the settings schema")


def _example(key: Key) -> str:
    return '"192.168.1.20"' if key.rule == "ip_network" else '"~/Music"' if key.name == "project_roots" else '"…"'


def _limits(key: Key, value: object) -> str | None:
    """The rule a well-typed value breaks, or None."""
    if key.choices:
        if (value.lower() if key.fold_case else value) not in key.choices:
            return f"must be one of {', '.join(key.choices)}"
    if key.min is not None or key.max is not None:
        low_ok = key.min is None or (value > key.min if key.min_exclusive else value >= key.min)
        high_ok = key.max is None or value <= key.max
        if not (low_ok and high_ok):
            return f"must be {range_text(key)}"
    if key.rule is not None:
        for item in value if key.type == LIST else (value,):
            rule = RULES[key.rule](item)
            if rule is not None:
                return rule
    return None


def range_text(key: Key) -> str:
    """``in range 0..1``, ``at least 1``, ``greater than 0`` (with the unit), for messages and the docs."""
    number = lambda n: str(int(n)) if float(n).is_integer() else repr(n)  # noqa: E731
    unit = f" {key.unit}" if key.unit and key.unit != "s" else " seconds" if key.unit == "s" else ""
    if key.min is not None and key.max is not None and not key.min_exclusive:
        return f"in range {number(key.min)}..{number(key.max)}{unit}"
    parts = []
    if key.min is not None:
        parts.append(f"{'greater than' if key.min_exclusive else 'at least'} {number(key.min)}")
    if key.max is not None:
        parts.append(f"at most {number(key.max)}")
    return " and ".join(parts) + unit


def _nonblank(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _folder(value: str) -> str | None:
    return _nonblank(value) or _home_known(value)


def _home_known(value: str) -> str | None:
    """A path starting with ``~name`` of no user here (or ``~`` of a user without a home) cannot be expanded: the
    command would end in a traceback where the folder is first used. A ``$NAME`` not set here is left as it is by
    the expansion: a folder called '$PROJECTS' was made (a service starts with fewer variables than a shell)."""
    expanded = os.path.expandvars(value)
    if unset := re.search(r"\$(\w+|\{[^}]*\})", expanded):
        return f"{unset.group(0)} is not set in this environment"
    try:
        Path(expanded).expanduser()
    except RuntimeError:
        head = expanded.split("/", 1)[0]
        return f"{head} is no user on this machine" if head != "~" else "~ names no home folder for this user"
    return None


def _loopback(value: str) -> str | None:
    return None if is_loopback(value) else "must be a loopback address (127.0.0.1, ::1 or localhost): never beyond " \
                                           "this machine"


def _ipv4_loopback(value: str) -> str | None:
    """AbletonOSC binds an IPv4 socket: at ::1 nothing would ever answer."""
    if not is_loopback(value) or ":" in value:
        return "must be a loopback address on IPv4 (127.0.0.1 or localhost), where AbletonOSC listens: never " \
               "beyond this machine"
    return None


def _ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address"
    return None


def _ip_network(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"must list IP addresses or networks, e.g. 192.168.1.20 or 192.168.1.0/24 ({show(value)} is not one)"
    return None


def _http_url(value: str) -> str | None:
    # Paths are joined on (the API's /v1/..., a webhook's /<prefix>/<secret>): after a query or a fragment they would
    # land in it, and the webhook_url MusicGPT is given would reach no job.
    try:  # an unclosed [IPv6 address or a port that is no number: urlsplit and .port raise ValueError
        parts = urlsplit(value)
        parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        return "must be an http:// or https:// address"
    return "must have no ?query or #fragment (paths are added to it)" if "?" in value or "#" in value else None


def _api_url(value: str) -> str | None:
    # Every request to it carries the API key in a header: over plain http that header crosses the network as text.
    if (problem := _http_url(value)) is not None:
        return problem
    if urlsplit(value).scheme == "http" and not is_loopback(urlsplit(value).hostname):
        return "must be an https:// address: over http:// the API key would cross the network unencrypted " \
               "(http:// is for a gateway on this machine: 127.0.0.1, ::1 or localhost)"
    return None


def _osc_address(value: str) -> str | None:
    return None if re.fullmatch(r"/\S*", value) else "must be an OSC address: starting with /, no spaces"


def _slashes(value: str) -> str | None:
    return None if value.startswith("/") and value.endswith("/") else "must start and end with /"


RULES = {"nonblank": _nonblank, "folder": _folder, "loopback": _loopback, "ipv4_loopback": _ipv4_loopback,
         "ip_address": _ip_address, "ip_network": _ip_network, "http_url": _http_url, "api_url": _api_url,
         "osc_address": _osc_address,
         "slashes": _slashes}
RULE_TEXT = {  # each rule in words, for docs/config.md
    "nonblank": "not empty",
    "folder": "not empty",
    "loopback": "loopback only (127.0.0.1, ::1, localhost)",
    "ipv4_loopback": "IPv4 loopback only (127.0.0.1, localhost), as AbletonOSC listens",
    "ip_address": "an IP address",
    "ip_network": "each an IP address or network (192.168.1.0/24)",
    "http_url": "an http:// or https:// address, no ?query or #fragment",
    "api_url": "an https:// address (http:// only on this machine: 127.0.0.1, ::1, localhost), no ?query or #fragment",
    "osc_address": "an OSC address: starts with /, no spaces",
    "slashes": "starts and ends with /",
}
