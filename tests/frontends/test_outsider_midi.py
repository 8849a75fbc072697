"""What a hardware controller really sends, through a real JACK server: note offs as note ons at velocity 0, channel
16, a DAW's clock (24 per quarter note at 300 BPM) and sysex around a press, a pressure pad in CC mode whose value
wobbles across 64 while held. One press starts one job, and the daemon keeps answering."""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading

import mido

from bridge.commands.midi import add_arguments, midi
from bridge.config import Config
from bridge.models import State
from tests.adversarial.support import read_only
from tests.conftest import fuse_share, require_tool, share_down
from tests.frontends.jack import Controller, jack  # noqa: F401  (jack: a fixture)
from tests.frontends.test_midi import MAPPING, controller, leds, no_midi_server, presses, rig, until  # noqa: F401  (fixtures)

PADS = MAPPING + """
[[pad]]
note = 50
channel = 16
command = "inpaint"
num_outputs = 1

[[pad]]
cc = 1
command = "inpaint"
num_outputs = 1
"""


def test_velocity_zero_note_offs_channel_16_and_a_clock_flood_press_once_each(tmp_path, demo_song_path, controller):  # noqa: F811
    async def story():
        async with rig(tmp_path, demo_song_path, mapping=PADS) as r:
            await asyncio.to_thread(controller.wait_joined)
            clock = mido.Message("clock")
            # a DAW's clock at 300 BPM runs through the controller's port while the producer plays pads
            for beat in range(16):
                for _ in range(24):
                    controller.send(clock)
                if beat == 3:  # a press whose release is a note on at velocity 0 (running status on the wire)
                    controller.send(mido.Message("note_on", note=36, channel=9, velocity=90))
                    controller.send(mido.Message("note_on", note=36, channel=9, velocity=0))
                if beat == 7:
                    controller.send(mido.Message("sysex", data=[0x42, 0x40, 0x00, 0x01] + [0x10] * 200))
                    controller.send(mido.Message("active_sensing"))
                if beat == 9:
                    controller.send(mido.Message("note_on", note=50, channel=15, velocity=127))
                    controller.send(mido.Message("note_off", note=50, channel=15))
            await until(lambda: len(r.jobs()) == 2, what="two jobs")
            await r.service.drain()
            assert await leds(controller, 50, [127, 127, 0, 127, 0, 0])  # lit on channel 16's pad
            return r.jobs(), [m for _, m in controller.leds if m.type == "note_on" and m.note == 50]

    jobs, lit = asyncio.run(story())
    assert len(jobs) == 2 and all(j.state is State.DELIVERED for j in jobs)
    assert {m.channel for m in lit} == {15}


def test_a_pressure_pad_or_a_continuous_pedal_wobbling_across_64_presses_once(tmp_path, demo_song_path, controller,  # noqa: F811
                                                                             caplog):
    caplog.set_level(logging.INFO, logger="bridge")

    async def story():
        async with rig(tmp_path, demo_song_path, mapping=PADS) as r:
            await asyncio.to_thread(controller.wait_joined)
            cc = lambda value: controller.send(mido.Message("control_change", control=1, value=value))  # noqa: E731
            # one push of a half-damper pedal (or a pressure pad in CC mode): it rises, wobbles around 64, falls
            for value in (12, 40, 71, 90, 66, 62, 67, 61, 65, 40, 10, 0):
                cc(value)
            for value in (30, 100, 0):  # a second, real push
                cc(value)
            controller.send(mido.Message("note_on", note=50, channel=15, velocity=127))  # then another pad, last
            await until(lambda: any(j.origin["pad"].startswith("note 50") for j in r.jobs()), what="the last pad")
            await r.service.drain()
            return presses(r, caplog)

    pads = asyncio.run(story())
    assert sorted(pads) == ["cc 1 on any channel"] * 2 + ["note 50 on channel 16"], pads


def test_a_controller_unplugged_with_a_button_held_presses_again_once_plugged_back(tmp_path, demo_song_path,
                                                                                     jack):  # noqa: F811
    async def story():
        async with rig(tmp_path, demo_song_path, mapping=PADS) as r:
            for plug in range(2):
                pads = Controller("padbox")
                try:
                    await until(lambda: r.frontend.input is not None, 5, "the controller to be picked up")
                    await asyncio.to_thread(pads.wait_joined)
                    # the footswitch goes down; the cable is pulled before it comes up (its release is never sent)
                    pads.send(mido.Message("control_change", control=1, value=127))
                    await until(lambda: len(r.jobs()) == plug + 1, what="the press")
                finally:
                    pads.close()
                await until(lambda: r.frontend.input is None, 5, "the frontend to let go of the vanished port")
            await r.service.drain()
            return r.jobs()

    jobs = asyncio.run(story())
    assert len(jobs) == 2  # plugged back in, the controller starts from nothing held


def _learn(tmp_path, mapping, *argv: str, pressing: Controller | None = None) -> int:
    config = Config(state_dir=tmp_path / "state", midi={"port": "padbox-pads", "api": "UNIX_JACK",
                                                        "mapping": str(mapping)})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    result = []
    worker = threading.Thread(target=lambda: result.append(midi(config, parser.parse_args(["learn", *argv]))))
    worker.start()
    while worker.is_alive():  # the producer keeps hitting the pad until the learn has an answer
        if pressing is not None:
            pressing.note(46, channel=3)
        worker.join(0.05)
    return result[0]


