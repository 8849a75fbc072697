"""Logging for every daw-bridge command, with credentials kept out of every line, ours and third-party libraries'.

Two rules, applied by a filter on the root handlers (so they cover httpx, httpcore, asyncio and anything else that
logs through the standard ``logging`` module):

- the query string of any web address is replaced by ``<redacted>``: storage download addresses are signed
  (``X-Amz-Signature``, ``X-Amz-Credential``), and a query is never needed to understand a log line; so is the
  ``user:password@`` of an address (a ``base_url`` through a gateway that wants them);
- every secret registered with :func:`redact` (the API key, each webhook secret) is replaced wherever it appears;
- a message stays one line: control characters (a newline in a file name a request came in) are escaped, so no
  input can forge a line of the log.

httpx also logs each request at INFO; those lines are held back to WARNING, since the daemon's own lines already say
what it asked MusicGPT, without addresses.
"""

from __future__ import annotations

import logging
import re
import threading

# Any scheme, in any case (a storage error may quote s3://..., HTTPS://...), its slashes perhaps JSON-escaped
# (https:\/\/..., from an error message encoded twice): the signature in the query is the same credential.
# The scheme starts a word and is short: tried at every letter of a long word, it would cost a log line its square.
_SCHEME = r"(?i:(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]{0,15}):(?:\\?/){2}"
_URL_QUERY = re.compile(rf"({_SCHEME}[^\s?#'\"<>]+)\?[^\s#'\"<>]+")
_URL_USERINFO = re.compile(rf"({_SCHEME})[^\s/\\?#@'\"<>]+@")  # user:password@ before the host
_MASK = "<redacted>"
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}
_secrets: set[str] = set()
_lock = threading.Lock()


def install(level: int | str) -> None:
    """Configure the root logger once for a command: one format, the credential filter on every handler."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CredentialFilter) for f in handler.filters):
            handler.addFilter(CredentialFilter())
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def redact(secret: str) -> None:
    """Never let ``secret`` appear in a log line of this process."""
    if secret:
        with _lock:
            _secrets.add(secret)


def scrub(text: str) -> str:
    """``text`` with web-address queries and registered secrets masked (for logs, and for errors shown to people)."""
    text = _URL_QUERY.sub(lambda m: f"{m.group(1)}?{_MASK}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{_MASK}@", text)
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    return text


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``...): a message that stays one line."""
    return text.translate(_CONTROL)


class CredentialFilter(logging.Filter):
    """Rewrites a record's message through :func:`scrub` and :func:`one_line` (its traceback text through
    :func:`scrub`); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        clean = one_line(scrub(text))
        if clean != text:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
