"""An outsider's probes of the Ableton path: what a producer's Live, or two pads pressed together, could do to it. Live
is the stand-in speaking AbletonOSC's published protocol over real UDP on loopback."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import osc_schema
from bridge.config import ConfigError, load
from bridge.frontends.ableton import AbletonSettings
from tests.conftest import ROOT, DaemonProcess, Project, daemon_environment, free_udp_port
from tests.daw_scripts.ableton.fake_live import ArrangementClip, Clip, FakeLive, LiveSet
from tests.daw_scripts.ableton.test_ableton import ableton, with_frontend


def delivered(drop: Path, name: str, position: float, variants: int = 1) -> SimpleNamespace:
    """A job started from Live (at 120 BPM) and delivered: what placement reads of its record."""
    manifests = []
    for variant in range(1, variants + 1):
        stem = name if variants == 1 else f"{name}-v{variant}"
        sf.write(drop / f"{stem}.wav", np.zeros(4410, dtype="float32"), 44100)
        manifests.append(drop / f"{stem}.json")
        manifests[-1].write_text(json.dumps({"audio": f"{stem}.wav", "operation": "inpaint", "variant": variant,
                                             "source": {"start": position, "end": position + 1.0},
                                             "timeline": {"position": position}}))
    return SimpleNamespace(job_id=name, manifests=[str(m) for m in manifests], origin={"ableton": {"tempo": 120.0}})


def test_two_jobs_delivered_together_are_each_placed_on_a_track_of_their_own(tmp_path):
    """Each placement adds a track at the end and works on it by index: run side by side they took the same index,
    so one job was not placed and an empty track was left in the producer's Set."""
    drop = tmp_path / "Song Project" / "Samples" / "daw-bridge"
    drop.mkdir(parents=True)
    first, second = delivered(drop, "first", 1.0), delivered(drop, "second", 2.0)
    live_set = LiveSet(tracks=[[None]])

    async def both_done(frontend, service):
        return await asyncio.gather(frontend.place(first), frontend.place(second))

    with FakeLive(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        notes = asyncio.run(with_frontend(tmp_path, settings, both_done))

    assert notes == ["placed in Live's arrangement on new tracks: 'daw-bridge inpaint v1 1.0-2.0' at beat 2 (also in "
                     "Samples/daw-bridge)",
                     "placed in Live's arrangement on new tracks: 'daw-bridge inpaint v1 2.0-3.0' at beat 4 (also in "
                     "Samples/daw-bridge)"]
    assert live_set.track_names == ["1 Audio", "daw-bridge inpaint v1 1.0-2.0", "daw-bridge inpaint v1 2.0-3.0"]
    assert live_set.arrangement == [[], [ArrangementClip("first", str(drop / "first.wav"), 2.0)],
                                    [ArrangementClip("second", str(drop / "second.wav"), 4.0)]]


def test_an_ipv6_host_that_live_could_never_answer_is_refused_in_the_config(tmp_path):
    """AbletonOSC listens on an IPv4 socket: with host = "::1" the daemon listened on [::1]:11001 and asked
    [::1]:11000, where nothing ever answers, and every command was refused as "is Live running?"."""
    for host in ("::1", "0:0:0:0:0:0:0:1"):
        with pytest.raises(ConfigError) as caught:
            AbletonSettings.from_table({"host": host}, Path("daw-bridge.toml"))
        assert str(caught.value) == (f'daw-bridge.toml: [ableton] host = "{host}": must be a loopback address on IPv4 '
                                     "(127.0.0.1 or localhost), where AbletonOSC listens: never beyond this machine")
    for host in ("127.0.0.1", "localhost"):
        assert AbletonSettings.from_table({"host": host}).host == host


def test_a_return_or_main_track_selected_is_named_as_such(tmp_path):
    """AbletonOSC cannot index a return track or the main track among the song's tracks and reports its own error
    (``... is not in list``); the sender heard that Python text instead of what to do."""
    refused = []

    async def press(frontend, service):
        await frontend.dispatch(ableton("inpaint", "request_id", "pad-1", "prompt", "choir"), {"kind": "test"},
                                refused.append)
        return service.active()

    with FakeLive(LiveSet(tracks=[[None]], selected=None), reply_port=free_udp_port()) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        assert asyncio.run(with_frontend(tmp_path, settings, press)) == []
    assert [osc_schema.error_reply(error) for error in refused] == [
        ("/bridge/error", ["/bridge/ableton", "pad-1", "", "/bridge/ableton: the selected track is a return track or "
                           "the main track, which hold no Session clip: select the Session clip that holds the song"])]


def send_from_the_command_line(project: Project, *words: str) -> subprocess.CompletedProcess:
    """``daw-bridge send ableton WORDS`` as the producer types it, to a daemon serving ``project``."""
    daemon = DaemonProcess(project).start()
    try:
        return subprocess.run([sys.executable, "-m", "bridge", "send", "ableton", *words, "--config",
                               str(project.config)], capture_output=True, text=True, env=daemon_environment(),
                              cwd=ROOT, timeout=120)
    finally:
        daemon.stop()


def test_send_ableton_context_from_the_command_line_hears_that_the_context_was_set(tmp_path, demo_song_path):
    """``operation=context`` made the context silently: ``daw-bridge send`` waited, then said "no reply from a
    daemon (is 'daw-bridge serve' running?)" and exited 1, though the daemon ran and had done it."""
    project = Project(tmp_path, demo_song_path)
    live_project = tmp_path / "Song Project"
    (live_project / "Samples").mkdir(parents=True)
    (live_project / "Song.als").write_bytes(b"\x1f\x8b")
    shutil.copy(demo_song_path, live_project / "Samples" / "song.wav")
    live_set = LiveSet(loop_start=8.0, loop_length=4.0, tracks=[[Clip("Song", str(live_project / "Samples" /
                                                                                  "song.wav"))]])
    with FakeLive(live_set, reply_port=free_udp_port()) as live:
        project.write_config(f"[local]\nwarm_up = false\n[ableton]\nenabled = true\nport = {live.port}\n"
                             f"reply_port = {live.reply_port}\n")
        sent = send_from_the_command_line(project, "operation=context")
        waited = send_from_the_command_line(project, "operation=context", "--wait", "--timeout", "30")
    for outcome in (sent, waited):
        assert (outcome.returncode, outcome.stdout, outcome.stderr) == (
            0, "/bridge/context_set source,start,end,position,drop_folder,item_id,track_id\n", "")


def test_send_ableton_waits_for_the_daemon_to_hear_that_live_is_not_there(tmp_path, demo_song_path):
    """With [ableton] timeout above send's 5 s wait, ``daw-bridge send ableton`` gave up first and said "no reply
    from a daemon (is 'daw-bridge serve' running?)" while the daemon was still waiting for Live."""
    project = Project(tmp_path, demo_song_path)
    nobody = free_udp_port()
    project.write_config(f"[local]\nwarm_up = false\n[ableton]\nenabled = true\nport = {nobody}\n"
                         f"reply_port = {free_udp_port()}\ntimeout = 6\n")
    sent = send_from_the_command_line(project, "operation=inpaint", "prompt=choir")
    assert sent.returncode == 1
    assert sent.stdout.startswith("/bridge/error /bridge/ableton   '/bridge/ableton: Live did not answer "
                                  "/live/song/get/loop_start within 6 s: is Live running")
    assert f"listening on port {nobody}?" in sent.stdout and len(sent.stdout.splitlines()) == 1


class LiveQuitsWhilePlacing(FakeLive):
    """Live closes as the second variant's track is asked for (the producer quits, or Live hangs)."""

    def _answer(self, address: str, params: list) -> tuple | None:
        if address == "/live/song/create_audio_track" and len(self.live_set.tracks) == 2:
            self.closed = True
            return None
        return super()._answer(address, params)


def test_live_stopping_half_way_through_a_placement_is_told_with_what_was_placed(tmp_path):
    """The first variant was on its track in Live, yet the note said "not placed in Live: Live did not answer..."."""
    drop = tmp_path / "Song Project" / "Samples" / "daw-bridge"
    drop.mkdir(parents=True)
    job = delivered(drop, "job", 1.0, variants=2)
    live_set = LiveSet(tracks=[[None]])

    async def done(frontend, service):
        return await frontend.place(job)

    with LiveQuitsWhilePlacing(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:
        # the first variant's answers must come: 2 s for each on a loaded machine (0.3 s was the test's own bound)
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port, timeout=2.0)
        note = asyncio.run(with_frontend(tmp_path, settings, done))

    assert live_set.arrangement == [[], [ArrangementClip("job-v1", str(drop / "job-v1.wav"), 2.0)]]
    assert note == ("placed 1 of 2 in Live; daw-bridge inpaint v2 1.0-2.0: Live did not answer "
                    "/live/song/get/num_tracks within 2 s: is Live running, with AbletonOSC chosen as a Control "
                    f"Surface (Preferences > Link, Tempo & MIDI), listening on port {settings.port}?: the files are in "
                    "Samples/daw-bridge")


class AbletonOscOf2022(FakeLive):
    """An AbletonOSC from before /live/view/get/selected_clip (added in April 2023): it says the address is unknown."""

    def _answer(self, address: str, params: list) -> tuple | None:
        if address == "/live/view/get/selected_clip":
            raise KeyError(address)
        return super()._answer(address, params)


def test_an_abletonosc_too_old_for_a_query_is_named_as_too_old(tmp_path):
    refused = []

    async def press(frontend, service):
        await frontend.dispatch(ableton("context"), {"kind": "test"}, refused.append)

    with AbletonOscOf2022(LiveSet(tracks=[[None]]), reply_port=free_udp_port()) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        asyncio.run(with_frontend(tmp_path, settings, press))
    assert [str(error) for error in refused] == [
        "/bridge/ableton: Live could not answer /live/view/get/selected_clip: Unknown OSC address: "
        "/live/view/get/selected_clip: this AbletonOSC is older than the address, install the current one"]


def doctor(project: Project) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", "doctor", "--config", str(project.config)],
                          capture_output=True, text=True, env=daemon_environment(), cwd=ROOT, timeout=120)


