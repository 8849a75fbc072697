"""A producer with a guitar in their hands asks for "the last two bars" or "the next bar" from wherever the DAW's
play cursor is: REAPER's transport feedback over real UDP, a real daemon, its reply in bars and seconds."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from bridge.client import BridgeClient
from bridge.frontends.bars import Transport, TransportHistory, bar_range
from bridge.frontends.daw_feedback import ArdourFeedback, SessionContext
from bridge.frontends.osc_wire import encode
from osc_schema import ValidationError
from tests.conftest import DaemonProcess, Project, daemon_environment, free_udp_port
from tests.frontends.test_midi import FakeAbletonOSC, rig, until


@pytest.mark.parametrize("cursor, anchor, bars, expected", [
    (13.0, "last", 2, (5, 8.0, 12.0)),  # in bar 7 (12-14 s): bars 5 and 6
    (13.0, "this", 1, (7, 12.0, 14.0)),
    (13.0, "next", 1, (8, 14.0, 16.0)),
    (12.0, "next", 2, (7, 12.0, 16.0)),  # on a bar line: from that line
    (11.9999999, "last", 1, (6, 10.0, 12.0)),  # rounded feedback just before a line stands on it
])
def test_bars_are_counted_from_the_cursor_on_the_bar_grid(cursor, anchor, bars, expected):
    chosen = bar_range(Transport("reaper", cursor, 120.0), anchor, bars)
    assert (chosen.first_bar, chosen.start, chosen.end) == expected


def test_three_four_at_90_bpm_and_too_many_bars_back():
    chosen = bar_range(Transport("ableton", 10.0, 90.0, beats_per_bar=3), "this", 1)
    assert (chosen.first_bar, chosen.start, chosen.end) == (6, 10.0, 12.0)  # a bar is 2 s
    assert chosen.describe() == "bar 6 (10.000-12.000 s)"
    with pytest.raises(ValidationError, match=r"^bars: 6 reach before the song's start: the cursor is in bar 6$"):
        bar_range(Transport("ableton", 10.0, 90.0, beats_per_bar=3), "last", 6)


def played(context: SessionContext, daw: str, tempo: float, start: float, end: float, beats_per_bar: float = 4.0,
           step: float = 0.05) -> None:
    """The DAW's transport rolled from ``start`` to ``end`` at ``tempo``, reporting as it went."""
    context.follow_transport(daw, cursor=start)
    context.follow_transport(daw, tempo=tempo, beats_per_bar=beats_per_bar)
    for n in range(1, round((end - start) / step) + 1):
        context.follow_transport(daw, cursor=round(start + n * step, 6))


class _Service:
    def __init__(self):
        self.context = {}


@pytest.fixture
def song_at_118_then_124(tmp_path) -> SessionContext:
    """REAPER played a song whose tempo goes from 118 to 124 BPM at 15.2 s (its first report at the new tempo)."""
    context = SessionContext(_Service(), tmp_path / "context.json")
    played(context, "reaper", 118.0, 0.0, 15.2)
    played(context, "reaper", 124.0, 15.2, 22.0)
    return context


def test_bars_across_a_tempo_change_are_refused_with_where_it_changed(song_at_118_then_124):
    transport = song_at_118_then_124.transport  # at 22 s, 124 BPM: bar 12 (21.290-23.226 s)
    with pytest.raises(ValidationError, match=r"^bars: tempo changes inside bars 8-11 \(118 → 124 BPM at 15\.2 s\): "
                                              r"select the range in the DAW instead$"):
        bar_range(transport, "last", 4)
    # bars after the change are counted from 0 s at 124 BPM too, which is not where the DAW's bar lines are
    with pytest.raises(ValidationError, match=r"^bars: tempo changes before bar 12 \(118 → 124 BPM at 15\.2 s\), and "
                                              r"bars are counted from the song's start at the cursor's tempo: select "):
        bar_range(transport, "this", 1)


