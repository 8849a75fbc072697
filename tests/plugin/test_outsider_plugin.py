"""What an outsider tries first with the plugin in real hosts, and what it must keep promising then: no NaN or
infinity at the host's output, the input where there is nothing to play, a message in the job's state where a
result cannot play, and the project's job never lost.

A producer's stories: a VST3 host reopens the project and says its rate only later; the project's rate changes
after the variants came (and changes back); a variant's file is away when the project is reopened; the daemon (or
something in its place) delivers a WAV with a NaN, an empty WAV, a manifest placing the result at infinity, or
says the job's progress is NaN; the track played an infinity once, and Match loudness is on; a CLAP host's
automation sends NaN and out-of-range parameter values, and its tempo is infinite; the capture folder is deleted
while the plugin plays; the disk fills while it captures; a /bridge/done names a FIFO; a second job's variants
arrive while a variant of the first plays; Variant automation flips faster than the fade; Cancel is pressed before
the daemon accepted; a reply's text is not UTF-8; an earlier capture has the new instance's name; a variant's WAV
was cut short before reopening.

DawDreamer's tests come before pedalboard's in this file (see the imports).
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.frontends.osc_wire import decode, encode
from tests.conftest import require_tool

from .conftest import PLUGIN_DIR, RATE, Capture, only_capture, wait_for_index, wait_for_job
from .hosts.clap import build_clap_host, finish_clap_host, run_clap_host, start_clap_host
from .hosts.standin import StandInDaemon
from .test_clap import with_variant
from .test_dawdreamer import Session
from .test_pedalboard import delivered, pressed, reopened  # pedalboard instances: pressed, answered, reopened

# in the test extra; absent only outside `pip install -e '.[test]'`. DawDreamer's tests come first: a DawDreamer
# plugin made after pedalboard has loaded one crashes the process (the two bundle their own JUCE), not the reverse.
daw = pytest.importorskip("dawdreamer")
pedalboard = pytest.importorskip("pedalboard")

SILENCE = np.zeros((2, 512), np.float32)


@pytest.fixture
def captures(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DAW_BRIDGE_CAPTURE_DIR", str(tmp_path / "captures"))
    return tmp_path / "captures"


def new_instance(captures: Path, before: set[str]) -> str:
    """The instance that appeared in ``captures`` since ``before`` (its index written once it has a job)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = [p.name for p in captures.iterdir() if p.name not in before and (p / "index.json").exists()]
        if new:
            assert len(new) == 1, new
            return new[0]
        time.sleep(0.05)
    raise AssertionError("no new instance wrote its index")


# --- what the daemon (or something in its place) says -------------------------------------------------------------

SONG = np.random.default_rng(21).uniform(-0.5, 0.5, (2, 3 * RATE)).astype(np.float32)  # DawDreamer: channels first


@pytest.fixture
def song(bundles, captures):
    made = Session(str(bundles / "DawBridge.vst3"), SONG)
    yield made
    made.close()


GOOD = (0.25 * np.random.default_rng(3).uniform(-1, 1, (RATE, 2))).astype(np.float32)


def with_sample(value: float) -> np.ndarray:
    bad = GOOD.copy()
    bad[1000, 1] = value
    return bad


@pytest.mark.parametrize("variant, position, why", [
    (with_sample(math.nan), 0.5, "sample 1000 (at 0.021 s) is not a finite number"),
    (with_sample(math.inf), 0.5, "sample 1000 (at 0.021 s) is not a finite number"),
    (GOOD[:0], 0.5, "holds no audio"),
    (GOOD, math.inf, "is not a time on the timeline"),  # the manifest reads "position": Infinity
], ids=["nan", "infinity", "empty", "position-infinity"])
def test_a_result_that_cannot_play_is_refused_with_why_and_the_input_plays(song, tmp_path, captures, variant,
                                                                            position, why):
    with StandInDaemon() as daemon:
        song.set("Daemon OSC port", daemon.port, 1, 65535)
        song.render(2.0)
        song.press_inpaint()
        daemon.answer_inpaint(tmp_path / "drop", [variant], position, RATE)
    job = wait_for_job(captures, ("load_failed", "ready"))
    assert job["state"] == "load_failed" and why in job["message"], job
    song.set("Variant", 1, 0, 16)
    song.set("Match loudness", 1, 0, 1)
    assert np.array_equal(song.render(2.0), SONG[:, :2 * RATE])


