"""In-place playback in jalv under JACK, with a stand-in daemon on a UDP socket speaking the daemon's replies.

A producer's story: the song plays from 10 s; they set a range and press Inpaint; the "daemon" accepts, reports
progress, and delivers two variants (a float32 WAV and a PCM24 WAV, each with its manifest, as the drop folder holds
them). With variant 1 chosen, rolling over the range again plays variant 1 sample for sample inside its span (5 ms
fades at the edges) and the input everywhere else; switching to variant 2 while rolling crossfades in 5 ms; with
variant 0 every sample is the input again.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.frontends.osc_wire import decode, encode

from .conftest import answer_with_variants, deliver, only_capture, wait_for_job
from .jackhost import NOISE, RATE, Jalv, hosted

FADE = int(RATE * 0.005)  # 240 frames
SPAN_START, SPAN_SECONDS = 10.4, 0.9  # where the delivered variants play (a patch: the range plus handles)
FIRST = round(SPAN_START * RATE)


def show_outputs(plugin: Jalv) -> None:
    """Ask jalv for its output ports a few times: it copies them from the plugin after a cycle and a UI tick, so the
    first answer on a loaded machine may still be the previous value."""
    for _ in range(4):
        time.sleep(0.15)
        plugin.command("monitors")


def expected_with(variant: np.ndarray, start: int, block: np.ndarray) -> np.ndarray:
    """What the plugin plays for this cycle with `variant` chosen all along: the variant across its span, linear 5 ms
    fades from and to the input at the span's edges, the input elsewhere."""
    out = block.copy()
    for i in range(len(block)):
        k = start + i - FIRST
        if 0 <= k < len(variant):
            gain = min(1.0, min(k + 1, len(variant) - k) / FADE)
            out[i] = variant[k] if gain >= 1.0 else block[i] + (variant[k] - block[i]) * np.float32(gain)
    return out


