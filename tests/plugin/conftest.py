"""The plugin's bundles, built by the tests themselves when missing or stale (make decides), and capture reading."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf

from bridge.frontends.osc_wire import decode, encode
from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import ROOT, require_tool

PLUGIN_DIR = ROOT / "daw_scripts" / "plugin"
DPF_PATH = Path("/usr/share/dpf")  # Debian's dpf-source
URI = "urn:daw-bridge:plugin"
RATE, PERIOD = 48000, 1024  # the JACK server: -p 1024, no xruns on 2 idle cores without real-time priority


def build(target: str = "all") -> Path:
    """Run the plugin's Makefile (a no-op when the bundles are newer than their sources); the build folder."""
    require_tool("make")
    require_tool("g++")
    if not (DPF_PATH / "Makefile.plugins.mk").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("dpf-source is not installed, and CI must run this test (.ci/run installs it)")
        pytest.skip("dpf-source is not installed")
    started = time.monotonic()
    done = subprocess.run(["make", "-j2", "-C", str(PLUGIN_DIR), target], capture_output=True, text=True)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout}\n{done.stderr}"
    print(f"make {target}: {time.monotonic() - started:.1f} s")
    return PLUGIN_DIR / "build" / ("rtcheck" if target == "rtcheck" else "")


@pytest.fixture(scope="session")
def bundles() -> Path:
    return build()


@pytest.fixture(scope="session")
def rtcheck_bundles() -> Path:
    return build("rtcheck")


class Capture:
    """One instance's capture folder (format daw-bridge.capture/1), read as the daemon would."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.index = json.loads((folder / "index.json").read_text())

    @property
    def spans(self) -> list[dict]:
        return self.index["spans"]

    def audio(self, span: dict) -> np.ndarray:
        samples, rate = sf.read(self.folder / span["file"], dtype="float32", always_2d=True)
        assert rate == span["sample_rate"]
        return samples[:span["frames"]]

    def as_read(self) -> tuple[int, np.ndarray, np.ndarray]:
        """The capture as the daemon reads it (bridge/captures.py): from its first held frame to its last, the newest
        take of each frame where spans overlap; returns (first timeline frame, audio, which frames are held)."""
        first = min(s["timeline_start_frame"] for s in self.spans)
        end = max(s["timeline_start_frame"] + s["frames"] for s in self.spans)
        audio = np.zeros((end - first, 2), np.float32)
        held = np.zeros(end - first, bool)
        for span in self.spans:  # in the order played: a later take overwrites
            at = span["timeline_start_frame"] - first
            audio[at:at + span["frames"]] = self.audio(span)
            held[at:at + span["frames"]] = True
        return first, audio, held


def only_capture(root: Path) -> Capture:
    instances = [p for p in root.iterdir() if p.is_dir()]
    assert len(instances) == 1, f"expected one instance folder in {root}, found {instances}"
    return Capture(instances[0])


def wait_for_job(captures: Path, states: tuple[str, ...], timeout: float = 30.0, instance: str = "",
                 **wanted) -> dict:
    """The job the plugin's capture index reports (the only instance's, or `instance`'s), once its state is one of
    ``states`` and each of ``wanted`` (progress=0.5, message="halfway", variant=2...) has that value: the index is
    written once per reply the plugin takes in, so a job is "working" from /bridge/accepted on, before any
    /bridge/state. The deadline is generous (a loaded CI machine) and fails the test when it passes."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        try:
            job = (Capture(captures / instance) if instance else only_capture(captures)).index.get("job", {})
        except (FileNotFoundError, json.JSONDecodeError, AssertionError):
            job = {}
        if job.get("state") in states and all(job.get(key) == value for key, value in wanted.items()):
            return job
        time.sleep(0.05)
    raise AssertionError(f"the job never reached {states} with {wanted}: {job}")


def wait_for_index(captures: Path, done, timeout: float = 30.0) -> dict:
    """The only instance's capture index once ``done(index)`` holds. The capture thread publishes whatever it has
    drained every 20 ms, so an index may hold part of a render that has returned: wait for all that is asserted."""
    deadline = time.monotonic() + timeout
    index: dict = {}
    while time.monotonic() < deadline:
        try:
            index = only_capture(captures).index
            if done(index):
                return index
        except (FileNotFoundError, AssertionError, ValueError):  # not written (again) yet, or mid-rename
            pass
        time.sleep(0.05)
    raise AssertionError(f"the capture index never got there: {index}")


