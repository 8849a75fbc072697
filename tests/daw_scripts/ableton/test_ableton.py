"""A producer in Live: set the loop brace over a part of the song, press "inpaint", and find the result in the Live
project's Samples folder. Live is a stand-in speaking AbletonOSC's published protocol over real UDP on loopback; the
job service and the embedded engine are the daemon's own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import socket
from pathlib import Path

import pytest
import soundfile as sf
from pythonosc.osc_packet import OscPacket

import osc_schema
from bridge.backends.local.backend import LocalBackend
from bridge.config import Config, ConfigError
from bridge.core.journal import Journal
from bridge.core.service import JobService
from bridge.exceptions import BridgeError
from bridge.frontends.ableton import AbletonFrontend, AbletonSettings, live_project
from bridge.models import State
from tests.conftest import free_udp_port
from tests.daw_scripts.ableton.fake_live import ArrangementClip, Clip, FakeLive, LiveSet


@pytest.fixture
def live_folder(tmp_path, demo_song_path) -> Path:
    """A saved Live project with the song collected into it, as File > Collect All and Save leaves it."""
    project = tmp_path / "Music" / "Song Project"
    (project / "Ableton Project Info").mkdir(parents=True)
    (project / "Song.als").write_bytes(b"\x1f\x8b")  # a Live Set is gzipped XML; its content is not read
    song = project / "Samples" / "Imported" / "song.wav"
    song.parent.mkdir(parents=True)
    shutil.copy(demo_song_path, song)
    return project


def config_for(tmp_path: Path) -> Config:
    return Config(state_dir=tmp_path / "state", project_roots=(tmp_path,), inbox=tmp_path / "inbox")


async def with_frontend(tmp_path, settings: AbletonSettings, body, backends=None):
    config = config_for(tmp_path)
    journal = Journal(config.journal_path)
    service = JobService(config, journal, backends or {"local": None})
    frontend = AbletonFrontend(service, settings)
    try:
        await frontend.start()
        return await body(frontend, service)
    finally:
        frontend.close()
        await service.close()
        journal.close()


def ableton(operation: str, *pairs) -> osc_schema.Command:
    """The message a controller sends, validated by the daemon's schema."""
    return osc_schema.parse_osc("/bridge/ableton", [operation, *pairs])


class Sender:
    """The controller that sent /bridge/ableton: a UDP socket on loopback that collects the daemon's replies."""

    def __enter__(self) -> "Sender":
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.origin = {"kind": "osc", "host": "127.0.0.1", "port": self.sock.getsockname()[1]}
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def replies(self) -> list[tuple[str, list]]:
        heard = []
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return heard
            heard += [(m.message.address, list(m.message.params)) for m in OscPacket(data).messages]


def run_from_live(tmp_path, live, settings, command, engine, before_delivery=lambda: None):
    """Send ``command`` as a controller would, let the job run and be delivered (and placed), then stop."""
    async def story(frontend, service):
        record = await frontend.run(command, sender.origin)
        before_delivery()
        await service.drain()
        await frontend.drain()  # the placement in Live that follows the delivery
        await engine.close()
        return record

    with Sender() as sender:
        record = asyncio.run(with_frontend(tmp_path, settings, story, {"local": engine}))
        return record, sender.replies()