@pytest.mark.parametrize("block, every", [(64, 64), (32, 100)])
def test_variant_automation_faster_than_the_fade_never_jumps(bundles, tmp_path, captures, block, every):
    """Automation flips Variant between 0 and 1 every ``every`` frames, faster than the 5 ms fade: each flip
    restarted the fade from the new source wherever the last one stood, a jump of up to 0.87 on a 0.5 sine
    (the variant is the song upside down). Now a flip back turns the fade round, and the output stays smooth."""
    wave = (0.5 * np.sin(2 * np.pi * 437.3 * np.arange(3 * RATE) / RATE)).astype(np.float32)
    played = Session(str(bundles / "DawBridge.vst3"), np.stack([wave, wave]), block)
    try:
        with StandInDaemon() as daemon:
            played.set("Daemon OSC port", daemon.port, 1, 65535)
            played.render(0.5)
            played.press_inpaint()
            daemon.answer_inpaint(tmp_path / "drop", [-np.stack([wave, wave], 1)[:2 * RATE]], 0.0, RATE)
        wait_for_job(captures, ("ready",))
        flips = ((np.arange(2 * RATE) // every) % 2).astype(np.float32) / 16  # Variant 0, 1, 0, ... (0..16 as 0..1)
        played.plugin.set_automation(played.parameters["Variant"], flips)
        heard = played.render(2.0)[0]
    finally:
        played.close()
    assert not np.array_equal(heard, wave[:2 * RATE])  # the variant was heard
    assert np.abs(np.diff(heard[1000:-1000])).max() < 0.035  # the sine's own steepest step is 0.029


def test_a_capture_folder_deleted_while_the_plugin_plays_is_written_again_without_the_spans_it_lost(song, captures):
    """The producer frees space by deleting the captures while the DAW is open. The index written next lists only
    spans that exist (it kept naming the deleted ones, so the daemon could read no range they touched, even played
    again), and what plays after is captured in full."""
    song.render(1.0)  # 188 blocks of 256
    # all of it drained and the stop published: an index written mid-render kept the thread publishing, and its
    # next index.json could land between rmtree's unlinks and its rmdir ("Directory not empty")
    wait_for_index(captures, lambda index: [s["frames"] for s in index["spans"]] == [188 * 256]
                   and index.get("transport", {}).get("playing") is False)
    shutil.rmtree(captures)
    second = song.render(2.0)
    index = wait_for_index(captures, lambda index: sum(s["frames"] for s in index["spans"]) >= 2 * RATE)
    capture = only_capture(captures)
    assert [(s["timeline_start_frame"], (capture.folder / s["file"]).exists()) for s in index["spans"]] == [(0, True)]
    assert np.array_equal(capture.audio(index["spans"][0])[:2 * RATE], second.T)


def test_a_capture_that_fills_the_disk_names_only_the_audio_on_disk(bundles, tmp_path, captures):
    """The disk fills while the song plays (here the host's file size limit, 1 MiB, stands for it: the span's WAV
    stops at 131066 frames of 4 s). The index named every frame played, so the daemon read past the file's end;
    it names only what is on disk, and that is the song."""
    require_tool("cc")
    song = np.random.default_rng(8).uniform(-1, 1, (4 * RATE, 2)).astype(np.float32)
    song.tofile(tmp_path / "song.f32")
    # ulimit -f counts 1 KiB; SIGXFSZ ignored, as a host does: the write fails with EFBIG instead
    subprocess.run(["bash", "-c", 'trap "" XFSZ; ulimit -f 1024; exec "$@"', "bash", str(build_clap_host()),
                    str(bundles / "DawBridge.clap"), str(tmp_path / "song.f32"), os.devnull, str(RATE), "256", "120",
                    f"play:0:{len(song)}"], check=True, timeout=60, env={**os.environ,
                                                                         "DAW_BRIDGE_CAPTURE_DIR": str(captures)})
    capture = only_capture(captures)
    assert capture.spans and capture.spans[0]["timeline_start_frame"] == 0
    for span in capture.spans:
        first = span["timeline_start_frame"]
        assert span["frames"] <= (1 << 20) // 8
        assert np.array_equal(capture.audio(span), song[first:first + span["frames"]])


def test_an_infinity_the_track_played_once_does_not_set_the_loudness_match(bundles, tmp_path, captures):
    """One sample of the played song is infinite (a plugin before ours misbehaved); Match loudness brings the
    variant to the loudness of the rest of its span, not to the +12 dB bound."""
    played = SONG.copy()
    first = RATE // 2
    played[0, first + 30000] = np.inf
    song = Session(str(bundles / "DawBridge.vst3"), played)
    try:
        with StandInDaemon() as daemon:
            song.set("Daemon OSC port", daemon.port, 1, 65535)
            song.render(2.0)
            song.press_inpaint()
            daemon.answer_inpaint(tmp_path / "drop", [GOOD], first / RATE, RATE)
        job = wait_for_job(captures, ("ready",))
    finally:
        song.close()
    heard = played[:, first:first + RATE].T.astype(np.float64)
    finite = np.isfinite(heard)
    wanted = np.sum(heard[finite] ** 2)
    have = np.sum(GOOD.astype(np.float64)[finite] ** 2)
    assert job["gains"] == [pytest.approx(math.sqrt(wanted / have), rel=1e-5)]
    assert job["gains"][0] < 3.0  # about 2 (the song is twice the variant's level), not 4


# --- the sample rate --------------------------------------------------------------------------------------------


def test_a_project_reopened_before_the_host_says_its_rate_gets_its_variants_back(bundles, tmp_path, captures,
                                                                                 daemon_port):
    """A VST3 host sets the saved state first and says the project's rate (48 kHz) only when it starts processing;
    until then DPF reports 44100 Hz. The variants were once refused for good ("audio at 48000 Hz, the host runs at
    44100 Hz"); they now wait for the host's rate and play once it is theirs."""
    saving, _ = delivered(bundles, tmp_path, daemon_port, "j-late")
    project_state = saving.raw_state
    del saving
    before = {p.name for p in captures.iterdir()}
    plugin = pedalboard.load_plugin(str(bundles / "DawBridge.vst3"))
    plugin.raw_state = project_state  # no process() yet: the plugin knows no rate but DPF's default
    instance = new_instance(captures, before)
    waiting = wait_for_job(captures, ("load_failed",), instance=instance)
    assert "44100 Hz" in waiting["message"] and "48000 Hz" in waiting["message"]
    plugin.process(SILENCE, 48000)
    job = wait_for_job(captures, ("ready",), instance=instance)
    assert (job["job_id"], job["message"], len(job["gains"])) == ("j-late", "", 2)


def test_a_rate_change_after_delivery_silences_the_variants_with_a_message_until_the_rate_is_back(bundles, tmp_path,
                                                                                                  captures,
                                                                                                  daemon_port):
    plugin, answered = delivered(bundles, tmp_path, daemon_port, "j-rate")
    plugin.process(SILENCE, 96000)
    job = wait_for_job(captures, ("load_failed",), instance=answered.instance)
    assert "96000 Hz" in job["message"] and job["manifests"] == answered.manifests
    plugin.process(SILENCE, 48000)
    job = wait_for_job(captures, ("ready",), instance=answered.instance)
    assert (job["message"], job["manifests"]) == ("", answered.manifests)


def test_a_variant_delivered_at_48k_is_not_played_while_the_clap_host_runs_at_96k(bundles, tmp_path, captures):
    """The CLAP host deactivates and activates the plugin at 96 kHz: rolling over the variant's range plays the
    input (the variant's frames would land at half their time, an octave up); back at 48 kHz it plays in place."""
    require_tool("cc")
    song = np.random.default_rng(5).uniform(-0.5, 0.5, (200_000, 2)).astype(np.float32)
    variant = (0.25 * np.random.default_rng(6).uniform(-1, 1, (RATE // 2, 2))).astype(np.float32)
    first = RATE  # the variant plays from 1 s to 1.5 s at 48 kHz
    with StandInDaemon() as daemon:
        proc, out_file = start_clap_host(bundles / "DawBridge.clap", song, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}", "set:Range start:1.1", "set:Range end:1.4",
            "play:0:96000", "set:Inpaint:1", "stop:96000:256", "wait:Variants loaded:1", "set:Variant:1",
            "rate:96000", "play:0:192000",  # 0 to 2 s at 96 kHz
            "rate:48000", "play:0:96000"], env={"DAW_BRIDGE_CAPTURE_DIR": str(captures)})
        try:
            daemon.answer_inpaint(tmp_path / "drop", [variant], first / RATE, RATE)
        finally:
            run = finish_clap_host(proc, out_file)
    at_96k, back_at_48k = run.output[96256:96256 + 192000], run.output[96256 + 192000:]
    assert np.array_equal(at_96k, song[:192000]), "a 48 kHz variant played while the host ran at 96 kHz"
    fade = round(0.005 * RATE)
    np.testing.assert_allclose(back_at_48k, with_variant(variant, first, np.arange(96000), song, fade), rtol=0,
                               atol=1e-6)


def test_marks_set_before_the_project_rate_changes_still_send_the_times_they_marked(bundles, tmp_path, captures):
    """Mark in at 1 s and out at 2 s at 48 kHz, then the project moves to 44.1 kHz before Inpaint is pressed: the
    marks were kept in frames and read at the new rate, and sent 1.088-2.177 s."""
    require_tool("cc")
    song = np.zeros((200_000, 2), np.float32)
    with StandInDaemon() as daemon:
        run_clap_host(bundles / "DawBridge.clap", song, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}",
            "set:Mark in:1", "play:48000:256", "set:Mark in:0", "play:48256:256",
            "set:Mark out:1", "play:96000:256", "set:Mark out:0", "play:96256:256",
            "rate:44100", "set:Inpaint:1", "stop:88200:256", "wait:State:1"])
        [(address, args)] = decode(daemon.socket.recvfrom(65536)[0])
    assert address == "/bridge/inpaint" and args[1:3] == [1.0, 2.0], args


LOADER_CHECK = r"""
#include "VariantLoader.hpp"
int main(int, char** argv)
{
    dawbridge::Variant variant;
    const std::string why = dawbridge::loadVariant(argv[1], variant);
    std::printf("%s|%d|%lld\n", why.c_str(), variant.number, (long long)variant.frames);
}
"""


@pytest.mark.parametrize("number, loaded", [(2, 2), (1e300, 0), (-1e300, 0), (2.5, 0)])
def test_a_manifest_variant_number_out_of_an_ints_range_is_no_number_not_undefined_behaviour(tmp_path, number,
                                                                                             loaded):
    """A hand-edited manifest (or a project's saved decision, read by the same helper) holding 1e300: casting it
    to int is undefined behaviour, which the sanitizer stops at; it is read as no number, as a string would be."""
    require_tool("g++")
    source = tmp_path / "check.cpp"
    source.write_text(LOADER_CHECK)
    binary = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-O1", "-fsanitize=undefined,float-cast-overflow",
                    "-fno-sanitize-recover=all", f"-I{PLUGIN_DIR}", str(source), "-o", str(binary)],
                   check=True, capture_output=True, text=True)
    sf.write(tmp_path / "v.wav", np.zeros((480, 2), np.float32), RATE, subtype="FLOAT")
    (tmp_path / "v.json").write_text(json.dumps({"audio": "v.wav", "variant": number, "frames": 480,
                                                 "timeline": {"position": 1.0}}))
    run = subprocess.run([str(binary), str(tmp_path / "v.json")], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stderr, run.stdout) == (0, "", f"|{loaded}|480\n")