def test_doctor_checks_the_ableton_reply_port_and_whether_live_answers(tmp_path, demo_song_path):
    """doctor said every port was fine while [ableton]'s reply port was taken, and 'daw-bridge serve' then refused
    to start; it now says so, and whether Live answers AbletonOSC's /live/test."""
    project = Project(tmp_path, demo_song_path)

    def configure(port: int, reply_port: int) -> None:
        project.write_config(f"[local]\nwarm_up = false\n[ableton]\nenabled = true\nport = {port}\n"
                             f"reply_port = {reply_port}\ntimeout = 0.5\n")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        taken = other.getsockname()[1]
        configure(free_udp_port(), taken)
        blocked = doctor(project)
    with FakeLive(LiveSet(), reply_port=free_udp_port()) as live:
        live_port = live.port
        configure(live_port, live.reply_port)
        answering = doctor(project)
    nobody = free_udp_port()
    configure(nobody, free_udp_port())
    closed = doctor(project)

    [line] = [line for line in blocked.stdout.splitlines() if "Ableton" in line]
    assert line.startswith("BAD  Ableton: AbletonOSC at 127.0.0.1:") and line.endswith(
        f"answering on port {taken}: taken by another program (Address already in use); the daemon would not start")
    assert blocked.returncode == 1
    assert [line for line in answering.stdout.splitlines() if "Ableton" in line] == [
        f"ok   Ableton: AbletonOSC at 127.0.0.1:{live_port}, answering on port {live.reply_port}: Live answers"]
    assert ("/live/test", []) in live.received
    assert any(line.startswith(f"ok   Ableton: AbletonOSC at 127.0.0.1:{nobody}") and line.endswith(
        "free; Live does not answer now (not running, or AbletonOSC not chosen as a Control Surface)")
        for line in closed.stdout.splitlines())