def test_bars_before_the_change_count_at_the_tempo_reported_there(song_at_118_then_124):
    context = song_at_118_then_124
    context.follow_transport("reaper", tempo=118.0)  # located back: REAPER reports the tempo at the cursor...
    context.follow_transport("reaper", cursor=4.0)  # ...and the cursor
    chosen = bar_range(context.transport, "next", 2)  # a bar is 2.034 s: bars 3-4, well before 15.2 s
    assert (chosen.first_bar, chosen.start, chosen.end) == (3, 4.067797, 8.135593)
    with pytest.raises(ValidationError, match=r"^bars: tempo changes inside bars 3-8 \(118 → 124 BPM at 15\.2 s\)"):
        bar_range(context.transport, "next", 6)  # bars 3-8 reach 16.27 s, past the change


def test_a_signature_change_is_refused_and_a_newer_report_replaces_an_older_one(tmp_path):
    context = SessionContext(_Service(), tmp_path / "context.json")
    played(context, "ableton", 120.0, 0.0, 6.0, beats_per_bar=3)  # three bars of 3/4 (1.5 s each)...
    played(context, "ableton", 120.0, 6.0, 10.0, beats_per_bar=4)  # ...then 4/4 from 6 s
    with pytest.raises(ValidationError, match=r"^bars: time signature changes inside bars 3-5 \(3 → 4 beats a bar "
                                              r"at 6\.0 s\): select the range in the DAW instead$"):
        bar_range(context.transport, "last", 3)  # the cursor at 10 s starts bar 6 of 4/4: bars 3-5 are 4-10 s
    played(context, "ableton", 120.0, 0.0, 10.0, beats_per_bar=4)  # the song was changed to 4/4 and played again
    assert bar_range(context.transport, "last", 3).describe() == "bars 3-5 (4.000-10.000 s)"


def test_the_history_keeps_the_newest_stretches():
    history = TransportHistory()
    for n in range(300):  # a producer clicking around: each locate is a stretch of its own
        history.record(n * 10.0, 100.0 + n % 2, 4.0)
    heard = history.snapshot()
    assert len(heard) == 128 and heard[-1].start == 2990.0 and heard[0].start == 1720.0