def test_a_variant_file_away_when_the_project_is_reopened_keeps_the_job_in_the_saved_state(bundles, tmp_path,
                                                                                           captures, daemon_port):
    """The drop folder's drive is not mounted when the project is reopened: the variants cannot load (the state
    says which file), and a project saved again then still names them, so they load once the file is back."""
    saving, answered = delivered(bundles, tmp_path, daemon_port, "j-away")
    project_state = saving.raw_state
    del saving
    audio = tmp_path / "drop" / "j-away" / "song_inpaint_v1_abcd.wav"
    audio.rename(tmp_path / "away.wav")
    plugin, instance = reopened(bundles, captures, project_state)
    job = wait_for_job(captures, ("load_failed",), instance=instance)
    assert str(audio) in job["message"] and job["manifests"] == answered.manifests
    saved_again = plugin.raw_state
    del plugin
    gc.collect()

    (tmp_path / "away.wav").rename(audio)
    _, instance = reopened(bundles, captures, saved_again)
    job = wait_for_job(captures, ("ready",), instance=instance)
    assert (job["job_id"], job["manifests"]) == ("j-away", answered.manifests)



def request_of(daemon_port) -> tuple[str, tuple]:
    """The request the plugin sent the stand-in daemon: (its request_id, where to answer)."""
    datagram, reply_to = daemon_port.recvfrom(65536)
    [(_, args)] = decode(datagram)
    return args[args.index("request_id") + 1], reply_to