def deliver(folder: Path, job_id: str, request_id: str, span_start: float,
            seconds: float) -> tuple[list[str], list[np.ndarray]]:
    """Two variants as the daemon delivers them, playing from timeline second `span_start` for `seconds`: audio then
    manifest, beside each other, at half the level of full-scale noise. Returns the manifest paths (in reverse: the
    plugin orders variants by the manifest's number, not by the message) and each variant's samples as a reader of
    the WAV sees them."""
    folder.mkdir(parents=True)
    frames = int(seconds * RATE)
    rng = np.random.default_rng(11)
    manifests, heard = [], []
    for variant, subtype in ((1, "FLOAT"), (2, "PCM_24")):
        audio = (0.5 * rng.uniform(-1, 1, (frames, 2))).astype(np.float32)
        name = f"song_inpaint_v{variant}_abcd.wav"
        sf.write(str(folder / name), audio, RATE, subtype=subtype)
        heard.append(sf.read(str(folder / name), dtype="float32", always_2d=True)[0])
        # "source" (with its own "position") comes before "timeline": the plugin must read timeline.position
        manifest = {"format": "daw-bridge.manifest/1", "job_id": job_id, "request_id": request_id,
                    "operation": "inpaint", "variant": variant, "variants": 2, "backend": "local",
                    "delivery": "patch", "audio": name, "sample_rate": RATE, "channels": 2, "frames": frames,
                    "source": {"path": None, "start": span_start + 0.1, "end": span_start + seconds - 0.1,
                               "span_start": span_start, "span_end": span_start + seconds, "position": 0.0},
                    "timeline": {"position": span_start, "length": seconds}}
        (folder / f"{name[:-4]}.json").write_text(json.dumps(manifest, indent=2))
        manifests.append(str(folder / f"{name[:-4]}.json"))
    return manifests[::-1], heard


class Answered(NamedTuple):
    instance: str
    request_id: str
    manifests: list[str]
    variants: list[np.ndarray]
    reply_to: tuple[str, int]  # the instance's reply port
    job: dict  # as the capture index reports it once loaded


def answer_with_variants(daemon: socket.socket, captures: Path, folder: Path, job_id: str, span_start: float,
                         seconds: float) -> Answered:
    """The stand-in daemon's side of an Inpaint press: the plugin's request taken, accepted as `job_id`, two variants
    delivered into `folder` (see deliver) and /bridge/done sent; returns once the plugin reports them loaded."""
    datagram, reply_to = daemon.recvfrom(65536)
    [(_, args)] = decode(datagram)
    instance, request_id = args[5], args[9]
    manifests, variants = deliver(folder, job_id, request_id, span_start, seconds)
    daemon.sendto(encode("/bridge/accepted", [request_id, job_id]), reply_to)
    daemon.sendto(encode("/bridge/done", [job_id, *manifests]), reply_to)
    job = wait_for_job(captures, ("ready",), instance=instance)
    return Answered(instance, request_id, manifests, variants, reply_to, job)


@pytest.fixture
def daemon_port():
    """A UDP socket standing in for the daemon: whatever the plugin sends arrives here, and nothing else hears it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(30)  # generous: a loaded CI machine; a test fails when it passes
    yield listener
    listener.close()


@contextmanager
def private_jack_server() -> Iterator[str]:
    """A private JACK dummy server (real time: the dummy driver's -w sets its period, not its speed), its own name,
    so no other server is touched; yields the name."""
    jackd = require_tool("jackd")
    require_tool("jalv")
    name = f"dawbridge-plugin-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
    server = subprocess.Popen([jackd, "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p",
                               str(PERIOD)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              preexec_fn=ask_to_die_with_parent)
    try:
        waited = subprocess.run(["jack_wait", "-w", "-t", "10", "-s", name], capture_output=True, text=True)
        assert waited.stdout.strip() == "server is available", (waited.stdout, waited.stderr)
        yield name
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def jack_server():
    """A private JACK dummy server (one per test module)."""
    with private_jack_server() as name:
        yield name