@pytest.mark.parametrize("build", ["release", "rtcheck"])
def test_a_trigger_is_answered_and_the_delivered_variants_play_in_place(jack_server, bundles, rtcheck_bundles,
                                                                        tmp_path, build, daemon_port):
    bundle = (bundles if build == "release" else rtcheck_bundles) / "DawBridge.lv2"
    daemon = daemon_port
    with hosted(jack_server, bundle, tmp_path) as (plugin, song):
        for line in (f"set port {daemon.getsockname()[1]}", "set start 10.5", "set end 11.2"):
            plugin.command(line)
        time.sleep(0.3)
        song.recording = True
        song.roll(10 * RATE, 1.5)  # played once: the capture holds the range and its context

        plugin.command("set inpaint 1")
        datagram, reply_to = daemon.recvfrom(65536)
        [(address, args)] = decode(datagram)
        assert address == "/bridge/inpaint"
        instance, request_id = args[5], args[9]
        assert args == [None, 10.5, pytest.approx(11.2, abs=1e-6), "", "capture", instance,
                        "reply_port", reply_to[1], "request_id", request_id]
        assert instance == only_capture(plugin.captures).folder.name

        daemon.sendto(encode("/bridge/accepted", [request_id, "j-test-1"]), reply_to)
        daemon.sendto(encode("/bridge/state", ["someone-elses-job", "failed", 0.0, "not ours"]), reply_to)
        daemon.sendto(encode("/bridge/state", ["j-test-1", "generating", 0.5, "halfway"]), reply_to)
        # taken in once the last message is (the index was read between 'accepted' and 'generating' once)
        job = wait_for_job(plugin.captures, ("working",), progress=0.5)
        assert (job["job_id"], job["progress"], job["message"]) == ("j-test-1", 0.5, "halfway")
        show_outputs(plugin)

        manifests, variants = deliver(tmp_path / "drop", "j-test-1", request_id, SPAN_START, SPAN_SECONDS)
        daemon.sendto(encode("/bridge/done", ["j-test-1", *manifests]), reply_to)
        job = wait_for_job(plugin.captures, ("ready",))
        assert job["manifests"] == manifests and job["progress"] == 1.0
        show_outputs(plugin)

        plugin.command("set variant 1")
        time.sleep(0.2)
        mark = max(song.played)
        song.roll(10 * RATE, 1.5)  # over the span with variant 1 chosen while stopped
        first_pass = song.rolled_output(mark)

        mark = max(song.played)
        song.song.transport_frame = 10 * RATE
        time.sleep(0.2)
        song.song.transport_start()
        time.sleep(0.75)  # 10.75 s: inside the span, away from its fades
        plugin.command("set variant 2")
        time.sleep(0.75)
        song.song.transport_stop()
        time.sleep(0.2)
        switch_pass = song.rolled_output(mark)

        plugin.command("set variant 0")
        time.sleep(0.2)
        mark = max(song.played)
        song.roll(10 * RATE, 1.5)
        original_pass = song.rolled_output(mark)
    assert plugin.exit_status == 0, plugin.log.read_text()
    # the host read the output parameters: working at 50 %, then ready (3) with two variants
    shown = [line.lstrip("> ") for line in plugin.log.read_text().splitlines()]
    shown = [tuple(shown[i:i + 3]) for i in range(len(shown)) if shown[i].startswith("progress = ")]
    working = shown.index(("progress = 0.500000", "state = 2.000000", "variants = 0.000000"))
    assert ("progress = 1.000000", "state = 3.000000", "variants = 2.000000") in shown[working:], shown

    # variant 1 across its span, exactly; the input elsewhere, exactly; linear fades at the span's edges
    covered = sum(len(block) for _, block, _ in first_pass)
    assert covered >= 1.3 * RATE
    inside = 0
    n = len(variants[0])
    for start, block, out in first_pass:
        k = np.arange(start, start + len(block)) - FIRST
        fading = (k >= 0) & (k < n) & (np.minimum(k + 1, n - k) < FADE)
        expected = expected_with(variants[0], start, block)
        assert np.array_equal(out[~fading], expected[~fading]), f"cycle at {start}: not bit-exact outside the fades"
        np.testing.assert_allclose(out[fading], expected[fading], rtol=0, atol=1e-6)
        inside += int(np.count_nonzero((k >= FADE) & (k < n - FADE)))
    assert inside > 0.8 * RATE  # nearly all of the span was heard as variant 1, bit for bit

    # switching to variant 2 while rolling: variant 1 exactly, one fade of at most 5 ms, then variant 2 exactly
    frames = np.concatenate([np.arange(start, start + len(block)) for start, block, _ in switch_pass])
    out = np.concatenate([out for _, _, out in switch_pass])
    in_span = (frames >= FIRST + FADE) & (frames < FIRST + len(variants[0]) - FADE)
    k = frames[in_span] - FIRST
    heard = out[in_span]
    is_v1 = np.all(heard == variants[0][k], axis=1)
    is_v2 = np.all(heard == variants[1][k], axis=1)
    neither = np.flatnonzero(~is_v1 & ~is_v2)
    assert is_v1[:100].all() and is_v2[-100:].all(), "the pass did not go from variant 1 to variant 2"
    assert len(neither) <= FADE and (len(neither) == 0 or neither[-1] - neither[0] == len(neither) - 1)
    switch = np.flatnonzero(~is_v1)[0]
    print(f"variant 1 bit-exact over {inside} frames of its span; switch to variant 2 at timeline frame "
          f"{FIRST + k[switch]}, {len(neither)} frames between the two")
    assert is_v1[:switch].all() and is_v2[switch + len(neither):].all()
    # inside the fade each sample lies on the line between the two variants: no step beyond the fade's own
    for j in neither:
        gain = (j - switch + 1) / FADE  # the fade's first sample (gain 0) is still variant 1
        np.testing.assert_allclose(heard[j], variants[0][k[j]] + (variants[1][k[j]] - variants[0][k[j]]) * gain,
                                   atol=1e-6)

    # variant 0: the input, bit for bit, everywhere
    assert sum(len(block) for _, block, _ in original_pass) >= 1.3 * RATE
    for start, block, out in original_pass:
        assert np.array_equal(out, block), f"cycle at {start} is not the input"

    index = only_capture(plugin.captures).index
    assert index["dropped_blocks"] == 0
    if build == "rtcheck":
        assert index["rt_allocations"] == 0  # not one allocation in run(), playing variants and fading included


