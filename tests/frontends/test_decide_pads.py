"""Hands on the guitar, feet on the pads: choose a take, keep it or discard the job from a MIDI controller, and
see on the pads which take is the chosen one, whichever trigger chose it. A real daemon, MIDI through a real JACK
server (``jackd -d dummy``), decisions from OSC over real UDP beside the pads."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.client import BridgeClient
from tests.conftest import DaemonProcess, Project
from tests.frontends.jack import Controller, jack  # noqa: F401  (jack is a fixture)
from tests.frontends.test_midi import DONE, FAILED

PADS = """\
[[pad]]
note = 50
action = "choose_original"

[[pad]]
note = 51
action = "choose_variant_1"

[[pad]]
note = 52
action = "choose_variant_2"

[[pad]]
note = 53
action = "keep"

[[pad]]
note = 54
action = "discard"
"""
# DONE, FAILED: an LED's two slow flashes, then off; five fast ones, then off
ORIGINAL, VARIANT_1, VARIANT_2, KEEP, DISCARD = 50, 51, 52, 53, 54


def lit(pads: Controller, expected: dict[int, list[int]]) -> dict[int, list[int]]:
    """Wait until each pad's LED has been sent as many values as ``expected`` says; return what each was sent."""
    pads.wait_for_leds(lambda c: all(len(c.led_values(n)) >= len(v) for n, v in expected.items()), timeout=30)
    return {note: pads.led_values(note) for note in expected}


def test_pads_choose_keep_and_discard_the_last_job_and_light_the_chosen_take(jack, tmp_path,  # noqa: F811
                                                                             demo_song_path):
    project = Project(tmp_path / "project", demo_song_path)
    pads = Controller(f"pads-{jack.name[-6:]}")
    (project.root / "pads.toml").write_text(PADS, encoding="utf-8")
    project.write_config(f'[midi]\nport = "{pads.name}-pads*"\noutput_port = "{pads.name}-leds*"\n'
                         'mapping = "pads.toml"\napi = "UNIX_JACK"\npoll_interval = 0.2\n')
    daemon = DaemonProcess(project).start()
    try:
        pads.wait_joined(timeout=30)
        pads.note(VARIANT_1)  # nothing delivered yet: refused, and the pad says so
        assert lit(pads, {VARIANT_1: FAILED}) == {VARIANT_1: FAILED}

        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="",
                                        num_outputs=2, timeout=300)
            assert outcome.name == "done", outcome
            job, manifests = outcome.args[0], [Path(m) for m in outcome.args[1:]]
            decisions = project.drop / ".daw-bridge-decisions" / f"{job}.json"

            pads.note(VARIANT_1)
            assert lit(pads, {VARIANT_1: FAILED + [127]}) == {VARIANT_1: FAILED + [127]}
            assert json.loads(decisions.read_text())["choice"] == 1
            told = client.wait_for(lambda r: r.name == "decided", timeout=10)
            assert told.args == [job, "choose", 1, 1], "the job's sender (a plugin, say) hears the pad's choice"

            client.send("decide", job_id=job, decision="choose", choice=2)  # another trigger: the pads follow it
            assert client.wait_for(lambda r: r.name == "decided", timeout=10).args == [job, "choose", 2, 2]
            assert lit(pads, {VARIANT_1: FAILED + [127, 0], VARIANT_2: [127]}) == {
                VARIANT_1: FAILED + [127, 0], VARIANT_2: [127]}

            pads.note(KEEP)  # keeps the chosen take: variant 2 stays lit, the keep pad flashes
            assert lit(pads, {KEEP: DONE}) == {KEEP: DONE}
            kept = json.loads(decisions.read_text())
            assert (kept["decision"], kept["choice"], kept["seq"]) == ("keep", 2, 3)
            audio = json.loads(manifests[1].read_text())["audio"]
            assert (project.drop / "Kept" / audio).samefile(project.drop / audio)

            pads.note(DISCARD)  # back to the original
            assert lit(pads, {DISCARD: DONE, VARIANT_2: [127, 0], ORIGINAL: [127]}) == {
                DISCARD: DONE, VARIANT_2: [127, 0], ORIGINAL: [127]}
            assert json.loads(decisions.read_text())["decision"] == "discard"

            pads.note(VARIANT_1)  # a discarded job takes no more decisions
            assert lit(pads, {VARIANT_1: FAILED + [127, 0] + FAILED}) == {VARIANT_1: FAILED + [127, 0] + FAILED}
            assert json.loads(decisions.read_text())["seq"] == 4
            assert pads.led_values(ORIGINAL) == [127] and pads.led_values(KEEP) == DONE
    finally:
        daemon.stop()
        pads.close()
