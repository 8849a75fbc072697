"""The ``[musicgpt]`` config table as the backend's settings; the settings schema checks it, once, at the edge."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from bridge.backends.musicgpt.secrets import Redacted, find_api_key
from bridge.backends.musicgpt.webhooks import WebhookSettings
from bridge.exceptions import AuthError
from bridge.settings_schema import ConfigError, check_table, defaults
from bridge.settings_schema.validate import RULES

_DEFAULTS = defaults("musicgpt")  # declared with their limits and meaning in bridge/settings_schema/spec.py
DEFAULT_BASE_URL = _DEFAULTS["base_url"]
BASE_URL_ENV = "MUSICGPT_BASE_URL"

SettingsError = ConfigError  # the name this module used before the settings schema; the same type


@dataclass(frozen=True)
class MusicGPTSettings:
    """Everything the MusicGPT backend is configured with except the key (see ``secrets``) and the state folder."""

    base_url: str = DEFAULT_BASE_URL
    context_s: float | None = _DEFAULTS["context_s"]  # seconds of song uploaded each side of the range; None: all
    poll_calls_per_minute: int = _DEFAULTS["poll_calls_per_minute"]  # the plan's byId budget
    concurrency: int = _DEFAULTS["concurrency"]  # tasks the plan lets generate at once
    max_wait_s: float = _DEFAULTS["max_wait_s"]  # how long one wait polls a task before giving up (it is kept)
    hourly_limit: int | None = _DEFAULTS["hourly_limit"]  # paid requests allowed per rolling hour; None: no limit
    daily_limit: int | None = _DEFAULTS["daily_limit"]  # ... per rolling day
    dry_run: bool = _DEFAULTS["dry_run"]  # prepare and show what would be sent, send nothing
    webhook: WebhookSettings | None = None  # off unless configured
    http_timeout_s: float = _DEFAULTS["http_timeout_s"]
    # Tuning: rarely changed in production; tests shrink them so slow tasks take milliseconds.
    poll_interval_s: float = _DEFAULTS["poll_interval_s"]
    poll_max_interval_s: float = _DEFAULTS["poll_max_interval_s"]
    eta_scale: float = _DEFAULTS["eta_scale"]
    retry_base_s: float = _DEFAULTS["retry_base_s"]
    rate_limit_backoff_s: float = _DEFAULTS["rate_limit_backoff_s"]
    crossfade_s: float = _DEFAULTS["crossfade_s"]
    max_shift_s: float = _DEFAULTS["max_shift_s"]
    # Not settings of the table itself: where the key came from and where the backend keeps its ledger.
    api_key: Redacted | None = field(default=None, compare=False)
    state_dir: Path | None = None

    @classmethod
    def from_config(cls, table: dict, *, state_dir: Path | None = None, config_file: Path | None = None,
                    env: Mapping[str, str] | None = None) -> "MusicGPTSettings":
        """Build from the ``[musicgpt]`` TOML table and find the API key (env, keyring, then the table's api_key).

        ConfigError names a wrong setting. ``api_key`` stays None when no key is configured anywhere; a key in a
        config file that group or others can read raises AuthError. ``MUSICGPT_BASE_URL`` in the environment wins
        over ``base_url`` in the table.
        """
        env = os.environ if env is None else env
        values = check_table("musicgpt", table, config_file)
        table_key = values.pop("api_key")
        if "webhook" in values:
            values["webhook"] = WebhookSettings(**values["webhook"])
        if env.get(BASE_URL_ENV):
            # checked as the key it overrides; not shown: an address may carry a token
            if (rule := RULES["api_url"](env[BASE_URL_ENV])) is not None:
                raise ConfigError(rule, file="environment", key=BASE_URL_ENV)
            values["base_url"] = env[BASE_URL_ENV]
        try:
            api_key = find_api_key(table_key, config_file, env=env)
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