def runs(labels: np.ndarray) -> list[tuple[str, int]]:
    """'vvvxxooo' -> [('v', 3), ('x', 2), ('o', 3)]."""
    edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    return [(str(labels[a]), int(b - a)) for a, b in zip(np.r_[0, edges], np.r_[edges, len(labels)])]


@pytest.mark.parametrize("build", ["release", "rtcheck"])
def test_ab_switches_between_the_original_and_the_loudness_matched_variant_without_clicks(jack_server, bundles,
                                                                                          rtcheck_bundles, tmp_path,
                                                                                          build, daemon_port):
    """A producer's story: variant 1 came back at half the level of the song. With Match loudness on it plays at
    the song's loudness over its span; holding A/B plays the original instead, releasing it the variant again, each
    switch a 5 ms crossfade."""
    span_start, seconds = 10.4, 2.5
    first = round(span_start * RATE)
    daemon = daemon_port
    bundle = (bundles if build == "release" else rtcheck_bundles) / "DawBridge.lv2"
    with hosted(jack_server, bundle, tmp_path) as (plugin, song):
        plugin.command(f"set port {daemon.getsockname()[1]}")
        time.sleep(0.3)
        song.recording = True
        song.roll(10 * RATE, 3.5)  # the capture holds the span: the original's loudness there is known
        plugin.command("set inpaint 1")
        _, _, _, variants, _, job = answer_with_variants(daemon, plugin.captures, tmp_path / "drop", "j-ab",
                                                         span_start, seconds)
        plugin.command("set variant 1")
        plugin.command("set match 1")
        time.sleep(0.2)
        mark = max(song.played)
        song.song.transport_frame = 10 * RATE
        time.sleep(0.2)
        song.song.transport_start()
        time.sleep(1.0)  # ~11 s: inside the span
        plugin.command("set ab 1")
        time.sleep(0.6)
        plugin.command("set ab 0")
        time.sleep(1.5)
        song.song.transport_stop()
        time.sleep(0.2)
        heard = song.rolled_output(mark)
    assert plugin.exit_status == 0, plugin.log.read_text()

    n = len(variants[0])
    original = NOISE[first:first + n]
    wanted = np.sqrt(np.mean(np.square(original, dtype=np.float64)) / np.mean(np.square(variants[0], dtype=np.float64)))
    gain = job["gains"][0]
    assert gain == pytest.approx(wanted, rel=1e-2) and 1.9 < gain < 2.1  # the variant is 6 dB quieter

    frames = np.concatenate([np.arange(start, start + len(block)) for start, block, _ in heard])
    played = np.concatenate([block for _, block, _ in heard])
    out = np.concatenate([out for _, _, out in heard])
    inside = (frames >= first + FADE) & (frames < first + n - FADE)
    k = frames[inside] - first
    matched = variants[0][k] * np.float32(gain)
    is_variant = np.all(np.isclose(out[inside], matched, rtol=1e-5, atol=1e-7), axis=1)
    is_original = np.all(out[inside] == played[inside], axis=1)
    labels = np.where(is_variant, "v", np.where(is_original, "o", "x"))
    pattern = runs(labels)
    print(f"gain {gain:.4f} (wanted {wanted:.4f}); over the span: {pattern}")
    assert [label for label, _ in pattern if label != "x"] == ["v", "o", "v"], pattern
    assert all(count <= FADE for label, count in pattern if label == "x"), pattern
    # inside each crossfade every sample lies between the two sides: no step beyond the fade's own
    between = np.flatnonzero(labels == "x")
    lo = np.minimum(matched[between], played[inside][between]) - 1e-6
    hi = np.maximum(matched[between], played[inside][between]) + 1e-6
    assert np.all((out[inside][between] >= lo) & (out[inside][between] <= hi))
    if build == "rtcheck":
        assert only_capture(plugin.captures).index["rt_allocations"] == 0  # A/B, matching, marks: none in run()