def test_a_result_named_by_a_fifo_is_refused_and_does_not_hang_the_plugin(bundles, tmp_path, captures, daemon_port):
    """A /bridge/done (from anything on this machine that learnt the job id) names a FIFO: opening it blocked the
    plugin's background thread for good, and the host's close with it (it joins that thread); /dev/zero would have
    filled the memory. Only plain files are read."""
    fifo = tmp_path / "not-a-manifest.json"
    os.mkfifo(fifo)
    plugin = pressed(bundles, daemon_port)
    try:
        request_id, reply_to = request_of(daemon_port)
        daemon_port.sendto(encode("/bridge/accepted", [request_id, "j-fifo"]), reply_to)
        daemon_port.sendto(encode("/bridge/done", ["j-fifo", str(fifo)]), reply_to)
        job = wait_for_job(captures, ("load_failed",))
        assert f"cannot read the manifest {fifo}: not a plain file" == job["message"]
    finally:
        try:  # a reader blocked in open() gets end of file, so the plugin can be closed even when this failed
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader: nothing blocked
        del plugin
        gc.collect()


def test_cancel_pressed_before_the_daemon_accepted_the_job_is_sent_once_it_does(bundles, captures, daemon_port):
    """The producer presses Inpaint, sees the wrong range and presses Cancel at once, before the daemon's
    /bridge/accepted came back (a busy or restarting daemon answers late): the cancel was dropped, and the job
    ran to its end, perhaps paid for. It now goes to the daemon as soon as the job has an id."""
    plugin = pressed(bundles, daemon_port)
    try:
        request_id, reply_to = request_of(daemon_port)
        plugin.cancel = True
        plugin.process(SILENCE, 48000)
        wait_for_index(captures, lambda index: [r["operation"] for r in index["requests"]] == ["inpaint", "cancel"])
        daemon_port.sendto(encode("/bridge/accepted", [request_id, "j-late-cancel"]), reply_to)
        [(address, args)] = decode(daemon_port.recvfrom(65536)[0])
        assert (address, args[:2]) == ("/bridge/cancel", ["j-late-cancel", "reply_port"])
    finally:
        del plugin
        gc.collect()


