"""An outsider's probes of the audition: result files changed in the drop folder after delivery. The daemon must not
announce as a variant what is not the delivered variant. Real daemon, real UDP, a real ``jackd -d dummy``."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import soundfile as sf

from bridge.client import BridgeClient
from bridge.frontends.osc_wire import encode
from tests.audition.conftest import PERIOD, RATE, auditioning_daemon
from tests.audition.tape import Tape
from tests.frontends.test_decide import decide


def audition(client: BridgeClient, *request) -> list:
    client.send_raw(encode("/bridge/audition", list(request)))
    reply = client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=60)
    assert reply is not None, request
    return reply.args


@contextmanager
def auditioning(jack, tmp_path: Path, variants: int):
    """A daemon auditioning through ``jack``, and an inpaint of 16-20 s it delivered: (project, client, the done
    reply's arguments). The daemon must still answer afterwards, and have logged no traceback."""
    with auditioning_daemon(jack, tmp_path) as (project, daemon):
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=16.0, end=20.0, prompt="",
                                        backend="local", num_outputs=variants, timeout=120)
            assert outcome.name == "done" and len(outcome.args) == 1 + variants, outcome
            yield project, client, outcome.args
            assert client.ping(timeout=5)
        assert "Traceback" not in daemon.log.read_text(encoding="utf-8")


def test_a_variant_cut_short_or_moved_off_its_range_is_refused_not_played_as_the_original(jack, tmp_path):
    """A variant's audio replaced by a shorter file (same rate and channels), or a manifest whose span_start was
    edited to lie before the range, was answered 'auditioning variant n' at 0.0 dB while the original played."""
    with auditioning(jack, tmp_path, 2) as (project, client, done):
        job, manifests = done[0], [Path(p) for p in done[1:]]
        records = [json.loads(m.read_text(encoding="utf-8")) for m in manifests]

        cut = manifests[0].with_name(records[0]["audio"])
        audio, rate = sf.read(cut, dtype="float32", always_2d=True)
        sf.write(cut, audio[:100], rate, subtype="FLOAT")
        assert audition(client, job, "variant", "variant", 1) == [
            "/bridge/audition", "", "", f"the variant's audio has 100 frames where its manifest says "
                                        f"{records[0]['frames']} (replaced since it was delivered?): {cut}"]
        sf.write(cut, audio, rate, subtype="FLOAT")

        delivered = manifests[1].read_text(encoding="utf-8")
        records[1]["source"]["span_start"] = 0.0  # 6 s of audio at 0 s, the range at 16-20 s
        manifests[1].write_text(json.dumps(records[1]), encoding="utf-8")
        refused = audition(client, job, "variant", "variant", 2)
        assert refused[:3] == ["/bridge/audition", "", ""] and "off the range it replaced" in refused[3], refused
        assert "\n" not in refused[3]

        manifests[1].write_text(delivered, encoding="utf-8")
        assert audition(client, job, "variant", "variant", 2)[:3] == [job, "variant", 2]


def test_a_variant_deleted_or_replaced_after_it_was_heard_is_not_played_from_memory(jack, tmp_path):
    """Programs prepared once were kept by job id: a variant's audio deleted from the drop folder went on playing
    (answered as playing), and one replaced by another take played the old take."""
    with auditioning(jack, tmp_path, 1) as (project, client, done):
        job, manifest = done[0], Path(done[1])
        heard = audition(client, job, "variant", "variant", 1)
        assert heard[:3] == [job, "variant", 1], heard

        path = manifest.with_name(json.loads(manifest.read_text(encoding="utf-8"))["audio"])
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        path.unlink()
        refused = audition(client, job, "variant", "variant", 1)
        assert refused[:3] == ["/bridge/audition", "", ""] and "cannot be read" in refused[3], refused

        sf.write(path, audio * 0.5, rate, subtype="FLOAT")  # another take, 6 dB down: matched up again by 6 dB
        replayed = audition(client, job, "variant", "variant", 1)
        assert replayed[:3] == [job, "variant", 1] and abs(replayed[3] - (heard[3] + 6.02)) < 0.05, replayed