def test_learn_names_a_mapping_it_cannot_read_before_asking_for_a_press(tmp_path, no_midi_server, capsys):  # noqa: F811
    mapping = tmp_path / "pads.toml"
    mapping.write_bytes(b"\xff\xfe[[pad]]\n")  # saved as UTF-16 by an editor
    assert _learn(tmp_path, mapping, "--timeout", "1") == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"daw-bridge midi learn: {mapping}: cannot be read: "), out
    assert "press the pad" not in out
    mapping.write_text('[[pad]]\nnote = 36\naction = "explode"\n')  # one the daemon would refuse at start
    assert _learn(tmp_path, mapping, "--timeout", "1") == 2
    assert "action: 'explode' must be one of" in capsys.readouterr().out


def test_learn_into_a_read_only_folder_says_the_file_failed_not_midi(tmp_path, controller, capsys):  # noqa: F811
    folder = tmp_path / "config"
    with read_only(folder):
        assert _learn(tmp_path, folder / "pads.toml", "--action", "cancel", pressing=controller) == 2
    out = capsys.readouterr().out
    assert "heard note 46 on channel 3" in out and "MIDI is not available" not in out, out
    assert out.splitlines()[-1] == (f"daw-bridge midi learn: {folder / 'pads.toml'}: cannot be written (Read-only "
                                    "file system): add the entry above by hand"), out
    assert '[[pad]]\nnote = 46\nchannel = 3\naction = "cancel"\n' in out


def test_a_choose_pad_mapped_on_any_channel_lights_on_the_channel_the_controller_uses(tmp_path, demo_song_path,
                                                                                      controller):  # noqa: F811
    choose = '\n[[pad]]\nnote = 51\naction = "choose_variant_1"\n'  # no channel: "answer on any channel"

    async def story():
        async with rig(tmp_path, demo_song_path, mapping=PADS + choose, decisions=True) as r:
            await asyncio.to_thread(controller.wait_joined)
            controller.note(36, channel=10)  # a drum-pad controller: everything on channel 10
            await until(lambda: r.jobs(), what="the job")
            await r.service.drain()
            controller.note(51, channel=10)
            await until(lambda: any(m.type == "note_on" and m.note == 51 and m.velocity == 127
                                    for _, m in controller.leds), what="the chosen take's LED")
            return [(m.channel + 1, m.velocity) for _, m in controller.leds if m.type == "note_on" and m.note == 51]

    lit = asyncio.run(story())
    assert lit == [(10, 127)], lit  # where the controller listens, not on channel 1


def test_a_pad_learned_while_the_daemon_runs_works_without_a_restart(tmp_path, demo_song_path, controller, caplog):  # noqa: F811
    """The producer runs 'daw-bridge midi learn' beside the running daemon and presses the new pad: it runs its job.
    Then a save that breaks the file is said once, and the pads keep the mapping they had."""
    caplog.set_level(logging.INFO, logger="bridge")
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    async def story():
        async with rig(tmp_path, demo_song_path) as r:
            await asyncio.to_thread(controller.wait_joined)
            mapping = r.frontend.settings.mapping
            learning = Config(state_dir=tmp_path / "learn-state",
                              midi={"port": "padbox-pads", "api": "UNIX_JACK", "mapping": str(mapping)})
            learned = []
            learn = threading.Thread(target=lambda: learned.append(midi(learning, parser.parse_args(
                ["learn", "--set", "num_outputs=1", "--name", "new"]))))
            learn.start()
            while learn.is_alive():  # pressed until the learn hears it; the daemon hears these too (not mapped yet)
                controller.note(45, channel=2)
                await asyncio.to_thread(learn.join, 0.05)
            assert learned == [0]
            await until(lambda: "read again" in caplog.text, what="the mapping read again")
            controller.note(45, channel=2)
            await until(lambda: any(j.origin["pad"] == "new (note 45 on channel 2)" for j in r.jobs()),
                        what="the new pad's job")

            mapping.write_text(mapping.read_text() + "\n[[pad]]\nnote = \n", encoding="utf-8")
            await until(lambda: "not taken up" in caplog.text, what="the broken mapping said")
            return r.frontend.mapping.find("note", 45, 2), r.frontend.mapping.find("note", 36, 10)

    learned_pad, first_pad = asyncio.run(story())
    assert learned_pad is not None and learned_pad.name == "new" and first_pad is not None
    said = [rec.getMessage() for rec in caplog.records if "not taken up" in rec.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and "line" in said[0], said


def test_a_mapping_on_a_share_that_stops_answering_holds_no_controller_up(tmp_path, demo_song_path, jack):  # noqa: F811
    """The mapping lies on a NAS that goes down while the daemon runs: looking whether it changed waits for the share,
    and a controller plugged in meanwhile is still picked up."""
    bindfs = require_tool("bindfs")
    nas, share = tmp_path / "nas", tmp_path / "share"
    nas.mkdir()
    share.mkdir()
    (nas / "pads.toml").write_text(PADS, encoding="utf-8")

    async def story(server):
        async with rig(tmp_path, demo_song_path, mapping=PADS, midi={"mapping": str(share / "pads.toml")}) as r:
            assert r.frontend.input is None  # no controller yet
            with share_down(server):
                await asyncio.sleep(1.0)  # ten looks at the mapping: one of them now waits for the share
                late = await asyncio.to_thread(Controller, "padbox")
                try:
                    await until(lambda: r.frontend.input is not None, timeout=20, what="the controller picked up")
                finally:
                    late.close()

    with fuse_share(bindfs, nas, share) as server:
        asyncio.run(story(server))
