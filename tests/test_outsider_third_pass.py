"""An outsider's third pass at the paid path and the credentials: a config mistake in an address that carries a
gateway's or a tunnel's password, and a finished task whose storage addresses expired before they were fetched."""

from __future__ import annotations

import pytest

from tests.test_cli import daw_bridge

GATEWAY_PASSWORD = "gatewayPASS-5e4d3c"
TUNNEL_PASSWORD = "tunnelPASS-9a8b7c"
TOKEN = "tok-SECRET-1f2e3d"


@pytest.mark.parametrize("table", [
    f'[musicgpt]\nbase_url = "https://gw:{GATEWAY_PASSWORD}@api.example.com/api/public?token={TOKEN}"\n',
    f'[musicgpt]\nbase_url = "http://gw:{GATEWAY_PASSWORD}@api.example.com/api/public"\n',
    f'[musicgpt.webhook]\npublic_url = "https://hooks:{TUNNEL_PASSWORD}@tunnel.example.net:99999/daw"\n',
], ids=["query", "plain-http", "bad-port"])
@pytest.mark.parametrize("command", ["doctor", "serve", "jobs"])
def test_a_config_mistake_in_an_address_with_a_password_names_it_without_the_password(project, table, command):
    """The one line naming the mistake showed the address as written, user:password@ and ?query included, on the
    terminal and in the service manager's log, where every log line masks them."""
    project.write_config(table)
    done = daw_bridge(command, "--config", str(project.config), timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    for secret in (GATEWAY_PASSWORD, TUNNEL_PASSWORD, TOKEN):
        assert secret not in said
    [line] = [line for line in said.splitlines() if "url" in line]
    assert line.startswith(f"daw-bridge: {project.config}:") and "url = " in line and "<redacted>@" in line
