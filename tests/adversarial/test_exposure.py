"""Exposure: every listener binds loopback unless configured otherwise, a wider bind needs an allowlist and senders
outside it get nothing, and a webhook without its job's secret reaches no job.

This suite never listens beyond loopback itself: the allowlist is proven on a loopback bind (Linux routes all of
127.0.0.0/8 to it, so 127.0.0.2 is a different sender), and wider binds are only shown to be refused.
"""

from __future__ import annotations

import http.client
import json
import stat

import pytest

from bridge.client import BridgeClient
from tests.adversarial.support import (
    Daemon,
    free_tcp_port,
    journal_records,
    listening_sockets,
    musicgpt_table,
    run_to_exit,
)
from tests.conftest import Project, free_udp_port
from tests.fakes.musicgpt import FakeMusicGPT

LOOPBACK = ("127.0.0.1", "::1")
PUBLIC_URL = "https://hooks.example.invalid/daw-bridge"


def _post(port: int, path: str, body: bytes = b"{}", method: str = "POST", claimed_length: int | None = None) -> int:
    """The receiver's status for one request; ``claimed_length`` announces a body that is never sent."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if claimed_length is None:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        else:  # an oversized body is refused from its headers, before it is read (or sent)
            connection.putrequest(method, path)
            connection.putheader("Content-Length", str(claimed_length))
            connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_every_listener_is_on_loopback_and_webhooks_need_their_jobs_secret(tmp_path, demo_song_path, figures):
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.slow_factor = 12.0  # 2.4 s of "generating": time to look at the sockets and knock on the door
        project = Project(tmp_path / "project", demo_song_path)
        hook_port, ableton_reply = free_tcp_port(), free_udp_port()
        project.write_config(f"[ableton]\nenabled = true\nport = {free_udp_port()}\nreply_port = {ableton_reply}\n"
                             + musicgpt_table(fake.url, webhook={"public_url": PUBLIC_URL, "bind_port": hook_port}))
        daemon = Daemon(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="brass",
                            backend="musicgpt", num_outputs=1)
                generating = client.wait_for(lambda r: r.name == "state" and r.args[1] == "generating", timeout=30)
                assert generating is not None
                sockets = listening_sockets(daemon.pid)
                secret = journal_records(project)[0].receipt["webhook_secret"]
                task_id = journal_records(project)[0].receipt["task_id"]
                knocks = {
                    "no secret": _post(hook_port, "/musicgpt/"),
                    "wrong secret": _post(hook_port, "/musicgpt/" + "A" * len(secret)),
                    "secret under another prefix": _post(hook_port, "/other/" + secret),
                    "secret with a suffix": _post(hook_port, f"/musicgpt/{secret}x"),
                    "GET with the secret": _post(hook_port, f"/musicgpt/{secret}", b"", "GET"),
                    "2 MB body": _post(hook_port, f"/musicgpt/{secret}", claimed_length=2 << 20),
                    "not JSON": _post(hook_port, f"/musicgpt/{secret}", b"\xff\xfe"),
                    "the job's secret": _post(hook_port, f"/musicgpt/{secret}",
                                              json.dumps({"task_id": task_id, "conversion_path": None}).encode()),
                }
                done = client.wait_for(lambda r: r.name in ("done", "failed"), timeout=60)
        finally:
            daemon.stop()
    assert done is not None and done.name == "done", done
    assert {proto for proto, _, _ in sockets} >= {"udp", "tcp"}, sockets
    assert all(host in LOOPBACK for _, host, _ in sockets), sockets
    assert ("udp", "127.0.0.1", project.port) in sockets and ("tcp", "127.0.0.1", hook_port) in sockets
    assert ("udp", "127.0.0.1", ableton_reply) in sockets
    assert knocks == {"no secret": 404, "wrong secret": 404, "secret under another prefix": 404,
                      "secret with a suffix": 404, "GET with the secret": 405, "2 MB body": 413, "not JSON": 400,
                      "the job's secret": 200}, knocks
    assert stat.S_IMODE(project.state.stat().st_mode) == 0o700  # the journal holding that secret is ours alone
    figures["exposure"] = {"listeners": sorted(sockets), "webhook answers": knocks}


@pytest.mark.parametrize("before, holds, after", [
    (None, None, 0o700),  # made now
    (0o755, "journal.sqlite", 0o700),  # an earlier version's
    (0o755, "one-shot-journal.sqlite", 0o700),
    (0o755, "notes.txt", 0o755),  # state_dir names a folder that is not only ours (the home, a shared one)
])
def test_the_state_folder_is_readable_by_its_user_only(tmp_path, demo_song_path, before, holds, after):
    """Other people on the machine cannot read the journal's signed result addresses and webhook secrets, nor the
    work copies of the song: a new state folder is made private, one an older version made (0755) is tightened."""
    project = Project(tmp_path / "project", demo_song_path)
    if before is not None:
        project.state.mkdir(mode=before)
        project.state.chmod(before)
        (project.state / holds).write_bytes(b"")
    daemon = Daemon(project).start()
    daemon.stop()
    assert stat.S_IMODE(project.state.stat().st_mode) == after


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_osc_beyond_loopback_without_an_allowlist_is_refused_at_start(tmp_path, demo_song_path, host):
    project = Project(tmp_path / "project", demo_song_path)
    project.config.write_text(f'osc_host = "{host}"\n' + project.config.read_text())
    result = run_to_exit(project)
    assert result.returncode == 2
    assert "allowed_senders" in result.stderr and host in result.stderr, result.stderr


def test_a_webhook_receiver_beyond_loopback_without_an_allowlist_is_refused_at_start(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config(musicgpt_table("http://127.0.0.1:9/api/public",
                                        webhook={"public_url": PUBLIC_URL, "bind_host": "0.0.0.0"}))
    daemon = Daemon(project, env={"MUSICGPT_API_KEY": "sk-unused-0000"})
    try:
        daemon.start(timeout=20)  # the receiver binds at the first paid submit: starting it binds nothing yet
    except RuntimeError as exc:
        assert "bind_host" in str(exc) or "allow" in str(exc)
        return
    daemon.stop()
    pytest.fail("a webhook receiver on 0.0.0.0 with no allowlist was accepted")


def test_senders_outside_the_allowlist_get_no_answer_and_start_nothing(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    project.write_config('allowed_senders = ["127.0.0.2/32"]\n')
    daemon = Daemon(project, ping_from="127.0.0.2").start()
    try:
        answered = {}
        for sender in ("127.0.0.1", "127.0.0.3", "127.0.0.2"):
            with BridgeClient("127.0.0.1", project.port, bind_host=sender) as client:
                # the allowed sender's pong may take more than 0.5 s on a loaded machine (its engine worker starting)
                answered[sender] = client.ping(timeout=0.5 if sender != "127.0.0.2" else 30)
                if sender != "127.0.0.2":
                    client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="")
                    answered[sender + " inpaint"] = client.wait_for(lambda r: True, timeout=0.5) is not None
    finally:
        daemon.stop()
    assert answered == {"127.0.0.1": False, "127.0.0.1 inpaint": False, "127.0.0.3": False,
                        "127.0.0.3 inpaint": False, "127.0.0.2": True}
    assert journal_records(project) == []
    assert "not in allowed_senders" in daemon.log.read_text()
