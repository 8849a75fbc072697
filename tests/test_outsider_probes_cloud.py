"""An outsider's probes of the MusicGPT client against a misbehaving server (each answer a real server, or a proxy in
front of it, could give ends the call with one of the project's errors, never a raw exception, and a paid submit is
never sent twice) and of the one-shot CLI with odd inputs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import soundfile as sf

import tests.fakes.musicgpt as fake_module
from bridge import delivery
from bridge.audio.region import probe
from bridge.backends.musicgpt.outputs import Offered, fetch_variant
from bridge.exceptions import (
    BackendError,
    BridgeError,
    SourceError,
    SubmissionUnknown,
    TransientError,
)
from bridge.models import JobSpec, Rendered
from tests.backends.musicgpt.support import with_client
from tests.backends.musicgpt.test_musicgpt_client import upload  # noqa: F401 (a fixture)
from tests.conftest import ROOT, DaemonProcess, daemon_environment
from tests.fakes.musicgpt import FakeMusicGPT

NO_API = "http://127.0.0.1:9/api/public"  # nothing listens: the download tests never reach the API
INPAINT = {"prompt": "a soft guitar solo", "replace_start_at": "4.5", "replace_end_at": "9", "num_outputs": "2"}


@pytest.fixture
def fake():
    with FakeMusicGPT(time_scale=0.01, eta=20) as service:
        yield service


@pytest.fixture
def song(demo_song_path):
    return demo_song_path  # what the borrowed ``upload`` fixture crops


class _RedirectLoop(BaseHTTPRequestHandler):
    """A storage host that redirects every download to itself, forever."""

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "/b" if self.path == "/a" else "/a")
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def _serving(handler):
    """A storage host on loopback answering with ``handler``; its address. Stopped (``server.stopping`` set for a
    handler still sending) and joined on leaving."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.stopping = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def redirect_loop():
    with _serving(_RedirectLoop) as host:
        yield f"{host}/a"


def _download(url, dest, **settings):
    return with_client(NO_API, "sk-unused", lambda client: client.download(url, dest), **settings)


def test_an_audio_address_that_redirects_in_a_loop_fails_the_download_not_the_daemon(redirect_loop, tmp_path):
    with pytest.raises(TransientError, match="TooManyRedirects") as caught:
        _download(redirect_loop, tmp_path / "v1.wav")
    assert caught.value.code == "download_failed"
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


@pytest.mark.parametrize("address", [123, None, ["http://x"]])
def test_an_audio_address_that_is_not_text_is_refused_as_not_a_web_address(address, tmp_path):
    with pytest.raises(BackendError, match="not a web address") as caught:
        _download(address, tmp_path / "v1.wav")
    assert caught.value.code == "download_failed"


class _HtmlPage(BaseHTTPRequestHandler):
    """A storage host (or a captive portal in front of it) that answers every download with a web page."""

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<html><body>Sign in to continue</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_variant_that_cannot_be_fetched_is_reported_in_the_words_of_what_went_wrong(tmp_path):
    """Not the hidden download file's name, and not "MusicGPT no longer has it" for an address it never served."""
    def fetch(wav_url):
        offered = Offered(variant=1, conversion_id=None, wav_url=wav_url, mp3_url=None, duration=10.0, title="",
                          lyrics="", lyrics_timestamped=None)
        return with_client(NO_API, "sk-unused", lambda client: fetch_variant(client, offered, tmp_path), attempts=1)

    with _serving(_HtmlPage) as host:
        with pytest.raises(BridgeError) as html:
            fetch(f"{host}/v1.wav")
    with pytest.raises(BridgeError) as local:
        fetch("file:///etc/passwd")
    assert "not decodable (Format not recognised.)" in str(html.value), html.value
    assert ".part" not in str(html.value) and str(tmp_path) not in str(html.value)
    assert str(local.value) == ("variant 1 could not be downloaded (MusicGPT gave an audio address that is not a web "
                                "address: 'file:///etc/passwd')"), local.value
    assert list(tmp_path.iterdir()) == []


def _submit(fake, upload):
    return with_client(fake.url, fake.api_key, lambda client: client.submit("inpaint", INPAINT, upload))


@pytest.mark.parametrize("task_id", ["x" * 10_000, ["task-1"], {"id": "task-1"}, True])
def test_a_submit_answered_with_an_unusable_task_id_is_unknown_and_never_sent_again(fake, upload, monkeypatch,
                                                                                     task_id):
    accepted = fake_module._Handler._accepted_answer

    def odd_answer(self, operation, task):
        return dict(accepted(self, operation, task), task_id=task_id)

    monkeypatch.setattr(fake_module._Handler, "_accepted_answer", odd_answer)

    with pytest.raises(SubmissionUnknown, match="task id that is not one") as caught:
        _submit(fake, upload)
    assert len(str(caught.value)) < 400 and "\n" not in str(caught.value)
    assert fake.total_submits == 1