def test_the_loop_of_the_selected_clip_is_inpainted_into_the_live_projects_samples_folder(tmp_path, live_folder):
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=120.0, loop_start=20.0, loop_length=12.0,  # bar 6 for 3 bars: 10 s to 16 s
                       tracks=[[None, Clip("Song", str(song))]], selected=(0, 1))
    engine = LocalBackend(tmp_path / "cache", executor=concurrent.futures.ThreadPoolExecutor(1))

    with FakeLive(live_set, reply_port=free_udp_port()) as live:  # today's AbletonOSC: no create_audio_clip
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        record, replies = run_from_live(tmp_path, live, settings,
                                        ableton("inpaint", "prompt", "soft guitar solo", "num_outputs", 1), engine)

    assert record.state is State.DELIVERED, (record.error_code, record.error_message)
    drop = live_folder / "Samples" / "daw-bridge"  # Live's browser lists it under the project's Samples
    [path] = [Path(p) for p in record.manifests]
    assert path.parent == drop
    manifest = json.loads(path.read_text())
    assert (manifest["source"]["path"], manifest["source"]["start"], manifest["source"]["end"]) == (str(song), 10.0,
                                                                                                  16.0)
    assert manifest["delivery"] == "full" and manifest["timeline"]["position"] == 0.0  # drop it at bar 1
    assert sf.info(drop / manifest["audio"]).frames == sf.info(song).frames
    assert manifest["ids"] == {"item": "track 1 scene 2", "track": "track 1"}
    assert manifest["request_id"].startswith("ableton-")
    assert [address for address, _ in live.received] == [
        "/live/song/get/loop_start", "/live/song/get/loop_length", "/live/song/get/tempo",
        "/live/view/get/selected_clip", "/live/track/get/clips/name", "/live/clip/get/is_audio_clip",
        "/live/clip/get/file_path",
        # after the delivery: can Live place it? AbletonOSC has no list of its addresses, so the address is probed
        # with a track index no Set has, which fails before anything in Live is touched
        "/live/application/get/version", "/live/track/create_audio_clip", "/live/song/get/num_tracks"]
    assert live.received[-2] == ("/live/track/create_audio_clip", [2**31 - 1, "", 0.0])
    note = ("Live cannot place clips (AbletonOSC without /live/track/create_audio_clip): the files are in "
            "Samples/daw-bridge")
    assert record.message == note
    # to the sender, after /bridge/done (the daemon's OSC frontend sends that one; it is not running here)
    assert replies == [("/bridge/state", [record.job_id, "delivered", 1.0, note])]
    assert live_set.track_names == ["1 Audio"] and live_set.arrangement == [[]]  # nothing was added to the Set


def test_with_create_audio_clip_each_variant_lands_on_a_new_track_where_it_belongs(tmp_path, live_folder):
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=90.0, loop_start=24.0, loop_length=6.0,  # 16 s to 20 s of the arrangement
                       tracks=[[None, Clip("Song", str(song))], [None, None]], selected=(0, 1),
                       track_names=["Song", "Keys"], midi_tracks={1})
    engine = LocalBackend(tmp_path / "cache", executor=concurrent.futures.ThreadPoolExecutor(1))

    with FakeLive(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:  # AbletonOSC with the PR
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port, clip_position=2.0,
                                   delivery="patch")  # the song starts at 2 s; each result starts where it goes
        record, replies = run_from_live(tmp_path, live, settings,
                                        ableton("inpaint", "prompt", "brass", "num_outputs", 2), engine)

    assert record.state is State.DELIVERED, (record.error_code, record.error_message)
    manifests = [json.loads(Path(p).read_text()) for p in record.manifests]
    assert [(m["variant"], m["source"]["start"], m["source"]["end"]) for m in manifests] == [(1, 14.0, 18.0),
                                                                                             (2, 14.0, 18.0)]
    drop = live_folder / "Samples" / "daw-bridge"
    beats = [round(m["timeline"]["position"] * 90.0 / 60.0, 6) for m in manifests]  # seconds -> beats at 90 BPM
    assert 0 < beats[0] < 24.0  # a patch starts a little before the loop (its handle), after the song's start
    # One new audio track per variant, after the Set's own tracks, named after the job and the variant, holding
    # the variant's WAV at its timeline position.
    assert live_set.track_names == ["Song", "Keys", "daw-bridge inpaint v1 14.0-18.0",
                                    "daw-bridge inpaint v2 14.0-18.0"]
    assert live_set.arrangement == [[], [], *([ArrangementClip(Path(m["audio"]).stem, str(drop / m["audio"]),
                                                               pytest.approx(b, abs=1e-5))]  # OSC float32
                                              for m, b in zip(manifests, beats))]
    assert ("/live/song/create_audio_track", [2]) in live.received
    placed = [params for address, params in live.received if address == "/live/track/create_audio_clip"]
    assert placed[1:] == [[2, str(drop / manifests[0]["audio"]), pytest.approx(beats[0], abs=1e-5)],
                          [3, str(drop / manifests[1]["audio"]), pytest.approx(beats[1], abs=1e-5)]]  # [0]: probe
    note = (f"placed in Live's arrangement on new tracks: 'daw-bridge inpaint v1 14.0-18.0' at beat {beats[0]:g}, "
            f"'daw-bridge inpaint v2 14.0-18.0' at beat {beats[1]:g} (also in Samples/daw-bridge)")
    assert record.message == note
    assert replies[-1] == ("/bridge/state", [record.job_id, "delivered", 1.0, note])


