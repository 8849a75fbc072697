"""The API key, recognisable and fake, through the whole cloud path: found in no log, manifest, status file, error
reply, journal, ledger, work file or exception text, whatever happens to the jobs it pays for.

The daemon runs as its own process at debug verbosity (httpx and httpcore included) with the key in
``MUSICGPT_API_KEY``, against the fake MusicGPT service, which checks that the key really is sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bridge.client import BridgeClient
from tests.adversarial.support import (
    Daemon,
    files_under,
    journal_records,
    musicgpt_table,
)
from tests.conftest import ROOT, Project
from tests.fakes.musicgpt import FakeMusicGPT
from tests.frontends.test_inbox import drop_request, wait_for_status

KEY = "sk-FAKE-adversarial-0f1e2d3c4b5a69788796a5b4"


def _job(client: BridgeClient, project: Project, timeout: float = 60, **extra) -> list:
    """Run one inpaint to its end (a submission_unknown is resolved as the producer would); every reply seen."""
    values = dict(source=str(project.song), start=12.0, end=16.0, prompt="brass", num_outputs=1, **extra)
    client.send("inpaint", **values)
    seen = []
    job_id = None

    def ended(reply) -> bool:
        nonlocal job_id
        seen.append(reply)
        if reply.name == "accepted":
            job_id = reply.args[1]
        return reply.name == "error" or (reply.name in ("done", "failed") and reply.args[0] == job_id) or \
            (reply.name == "state" and reply.args[1] == "submission_unknown")

    assert client.wait_for(ended, timeout=timeout) is not None, seen[-3:]
    return seen


def test_the_api_key_is_found_nowhere_the_daemon_writes_or_answers(tmp_path, demo_song_path, figures):
    project = Project(tmp_path / "project", demo_song_path)
    replies, outcomes = [], {}
    with FakeMusicGPT(api_key=KEY, time_scale=0.01, eta=20) as fake:
        project.write_config('backend = "musicgpt"\n' + musicgpt_table(fake.url, http_timeout_s=2.0))
        env = {"MUSICGPT_API_KEY": KEY}
        daemon = Daemon(project, env=env, verbose=True).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                replies += _job(client, project)
                outcomes["delivered"] = replies[-1].name
                drop_request(project.inbox, "by-file", {"command": "extend", "source": str(project.song),
                                                        "extend_after": 30.0, "prompt": "strings",
                                                        "num_outputs": 1, "request_id": "by-file"})
                outcomes["request file"] = wait_for_status(project.inbox, "by-file", timeout=60)["state"]
                fake.inject("submit", "422", text="audio too short")
                replies += _job(client, project)
                outcomes["refused (422)"] = replies[-1].args[1]
                fake.inject("submit", "drop_after_accept")
                replies += _job(client, project)
                outcomes["answer lost"] = replies[-1].args[1]
                client.send("resolve", job_id=replies[-1].args[0], task_id=list(fake.tasks)[-1])
                replies.append(client.wait_for(lambda r: r.name in ("done", "failed"), timeout=60))
                fake.inject("submit", "500", times=4)  # every attempt the client makes
                replies += _job(client, project)
                outcomes["server errors"] = replies[-1].args[1]
                fake.inject("download", "corrupt", times=10)
                replies += _job(client, project)
                outcomes["corrupt download"] = replies[-1].args[1]
                fake.api_key = "sk-someone-elses-key"  # from now on the server refuses ours
                replies += _job(client, project)
                outcomes["key refused (401)"] = replies[-1].args[1]
                client.send("status")
                time.sleep(0.3)
                while (reply := client.receive(timeout=0.2)) is not None:
                    replies.append(reply)
            cmdline = Path(f"/proc/{daemon.pid}/cmdline").read_bytes()
        finally:
            daemon.stop()
        sent_key = fake.auth_headers.count(KEY)

    cli = subprocess.run([sys.executable, "-m", "bridge", "jobs", "--config", str(project.config)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                         timeout=60, check=False)
    shown = [subprocess.run([sys.executable, "-m", "bridge", "jobs", "show", r.job_id, "--config",
                             str(project.config)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                            capture_output=True, text=True, timeout=60, check=False)
             for r in journal_records(project)]

    # Every path ran: a delivery by OSC and by request file, a lost answer waiting for the producer, a refused key,
    # and three failures whose exact codes belong to the backend.
    assert (outcomes["delivered"], outcomes["request file"]) == ("done", "delivered"), outcomes
    assert (outcomes["answer lost"], outcomes["key refused (401)"]) == ("submission_unknown", "auth_failed"), outcomes
    assert all(outcomes[k] not in ("", "done") for k in ("refused (422)", "server errors", "corrupt download"))
    assert sent_key >= 6, "the key was not really used"
    texts = {f"reply {n} {r.address}": json.dumps(r.args, default=str) for n, r in enumerate(replies) if r}
    texts["daemon command line"] = cmdline.decode(errors="replace")
    texts["daw-bridge jobs"] = cli.stdout + cli.stderr
    texts.update({f"daw-bridge jobs show {n}": r.stdout + r.stderr for n, r in enumerate(shown)})
    leaks = [name for name, text in texts.items() if KEY in text]
    written = files_under(project.root)
    leaks += [str(p.relative_to(project.root)) for p in written if KEY.encode() in p.read_bytes()]
    assert leaks == [], f"the API key appears in: {leaks}"
    kinds = sorted({p.suffix or p.name for p in written})
    assert {".sqlite", ".wav", ".json", ".log"} <= set(kinds), kinds
    figures["secrets"] = {"jobs": outcomes, "times the fake saw the key": sent_key,
                          "texts and files searched": f"{len(texts)} texts, {len(written)} files ({', '.join(kinds)})",
                          "places the key was found": len(leaks)}
