"""The config file: safe defaults, and every mistake refused in one line naming file, line, key, value and rule."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from bridge.config import Config, ConfigError, from_table, load
from bridge.settings_schema import TOP, check_table, validate
from bridge.settings_schema import generate as config_docs
from bridge.settings_schema.locate import key_lines
from bridge.settings_schema.spec import all_tables
from bridge.settings_schema.validate import RULES
from tests.conftest import ROOT, daemon_environment


def test_defaults_listen_on_loopback_only():
    config = from_table({})
    assert config.osc_host == "127.0.0.1" and config.backend == "local" and config.delivery == "patch"


def test_a_wider_bind_needs_an_allowlist():
    with pytest.raises(ConfigError, match="allowed_senders"):
        from_table({"osc_host": "0.0.0.0"})
    assert from_table({"osc_host": "0.0.0.0", "allowed_senders": ["192.168.1.0/24"]}).osc_host == "0.0.0.0"


# (what is wrong, the file, the line, "key = value" as the message shows it, the rule's words)
BAD = [
    # top level
    ("unknown key", "osc_port = 9010\nosc_prot = 9000\n", 2, "osc_prot = 9000", "unknown key; did you mean osc_port?"),
    ("key of another table", "workers = 2\n", 1, "workers = 2", "unknown key; did you mean [local] workers?"),
    ("unknown table", "[locl]\nworkers = 2\n", 1, "[locl]", "unknown table; did you mean [local]?"),
    ("wrong type", 'osc_port = "9000"\n', 1, 'osc_port = "9000"', "must be a whole number"),
    ("out of range", "# the daemon\n\nosc_port = 70000\n", 3, "osc_port = 70000", "must be in range 1..65535"),
    ("not a choice", 'backend = "cloud"\n', 1, 'backend = "cloud"', "must be one of local, musicgpt"),
    ("negative handle", "handle = -1\n", 1, "handle = -1", "must be in range 0..10 seconds"),
    ("log level", 'log_level = "loud"\n', 1, 'log_level = "loud"', "must be one of debug, info, warning, error"),
    ("roots not a list", 'project_roots = "~/Music"\n', 1, 'project_roots = "~/Music"', "must be a list of text"),
    ("bad sender", 'allowed_senders = ["not an address"]\n', 1, 'allowed_senders = ["not an address"]',
     "must list IP addresses or networks"),
    ("wide bind", 'osc_host = "0.0.0.0"\n', 1, 'osc_host = "0.0.0.0"', "listens beyond this machine"),
    ("table as value", "local = 3\n", 1, "[local] = 3", "must be a table"),
    # [local]
    ("local unknown", "[local]\nworker = 2\n", 2, "[local] worker = 2", "did you mean [local] workers?"),
    ("local type", '[local]\nmin_confidence = 0.5\nworkers = "two"\n', 3, '[local] workers = "two"',
     "must be a whole number"),
    ("local range", "[local]\nmin_confidence = 1.5\n", 2, "[local] min_confidence = 1.5", "must be in range 0..1"),
    ("local bool", '[local]\nwarm_up = "yes"\n', 2, '[local] warm_up = "yes"', "must be true or false"),
    # [musicgpt] and [musicgpt.webhook]
    ("musicgpt unknown", "[musicgpt]\nconext_s = 5\n", 2, "[musicgpt] conext_s = 5",
     "did you mean [musicgpt] context_s?"),
    ("musicgpt range", "[musicgpt]\nconcurrency = 0\n", 2, "[musicgpt] concurrency = 0", "must be at least 1"),
    ("musicgpt whole", "[musicgpt]\nhourly_limit = 2.5\n", 2, "[musicgpt] hourly_limit = 2.5",
     "must be a whole number"),
    ("musicgpt word", '[musicgpt]\ncontext_s = "all"\n', 2, '[musicgpt] context_s = "all"',
     'must be a number or "whole"'),
    ("musicgpt url", '[musicgpt]\nbase_url = "ftp://x"\n', 2, '[musicgpt] base_url = "ftp://x"', "http:// or https://"),
    ("secret hidden", "[musicgpt]\napi_key = 12345\n", 2, "[musicgpt] api_key = <hidden>", "must be text in quotes"),
    ("secret misspelt", '[musicgpt]\napikey = "sk-test-SECRET123"\n', 2, "[musicgpt] apikey = <hidden>",
     "did you mean [musicgpt] api_key?"),
    ("secret under a name we do not know", '[musicgpt]\ntoken = "sk-test-SECRET123"\n', 2,
     "[musicgpt] token = <hidden>", "unknown key"),
    ("webhook missing url", "[musicgpt.webhook]\nbind_port = 1\n", 1, "[musicgpt.webhook] public_url is missing",
     "required when [musicgpt.webhook] is present"),
    ("webhook type", '[musicgpt.webhook]\npublic_url = "https://x"\nbind_port = "80"\n', 3,
     '[musicgpt.webhook] bind_port = "80"', "must be a whole number"),
    ("webhook inline", '[musicgpt]\nwebhook = { public_url = "https://x", bind_host = "localhost" }\n', 2,
     '[musicgpt.webhook] bind_host = "localhost"', "must be an IP address"),
    # [midi] and [midi.daw]
    ("midi unknown", '[midi]\nport = "pads"\npoll = 1\n', 3, "[midi] poll = 1", "unknown key; known in [midi]: port"),
    ("midi range", '[midi]\nport = "pads"\npoll_interval = 0\n', 3, "[midi] poll_interval = 0",
     "must be in range 0.1..10 seconds"),
    ("midi type", "[midi]\nvirtual = 1\n", 2, "[midi] virtual = 1", "must be true or false"),
    ("feedback beyond loopback", '[midi]\nport = "x"\n[midi.daw]\nhost = "0.0.0.0"\n', 4,
     '[midi.daw] host = "0.0.0.0"', "must be a loopback address"),
    ("feedback range", "[midi.daw]\nreaper_port = 70000\n", 2, "[midi.daw] reaper_port = 70000",
     "must be in range 1..65535"),
    ("feedback unknown", "[midi.daw]\nabelton = true\n", 2, "[midi.daw] abelton = true",
     "did you mean [midi.daw] ableton?"),
    # [notify]
    ("notify type", '[notify]\naddress = "/action/str"\nport = "x"\n', 3, '[notify] port = "x"',
     "must be a whole number"),
    ("notify type before missing", '[notify]\nport = "x"\n', 2, '[notify] port = "x"', "must be a whole number"),
    ("notify missing", "[notify]\nport = 8000\n", 1, "[notify] address is missing",
     "required when [notify] is present"),
    ("notify unknown", '[notify]\nadress = "/action/str"\n', 2, '[notify] adress = "/action/str"',
     "did you mean [notify] address?"),
    ("notify address", '[notify]\naddress = "action"\n', 2, '[notify] address = "action"', "must be an OSC address"),
    ("notify args", '[notify]\naddress = "/action/str"\nargs = ["_RS1", true]\n', 3, '[notify] args = ["_RS1", true]',
     "must be a list of text in quotes or numbers (true is not)"),
    # [ableton]
    ("ableton unknown", "[ableton]\ntempo = 120\n", 2, "[ableton] tempo = 120", "unknown key"),
    ("ableton range", "[ableton]\nport = 70000\n", 2, "[ableton] port = 70000", "must be in range 1..65535"),
    ("ableton type", '[ableton]\nenabled = "yes"\n', 2, '[ableton] enabled = "yes"', "must be true or false"),
    ("ableton choice", '[ableton]\ndelivery = "stems"\n', 2, '[ableton] delivery = "stems"',
     "must be one of patch, full"),
    ("ableton host", '[ableton]\nhost = "192.168.1.5"\n', 2, '[ableton] host = "192.168.1.5"',
     "must be a loopback address"),
    # [retention]
    ("retention range", "[retention]\njobs_days = -1\n", 2, "[retention] jobs_days = -1",
     "must be in range 0..36500 days"),
    ("retention type", '[retention]\nfiles_days = "week"\n', 2, '[retention] files_days = "week"', "must be a number"),
    ("retention unknown", "[retention]\nkeep_days = 3\n", 2, "[retention] keep_days = 3", "unknown key"),
    # TOML's \u0000 escape: a NUL no path or address can hold (it was a traceback where the folder was first made)
    ("nul in a path", 'inbox = "in\\u0000box"\n', 1, 'inbox = "in\\u0000box"', "must not contain a NUL character"),
    ("nul in a root", 'project_roots = ["~", "a\\u0000"]\n', 1, 'project_roots = ["~", "a\\u0000"]',
     "must not contain a NUL character"),
    ("nul in a host", '[notify]\nport = 8000\naddress = "/a"\nhost = "::1\\u0000"\n', 4, '[notify] host = "::1\\u0000"',
     "must not contain a NUL character"),
]

BAD_TOML = [
    ("double equals", "osc_port = 9010\nhandle = = 3\n", 2, "handle = = 3"),
    ("unclosed header", "[local\nworkers = 2\n", 1, "[local"),
    ("duplicate key", "[local]\nworkers = 2\nworkers = 3\n", 3, "workers = 3"),
    # The line is shown, but never a key's secret value: unquoted or unclosed, the common mistakes with a key.
    ("unknown secret unquoted", "[musicgpt]\nbearer_token = sk-test-SECRET123\n", 2, "bearer_token = <hidden>"),
    ("secret unquoted", "[musicgpt]\napi_key = sk-test-SECRET123\n", 2, "api_key = <hidden>"),
    ("secret unclosed", '[musicgpt]\napi_key = "sk-test-SECRET123\n', 2, "api_key = <hidden>"),
]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text,line,key_value,rule", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_setting_is_refused_in_one_line_naming_file_line_key_value_and_rule(tmp_path, text, line, key_value,
                                                                                   rule):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: {key_value}"), message
    assert rule in message and "\n" not in message
    assert caught.value.file == path and caught.value.line == line


@pytest.mark.parametrize("text,line,said", [case[1:] for case in BAD_TOML], ids=[case[0] for case in BAD_TOML])
def test_broken_toml_is_reported_with_its_line_and_what_it_says(tmp_path, text, line, said):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: not valid TOML: ") and message.endswith(f" in: {said}"), message


def test_a_missing_explicit_file_and_unreadable_text_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="missing.toml: config file not found"):
        load(tmp_path / "missing.toml")
    (tmp_path / "latin1.toml").write_bytes(b'inbox = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="latin1.toml: not UTF-8 text"):
        load(tmp_path / "latin1.toml")
    os.mkfifo(tmp_path / "pipe.toml")  # no writer: reading it would wait for ever
    for special in (Path("/dev/zero"), tmp_path / "pipe.toml"):
        with pytest.raises(ConfigError, match=f"^{special}: is not a file \\(a device or a pipe\\)$"):
            load(special)


def test_the_file_is_read_and_paths_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = _write(tmp_path, 'osc_port = 9100\ninbox = "~/in"\nproject_roots = ["~/Music"]\n[local]\n'
                            'min_confidence = 0.7\n')
    config = load(path)
    assert config.osc_port == 9100 and config.inbox == tmp_path / "in"
    assert config.project_roots == (tmp_path / "Music",)
    assert config.local == {"min_confidence": 0.7, "workers": 1, "warm_up": True}


def test_validated_tables_carry_their_defaults_and_optional_ones_stay_off(tmp_path):
    config = load(_write(tmp_path, '[notify]\naddress = "/action/str"\nargs = ["_RS123", 2]\n'))
    assert config.retention == {"jobs_days": 30.0, "files_days": 7.0} == Config().retention
    assert config.notify == {"host": "127.0.0.1", "port": 8000, "address": "/action/str", "args": ("_RS123", 2)}
    assert config.midi == {} and "webhook" not in config.musicgpt and config.ableton["enabled"] is False
    assert load(_write(tmp_path, "[retention]\njobs_days = 0\n")).retention == {"jobs_days": 0.0, "files_days": 7.0}
    assert load(_write(tmp_path, 'log_level = "DEBUG"\n')).log_level == "debug"
    assert load(_write(tmp_path, '[musicgpt]\ncontext_s = "whole"\n')).musicgpt["context_s"] is None


def test_validating_a_validated_table_gives_it_back():
    text = ('osc_port = 9100\ndrop_folder = ""\n[musicgpt]\ncontext_s = "whole"\nhourly_limit = 3\n'
            '[musicgpt.webhook]\npublic_url = "https://x"\nallowed_senders = ["10.0.0.0/8"]\n[midi]\nport = "pads"\n'
            '[midi.daw]\nreaper_port = 9000\n[notify]\naddress = "/a"\nargs = [1, "x"]\n')
    once = validate(tomllib.loads(text), text=text)
    assert validate(once) == once
    for table in ("musicgpt", "midi", "notify", "ableton", "local", "retention"):
        assert check_table(table, once[table]) == once[table]


def test_a_notice_to_another_machine_on_the_daemons_port_number_is_accepted():
    # a daemon listening on every interface and a DAW on another machine that listens on the same port number: the
    # notices reach that DAW, not the daemon (only one sent to this machine would)
    text = ('osc_host = "0.0.0.0"\nosc_port = 9010\nallowed_senders = ["192.168.1.0/24"]\n'
            '[notify]\nhost = "192.168.1.20"\nport = 9010\naddress = "/action/str"\n')
    assert validate(tomllib.loads(text), text=text)["notify"]["host"] == "192.168.1.20"
    for host in ("127.0.0.1", "localhost", "127.0.1.1"):
        with pytest.raises(ConfigError, match="each notice would reach the daemon itself"):
            validate(tomllib.loads(text.replace("192.168.1.20", host)), text=text)


def test_a_voice_reply_port_on_the_daemons_own_port_is_named():
    # [voice] reply_port = osc_port (copied from the line above): each /bridge/heard reached the daemon, which took it
    # for an unknown command, and the control surface meant to show what was heard never heard a take
    text = 'osc_port = 9010\n[voice]\nreply_port = 9010\n'
    with pytest.raises(ConfigError) as caught:
        validate(tomllib.loads(text), text=text)
    assert str(caught.value).endswith("[voice] reply_port = 9010: is osc_port too: each /bridge/heard would reach "
                                      "the daemon itself, not the control surface"), str(caught.value)
    assert validate(tomllib.loads(text.replace("reply_port = 9010", "reply_port = 9011")), text=text)


def test_overrides_are_checked_like_the_file():
    with pytest.raises(ConfigError) as caught:
        Config().with_overrides(osc_port=0)
    assert str(caught.value) == "command line: osc_port = 0: must be in range 1..65535"
    assert Config().with_overrides(osc_port=9200, inbox=None).osc_port == 9200
    assert Config().with_overrides(inbox=Path("/studio/in")).inbox == Path("/studio/in")


def test_the_declaration_and_the_config_agree():
    top = {key.name for key in TOP.keys} | {table.name for table in TOP.tables}
    assert top == {f.name for f in fields(Config)} - {"source_file"}
    samples = {"public_url": "https://hooks.example.net/db", "address": "/action/str"}  # the required keys
    for table in all_tables():
        assert all(key.rule is None or key.rule in RULES for key in table.keys), table.name
        if table.name:  # every default passes its own rules: checking the filled-in table changes nothing
            filled = check_table(table.name, {key.name: samples[key.name] for key in table.keys if key.required})
            assert check_table(table.name, filled) == filled


# -- where a key sits -------------------------------------------------------------------------------------------------

TRICKY = '''# a comment with key = value and [fake]
title = """
[notify]
port = "x"
"""
paths = [
  "a",  # a comment ] with a bracket
  "b = c",
]
'quoted key' = 1
"dq.key" = 2
site.name = "x"
[ local ]
workers = 2
[musicgpt.webhook]
public_url = 'https://x'   # ]
inline = { a = 1, b = "}" }
[[arr]]
x = 1
[[arr]]
y = 2
lit = \'\'\'
z = 3
\'\'\'
s = "with \\" quote [x] = 2"
esc = """a \\""" b"""""
last = 1
'''


def test_keys_are_found_on_their_lines_past_strings_arrays_and_comments():
    document = tomllib.loads(TRICKY)  # the scanner only ever sees valid TOML
    assert document["arr"][1]["lit"] == "z = 3\n" and "[notify]" in document["title"]
    lines = key_lines(TRICKY)
    expected = {("title",): 2, ("paths",): 6, ("quoted key",): 10, ("dq.key",): 11, ("site",): 12,
                ("site", "name"): 12, ("local",): 13, ("local", "workers"): 14, ("musicgpt",): 15,
                ("musicgpt", "webhook"): 15, ("musicgpt", "webhook", "public_url"): 16,
                ("musicgpt", "webhook", "inline"): 17, ("arr",): 18, ("arr", "x"): 19, ("arr", "y"): 21,
                ("arr", "lit"): 22, ("arr", "s"): 25, ("arr", "esc"): 26, ("arr", "last"): 27}
    assert {path: lines.get(path) for path in expected} == expected
    assert ("notify",) not in lines and ("z",) not in lines and ("arr", "z") not in lines
    assert key_lines(TRICKY.replace("\n", "\r\n"))[("arr", "last")] == 27


def test_a_key_inside_an_inline_table_is_named_with_its_tables_line(tmp_path):
    path = _write(tmp_path, '[midi]\nport = "pads"\ndaw = { ableton = true, ableton_interval = 0 }\n')
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == (f"{path}:3: [midi.daw] ableton_interval = 0: must be in range 0.2..60 seconds")


# -- the command line -------------------------------------------------------------------------------------------------

def _daw_bridge(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = daemon_environment({"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


SERVED = ["local type", "notify type before missing", "unknown table", "musicgpt unknown", "webhook missing url",
          "feedback beyond loopback", "ableton host", "retention range", "secret misspelt", "nul in a path"]


@pytest.mark.parametrize("case", [case for case in BAD if case[0] in SERVED] + [
    ("bad toml", *BAD_TOML[0][1:3], "not valid TOML", ""),
    ("unquoted key", *BAD_TOML[-2][1:3], "not valid TOML", "in: api_key = <hidden>")], ids=lambda case: case[0])
def test_serve_refuses_a_bad_config_in_one_line_with_exit_status_2(tmp_path, case):
    _, text, line, key_value, rule = case
    path = _write(tmp_path, text)
    done = _daw_bridge("serve", "--config", str(path), tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"daw-bridge: {path}:{line}: {key_value}")
    assert rule in done.stderr and "SECRET123" not in done.stderr


@pytest.mark.parametrize("command", [["doctor"], ["jobs"], ["send", "ping"], ["midi", "ports"],
                                     ["extend", "song.wav", "--after", "1"], ["serve", "--osc-port", "0"]],
                         ids=lambda command: command[0] + ("-override" if "--osc-port" in command else ""))
def test_every_command_that_reads_the_config_refuses_it_the_same_way(tmp_path, command):
    if "--osc-port" in command:
        path, expected = _write(tmp_path, ""), "daw-bridge: command line: osc_port = 0: must be in range 1..65535\n"
    else:
        path = _write(tmp_path, '[local]\nmin_confidence = 0.5\nworkers = "two"\n')
        expected = f'daw-bridge: {path}:3: [local] workers = "two": must be a whole number\n'
    done = _daw_bridge(*command, "--config", str(path), tmp_path=tmp_path)
    assert (done.returncode, done.stderr) == (2, expected)


def test_the_readmes_config_examples_are_accepted():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme[readme.index("### Configuration"):], re.S)
    assert len(blocks) >= 2  # the Configuration example, then [musicgpt]
    for text in blocks:
        validate(tomllib.loads(text), text=text, source_file=Path("README.md"))


# -- the generated reference ------------------------------------------------------------------------------------------

def test_docs_config_md_is_fresh():
    stale = config_docs.stale_files(ROOT)
    assert stale == [], "docs/config.md is stale: run daw-bridge generate"


def test_generate_check_names_a_stale_config_reference_and_generate_rewrites_it(tmp_path, capsys):
    assert config_docs.main(check=True, root=tmp_path) == 1
    assert capsys.readouterr().err == "stale: docs/config.md (run daw-bridge generate)\n"
    assert config_docs.main(root=tmp_path) == 0
    assert (tmp_path / "docs" / "config.md").read_text(encoding="utf-8") == config_docs.render_docs()
    assert config_docs.main(check=True, root=tmp_path) == 0


def test_the_reference_documents_every_key():
    text = config_docs.render_docs()
    for table in all_tables():
        assert f"## {table.title if table.name else 'Top level'}\n" in text
        for key in table.keys:
            assert f"| `{key.name}` |" in text


def test_daw_bridge_generate_check_passes_on_the_repository(tmp_path):
    done = _daw_bridge("generate", "--check", tmp_path=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
