"""Cancel is final: once the daemon answers "cancelled", nothing of that job ever reaches the drop folder.

The job is a MusicGPT inpaint (the fake service on loopback) of a 10-minute song delivered in full, two variants:
writing them takes seconds, so the cancel lands while the daemon delivers — either as soon as "delivering" is
announced, or once its first hidden temporary file shows (mid-write). After the answer the drop folder is watched
for several seconds: no WAV and no manifest of that job may ever show, and no hidden temporary file may be left.
(A temporary file still being written when the answer comes, or the rest of the variant being staged after it, is
tolerated while it stays hidden and goes away: the figures report it.) A cancel that comes after the delivery is
answered "already delivered" in one line, and the files stay.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import numpy as np
import pytest
import soundfile as sf

from tests.adversarial.money_scenarios import Stage, one_line
from tests.adversarial.support import files_under

LONG_S = 10 * 60
WATCH_S = 5.0  # how long the drop folder is watched after the answer


@pytest.fixture(scope="module")
def long_song(song_cache, demo_song_path):
    """10 minutes of the demo song, repeated: generated once a session (making it afresh takes far longer)."""
    path = song_cache / "long-song.wav"
    if not path.exists():
        info = sf.info(str(demo_song_path))
        audio, rate = sf.read(str(demo_song_path), dtype="float32", always_2d=True)
        with sf.SoundFile(str(path), "w", samplerate=rate, channels=audio.shape[1], subtype=info.subtype) as out:
            for _ in range(int(np.ceil(LONG_S * rate / len(audio)))):
                out.write(audio)
    return path


def _snapshot(stage: Stage) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(stage.project.drop)}


@pytest.mark.parametrize("when", ["delivering announced", "first file being written"])
def test_a_job_cancelled_while_it_delivers_leaves_nothing_in_the_drop_folder(when, tmp_path, demo_song_path,
                                                                          long_song, figures):
    with Stage(tmp_path / "project", demo_song_path) as stage:
        source = stage.project.audio / "long.wav"
        try:
            os.link(long_song, source)  # a symbolic link would lead out of the project roots, and be refused
        except OSError:
            shutil.copy(long_song, source)
        stage.start()
        job = stage.inpaint("long-full", source=str(source), start=400.0, end=404.0, delivery="full",
                            num_outputs=2)
        stage.wait_event(job, "delivering", timeout=120)
        if when == "first file being written":
            stage.wait_until("a temporary file in the drop folder", lambda: files_under(stage.project.drop) != [],
                             timeout=60)
        reply = stage.osc("cancel", job_id=job, timeout=10)
        answered = time.monotonic()
        there = {p.name for p in files_under(stage.project.drop)}  # being written as the answer came
        assert reply is not None, "no answer to the cancel"
        said = f"{reply.name} {reply.args}"
        if reply.name == "error" and "already delivered" in str(reply.args[-1]):
            pytest.fail("the delivery finished before the cancel arrived: the test's song is too short to cancel "
                        f"mid-delivery ({said})")
        seen: dict[str, float] = {}
        while (now := time.monotonic()) < answered + WATCH_S or not stage.record(job).state.finished:
            for path in files_under(stage.project.drop):
                seen.setdefault(path.name, round(now - answered, 2))
            if now > answered + 120:
                break
            time.sleep(0.01)
        record = stage.record(job)
        left = [p.name for p in files_under(stage.project.drop)]

    problems = []
    if not (reply.name == "state" and reply.args[1] == "cancelled"):
        problems.append(f"observed the cancel answered {said}; wanted a state reply saying cancelled")
    if record.state.value != "cancelled":
        problems.append(f"observed the job ended {record.state.value}; wanted cancelled")
    visible = {name: at for name, at in seen.items() if not name.startswith(".")}
    if visible:
        problems.append(f"observed files of the cancelled job in the drop folder (name: seconds after the answer): "
                        f"{visible}; wanted nothing")
    if left:
        problems.append(f"observed left in the drop folder: {left}; wanted nothing")
    staged_after = {name: at for name, at in seen.items() if name.startswith(".") and name not in there}
    figures.setdefault("cancel is final", {})[when] = (
        f"answer {said[:60]}; hidden files being written at the answer: {len(there)}, staged after it (then "
        f"removed): {len(staged_after)}{' ' + str(sorted(staged_after.values())) + ' s' if staged_after else ''}")
    assert problems == [], "\n".join(problems)


def test_a_cancel_after_delivery_is_answered_already_delivered_and_the_files_stay(tmp_path, demo_song_path):
    with Stage(tmp_path / "project", demo_song_path) as stage:
        stage.start()
        job = stage.inpaint("short", num_outputs=1)
        record = stage.settle(job)
        assert record.state.value == "delivered", record.summary()
        stage.project.pictured_drop_files()
        before = _snapshot(stage)
        assert sorted(name.rsplit(".", 1)[-1] for name in before) == ["json", "png", "wav"], before
        reply = stage.osc("cancel", job_id=job)
        cli = stage.cli("cancel", job)
        printed = (cli.stdout + cli.stderr).strip()
        after = _snapshot(stage)
        state = stage.record(job).state.value

    problems = []
    said = str(reply.args[-1]) if reply is not None else ""
    if reply is None or reply.name != "error" or "already delivered" not in said or not one_line(said):
        problems.append(f"observed /bridge/cancel answered {reply.name if reply else None} {said!r}; "
                        "wanted an error reply saying 'already delivered' in one line")
    if "already delivered" not in printed or not one_line(printed):
        problems.append(f"observed 'daw-bridge jobs cancel' printed {printed!r} (rc {cli.returncode}); "
                        "wanted one line saying 'already delivered'")
    if after != before or state != "delivered":
        problems.append(f"observed the files changed ({sorted(before)} -> {sorted(after)}) or the job became "
                        f"{state}; wanted them left as delivered")
    assert problems == [], "\n".join(problems)
