"""An outsider's probes of ``daw-bridge jobs cancel`` against a real daemon whose MusicGPT job is stuck: the fake
service on loopback holds the job while it is submitted, polled or downloaded, and the producer cancels it from the
command line. The job must end cancelled at once, nothing of it may reach the drop folder, MusicGPT is never asked
twice, no key or signed address shows, and the daemon goes on serving."""

from __future__ import annotations

import asyncio
from http.server import BaseHTTPRequestHandler

import pytest

from tests.adversarial.money_scenarios import API_KEY, Stage, one_line
from tests.adversarial.support import files_under
from tests.backends.musicgpt.support import with_client
from tests.test_outsider_probes_cloud import _serving


def cancelled_while(stage: Stage, stuck: str, at) -> tuple[str, str]:
    """Start an inpaint, wait until ``at(stage)`` says it is stuck, cancel it with the CLI: the job id and what the
    CLI printed."""
    stage.fake.signed_urls = True
    stage.start()
    job = stage.inpaint("stuck")
    stage.wait_until(stuck, lambda: at(stage))
    cli = stage.cli("cancel", job)
    assert cli.returncode == 0, cli.stderr
    return job, (cli.stdout + cli.stderr).strip()


def secrets_shown(stage: Stage) -> list[str]:
    seen = "\n".join(stage.cli_outputs) + stage.daemon.log.read_text()
    return [s for s in (API_KEY, stage.fake.url_credential, "X-Amz-Signature") if s in seen]


@pytest.mark.parametrize("fault, options", [("timeout", {"seconds": 60}),  # the storage host sends nothing
                                            ("trickle", {"chunk": 4096, "every": 0.2})])  # ...or a trickle
def test_a_cancel_during_a_stuck_download_ends_the_job_and_publishes_nothing(fault, options, tmp_path,
                                                                             demo_song_path):
    with Stage(tmp_path / "project", demo_song_path) as stage:
        stage.fake.inject("download", fault, times=3, **options)
        job, printed = cancelled_while(stage, "the download asked for", lambda s: s.fake.file_requests)
        record = stage.settle(job)
        serving = stage.cli("list")
        stage.stop()  # whatever the daemon still had of the job ends here: nothing can be published later
        assert (printed, record.state.value) == (f"{job}: cancelled", "cancelled")
        assert files_under(stage.project.drop) == []
        assert serving.returncode == 0 and job in serving.stdout
        assert sum(stage.fake.submit_requests.values()) == 1
        assert secrets_shown(stage) == []


def test_a_cancel_while_the_submit_is_unanswered_says_a_task_may_be_paid_for(tmp_path, demo_song_path):
    """The POST reached MusicGPT (the task is made and paid for) and its answer never came in time: the job stays
    cancelled, but ``jobs`` said only "cancelled by the producer" while the spend ledger knew a charge was
    possible; it now says so, and how to settle it."""
    with Stage(tmp_path / "project", demo_song_path, settings={"http_timeout_s": 1.0}) as stage:
        stage.fake.inject("submit", "slow_accept", seconds=30)
        job, printed = cancelled_while(stage, "the submit sent", lambda s: sum(s.fake.submit_requests.values()))
        assert printed == f"{job}: cancelled"
        stage.wait_until("the job saying a task may be paid for",
                         lambda: "dashboard" in (stage.record(job).error_message or ""))
        record = stage.record(job)
        listed = stage.cli("list")
        stage.stop()
        assert record.state.value == "cancelled"
        assert record.error_message.startswith("cancelled by the producer, but the inpaint request may have reached "
                                               "MusicGPT")
        assert "check your MusicGPT dashboard" in record.error_message and one_line(record.error_message)
        assert "check your MusicGPT dashboard" in listed.stdout
        assert sum(stage.fake.submit_requests.values()) == 1 and files_under(stage.project.drop) == []
        assert secrets_shown(stage) == []


def test_a_job_id_with_a_newline_is_refused_in_one_line(tmp_path, demo_song_path):
    """A script passing a job id with a newline got a two-line answer ("no job a" and "b")."""
    with Stage(tmp_path / "project", demo_song_path) as stage:
        stage.start()
        refused = stage.cli("cancel", "j-1\nrm -rf")
        serving = stage.cli("list")
    assert (refused.returncode, refused.stdout, refused.stderr) == (2, "daw-bridge jobs: no job j-1\\nrm -rf\n", "")
    assert serving.returncode == 0


class _SendsAByteThenWaits(BaseHTTPRequestHandler):
    """A storage host that starts a 1 MB answer and then sends nothing more until it is stopped."""

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"R")
        self.wfile.flush()
        self.server.stopping.wait()


def test_a_download_cancelled_mid_stream_leaves_no_partial_file(tmp_path):
    """A cancelled job's download stopped, but its hidden .part file stayed in the job's work folder."""
    async def cancel_mid_stream(client):
        fetching = asyncio.create_task(client.download(f"{host}/v1.wav", tmp_path / "v1.wav"))
        while not (tmp_path / ".v1.wav.part").exists() and not fetching.done():
            await asyncio.sleep(0.01)
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)
        return fetching.cancelled()

    with _serving(_SendsAByteThenWaits) as host:
        assert with_client("http://127.0.0.1:9/api/public", "sk-unused", cancel_mid_stream)
    assert list(tmp_path.iterdir()) == []
