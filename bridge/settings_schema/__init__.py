"""The config file as data: every table and key declared once, one validator, and the reference generated from it.

``spec`` holds the declarations, ``validate`` the checks (``ConfigError``: one line with file, line, key, value and
rule), ``generate`` writes ``docs/config.md``. Nothing here imports core, frontends or backends.
"""

from bridge.settings_schema.spec import TOP, Key, Table, defaults, find_table, may_hold_a_secret
from bridge.settings_schema.validate import (
    ConfigError,
    check_table,
    check_values,
    is_loopback,
    toml_line_shown,
    validate,
)

__all__ = ["TOP", "ConfigError", "Key", "Table", "check_table", "check_values", "defaults", "find_table",
           "is_loopback", "may_hold_a_secret", "toml_line_shown", "validate"]