@pytest.mark.parametrize("written, said", [
    ("osc_port = 9010\n[ableton]\nenabled = true\nreply_port = 9010\n",
     "4: [ableton] reply_port = 9010: is osc_port too: the daemon listens for commands on osc_port, AbletonOSC answers "
     "on [ableton] reply_port (11001)"),
    ("osc_port = 9010\n[ableton]\nenabled = true\nhost = \"localhost\"\nreply_port = 9010\n",
     "5: [ableton] reply_port = 9010: is osc_port too: the daemon listens for commands on osc_port, AbletonOSC answers "
     "on [ableton] reply_port (11001)"),
    ("osc_port = 11001\n[ableton]\nenabled = true\n",
     "1: osc_port = 11001: is [ableton] reply_port too: the daemon listens for commands on osc_port, AbletonOSC "
     "answers on [ableton] reply_port (11001)"),
    ("[ableton]\nenabled = true\nport = 11001\n",
     "3: [ableton] port = 11001: is [ableton] reply_port too: AbletonOSC listens on [ableton] port and answers on "
     "reply_port (11000 and 11001)"),
])
def test_an_ableton_reply_port_on_a_port_already_listened_on_is_a_config_mistake(tmp_path, written, said):
    """The daemon failed to start with 'cannot listen for OSC ... is another daemon or program using that port?'
    (its own [ableton] socket held it), or heard its own questions to Live as Live's answers."""
    path = tmp_path / "daw-bridge.toml"
    path.write_text(written, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}:{said}"