def test_a_source_replaced_after_delivery_is_refused_not_played_as_the_context(jack, tmp_path):
    """The producer re-rendered the song at another rate, or shorter, after the job: the audition read it at the
    job's rate (at twice the speed, another stretch of the song), or padded it with silence, and announced it as the
    original in context; once heard, it also went on playing the old song from memory."""
    with auditioning(jack, tmp_path, 1) as (project, client, done):
        job = done[0]
        assert audition(client, job, "original")[:3] == [job, "original", 0]
        song = project.song.read_bytes()
        audio, rate = sf.read(project.song, dtype="float32", always_2d=True)
        for changed, now in ((lambda: sf.write(project.song, audio[::2], rate // 2, subtype="FLOAT"),
                              f"now {len(audio[::2])} frames of 2 channels at {rate // 2} Hz"),
                             (lambda: sf.write(project.song, audio[:10 * rate], rate, subtype="FLOAT"),
                              f"now {10 * rate} frames of 2 channels at {rate} Hz")):
            changed()
            refused = audition(client, job, "original")
            assert refused[:3] == ["/bridge/audition", "", "source"], refused
            assert refused[3].startswith("source audio changed since the job was accepted (") and now in refused[3]
        project.song.write_bytes(song)
        assert audition(client, job, "variant", "variant", 1)[:3] == [job, "variant", 1]


@contextmanager
def variant_1_heard(jack, tmp_path: Path):
    """(tape, client, job): a two-variant inpaint done on an auditioning daemon whose output a tape records, its
    variant 1 playing and heard; on leaving, the daemon's log holds no traceback."""
    tape = Tape()
    try:
        with auditioning_daemon(jack, tmp_path, tape) as (project, daemon), \
                BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=16.0, end=20.0, prompt="",
                                        backend="local", num_outputs=2, timeout=120)
            assert outcome.name == "done", outcome
            job = outcome.args[0]
            since = len(tape.blocks)
            assert audition(client, job, "variant", "variant", 1)[:3] == [job, "variant", 1]
            assert sounding(tape, since), "the tape hears the audition"
            yield tape, client, job
        assert "Traceback" not in daemon.log.read_text(encoding="utf-8")
    finally:
        tape.close()


def test_a_discarded_job_stops_playing_and_is_refused_in_one_line(jack, tmp_path):
    """A discard takes the job's takes out of the project on both DAW sides, but a variant of it playing went on,
    and every later press (a pad, a voice command, OSC) played its variants again, announced as auditioning."""
    with variant_1_heard(jack, tmp_path) as (tape, client, job):
        assert decide(client, job, "discard").args == [job, "discard", 0, 1]
        said = f"job {job} was discarded (decision 1): its variants are gone from the project, so nothing of " \
               "it is auditioned"
        # The stop was asked before the decision was answered: the cycle under way then may still sound, and
        # the next one fades out.
        stopped = len(tape.blocks) + 2
        for request in ([job, "variant", "variant", 2], [job, "variant", "variant", 1], [job, "original"],
                        ["last", "next"], ["last", "ab"]):
            assert audition(client, *request) == ["/bridge/audition", "", "", said], request
        assert silent(tape, stopped, len(tape.blocks) + 50), "nothing plays after the discard"
        assert client.ping(timeout=5)


def test_after_a_keep_the_other_variants_stop_and_are_refused_the_kept_one_plays(jack, tmp_path):
    """keep takes the job's other takes out of the project on both DAW sides (a later choose of one is refused), but
    the variant playing at the keep went on, and a press on another variant, or next, played one that is gone."""
    with variant_1_heard(jack, tmp_path) as (tape, client, job):
        assert decide(client, job, "keep", "choice", 2).args == [job, "keep", 2, 1]
        stopped = len(tape.blocks) + 2  # see the discard's story
        assert audition(client, job, "variant", "variant", 1) == [
            "/bridge/audition", "", "", f"job {job} kept variant 2 (decision 1): variant 1 is gone from the "
                                        "project"]
        assert silent(tape, stopped, len(tape.blocks) + 50), "variant 1 stopped at the keep"

        since = len(tape.blocks)
        assert audition(client, job, "variant", "variant", 2)[:3] == [job, "variant", 2]
        assert sounding(tape, since), "the kept variant plays"
        assert [audition(client, "last", what)[:3] for what in ("next", "previous", "ab", "ab", "next")] == [
            [job, "variant", 2], [job, "variant", 2], [job, "original", 0], [job, "variant", 2],
            [job, "variant", 2]]
        assert client.ping(timeout=5)


def sounding(tape: Tape, since: int) -> bool:
    """Wait until the tape hears sound in a cycle from ``since`` on; False after a minute of cycles without."""
    deadline = time.monotonic() + 120  # only if JACK stopped running cycles
    while len(tape.blocks) < since + 60 * RATE // PERIOD:
        if any(block.any() for _, _, block in tape.blocks[since:]):
            return True
        assert time.monotonic() < deadline, "the tape stopped recording"
        time.sleep(0.05)
    return False


def silent(tape: Tape, since: int, until: int) -> bool:
    """Wait for the tape to record cycle ``until``; whether every cycle from ``since`` to it was silent."""
    deadline = time.monotonic() + 120  # only if JACK stopped running cycles
    while len(tape.blocks) <= until:
        assert time.monotonic() < deadline, "the tape stopped recording"
        time.sleep(0.05)
    return not any(block.any() for _, _, block in tape.blocks[since:until + 1])