def test_a_tempo_change_while_the_job_ran_is_not_guessed_at(tmp_path, live_folder):
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=120.0, loop_start=20.0, loop_length=12.0, tracks=[[Clip("Song", str(song))]])
    engine = LocalBackend(tmp_path / "cache", executor=concurrent.futures.ThreadPoolExecutor(1))

    def producer_changes_the_tempo():
        live_set.tempo = 100.0

    with FakeLive(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        record, replies = run_from_live(tmp_path, live, settings,
                                        ableton("inpaint", "prompt", "choir", "num_outputs", 1), engine,
                                        before_delivery=producer_changes_the_tempo)
    assert record.state is State.DELIVERED
    assert record.message == ("not placed in Live: the tempo changed from 120 to 100 BPM since the job started (its "
                              "range was read at 120 BPM): the files are in Samples/daw-bridge")
    assert live_set.track_names == ["1 Audio"] and live_set.arrangement == [[]]
    assert "/live/song/create_audio_track" not in [address for address, _ in live.received]


def test_the_pr_on_a_live_without_the_method_leaves_the_set_as_it_was_and_says_why(tmp_path, live_folder):
    """AbletonOSC with the PR on Live 12.0.0-12.0.4: the address exists, Live's Track.create_audio_clip does not."""
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=120.0, loop_start=20.0, loop_length=12.0, tracks=[[Clip("Song", str(song))]],
                       version=(12, 0), has_create_audio_clip=False)
    engine = LocalBackend(tmp_path / "cache", executor=concurrent.futures.ThreadPoolExecutor(1))

    with FakeLive(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        record, _ = run_from_live(tmp_path, live, settings, ableton("inpaint", "prompt", "choir", "num_outputs", 1),
                                  engine)
    assert record.message == (
        "not placed in Live: daw-bridge inpaint v1 10.0-16.0: Live could not create the clip (Error handling OSC "
        "message: 'Track' object has no attribute 'create_audio_clip'): the files are in Samples/daw-bridge")
    assert live_set.track_names == ["1 Audio"] and live_set.arrangement == [[]]  # the empty track was removed
    assert ("/live/song/delete_track", [1]) in live.received


def test_what_live_can_do_is_probed_once_per_connection(tmp_path):
    async def ask(frontend, service):
        answers = [await frontend.can_place(), await frontend.can_place()]
        live.send("/live/startup")  # Live reopened, or AbletonOSC reloaded: perhaps another AbletonOSC
        for _ in range(100):
            if not frontend.client.capabilities:
                break
            await asyncio.sleep(0.01)
        answers.append(await frontend.can_place())
        return answers

    for create_audio_clip, version, expected, probes in [
        (True, (12, 1), (True, ""), 2),
        (False, (12, 1), (False, "AbletonOSC without /live/track/create_audio_clip"), 2),
        (True, (11, 3), (False, "Live 11.3 has no Track.create_audio_clip: Live 12.0.5 or later"), 0),
    ]:
        with FakeLive(LiveSet(version=version), reply_port=free_udp_port(),
                      create_audio_clip=create_audio_clip) as live:
            settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
            answers = asyncio.run(with_frontend(tmp_path, settings, ask))
        assert answers == [expected] * 3
        sent = [address for address, _ in live.received]
        assert (sent.count("/live/application/get/version"), sent.count("/live/track/create_audio_clip")) == (
            2, probes)


def test_a_named_clip_placed_later_in_the_arrangement_becomes_the_session_context_for_pads(tmp_path, live_folder):
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=90.0, loop_start=24.0, loop_length=6.0,  # 16 s to 20 s of the arrangement
                       tracks=[[Clip("Drums", None, audio=False)], [None, None, Clip("Song", str(song))]],
                       selected=(0, 0))  # the selection is elsewhere: the configured name wins

    async def story(frontend, service):
        assert await frontend.run(ableton("context"), {"kind": "test"}) == service.context
        return dict(service.context), service.active()

    with FakeLive(live_set, reply_port=free_udp_port()) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port, clip="Song",
                                   clip_position=4.0)  # the song starts at 4 s in the arrangement
        context, jobs = asyncio.run(with_frontend(tmp_path, settings, story))
    assert context == {"source": str(song), "start": 12.0, "end": 16.0, "position": 4.0,
                       "drop_folder": str(live_folder / "Samples" / "daw-bridge"), "item_id": "track 2 scene 3",
                       "track_id": "track 2"}
    assert jobs == []