@pytest.fixture
def daemon_following_reaper(tmp_path, demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    reaper_port = free_udp_port()
    (project.root / "pads.toml").write_text("", encoding="utf-8")
    project.write_config(f'[midi]\nport = "no-controller-here"\nmapping = "pads.toml"\napi = "UNIX_JACK"\n'
                         f'[midi.daw]\nreaper_port = {reaper_port}\n')
    daemon = DaemonProcess(project, env={"JACK_DEFAULT_SERVER": f"dawbridge-absent-{time.time_ns()}",
                                         "JACK_NO_START_SERVER": "1"}).start()
    yield project, reaper_port
    daemon.stop()


def context_range(project: Project) -> tuple | None:
    try:
        context = json.loads((project.state / "context.json").read_text())["context"]
    except (OSError, ValueError):
        return None
    return context.get("start"), context.get("end")


def bars(client: BridgeClient, *params) -> list:
    client.send_raw(encode("/bridge/bars", list(params)))
    reply = client.wait_for(lambda r: r.name in ("selected", "error"), timeout=10)
    assert reply is not None
    return [reply.name, *reply.args]


def test_the_last_bars_from_reapers_cursor_become_the_context_and_the_next_bar_is_inpainted(daemon_following_reaper):
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client:
        assert bars(client, "context", "last", 2)[:4] == [
            "error", "/bridge/bars", "", "bars"]  # no transport yet: the reply says to add [midi.daw]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:  # REAPER's feedback, as it sends it
            for address, value in (("/tempo/raw", 120.0), ("/time", 13.0)):
                reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        client.send("context", source=str(project.song), position=4.0)
        deadline = time.monotonic() + 10
        while (answer := bars(client, "context", "last", 2))[0] == "error":
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        assert answer == ["selected", "bars 5-6 (8.000-12.000 s)", 4.0, 8.0, 120.0, 4.0]  # source time: minus 4 s
        while context_range(project) != (4.0, 8.0):  # the context pads act on is bars 5-6 now
            assert time.monotonic() < deadline, context_range(project)
            time.sleep(0.05)
        shown = subprocess.run([sys.executable, "-m", "bridge", "jobs", "--config", str(project.config)],
                               capture_output=True, text=True, env=daemon_environment(), check=True).stdout
        assert ("range from bars 5-6 (8.000-12.000 s) at 120 BPM, 4 beats a bar, from REAPER's play cursor"
                in shown), shown

        client.send_raw(encode("/bridge/bars", ["inpaint", "next", 1, "num_outputs", 1, "request_id", "bars-1"]))
        assert client.wait_for(lambda r: r.name == "selected", 10).args[:3] == ["bar 8 (14.000-16.000 s)", 10.0,
                                                                               12.0]
        done = client.wait_for(lambda r: r.name in ("done", "failed", "error"), 120)
    assert done is not None and done.name == "done", done
    manifest = json.loads(Path(done.args[1]).read_text())
    assert (manifest["source"]["start"], manifest["source"]["end"], manifest["request_id"]) == (10.0, 12.0, "bars-1")
    listed, shown = (subprocess.run([sys.executable, "-m", "bridge", "jobs", *action, "--config", str(project.config)],
                                    capture_output=True, text=True, env=daemon_environment(), check=True).stdout
                     for action in ([], ["show", done.args[0]]))
    [line] = [line for line in listed.splitlines() if line.startswith(done.args[0])]
    assert "inpaint" in line and f"{project.song.name} bar 8 (14.000-16.000 s) at 120 BPM  " in line, line
    assert json.loads(shown)["bars"] == "bar 8 (14.000-16.000 s) at 120 BPM"


def test_bars_carry_lyrics_and_a_voice_to_the_job_and_refuse_another_operations_option(daemon_following_reaper):
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
            for address, value in (("/tempo/raw", 120.0), ("/time", 13.0)):
                reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        client.send("context", source=str(project.song), position=4.0)
        deadline = time.monotonic() + 10
        while bars(client, "context", "last", 2)[0] == "error":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert bars(client, "extend", "next", 1, "lyrics_section_to_replace", "la") == [
            "error", "/bridge/bars", "", "lyrics_section_to_replace",
            "lyrics_section_to_replace: 'la' applies to operation inpaint, not extend"]
        assert bars(client, "extend", "next", 1, "duration", 30.0)[3] == "duration"  # the bars say how long
        assert bars(client, "context", "next", 1, "prompt", "calmer")[4] == (  # a pad's prompt is its own
            "prompt: 'calmer' applies to a job: operation context only sets the bars the pads act on")
        client.send_raw(encode("/bridge/bars", ["inpaint", "next", 1, "lyrics", "oh la la, la la", "gender", "female",
                                                "lyrics_section_to_replace", "la la", "num_outputs", 1]))
        assert client.wait_for(lambda r: r.name == "selected", 10) is not None
        done = client.wait_for(lambda r: r.name in ("done", "failed", "error"), 120)
    assert done is not None and done.name == "done", done
    request = json.loads(Path(done.args[1]).read_text())["request"]
    assert (request["lyrics"], request["lyrics_section"], request["gender"]) == ("oh la la, la la", "la la", "female")


PADS = """\
[[pad]]
note = 36
command = "inpaint"
anchor = "last"
bars = 2

[[pad]]
note = 37
command = "extend"
anchor = "next"
bars = 4
"""


def test_pads_inpaint_the_last_two_bars_and_extend_the_next_four_from_reapers_cursor(tmp_path, demo_song_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"dawbridge-absent-{time.time_ns()}")  # no controller: pressed here
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    reaper_port = free_udp_port()

    async def story() -> list[tuple]:
        async with rig(tmp_path, demo_song_path, midi={"daw": {"reaper_port": reaper_port}}, mapping=PADS) as r:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:  # 100 BPM: a bar is 2.4 s
                for address, value in (("/tempo/raw", 100.0), ("/time", 13.0)):  # in bar 6 (12.0-14.4 s)
                    reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
            await until(lambda: r.frontend.context.transport is not None, what="REAPER's transport")
            for pressed, note in enumerate((36, 37), 1):
                r.frontend.received(mido.Message("note_on", note=note, velocity=90))
                await until(lambda: len(r.jobs()) == pressed, what="the pad's job")  # admitted in a thread
            return [(j.spec.operation, j.spec.start, j.spec.end, j.spec.extend_after, j.spec.duration,
                     j.summary()["bars"]) for j in r.jobs()]

    assert asyncio.run(story()) == [("inpaint", 7.2, 12.0, None, None, "bars 4-5 (7.200-12.000 s) at 100 BPM"),
                                    ("extend", None, None, 14.4, 9.6, "bars 7-10 (14.400-24.000 s) at 100 BPM")]


def test_reapers_cursor_played_through_a_tempo_change_refuses_bars_across_it(daemon_following_reaper):
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
        def report(address: str, value: float) -> None:  # REAPER's default pattern, one message per value
            reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
            time.sleep(0.001)  # paced, as REAPER sends it: a burst of UDP could overflow the daemon's socket

        client.send("context", source=str(project.song), position=0.0)
        report("/tempo/raw", 118.0)
        for n in range(0, 2205, 5):  # played 0-22 s, reported every 50 ms
            report("/time", n / 100)
            if n == 1520:
                report("/tempo/raw", 124.0)  # the tempo marker at 15.2 s passed
        # the daemon reads REAPER's reports on a socket of its own, and a loaded one is still behind when the first
        # question comes (its answer then counts from a cursor before 22 s: selected, or another bars' refusal)
        refused = ["error", "/bridge/bars", "", "bars", "bars: tempo changes inside bars 8-11 (118 → 124 BPM at "
                                                        "15.2 s): select the range in the DAW instead"]
        deadline = time.monotonic() + 30
        while (answer := bars(client, "context", "last", 4)) != refused:
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        report("/tempo/raw", 118.0)  # the producer goes back to the verse: REAPER reports the tempo there
        report("/time", 4.0)
        deadline = time.monotonic() + 30
        while (answer := bars(client, "context", "next", 2))[:2] != ["selected", "bars 3-4 (4.068-8.136 s)"]:
            assert time.monotonic() < deadline, answer  # at 118 BPM, before the change: refused no more
            time.sleep(0.05)
        assert answer[2:] == pytest.approx([4.067797, 8.135593, 118.0, 4.0], abs=1e-5)  # OSC floats are 32-bit


def ardour_rolled(context: SessionContext, start: float, end: float, tempo: float = 120.0, step: float = 0.0929):
    """Ardour's OSC feedback while its transport rolled: /position/bbt (to the tick) then /position/time (cut to
    the millisecond), about ten times a second; no tempo."""
    cursor = start
    while cursor <= end:
        beats = cursor * tempo / 60.0
        bar, beat = divmod(beats, 4.0)
        context.follow_transport("ardour", cursor=math.floor(cursor * 1000) / 1000, bar=int(bar) + 1,
                                 beat=round(beat * 1920) / 1920)
        cursor += step


def test_ardours_bar_lines_are_found_as_its_transport_rolls_and_bars_count_on_them(tmp_path):
    context = SessionContext(_Service(), tmp_path / "context.json")
    ardour_rolled(context, 0.0, 7.3)  # rolled from the start into bar 4 (6-8 s) at Ardour's default 120 BPM
    transport = context.transport
    assert (transport.tempo, transport.bar) == (0.0, 4)
    assert [round(start, 3) for _, start in sorted(transport.bar_lines)] == [0.0, 2.0, 4.0, 6.0]
    chosen = bar_range(transport, "last", 3)
    assert (chosen.describe(), chosen.with_tempo()) == ("bars 1-3 (0.000-6.000 s)",
                                                        "bars 1-3 (0.000-6.000 s) on Ardour's bar lines")
    with pytest.raises(ValidationError, match=r"^bars: need bar lines not seen yet: Ardour reports no tempo, so bars "
                                              r"are found as its transport rolls through them: play bars 5-6 once "
                                              r"\(the cursor is in bar 4\)$"):
        bar_range(transport, "next", 1)  # bar 5 (8-10 s): its lines have not passed yet
    ardour_rolled(context, 7.4, 10.5)  # rolled on into bar 6...
    context.follow_transport("ardour", cursor=5.0, bar=3, beat=2.0)  # ...then the producer located into bar 3
    assert bar_range(context.transport, "next", 2).describe() == "bars 4-5 (6.000-10.000 s)"
    with pytest.raises(ValidationError, match=r"play bar 7 once \(the cursor is in bar 3\)$"):
        bar_range(context.transport, "next", 3)


def test_ardours_feedback_in_another_shape_moves_nothing(tmp_path):
    context = SessionContext(_Service(), tmp_path / "context.json")
    ardour = ArdourFeedback(context, ("127.0.0.1", 9))
    for address, params in (("/position/bbt", ["003|02|0960"]), ("/position/time", ["00:00:05.000"])):
        ardour.received(address, params)
    assert (context.transport.cursor, context.transport.bar, context.transport.beat) == (5.0, 3, 1.5)
    for address, params in (("/position/bbt", ["3 2 960"]), ("/position/bbt", [3]), ("/position/time", ["5 s"]),
                            ("/position/time", []), ("/heartbeat", [1.0])):
        ardour.received(address, params)  # ignored, as any OSC surface message the daemon has no use for
    assert (context.transport.cursor, context.transport.bar) == (5.0, 3)
    # a bar number beyond any float (OverflowError on the feedback socket, a traceback in the log) or a time that
    # is no number: the whole report is left out, its cursor too (it would stand in another bar than the one known)
    for bbt, clock in (("1" + "0" * 400 + "|1|0", "00:00:06.000"), ("004|01|0000", "00:00:nan"),
                       ("004|01|0000", "00:00:1e999")):
        ardour.received("/position/bbt", [bbt])
        ardour.received("/position/time", [clock])
    assert (context.transport.cursor, context.transport.bar, context.transport.beat) == (5.0, 3, 1.5)
    ardour.received("/position/time", ["00:00:07.250"])  # a time without its bar|beat|tick counts no bars
    assert context.transport is None


def test_a_tempo_or_cursor_that_is_no_number_is_ignored_and_bars_still_count(daemon_following_reaper):
    """Anything on loopback can write to the feedback port: a NaN or infinite tempo or cursor, or a tempo of 0 or
    below, was taken as REAPER's, and each bars command after it ended in 'internal error' (ValueError,
    ZeroDivisionError, OverflowError) with a traceback in the daemon's log, or counted at -120 BPM."""
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
        client.send("context", source=str(project.song), position=0.0)
        for address, value in (("/tempo/raw", 120.0), ("/time", 13.0), ("/tempo/raw", math.nan), ("/time", math.inf),
                               ("/tempo/raw", -120.0), ("/tempo/raw", math.inf), ("/time", math.nan),
                               ("/tempo/raw", 0.0), ("/loop/start/time", -math.inf), ("/loop/end/time", math.inf),
                               ("/time", 14.5)):  # the last: the daemon has read all of them once it counts from it
            reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        deadline = time.monotonic() + 30
        while (answer := bars(client, "context", "this", 1))[:2] != ["selected", "bar 8 (14.000-16.000 s)"]:
            assert time.monotonic() < deadline, answer
            assert "internal error" not in str(answer), answer
            time.sleep(0.05)
        assert answer[2:] == [14.0, 16.0, 120.0, 4.0]
    assert "Traceback" not in (project.root / "daemon.log").read_text()


@pytest.mark.parametrize("tempo, cursor, refused", [
    (1e-38, 5.0, "bars: cannot be counted from REAPER's transport: a bar of 2.4e+40 s (1e-38 BPM, 4 beats a bar)"),
    (3e38, 5.0, "bars: cannot be counted from REAPER's transport: a bar of 8e-37 s (3e+38 BPM, 4 beats a bar)"),
    (120.0, 1e17, "bars: cannot be counted from REAPER's transport: a bar of 2 s (120 BPM, 4 beats a bar) from a "
                  "cursor at 1e+17 s"),
    (120.0, 1e6, "bars: 1 reach past 1e+06 s of timeline: the cursor is in bar 500001 at 120 BPM"),
    (120.0, -5.0, "bars: 1 reach before the song's start: the cursor is at -5 s"),
])
def test_a_tempo_or_cursor_no_daw_reports_is_refused_in_one_line(daemon_following_reaper, tempo, cursor, refused):
    """REAPER's feedback port takes anything on loopback: a tempo of 1e-38 BPM made a bar too long for the
    /bridge/selected reply's float32 ('internal error (OverflowError)', a traceback in the log), and one of 3e38 BPM
    or a cursor at 1e17 s selected bars of no length, numbered with 37 digits, and sent them on as a job."""
    project, reaper_port = daemon_following_reaper
    with BridgeClient("127.0.0.1", project.port) as client:
        client.send("context", source=str(project.song), position=0.0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
            for address, value in (("/tempo/raw", tempo), ("/time", cursor)):
                reaper.sendto(encode(address, [value]), ("127.0.0.1", reaper_port))
        deadline = time.monotonic() + 10
        while (answer := bars(client, "inpaint", "this", 1, "num_outputs", 1))[3] == "bars" and "DAW's play cursor" in (
                answer[4]):  # the feedback is not there yet
            assert time.monotonic() < deadline, answer
            time.sleep(0.05)
        assert answer[:4] == ["error", "/bridge/bars", "", "bars"] and answer[4].startswith(refused), answer
        assert "\n" not in answer[4] and client.ping(timeout=5)
    assert "Traceback" not in (project.root / "daemon.log").read_text(encoding="utf-8")


@pytest.mark.parametrize("numerator, denominator, expected", [
    (7, 8, ["bar 8 (12.250-14.000 s)", 12.25, 14.0, 120.0, 3.5]),  # 3.5 quarter notes a bar: 1.75 s
    (13, 16, ["bar 9 (13.000-14.625 s)", 13.0, 14.625, 120.0, 3.25]),
    (6, 8, ["bar 9 (12.000-13.500 s)", 12.0, 13.5, 120.0, 3.0]),
])
def test_abletons_bars_in_eighths_and_sixteenths_last_as_long_as_lives(tmp_path, demo_song_path, numerator,
                                                                         denominator, expected):
    """Live counts its tempo and song time in quarter notes whatever the signature, and its bars of 7/8 are 3.5 of
    them; the daemon took the numerator alone as the bar's quarter notes, so a bar of 7/8 at 120 BPM lasted 3.5 s
    instead of 1.75, and "this bar" was somewhere else in the song."""
    reply_port = free_udp_port()
    live = FakeAbletonOSC(reply_port, tempo=120.0, current_song_time=26.0, signature_numerator=float(numerator),
                          signature_denominator=float(denominator))  # the cursor at 13 s
    project = Project(tmp_path / "project", demo_song_path)
    (project.root / "pads.toml").write_text("", encoding="utf-8")
    project.write_config(f'[midi]\nport = "no-controller-here"\nmapping = "pads.toml"\napi = "UNIX_JACK"\n'
                         f'[midi.daw]\nableton = true\nableton_port = {live.port}\n'
                         f'ableton_reply_port = {reply_port}\nableton_interval = 5\n')
    daemon = DaemonProcess(project, env={"JACK_DEFAULT_SERVER": f"dawbridge-absent-{time.time_ns()}",
                                         "JACK_NO_START_SERVER": "1"}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            client.send("context", source=str(project.song), position=0.0)
            deadline = time.monotonic() + 10
            # until Live's signature, both parts, has arrived (before it: 4/4; its numerator alone: that many)
            while (answer := bars(client, "context", "this", 1))[0] == "error" or answer[-1] != expected[-1]:
                assert time.monotonic() < deadline, answer
                time.sleep(0.05)
            assert answer == ["selected", *expected]
    finally:
        daemon.stop()
        live.close()


def test_bars_on_a_captures_folder_that_does_not_answer_hold_up_no_ping(tmp_path):
    """/bridge/bars read the plugin instances' capture indexes on the event loop: a captures folder on a share whose
    server was down (bindfs stopped; a FIFO there did the same) froze the whole daemon, SIGTERM included (an outside
    probe). The bars wait alone on the captures folder's thread, and are answered once it answers."""
    import os
    import signal
    import threading

    from bridge.config import Config
    from bridge.core.journal import Journal
    from bridge.core.service import JobService
    from bridge.frontends.osc import OscFrontend
    from tests.conftest import fuse_share, require_tool, share_down
    from tests.core.test_service_share import _UNCACHED, wait_for_a_stuck_file_call

    bindfs = require_tool("bindfs")
    nas, captures = tmp_path / "nas", tmp_path / "project" / "captures"
    (nas / "4242-1").mkdir(parents=True)  # an instance's folder, its index not written yet
    captures.mkdir(parents=True)
    config = Config(state_dir=tmp_path / "state", project_roots=(tmp_path / "project",), captures_dir=captures,
                    inbox=tmp_path / "inbox", osc_port=free_udp_port())

    async def story(server) -> tuple[bool, object]:
        journal = Journal(config.journal_path)
        service = JobService(config, journal, {})
        osc = OscFrontend(service, config)
        await osc.start()
        resumed = threading.Event()  # the share answers again: by the test's timer (the code before), or below

        def back() -> None:
            resumed.set()
            server.send_signal(signal.SIGCONT)

        timer = threading.Timer(60, back)
        try:
            with BridgeClient("127.0.0.1", config.osc_port) as client:
                with share_down(server):
                    timer.start()
                    client.send("bars", operation="inpaint", anchor="last", bars=2)
                    await asyncio.to_thread(wait_for_a_stuck_file_call, os.getpid())
                    pinged = await asyncio.to_thread(client.ping, 10) and not resumed.is_set()
                resumed.set()
                answer = await asyncio.to_thread(client.wait_for, lambda r: r.name == "error", 30)
        finally:
            timer.cancel()
            osc.close()
            await service.close()
            journal.close()
        return pinged, answer

    with fuse_share(bindfs, nas, captures, *_UNCACHED) as server:
        pinged, answer = asyncio.run(story(server))
    assert pinged, "a ping was answered while the captures folder did not"
    assert answer is not None and answer.args[2] == "bars" and "play cursor" in answer.args[3], answer


def test_a_bars_pad_on_a_captures_folder_that_does_not_answer_holds_up_no_ping(tmp_path, demo_song_path, monkeypatch,
                                                                                caplog):
    """A bars pad with no DAW transport counts from a plugin host's, read from the capture indexes, and it read them
    on the event loop: a captures folder on a share whose server was down (bindfs stopped) froze the whole daemon,
    as /bridge/bars did (above). The press waits alone on the pads' captures thread, and is answered once it answers
    (here: no plugin reports a play cursor)."""
    import os
    import signal
    import threading

    from tests.conftest import fuse_share, require_tool, share_down
    from tests.core.test_service_share import _UNCACHED, wait_for_a_stuck_file_call

    bindfs = require_tool("bindfs")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"dawbridge-absent-{time.time_ns()}")  # no controller: pressed here
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    nas, captures = tmp_path / "nas", tmp_path / "project" / "captures"
    (nas / "4242-1").mkdir(parents=True)  # an instance's folder, its index not written yet
    captures.mkdir(parents=True)

    async def story(server) -> bool:
        async with rig(tmp_path, demo_song_path, mapping=PADS, captures=captures) as r:
            back = threading.Timer(60, server.send_signal, (signal.SIGCONT,))  # the code before: fail, not hang
            try:
                with BridgeClient("127.0.0.1", r.config.osc_port) as client, share_down(server):
                    back.start()
                    r.frontend.received(mido.Message("note_on", note=36, velocity=90))
                    await asyncio.to_thread(wait_for_a_stuck_file_call, os.getpid())
                    pinged = await asyncio.to_thread(client.ping, 10)
            finally:
                back.cancel()
            await until(lambda: "play cursor" in caplog.text, timeout=30, what="the press refused once it answers")
            assert r.jobs() == []
            return pinged

    with fuse_share(bindfs, nas, captures, *_UNCACHED) as server:
        assert asyncio.run(story(server)), "a ping was answered while the captures folder did not"