def test_a_new_instance_never_writes_into_an_older_capture_of_the_same_name(bundles, captures, daemon_port):
    """Captures named like this process's next instances are already there: the host unloaded the plugin when its
    last instance went (the binary's counter starts again) or this pid was an earlier session's before a reboot. A
    new instance wrote its index and spans over them; it now takes a name no folder has."""
    earlier = [f"{os.getpid()}-vst3-{n}" for n in range(1, 301)]
    for name in earlier:
        (captures / name).mkdir(parents=True)
        (captures / name / "index.json").write_text('{"an": "earlier capture"}')
    plugin = pressed(bundles, daemon_port)
    try:
        [(_, args)] = decode(daemon_port.recvfrom(65536)[0])  # sent once the instance's index is written
    finally:
        del plugin
        gc.collect()
    instance = args[args.index("capture") + 1]
    assert instance not in earlier
    assert all((captures / name / "index.json").read_text() == '{"an": "earlier capture"}' for name in earlier)
    assert Capture(captures / instance).index["requests"][0]["operation"] == "inpaint"


def raw_osc(address: str, *strings: bytes) -> bytes:
    """An OSC message of string arguments given as raw bytes (any bytes, as a misbehaving sender may send)."""
    def padded(text: bytes) -> bytes:
        return text + b"\0" * (4 - len(text) % 4)
    return padded(address.encode()) + padded(b"," + b"s" * len(strings)) + b"".join(map(padded, strings))