def test_what_live_can_do_is_asked_again_after_live_stopped_answering(tmp_path):
    async def ask(frontend, service):
        assert await frontend.can_place() == (False, "AbletonOSC without /live/track/create_audio_clip")
        live.closed = True  # the producer quits Live and presses a pad meanwhile
        with pytest.raises(osc_schema.ValidationError, match="Live did not answer"):
            await frontend.selection()
        live.closed, live.create_audio_clip = False, True  # ...and reopens it with an AbletonOSC that can place
        return await frontend.can_place()

    with FakeLive(LiveSet(), reply_port=free_udp_port()) as live:
        # the answers that must come get 2 s (a loaded machine), the one that must not costs as much
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port, timeout=2.0)
        assert asyncio.run(with_frontend(tmp_path, settings, ask)) == (True, "")
    sent = [address for address, _ in live.received]
    assert sent.count("/live/track/create_audio_clip") == 2


REFUSALS = [
    ("the selected slot is empty", dict(selected=(0, 1)), (), "",
     "/bridge/ableton: the clip slot at track 1, scene 2 is empty: select the Session clip that holds the song"),
    ("a MIDI clip", dict(tracks=[[Clip("Bass", None, audio=False)]]), (), "",
     "/bridge/ableton: the clip at track 1, scene 1 is a MIDI clip: select the Session clip that holds the song's "
     "audio"),
    ("no loop", dict(loop_length=0.0), (), "",
     "/bridge/ableton: Live's loop brace (8 + 0 beats at 120 BPM) is not a range: set the loop brace over the part "
     "to work on"),
    ("an option of the other operation", {}, ("duration", 20.0), "duration",
     "duration: 20.0 applies to operation extend, not inpaint"),
    ("a loop before the song starts", dict(clip_position=6.0), (), "",
     "/bridge/ableton: Live's loop brace starts at 4.000 s, before the song's file starts ([ableton] clip_position "
     "= 6 s)"),
    ("a file outside any project", dict(tracks=[[Clip("Song", "/elsewhere/song.wav")]]), (), "",
     "/bridge/ableton: /elsewhere/song.wav is not inside a saved Live project: use File > Collect All and Save, so "
     "the song lies in <project>/Samples/"),
]


@pytest.mark.parametrize("story, changes, pairs, field, reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_live_cannot_give_is_refused_with_an_error_reply_that_says_what_to_do(tmp_path, live_folder, story,
                                                                                 changes, pairs, field, reason):
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(loop_start=8.0, loop_length=4.0, tracks=[[Clip("Song", str(song)), None]])
    changes = dict(changes)
    clip_position = changes.pop("clip_position", 0.0)
    for key, value in changes.items():
        setattr(live_set, key, value)
    refused = []

    async def act(frontend, service):
        command = ableton("inpaint", "request_id", "pad-7", *pairs)
        await frontend.dispatch(command, {"kind": "test"}, refused.append)
        return service.active()

    with FakeLive(live_set, reply_port=free_udp_port()) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port,
                                   clip_position=clip_position)
        jobs = asyncio.run(with_frontend(tmp_path, settings, act))
    assert jobs == []
    assert [osc_schema.error_reply(error) for error in refused] == [
        ("/bridge/error", ["/bridge/ableton", "pad-7", field, reason])]


def test_live_not_running_is_named_within_the_timeout(tmp_path):
    refused = []

    async def act(frontend, service):
        await frontend.dispatch(ableton("context"), {"kind": "test"}, refused.append)

    nobody = free_udp_port()
    settings = AbletonSettings(enabled=True, port=nobody, reply_port=free_udp_port(), timeout=0.2)
    asyncio.run(with_frontend(tmp_path, settings, act))
    [error] = refused
    assert str(error) == (f"/bridge/ableton: Live did not answer /live/song/get/loop_start within 0.2 s: is Live "
                          f"running, with AbletonOSC chosen as a Control Surface (Preferences > Link, Tempo & MIDI), "
                          f"listening on port {nobody}?")


def test_messages_live_sends_on_its_own_reach_the_subscribers_on_the_same_port(tmp_path):
    heard = []

    async def listen(frontend, service):
        frontend.client.subscribers.append(lambda address, params: heard.append((address, params)))
        live.send("/live/startup")
        live.send("/live/song/get/loop_start", 32.0)  # a listener update nobody asked for just now
        for _ in range(100):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.01)

    with FakeLive(LiveSet(), reply_port=free_udp_port()) as live:
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        asyncio.run(with_frontend(tmp_path, settings, listen))
    assert heard == [("/live/startup", []), ("/live/song/get/loop_start", [32.0])]


