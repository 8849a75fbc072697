"""A producer's DAW talks to the daemon over OSC on real UDP sockets; every message gets an answer."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.conftest import DaemonProcess, Project, free_udp_port, require_tool


@pytest.fixture(scope="module")
def shared(tmp_path_factory, demo_song_path):
    """One daemon for the rejection stories: they must leave it running and the drop folder empty anyway."""
    project = Project(tmp_path_factory.mktemp("osc") / "project", demo_song_path)
    process = DaemonProcess(project).start()
    yield project
    process.stop()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ping_is_answered_with_pong(shared):
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send("ping")
        reply = client.wait_for(lambda r: True, timeout=5)
    assert reply.address == "/bridge/pong"
    assert isinstance(reply.args[0], str) and reply.args[0]


def test_inpaint_over_udp_delivers_two_variants_that_line_up(project, daemon, client):
    outcome, replies = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0,
                                      prompt="", request_id="take-7", position=30.0, item_id="{ITEM}",
                                      timeout=300)
    assert outcome.name == "done", outcome.args
    accepted = [r for r in replies if r.name == "accepted"]
    assert accepted and accepted[0].args[0] == "take-7"
    job_id = accepted[0].args[1]
    progress = [float(r.args[2]) for r in replies if r.name == "state" and r.args[0] == job_id]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)

    manifests = [Path(p) for p in outcome.args[1:]]
    assert len(manifests) == 2
    for variant, path in enumerate(manifests, start=1):
        manifest = json.loads(path.read_text())
        audio = path.parent / manifest["audio"]
        info = sf.info(str(audio))
        assert manifest["variant"] == variant and manifest["job_id"] == job_id
        assert manifest["ids"] == {"item": "{ITEM}"}
        assert manifest["timeline"]["position"] == pytest.approx(30.0 + manifest["source"]["span_start"])
        assert info.frames == manifest["frames"] and info.samplerate == 44100 and info.channels == 2
        assert manifest["source"]["span_start"] <= 12.0 and manifest["source"]["span_end"] >= 16.0
    assert path.parent == project.drop


REJECTIONS = [
    ("reversed range", lambda p: ("inpaint", [str(p.song), 20.0, 10.0, ""]), "end"),
    ("start as text", lambda p: ("inpaint", [str(p.song), "twelve", 20.0, ""]), "start"),
    ("negative start", lambda p: ("inpaint", [str(p.song), -1.0, 2.0, ""]), "start"),
    ("too many variants", lambda p: ("inpaint", [str(p.song), 1.0, 2.0, "", "num_outputs", 3]), "num_outputs"),
    ("unknown gender", lambda p: ("inpaint", [str(p.song), 1.0, 2.0, "", "gender", "robot"]), "gender"),
    ("over-long lyrics", lambda p: ("inpaint", [str(p.song), 1.0, 2.0, "", "lyrics", "la " * 1001]), "lyrics"),
    ("unknown option", lambda p: ("inpaint", [str(p.song), 1.0, 2.0, "", "tempo", 120]), "tempo"),
    ("missing argument", lambda p: ("inpaint", [str(p.song), 1.0]), "end"),
    ("range past the end", lambda p: ("inpaint", [str(p.song), 38.0, 45.0, ""]), "end"),
    ("extend past the end", lambda p: ("extend", [str(p.song), 99.0]), "extend_after"),
    ("missing source", lambda p: ("inpaint", [str(p.audio / "gone.wav"), 1.0, 2.0, ""]), "source"),
    ("source outside roots", lambda p: ("inpaint", ["/etc/passwd", 1.0, 2.0, ""]), "source"),
    ("relative source", lambda p: ("inpaint", ["song.wav", 1.0, 2.0, ""]), "source"),
    ("drop folder name too long", lambda p: ("inpaint", [str(p.song), 1.0, 2.0, "", "drop_folder",
                                                         str(p.root / ("takes" * 60))]), "drop_folder"),
    ("unknown address", lambda p: ("nonsense", []), ""),
]


@pytest.mark.parametrize("story,message,field", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_bad_command_is_answered_with_its_reason_and_nothing_else_happens(shared, story, message, field):
    before = _digest(shared.song)
    address, args = message(shared)
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send_raw(encode(f"/bridge/{address}", args))
        reply = client.wait_for(lambda r: True, timeout=5)
        assert reply is not None, "no answer to a rejected command"
        assert reply.address == "/bridge/error", reply
        _, _, got_field, reason = reply.args
        if field:
            assert got_field == field and reason.startswith(field), reason
        assert reason
        assert client.ping(timeout=5), "daemon stopped answering after a bad command"
    assert shared.visible_drop_files() == []
    assert _digest(shared.song) == before


def test_status_and_context_are_answered_even_when_there_is_nothing_to_list(shared):
    """A sender waiting for an answer gets one: no running job is a count of 0, a context update says what it set."""
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send("status")
        listed = client.wait_for(lambda r: r.name in ("status_listed", "error"), timeout=5)
        assert (listed.name, listed.args) == ("status_listed", [0])

        client.send("context", start=12.0, end=16.0)
        updated = client.wait_for(lambda r: r.name in ("context_set", "error"), timeout=5)
        assert (updated.name, updated.args) == ("context_set", ["start,end"])
        client.send("context")
        updated = client.wait_for(lambda r: r.name in ("context_set", "error"), timeout=5)
        assert (updated.name, updated.args) == ("context_set", [""])


def test_corrupt_source_audio_is_refused_by_name(shared):
    broken = shared.audio / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send("inpaint", source=str(broken), start=0.0, end=1.0, prompt="")
        reply = client.wait_for(lambda r: True, timeout=5)
    assert reply.address == "/bridge/error"
    assert "cannot be read" in reply.args[-1] and "broken.wav" in reply.args[-1]


@pytest.mark.parametrize("datagram", [
    b"", b"not osc at all", b"/bridge/ping\x00\x00\x00\x00,s\x00\x00\xff\xfe\xfd\x00",
    b"#bundle\x00" + b"\x00" * 4, b"/bridge/inpaint\x00,ffff", bytes(range(256)) * 4,
], ids=["empty", "text", "non-utf8", "short bundle", "truncated", "binary"])
def test_malformed_packets_are_answered_and_survived(shared, datagram):
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send_raw(datagram)
        reply = client.wait_for(lambda r: True, timeout=5)
        assert reply is not None and reply.address == "/bridge/error"
        assert "malformed" in reply.args[-1] or reply.args[-1]
        assert client.ping(timeout=5)


@pytest.mark.parametrize("tag,payload,kind", [("r", (0x2333).to_bytes(4, "big"), "RGBA colour"),
                                              ("m", bytes([0, 0x90, 36, 100]), "MIDI message"),
                                              ("t", bytes(7) + b"\x01", "time tag")])
def test_a_colour_a_midi_message_or_a_time_tag_is_refused_as_what_it_is(shared, tag, payload, kind):
    """OSC's other types where a number is wanted: python-osc reads an RGBA colour as a plain integer, which was
    taken as one (a reply_port here: the pong went to port 0x2333), and the other two as arrays."""
    ping = b"/bridge/ping\x00\x00\x00\x00" + b",s" + tag.encode() + b"\x00" + b"reply_port\x00\x00" + payload
    with BridgeClient("127.0.0.1", shared.port) as client:
        client.send_raw(ping)
        reply = client.wait_for(lambda r: True, timeout=5)
        assert reply is not None, "no answer: the value was taken as a reply_port"
        assert reply.address == "/bridge/error" and reply.args[2] == "reply_port", reply
        assert reply.args[3].startswith("reply_port: ") and reply.args[3].endswith(f"must be an integer, got {kind}")
        assert "datetime" not in reply.args[3]
        assert client.ping(timeout=5)


def test_oscsend_from_liblo_reaches_the_daemon_and_replies_go_to_reply_port(shared):
    oscsend = require_tool("oscsend")
    reply_port = free_udp_port()
    with BridgeClient("127.0.0.1", shared.port, bind_port=reply_port) as listener:
        subprocess.run([oscsend, "127.0.0.1", str(shared.port), "/bridge/ping", "si", "reply_port",
                        str(reply_port)], check=True, timeout=10)
        pong = listener.wait_for(lambda r: True, timeout=5)
        assert pong is not None and pong.address == "/bridge/pong"

        subprocess.run([oscsend, "127.0.0.1", str(shared.port), "/bridge/extend", "sfsisssi", str(shared.song),
                        "30.0", "reply_port", str(reply_port), "request_id", "liblo-1", "num_outputs", "1"],
                       check=True, timeout=10)
        accepted = listener.wait_for(lambda r: r.name in ("accepted", "error"), timeout=10)
        assert accepted.name == "accepted" and accepted.args[0] == "liblo-1", accepted
        done = listener.wait_for(lambda r: r.name in ("done", "failed") and r.args[0] == accepted.args[1],
                                 timeout=300)
        assert done.name == "done", done.args
        assert len(done.args) == 2 and Path(done.args[1]).exists()


def test_a_request_sent_again_from_another_port_hears_how_the_job_ends(project, daemon):
    """A script that sends its request again (its first reply lost, or a second window of it) got /bridge/accepted
    and one /bridge/state, then nothing: ``daw-bridge send --wait`` sat out its 600 s. Each sender of the same
    request now hears its end, sent while the job runs or after it ended."""
    request = dict(source=str(project.song), extend_after=30.0, prompt="", duration=120.0, num_outputs=1,
                   request_id="again-1")
    with BridgeClient("127.0.0.1", project.port) as first, BridgeClient("127.0.0.1", project.port) as second:
        first.send("extend", **request)
        accepted = first.wait_for(lambda r: r.name == "accepted")
        second.send("extend", **request)
        ends = [client.wait_for(lambda r: r.name in ("done", "failed"), timeout=60) for client in (first, second)]
    with BridgeClient("127.0.0.1", project.port) as late:
        late.send("extend", **request)
        ends.append(late.wait_for(lambda r: r.name in ("done", "failed"), timeout=60))
    assert [(end.name, end.args[0]) if end else None for end in ends] == [("done", accepted.args[1])] * 3
    assert len(project.pictured_drop_files()) == 3  # one job: audio, manifest, picture


def test_status_of_a_named_job_tells_the_asker_how_it_ends(project, daemon):
    """A plugin reopened with a job it saved while the job ran (the instance that sent it is gone) asks for the job's
    status: it heard the state and nothing more, the result going to the closed instance. Asked while the job runs,
    the asker now hears its end when it comes; asked after, at once."""
    request = dict(source=str(project.song), extend_after=30.0, prompt="", duration=120.0, num_outputs=1,
                   request_id="status-1")
    with BridgeClient("127.0.0.1", project.port) as sender, BridgeClient("127.0.0.1", project.port) as reopened:
        sender.send("extend", **request)
        job_id = sender.wait_for(lambda r: r.name == "accepted").args[1]
        reopened.send("status", job_id=job_id)
        assert reopened.wait_for(lambda r: r.name == "status_listed", timeout=30).args == [1]
        ends = [reopened.wait_for(lambda r: r.name in ("done", "failed"), timeout=60)]
    with BridgeClient("127.0.0.1", project.port) as late:
        late.send("status", job_id=job_id)
        ends.append(late.wait_for(lambda r: r.name in ("done", "failed"), timeout=30))
    assert [(end.name, end.args[0]) if end else None for end in ends] == [("done", job_id)] * 2


def test_a_reply_port_that_is_the_daemons_own_is_refused_and_the_daemon_stays_free(project, daemon):
    """A script or DAW whose reply port was set to the daemon's OSC port: the job's replies went to the daemon itself,
    which took each one as a command and answered it with an error sent to itself again, 100 % of a core for good
    (and the sender heard nothing). The sender is told instead, and no job is made."""
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", reply_port=project.port)
        reply = client.wait_for(lambda r: True, timeout=30)
        assert reply is not None and reply.address == "/bridge/error", reply
        assert reply.args[2:] == ["reply_port", f"reply_port: {project.port} is the daemon's own OSC port: replies "
                                  "sent there would come back to it as commands; name the port your DAW or script "
                                  "listens on"]
        client.send("status")
        listed = client.wait_for(lambda r: r.name == "status_listed", timeout=30)
    assert listed is not None and listed.args == [0]  # no job was made
    assert project.visible_drop_files() == []


def test_a_reply_that_reaches_a_daemon_is_not_answered(shared):
    """Two daemons on one machine: a ping to one whose reply_port named the other's OSC port sent the pong there, the
    other answered it as an unknown command with an error to the first, which answered that, and so on: a core each,
    for good, from one datagram (an outside probe). A reply that reaches a daemon is dropped: of every reply address
    sent to it, none is answered (replies come in order, so the pong after them is the first)."""
    import osc_schema

    with BridgeClient("127.0.0.1", shared.port) as client:
        for spec in osc_schema.REPLIES.values():
            client.send_raw(encode(spec.address, ["j-1", "unknown address"]))
        client.send("ping")
        first = client.wait_for(lambda r: True, timeout=10)
    assert first is not None and first.address == "/bridge/pong", first
