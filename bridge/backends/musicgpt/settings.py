"""The ``[musicgpt]`` config table, checked once at the edge with messages that name the key."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from bridge.backends.musicgpt.secrets import Redacted, find_api_key
from bridge.backends.musicgpt.webhooks import WebhookSettings
from bridge.exceptions import AuthError

DEFAULT_BASE_URL = "https://api.musicgpt.com/api/public"
BASE_URL_ENV = "MUSICGPT_BASE_URL"


class SettingsError(ValueError):
    """A ``[musicgpt]`` setting is of the wrong type or out of range; the message names it."""


@dataclass(frozen=True)
class MusicGPTSettings:
    """Everything the MusicGPT backend is configured with except the key (see ``secrets``) and the state folder."""

    base_url: str = DEFAULT_BASE_URL
    context_s: float | None = 30.0  # seconds of untouched song uploaded on each side of the range; None: whole file
    poll_calls_per_minute: int = 20  # the plan's byId budget: 20 free, 200 or 500 paid
    concurrency: int = 1  # tasks the plan lets generate at once: 1 free, 3-5 Plus, 10 Pro
    max_wait_s: float = 900.0  # how long one wait polls a task before giving up (the task is kept)
    hourly_limit: int | None = None  # paid requests allowed per rolling hour; None: no limit
    daily_limit: int | None = None  # ... per rolling day
    dry_run: bool = False  # prepare and show what would be sent, send nothing
    webhook: WebhookSettings | None = None  # off unless configured
    http_timeout_s: float = 60.0
    # Tuning: rarely changed in production; tests shrink them so slow tasks take milliseconds.
    poll_interval_s: float = 3.0  # first poll interval after the answered eta has passed; grows 1.5x
    poll_max_interval_s: float = 30.0
    eta_scale: float = 1.0  # multiplies the eta MusicGPT answers before the first poll
    retry_base_s: float = 1.0  # first backoff after a 5xx or network error
    rate_limit_backoff_s: float = 10.0  # first hold-back after a 429
    crossfade_s: float = 0.1  # each join's equal-power crossfade, inside the untouched context
    max_shift_s: float = 2.0  # how far the returned audio may sit from the uploaded timeline
    # Not settings of the table itself: where the key came from and where the backend keeps its ledger.
    api_key: Redacted | None = field(default=None, compare=False)
    state_dir: Path | None = None

    def __post_init__(self):
        _positive = ("poll_calls_per_minute", "concurrency", "max_wait_s", "http_timeout_s", "poll_interval_s",
                     "poll_max_interval_s", "max_shift_s")
        for name in _positive:
            if not getattr(self, name) > 0:
                raise SettingsError(f"musicgpt.{name} must be greater than 0, got {getattr(self, name)!r}")
        for name in ("eta_scale", "retry_base_s", "rate_limit_backoff_s", "crossfade_s"):
            if getattr(self, name) < 0:
                raise SettingsError(f"musicgpt.{name} must be 0 or more, got {getattr(self, name)!r}")
        if self.context_s is not None and not 0 <= self.context_s <= 600:
            raise SettingsError(f'musicgpt.context_s must be in range 0..600 seconds or "whole", '
                                f'got {self.context_s}')
        for name in ("hourly_limit", "daily_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SettingsError(f"musicgpt.{name} must be 0 or more (leave it out for no limit), got {value}")
        if not self.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"musicgpt.base_url must be an http(s) address, got {self.base_url!r}")

    @classmethod
    def from_config(cls, table: dict, *, state_dir: Path | None = None, config_file: Path | None = None,
                    env: Mapping[str, str] | None = None) -> "MusicGPTSettings":
        """Build from the ``[musicgpt]`` TOML table and find the API key (env, keyring, then the table's api_key).

        ``api_key`` stays None when no key is configured anywhere; a key in a config file that group or others can
        read raises AuthError. ``MUSICGPT_BASE_URL`` in the environment wins over ``base_url`` in the table.
        """
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)} - {"api_key", "state_dir"}
        values: dict = {}
        for key, value in table.items():
            if key == "api_key":
                continue
            if key not in known:
                raise SettingsError(f"unknown setting musicgpt.{key} (known: api_key, {', '.join(sorted(known))})")
            values[key] = _convert(key, value)
        if env.get(BASE_URL_ENV):
            values["base_url"] = env[BASE_URL_ENV]
        try:
            api_key = find_api_key(table.get("api_key"), config_file, env=env)
        except AuthError as exc:
            if exc.code != "auth_missing":
                raise
            api_key = None
        return cls(**values, api_key=api_key, state_dir=Path(state_dir) if state_dir else None)

    def backend_kwargs(self) -> dict:
        """Keyword arguments for ``MusicGPTBackend`` other than ``api_key`` and ``state_dir``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("api_key", "state_dir")}

    def to_json(self) -> dict:
        """The settings for a health report (the key only as where it came from)."""
        out = self.backend_kwargs()
        out["webhook"] = vars(self.webhook).copy() if self.webhook else None
        out["api_key"] = self.api_key.source if self.api_key else None
        out["state_dir"] = str(self.state_dir) if self.state_dir else None
        return out


_INTS = {"poll_calls_per_minute", "concurrency", "hourly_limit", "daily_limit"}
_STRS = {"base_url"}
_BOOLS = {"dry_run"}


def _convert(key: str, value):
    if key == "webhook":
        if not isinstance(value, dict):
            raise SettingsError("[musicgpt.webhook] must be a table")
        try:
            return WebhookSettings.from_config(value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"musicgpt.{exc}") from None
    if key == "context_s" and value == "whole":
        return None
    if key in _BOOLS:
        if not isinstance(value, bool):
            raise SettingsError(f"musicgpt.{key} must be true or false, got {value!r}")
        return value
    if key in _STRS:
        if not isinstance(value, str):
            raise SettingsError(f"musicgpt.{key} must be a string, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a whole number" if key in _INTS else "a number" + (' or "whole"' if key == "context_s" else "")
        raise SettingsError(f"musicgpt.{key} must be {what}, got {value!r}")
    if key in _INTS:
        if value != int(value):
            raise SettingsError(f"musicgpt.{key} must be a whole number, got {value!r}")
        return int(value)
    return float(value)