def test_a_reply_port_in_use_is_named_when_the_daemon_starts(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", 0))
        taken = other.getsockname()[1]
        with pytest.raises(BridgeError) as caught:
            asyncio.run(with_frontend(tmp_path, AbletonSettings(reply_port=taken), lambda f, s: asyncio.sleep(0)))
    assert str(caught.value).startswith(f"[ableton] cannot listen for AbletonOSC's answers on 127.0.0.1:{taken}: ")
    assert "[midi.daw] ableton" in str(caught.value)


def test_the_config_table_is_checked_key_by_key():
    assert AbletonSettings.from_table({}) == AbletonSettings()
    assert AbletonSettings.from_table({"enabled": True, "port": 11000, "clip": "Song", "clip_position": 4,
                                       "delivery": "patch", "timeout": 1}).clip_position == 4.0
    for table, message in [
        ({"host": "192.168.1.5"}, '[ableton] host = "192.168.1.5": must be a loopback address on IPv4 (127.0.0.1 '
                                  'or localhost), where AbletonOSC listens: never beyond this machine'),
        ({"port": 70000}, "[ableton] port = 70000: must be in range 1..65535"),
        ({"enabled": "yes"}, '[ableton] enabled = "yes": must be true or false'),
        ({"delivery": "stems"}, '[ableton] delivery = "stems": must be one of patch, full'),
        ({"clip_position": -1}, "[ableton] clip_position = -1: must be in range 0..1000000 seconds"),
        ({"tempo": 120}, "[ableton] tempo = 120: unknown key; known in [ableton]: enabled, host, port, reply_port, "
                         "timeout, clip, clip_position, delivery"),
    ]:
        with pytest.raises(ConfigError) as caught:
            AbletonSettings.from_table(table, Path("daw-bridge.toml"))
        assert str(caught.value) == "daw-bridge.toml: " + message


def test_the_live_project_is_found_from_the_clips_file(tmp_path, live_folder):
    assert live_project(live_folder / "Samples" / "Recorded" / "take 3.wav") == live_folder
    library = tmp_path / "User Library" / "Samples" / "Loops" / "break.wav"
    assert live_project(library) == tmp_path / "User Library"  # no Live Set above: the folder holding Samples
    assert live_project(tmp_path / "Downloads" / "song.wav") is None


@pytest.mark.parametrize("after", [1, 2], ids=["before the track count", "after the track count"])
def test_a_track_the_producer_adds_while_a_result_is_placed_is_never_given_the_clip_nor_deleted(tmp_path,
                                                                                               live_folder, after):
    """Placement knows its new track by index only. The producer inserted a MIDI track after the song's (Live's
    Cmd+Shift+T) between two of placement's messages: the index then named the producer's track, the clip could
    not be made on it, and placement deleted it to clean up, with what it held."""
    song = live_folder / "Samples" / "Imported" / "song.wav"
    live_set = LiveSet(tempo=120.0, loop_start=20.0, loop_length=12.0, tracks=[[Clip("Song", str(song))]],
                       track_names=["Song"])
    engine = LocalBackend(tmp_path / "cache", executor=concurrent.futures.ThreadPoolExecutor(1))

    created = []

    def producer_inserts_a_midi_track(address: str, params: list) -> None:
        created.append(address == "/live/song/create_audio_track")
        # as placement's track is added, or once it saw it added (the track count it asks after), before naming it
        if created[-after:][:1] == [True] and "Bass" not in live_set.track_names:
            live_set.tracks.insert(1, [None])
            live_set.track_names.insert(1, "Bass")
            live_set.arrangement.insert(1, [ArrangementClip("riff", "/nowhere/riff.wav", 8.0)])
            live_set.midi_tracks = {t + 1 if t >= 1 else t for t in live_set.midi_tracks} | {1}

    with FakeLive(live_set, reply_port=free_udp_port(), create_audio_clip=True) as live:
        live.between = producer_inserts_a_midi_track
        settings = AbletonSettings(enabled=True, port=live.port, reply_port=live.reply_port)
        record, _ = run_from_live(tmp_path, live, settings, ableton("inpaint", "prompt", "choir", "num_outputs", 1),
                                  engine)
    assert record.state is State.DELIVERED
    assert len(live_set.tracks) == 3 and live_set.midi_tracks == {1}  # the producer's track is still there...
    assert live_set.arrangement[1] == [ArrangementClip("riff", "/nowhere/riff.wav", 8.0)]  # ...with its clip only
    assert "/live/song/delete_track" not in [address for address, _ in live.received]
    assert record.message == (
        "not placed in Live: daw-bridge inpaint v1 10.0-16.0: the track list changed while the track was being added "
        "(a track added or deleted in Live meanwhile); nothing more is done to it: the files are in Samples/daw-bridge")
