"""The config file: defaults that are safe, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import Config, ConfigError, from_table, load


def test_defaults_listen_on_loopback_only():
    config = from_table({})
    assert config.osc_host == "127.0.0.1" and config.backend == "local" and config.delivery == "patch"


def test_a_wider_bind_needs_an_allowlist():
    with pytest.raises(ConfigError, match="allowed_senders"):
        from_table({"osc_host": "0.0.0.0"})
    assert from_table({"osc_host": "0.0.0.0", "allowed_senders": ["192.168.1.0/24"]}).osc_host == "0.0.0.0"


@pytest.mark.parametrize("table,words", [
    ({"osc_port": 70000}, "osc_port must be in range 1..65535"),
    ({"osc_port": "9000"}, "osc_port must be int"),
    ({"backend": "cloud"}, "backend must be one of local, musicgpt"),
    ({"delivery": "both"}, "delivery must be one of patch, full"),
    ({"handle": -1}, "handle must be in range 0..10"),
    ({"colour": "red"}, "unknown setting 'colour'"),
    ({"project_roots": "~/Music"}, "project_roots must be a list"),
    ({"allowed_senders": ["not an address"]}, "allowed_senders"),
    ({"local": 3}, "[local] must be a table"),
    ({"log_level": "loud"}, "log_level must be one of debug, info, warning, error"),
])
def test_a_bad_setting_is_refused_by_name(table, words):
    with pytest.raises(ConfigError, match=r".*" + words.replace("[", r"\[").replace(".", r"\.")):
        from_table(table, Path("/x/config.toml"))


def test_the_file_is_read_and_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "c.toml"
    path.write_text('osc_port = 9100\ninbox = "~/in"\nproject_roots = ["~/Music"]\n[local]\nmin_confidence = 0.7\n')
    config = load(path)
    assert config.osc_port == 9100 and config.inbox == tmp_path / "in"
    assert config.project_roots == (tmp_path / "Music",) and config.local == {"min_confidence": 0.7}


def test_broken_toml_and_a_missing_explicit_file_are_reported(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("osc_port = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "missing.toml")


def test_overrides_are_checked_like_the_file():
    with pytest.raises(ConfigError, match="osc_port"):
        Config().with_overrides(osc_port=0)
    assert Config().with_overrides(osc_port=9200, inbox=None).osc_port == 9200
