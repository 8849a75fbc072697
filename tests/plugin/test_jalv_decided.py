"""A decision made outside the host (/bridge/decided from the daemon: a pad, the voice, the CLI) in jalv under JACK.

A producer's story: two variants came back and the host's Variant parameter is on 1. From a pad they choose variant
2: rolling over the span plays variant 2 although the host still says 1. They keep variant 1: variant 1 plays. They
turn the host's Variant to 2: the host chooses again. While the span plays they discard the job from the pad: within
one 5 ms fade the original plays, the variants are forgotten (Variants loaded 0, State discarded), and turning the
host's Variant changes nothing. A repeated or older decision, and one about someone else's job, change nothing.
The daemon's side of /bridge/decided stands in as a UDP socket sending the reply to the instance's port.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from bridge.frontends.osc_wire import encode

from .conftest import answer_with_variants, only_capture
from .jackhost import RATE, Song, hosted
from .test_jalv_playback import FADE, FIRST, SPAN_SECONDS, SPAN_START, expected_with, runs, show_outputs


def wait_for(captures, check, what: str) -> dict:
    """The capture index's job once ``check(job)`` holds (the background thread applies a decision within ~20 ms)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        job = only_capture(captures).index.get("job", {})
        if check(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"{what}: {job}")


def over_the_span(song: Song) -> list[tuple[int, np.ndarray, np.ndarray]]:
    mark = max(song.played)
    song.roll(10 * RATE, 1.5)
    return song.rolled_output(mark)


def plays(variant: np.ndarray | None, heard: list[tuple[int, np.ndarray, np.ndarray]]) -> bool:
    """Whether every cycle of the pass is what the plugin plays with `variant` (None: the input) chosen all along,
    bit for bit away from the span's edge fades."""
    assert sum(len(block) for _, block, _ in heard) >= 1.3 * RATE
    for start, block, out in heard:
        expected = block if variant is None else expected_with(variant, start, block)
        k = np.arange(start, start + len(block)) - FIRST
        fading = (k >= 0) & (k < SPAN_SECONDS * RATE) & (np.minimum(k + 1, SPAN_SECONDS * RATE - k) < FADE)
        if not np.array_equal(out[~fading], expected[~fading]):
            return False
    return True


@pytest.mark.parametrize("build", ["release", "rtcheck"])
def test_a_decision_from_outside_the_host_plays_its_choice_until_the_variant_parameter_changes(
        jack_server, bundles, rtcheck_bundles, tmp_path, build, daemon_port):
    bundle = (bundles if build == "release" else rtcheck_bundles) / "DawBridge.lv2"
    daemon = daemon_port
    with hosted(jack_server, bundle, tmp_path) as (plugin, song):
        for line in (f"set port {daemon.getsockname()[1]}", "set start 10.5", "set end 11.2", "set variant 1"):
            plugin.command(line)
        time.sleep(0.3)
        song.recording = True
        song.roll(10 * RATE, 1.5)
        plugin.command("set inpaint 1")
        captures = plugin.captures
        answered = answer_with_variants(daemon, captures, tmp_path / "drop", "j-dec", SPAN_START, SPAN_SECONDS)
        variants, reply_to = answered.variants, answered.reply_to

        def decided(decision: str, choice: int, seq: int, job: str = "j-dec") -> None:
            daemon.sendto(encode("/bridge/decided", [job, decision, choice, seq]), reply_to)

        assert plays(variants[0], over_the_span(song))  # the host's Variant 1

        decided("choose", 2, 1)
        job = wait_for(captures, lambda j: j["state"] == "chosen", "choose 2 was not applied")
        assert job["decision"] == {"decision": "choose", "choice": 2, "seq": 1} and job["variant"] == 1
        show_outputs(plugin)
        chosen_pass = over_the_span(song)

        decided("keep", 1, 2)
        wait_for(captures, lambda j: j["decision"] == {"decision": "keep", "choice": 1, "seq": 2}, "keep 1 missed")
        decided("discard", 0, 2)  # a repeat of decision 2's number: ignored
        decided("discard", 0, 1)  # older: ignored
        decided("discard", 0, 9, job="someone-elses-job")
        time.sleep(0.2)
        kept_pass = over_the_span(song)

        plugin.command("set variant 2")  # the host's parameter changes: it chooses again
        job = wait_for(captures, lambda j: j["state"] == "ready", "the Variant parameter did not take over")
        assert job["decision"] == {"decision": "", "choice": 1, "seq": 2}  # no decision holds any more
        host_pass = over_the_span(song)

        mark = max(song.played)  # discard while the span plays: variant 2, one fade, then the original
        song.song.transport_frame = 10 * RATE
        time.sleep(0.2)
        song.song.transport_start()
        time.sleep(0.75)  # 10.75 s: inside the span, away from its fades
        decided("discard", 0, 3)
        time.sleep(0.75)
        song.song.transport_stop()
        time.sleep(0.2)
        discard_pass = song.rolled_output(mark)
        job = wait_for(captures, lambda j: j["state"] == "discarded", "the discard was not applied")
        assert job["manifests"] == [] and job["decision"] == {"decision": "discard", "choice": 0, "seq": 3}
        show_outputs(plugin)
        plugin.command("set variant 1")  # nothing left to choose from
        time.sleep(0.2)
        forgotten_pass = over_the_span(song)
    assert plugin.exit_status == 0, plugin.log.read_text()

    assert plays(variants[1], chosen_pass), "choose 2 did not play variant 2"
    assert plays(variants[0], kept_pass), "keep 1 did not play variant 1 (or a repeated decision was applied)"
    assert plays(variants[1], host_pass), "the host's Variant 2 did not play variant 2"
    assert plays(None, forgotten_pass), "a discarded job's variant was played"

    # the host read the output parameters: chosen (9) with two variants, then discarded (10) with none
    shown = [line.lstrip("> ") for line in plugin.log.read_text().splitlines()]
    shown = [tuple(shown[i:i + 3]) for i in range(len(shown)) if shown[i].startswith("progress = ")]
    assert ("progress = 1.000000", "state = 9.000000", "variants = 2.000000") in shown, shown
    assert shown[-1][1:] == ("state = 10.000000", "variants = 0.000000"), shown

    frames = np.concatenate([np.arange(start, start + len(block)) for start, block, _ in discard_pass])
    played = np.concatenate([block for _, block, _ in discard_pass])
    out = np.concatenate([out for _, _, out in discard_pass])
    in_span = (frames >= FIRST + FADE) & (frames < FIRST + len(variants[1]) - FADE)
    k = frames[in_span] - FIRST
    labels = np.where(np.all(out[in_span] == variants[1][k], axis=1), "v",
                      np.where(np.all(out[in_span] == played[in_span], axis=1), "o", "x"))
    pattern = runs(labels)
    print(f"discard while playing, over the span: {pattern}")
    assert [label for label, _ in pattern if label != "x"] == ["v", "o"], pattern
    assert all(count <= FADE for label, count in pattern if label == "x"), pattern
    if build == "rtcheck":
        assert only_capture(captures).index["rt_allocations"] == 0  # decisions are applied off the audio thread
