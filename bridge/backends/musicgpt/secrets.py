"""Finding the MusicGPT API key, and keeping it out of every text daw-bridge writes.

The key is looked up in this order: the ``MUSICGPT_API_KEY`` environment variable, the system keyring (only when
the optional ``keyring`` package is installed), then ``api_key`` in the config file's ``[musicgpt]`` table. A
config file that group or others can read is refused rather than trusted: a key in it is as good as published.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Mapping

from bridge.exceptions import AuthError

ENV_VAR = "MUSICGPT_API_KEY"
KEYRING_SERVICE = "daw-bridge"
KEYRING_USER = "musicgpt"


class Redacted:
    """A secret that prints as ``Redacted('…')``; only :meth:`reveal` gives the value, for the header."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "given"):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("api key must be a non-empty string")
        self._value = value.strip()
        self.source = source  # where it came from: env, keyring, config, given

    def reveal(self) -> str:
        """The secret itself. Call it only where it leaves the process in the Authorization header."""
        return self._value

    def __repr__(self) -> str:
        return f"Redacted('…', source={self.source!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redacted) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Redacted", self._value))

    def __reduce__(self):
        # Pickling would put the key into whatever file or queue receives the pickle.
        raise TypeError("a Redacted secret cannot be pickled")


def find_api_key(config_value: str | None = None, config_path: Path | None = None, *,
                 env: Mapping[str, str] | None = None, use_keyring: bool = True) -> Redacted:
    """The API key from the environment, the keyring, or the config table (in that order); AuthError if none."""
    env = os.environ if env is None else env
    value = env.get(ENV_VAR, "").strip()
    if value:
        return _usable(value, "env", ENV_VAR)
    if use_keyring:
        value = _from_keyring()
        if value:
            return _usable(value, "keyring", f"the system keyring (service {KEYRING_SERVICE!r})")
    if config_value:
        if config_path is not None:
            refuse_if_shared(Path(config_path))
        return _usable(str(config_value), "config", f"api_key in {config_path or 'the config'}")
    raise AuthError(
        f"no MusicGPT API key: set {ENV_VAR}, store it in the system keyring "
        f"(service {KEYRING_SERVICE!r}, user {KEYRING_USER!r}), or put api_key in the [musicgpt] table of a config "
        "file only you can read (chmod 600)", code="auth_missing")


def _usable(value: str, source: str, where: str) -> Redacted:
    """The key, if it can go in an HTTP header: one pasted from a web page with a no-break space or a curly quote
    in it ended every job's first request in a UnicodeEncodeError traceback. The key itself is never shown."""
    for position, char in enumerate(value.strip(), 1):
        if not (char.isascii() and char.isprintable()) or char.isspace():
            what = "a space or a line break" if char.isspace() else "a character that is not plain ASCII"
            raise AuthError(f"the MusicGPT API key in {where} holds {what} (character {position} of it): copy the "
                            "key again from your MusicGPT account", code="auth_invalid")
    return Redacted(value.strip(), source=source)


def refuse_if_shared(config_path: Path) -> None:
    """Raise AuthError when group or others may read the config file that holds the key."""
    try:
        mode = config_path.stat().st_mode
    except OSError as exc:
        raise AuthError(f"cannot check who may read {config_path}: {exc.strerror}", code="auth_missing") from None
    readers = [who for bit, who in ((stat.S_IRGRP, "group"), (stat.S_IROTH, "others")) if mode & bit]
    if readers:
        raise AuthError(
            f"refusing the api_key in {config_path}: the file is readable by {' and '.join(readers)} "
            f"(mode {stat.S_IMODE(mode):o}); run 'chmod 600 {config_path}' or use {ENV_VAR}", code="auth_exposed")


def _from_keyring() -> str | None:
    try:
        import keyring  # optional: daw-bridge does not depend on it
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, KEYRING_USER) or None
    except Exception as exc:  # a locked or absent keyring backend is not fatal: fall through to the config value
        logging.getLogger(__name__).info("system keyring not usable (%s); trying the config file",
                                         type(exc).__name__)
        return None