def test_a_numeric_task_id_is_taken_as_text(fake, upload, monkeypatch):
    accepted = fake_module._Handler._accepted_answer
    monkeypatch.setattr(fake_module._Handler, "_accepted_answer",
                        lambda self, operation, task: dict(accepted(self, operation, task), task_id=12345))

    assert _submit(fake, upload)["task_id"] == 12345
    assert fake.total_submits == 1


def test_a_one_shot_whose_out_folder_lies_under_a_file_is_refused_before_any_work(project):
    """Refused at once, not after the whole (perhaps paid) job when it is delivered."""
    blocker = project.root / "notes.txt"
    blocker.write_text("a file, not a folder\n")
    result = subprocess.run([sys.executable, "-m", "bridge", "inpaint", str(project.song), "--start", "10",
                             "--end", "12", "--config", str(project.config), "--out", str(blocker / "results")],
                            env=daemon_environment(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"is not a folder ({blocker} is a file)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project.state / "journal.sqlite").exists() or "inpaint" not in subprocess.run(
        [sys.executable, "-m", "bridge", "jobs", "--config", str(project.config)], env=daemon_environment(), cwd=ROOT,
        capture_output=True, text=True, timeout=60).stdout
    assert blocker.read_text() == "a file, not a folder\n"


def test_a_full_song_delivery_refuses_a_source_rewritten_since_the_job_read_it(tmp_path, demo_song_path):
    """The one-shot CLI with --delivery full, the song re-rendered (shorter) by the DAW while the job ran: the result
    was the new song's start and end around a span made from the old one, delivered as if all were well."""
    song = tmp_path / "song.wav"
    song.write_bytes(demo_song_path.read_bytes())
    spec = JobSpec(job_id="j-20260101-000000-abcdef", operation="inpaint", source=song, source_info=probe(song),
                   backend="local", start=5.0, end=7.0, delivery="full", drop_folder=tmp_path / "drop")
    audio, rate = sf.read(str(song), frames=12 * 44100, dtype="float32", always_2d=True)
    span = tmp_path / "v1.wav"
    sf.write(str(span), audio[4 * 44100:8 * 44100], rate, subtype="FLOAT")
    sf.write(str(song), audio, rate, subtype="PCM_24")  # re-rendered: 12 s instead of the 40 s the job was for
    with pytest.raises(SourceError, match="changed since the job was accepted") as caught:
        delivery.deliver(spec, [Rendered(1, span, 4.0)])
    assert caught.value.code == "source_changed"
    assert not (tmp_path / "drop").exists() or list((tmp_path / "drop").iterdir()) == []


class _Trickle(BaseHTTPRequestHandler):
    """A storage host that answers 200 and then sends one byte at a time, never enough to trip a read timeout."""

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            while not self.server.stopping.wait(0.05):
                self.wfile.write(b"R")
                self.wfile.flush()
        except OSError:
            pass


def test_an_audio_download_that_trickles_forever_ends_as_a_failed_download(tmp_path):
    with _serving(_Trickle) as host:
        with pytest.raises(TransientError, match="stalled") as caught:
            _download(f"{host}/v1.wav", tmp_path / "v1.wav", timeout_s=0.3, attempts=2)
    assert caught.value.code == "download_failed"
    assert list(tmp_path.iterdir()) == []


def test_send_wait_ends_when_a_paid_submits_answer_is_lost_and_the_log_names_the_job(project):
    """`daw-bridge send extend ... --wait` on MusicGPT, the POST's answer lost (the task may be paid for): the job waits
    in submission_unknown for the producer, but the command waited on for its whole timeout (10 minutes by default)
    and then said the job 'goes on', and the daemon's log said nothing of a task that may be paid for."""
    with FakeMusicGPT(time_scale=0.01, eta=20) as fake:
        fake.inject("submit", "timeout_after_accept", seconds=30)
        project.write_config(f'backend = "musicgpt"\n[musicgpt]\nbase_url = "{fake.url}"\nhttp_timeout_s = 1\n')
        daemon = DaemonProcess(project, env={"MUSICGPT_API_KEY": fake.api_key}).start()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bridge", "send", "extend", f"source={project.song}", "extend_after=30",
                 "prompt=calm outro", "duration=10", "--wait", "--timeout", "200", "--config", str(project.config)],
                env=daemon_environment(), cwd=ROOT, capture_output=True, text=True, timeout=300)
        finally:
            daemon.stop()
        assert fake.submit_requests["extend"] == 1
    last = done.stdout.splitlines()[-1]
    assert done.returncode == 1 and last.startswith("/bridge/state j-") and " submission_unknown " in last, done.stdout
    assert "NOT sent again" in last and fake.api_key not in done.stdout + done.stderr
    job = last.split()[1]
    assert f"WARNING bridge.core.service: job {job} is in submission_unknown: " in daemon.log.read_text()