def test_a_reply_whose_text_is_not_utf8_leaves_the_capture_index_readable(bundles, captures, daemon_port):
    """Something on this machine answers the plugin's request with a job id and a message holding bytes that are no
    UTF-8: index.json took them as they were, and no JSON reader (the daemon's included) could read it after."""
    plugin = pressed(bundles, daemon_port)
    try:
        request_id, reply_to = request_of(daemon_port)
        daemon_port.sendto(raw_osc("/bridge/accepted", request_id.encode(), b"j-\xff\xc3("), reply_to)
        daemon_port.sendto(raw_osc("/bridge/state", b"j-\xff\xc3(", b"generating", b"(progress)",
                                   b"\xed\xa0\x80 \xc3\xa9t\xc3\xa9"),
                           reply_to)
        job = wait_for_job(captures, ("working",), message="??? été")  # the index is read as UTF-8 JSON
        assert job["job_id"] == "j-??("
    finally:
        del plugin
        gc.collect()


def test_a_progress_that_is_no_number_leaves_the_capture_index_readable(bundles, captures, daemon_port):
    """A /bridge/state whose progress is NaN (or 7) once went into index.json as "nan": no JSON reader (the
    daemon's included) could read the capture then. Progress stays what it was."""
    plugin = pressed(bundles, daemon_port)
    request_id, reply_to = request_of(daemon_port)
    daemon_port.sendto(encode("/bridge/accepted", [request_id, "j-nan"]), reply_to)
    daemon_port.sendto(encode("/bridge/state", ["j-nan", "generating", math.nan, "a NaN progress"]), reply_to)
    assert wait_for_job(captures, ("working",), message="a NaN progress")["progress"] == 0.0
    daemon_port.sendto(encode("/bridge/state", ["j-nan", "generating", 7.0, "progress 7"]), reply_to)
    assert wait_for_job(captures, ("working",), message="progress 7")["progress"] == 0.0
    del plugin


def test_a_variant_cut_short_between_save_and_reopen_is_refused_with_why(bundles, tmp_path, captures, daemon_port):
    """The drop folder was copied to another disk and the copy of one WAV stopped half way: it played half the take
    and then the original, and the state said ready."""
    saving, answered = delivered(bundles, tmp_path, daemon_port, "j-cut")
    project_state = saving.raw_state
    del saving
    audio = tmp_path / "drop" / "j-cut" / "song_inpaint_v1_abcd.wav"
    audio.write_bytes(audio.read_bytes()[:100_000])
    _, instance = reopened(bundles, captures, project_state)
    job = wait_for_job(captures, ("load_failed", "ready"), instance=instance)
    assert job["state"] == "load_failed"
    held = re.fullmatch(rf"{re.escape(str(audio))} holds (\d+) frames, its manifest says {RATE} \(cut short\?\)",
                        job["message"])
    assert held and 12_000 < int(held[1]) < 100_000 // 8, job["message"]  # what 100 kB of stereo float32 holds


# --- what a CLAP host hands on unchecked --------------------------------------------------------------------------

CLAP_SONG = np.random.default_rng(8).uniform(-0.5, 0.5, (60_000, 2)).astype(np.float32)


