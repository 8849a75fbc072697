"""An outsider's third pass at the paid path and the credentials: a config mistake in an address that carries a
gateway's or a tunnel's password, and a finished task whose storage addresses expired before they were fetched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from tests.adversarial.support import Daemon, musicgpt_table
from tests.fakes.musicgpt import FakeMusicGPT
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


@pytest.mark.parametrize("outputs", [1, 2])
def test_storage_addresses_that_expired_before_the_download_are_asked_for_again_not_paid_for_again(project, outputs):
    """Storage's signed addresses expire (a variant fetched after another's long download, a slow link): the job
    failed as 'audio file gone or refused (HTTP 403)', though byId hands out fresh addresses for free, and a producer
    told that sends the command again, paying again. The daemon now asks byId once more and delivers the one task."""
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.signed_urls = True
        fake.expired_urls = 1  # the first answer that offers the audio offers it at addresses already expired
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass",
                            num_outputs=outputs)
                last = client.wait_for(lambda reply: reply.name in ("done", "failed", "error"), timeout=120)
        finally:
            daemon.stop()
    assert last.name == "done", last
    assert fake.total_submits == 1 and fake.expired_urls == 0
    [task] = fake.tasks.values()
    delivered = sorted(json.loads(Path(m).read_text(encoding="utf-8"))["notes"]["conversion_id"]
                       for m in project.drop.glob("*.json"))
    assert delivered == sorted(task.conversion_ids)
    assert "asking MusicGPT for the task's audio addresses again" in daemon.log.read_text()