def test_nan_and_out_of_range_parameter_values_are_held_to_the_parameters_ranges(bundles, tmp_path, captures):
    """Automation sends Range start -10, Range end NaN, Preset -3 and Variant 1e30 before an Inpaint press: the
    request names the range and preset as they were (0, 0, preset 0), the capture index stays readable, and the
    input passes through."""
    require_tool("cc")
    with StandInDaemon(timeout=10.0) as daemon:
        proc, out_file = start_clap_host(bundles / "DawBridge.clap", CLAP_SONG, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}", "set:Range start:-10", "set:Range end:nan", "set:Preset:-3",
            "set:Variant:1e30", "play:0:24000", "set:Inpaint:1", "play:24000:24000"],
            env={"DAW_BRIDGE_CAPTURE_DIR": str(captures)})
        try:
            datagram, _ = daemon.socket.recvfrom(65536)
        finally:
            run = finish_clap_host(proc, out_file)
    [(address, args)] = decode(datagram)
    assert (address, args[:3]) == ("/bridge/inpaint", [None, 0.0, 0.0])
    index = only_capture(captures).index  # JSON: no "nan" in it
    assert [(r["start"], r["end"], r["preset"]) for r in index["requests"]] == [(0.0, 0.0, 0)]
    assert np.array_equal(run.output, CLAP_SONG[:48000])


@pytest.mark.parametrize("bpm", [math.inf, 1e-30])
def test_a_tempo_no_daw_plays_is_taken_as_no_tempo_and_the_capture_index_stays_readable(bundles, tmp_path, captures,
                                                                                        bpm):
    require_tool("cc")
    run = run_clap_host(bundles / "DawBridge.clap", CLAP_SONG, tmp_path, ["play:0:24000"], bpm=bpm,
                        env={"DAW_BRIDGE_CAPTURE_DIR": str(captures)})
    transport = only_capture(captures).index["transport"]  # an infinite tempo was written as "inf"
    assert (transport["tempo"], transport["heard"]) == (0.0, [])  # bars are not counted from it
    assert np.array_equal(run.output, CLAP_SONG[:24000])


def test_a_new_jobs_variants_arriving_while_one_plays_are_faded_in_not_jumped_to(bundles, tmp_path, captures):
    """Variant 1 of a first inpaint plays (a sine); the producer presses Inpaint again while rolling, and the new
    variants (the sine upside down) arrive between two blocks. The switch is one 5 ms crossfade: it jumped from the
    old variant to the new one, a click of twice the sine's level."""
    require_tool("cc")
    span = np.arange(8 * RATE) / RATE
    sine = np.repeat((0.5 * np.sin(2 * np.pi * 437.3 * span)).astype(np.float32)[:, None], 2, axis=1)
    silence = np.zeros((10 * RATE, 2), np.float32)
    first, fade, chunk = RATE, round(0.005 * RATE), 12345  # the variants play from 1 s to 9 s
    with StandInDaemon() as daemon:
        proc, out_file = start_clap_host(bundles / "DawBridge.clap", silence, tmp_path, [
            f"set:Daemon OSC port:{daemon.port}", "set:Range start:2", "set:Range end:3", "set:Inpaint:1",
            "play:0:256", "wait:Variants loaded:1", "set:Variant:1", "set:Inpaint:0", "play:256:256",
            "set:Inpaint:1", f"play:{2 * RATE}:{chunk}",  # the second press, rolling from 2 s
            "wait:Variants loaded:2", f"play:{2 * RATE + chunk}:{chunk}"],  # the new set came between two blocks
            env={"DAW_BRIDGE_CAPTURE_DIR": str(captures)})
        try:
            daemon.answer_inpaint(tmp_path / "first", [sine], first / RATE, RATE)
            daemon.answer_inpaint(tmp_path / "second", [-sine, sine], first / RATE, RATE)
        finally:
            run = finish_clap_host(proc, out_file)
    heard = run.output[512:]
    old, new = sine[RATE:RATE + 2 * chunk], -sine[RATE:RATE + 2 * chunk]
    assert np.array_equal(heard[:chunk], old[:chunk])
    gain = (np.arange(fade, 0, -1) / fade)[:, None]  # of the old variant, frame by frame
    np.testing.assert_allclose(heard[chunk:chunk + fade], old[chunk:chunk + fade] * gain
                               + new[chunk:chunk + fade] * (1 - gain), rtol=0, atol=1e-6)
    assert np.array_equal(heard[chunk + fade:], new[chunk + fade:])
    assert np.abs(np.diff(heard, axis=0)).max() < 0.05  # the sine's own steepest step is 0.029
