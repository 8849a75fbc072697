"""An outsider's probes of decisions and the audition on a drop folder the producer (or something else) changed by
hand: a decision never writes outside the project, never ends in a traceback or an internal error, never hangs on a
pipe, and leaves nothing behind; the audition never plays a file out of the project as a variant. The decision's file
work (``bridge.decisions._make``, which Decisions.decide runs in a thread) and the audition's programs are driven
directly on a job delivered by hand (tests/audition/jobs.py)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.audio.wavio import publish, stage_link
from bridge.audition.program import AuditionError, load_programs
from bridge.commands.jobs import _decision
from bridge.config import Config
from bridge.decisions import MAX_SEQ, _make, latest
from bridge.exceptions import BridgeError
from tests.audition.jobs import RATE, delivered_job
from tests.frontends.test_decide import decide
from tests.test_cli import daw_bridge


def delivered(tmp_path: Path):
    """(config, record, drop folder): a job delivered into ``<project>/drop``, the project the only root."""
    project = tmp_path / "project"
    drop = project / "drop"
    drop.mkdir(parents=True)
    record = delivered_job(drop, tempo=120.0)
    record.spec = replace(record.spec, drop_folder=drop)
    return Config(project_roots=(project,)), record, drop


def one_line_refusal(config, record, decision: str, choice: int | None = None) -> str:
    with pytest.raises(BridgeError) as refused:
        _make(config, record, decision, choice)
    assert "\n" not in str(refused.value) and not isinstance(refused.value, OverflowError)
    return str(refused.value)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_symlinked_decision_and_kept_folders_out_of_the_project_are_refused_and_nothing_is_written(tmp_path):
    config, record, drop = delivered(tmp_path)
    outside = tmp_path / "outside"
    (outside / "decs").mkdir(parents=True)
    (outside / "kept").mkdir()
    (drop / ".daw-bridge-decisions").symlink_to(outside / "decs")
    (drop / "Kept").symlink_to(outside / "kept")

    reason = one_line_refusal(config, record, "keep", 1)
    assert "outside the project roots" in reason and "nothing was decided" in reason
    assert sorted(outside.rglob("*")) == [outside / "decs", outside / "kept"], "nothing written out of the project"
    # only the Kept folder leads out: still refused before anything is written, the decision file too
    (drop / ".daw-bridge-decisions").unlink()
    one_line_refusal(config, record, "keep", 1)
    assert not (drop / ".daw-bridge-decisions").exists() and not any(outside.rglob("*.*"))
    # a choose writes no Kept link: the decisions folder alone is checked, and inside the project it is taken
    assert _make(config, record, "choose", 1).seq == 1
    # a dangling link out of the project is refused too (mkdir would have made its target)
    (drop / ".daw-bridge-decisions").rename(drop / "moved")
    (drop / ".daw-bridge-decisions").symlink_to(outside / "not-yet")
    one_line_refusal(config, record, "choose", 1)
    assert not (outside / "not-yet").exists()


def test_a_take_kept_twice_leaves_no_hidden_link_behind_and_the_kept_file_intact(tmp_path):
    config, record, drop = delivered(tmp_path)
    audio = drop / "song_v1.wav"
    content = audio.read_bytes()
    assert _make(config, record, "keep", 1).seq == 1
    assert _make(config, record, "keep", 1).seq == 2  # the same take again (a second press)
    assert _make(config, record, "keep", None).seq == 3
    kept = drop / "Kept" / "song_v1.wav"
    assert [p.name for p in (drop / "Kept").iterdir()] == ["song_v1.wav"], "no .part pinning the audio"
    assert kept.samefile(audio) and kept.read_bytes() == content and os.stat(audio).st_nlink == 2


def test_publish_of_a_link_onto_a_link_to_the_same_file_takes_the_temporary_away(tmp_path):
    source = tmp_path / "take.wav"
    source.write_bytes(b"RIFF audio")
    final = tmp_path / "Kept" / "take.wav"
    final.parent.mkdir()
    for _ in range(2):
        assert publish([(stage_link(final, source), final)]) == [final]
    assert [p.name for p in final.parent.iterdir()] == ["take.wav"] and final.samefile(source)
    assert final.read_bytes() == b"RIFF audio"


@pytest.mark.parametrize("edit", ['"seq": 1e400', '"choice": Infinity', '"seq": -Infinity', '"choice": NaN'])
def test_a_decision_file_edited_to_a_number_past_any_integer_is_unreadable_in_one_line(tmp_path, edit):
    config, record, drop = delivered(tmp_path)
    _make(config, record, "choose", 1)
    path = drop / ".daw-bridge-decisions" / "j-1.json"
    field = edit.split(":")[0]
    text = path.read_text(encoding="utf-8")
    damaged = "\n".join(f"  {edit}," if line.strip().startswith(field) else line for line in text.splitlines())
    assert damaged != text
    path.write_text(damaged, encoding="utf-8")

    reason = one_line_refusal(config, record, "choose", 0)
    assert reason.startswith(f"the decision file {path} cannot be read") and "move it away" in reason
    assert path.read_text(encoding="utf-8") == damaged
    with pytest.raises(BridgeError, match="move it away"):  # as the audition's check_not_settled reads it too
        latest(record)
    shown = _decision(record)  # daw-bridge jobs show: the reason in its JSON, no traceback
    assert set(shown) == {"error"} and "\n" not in shown["error"] and "move it away" in shown["error"]


def test_the_highest_decision_number_is_never_published_so_the_job_s_own_file_stays_readable(tmp_path):
    config, record, drop = delivered(tmp_path)
    _make(config, record, "choose", 1)
    path = drop / ".daw-bridge-decisions" / "j-1.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "seq": MAX_SEQ - 2}), encoding="utf-8")
    assert _make(config, record, "choose", 0).seq == MAX_SEQ - 1  # the last one that can be numbered
    published = path.read_text(encoding="utf-8")

    reason = one_line_refusal(config, record, "choose", 1)
    assert reason.startswith("job j-1: no decision can follow decision 2147483646") and "nothing was decided" in reason
    assert path.read_text(encoding="utf-8") == published and latest(record).seq == MAX_SEQ - 1
    assert hidden(drop / ".daw-bridge-decisions") == []

    # a DAW script's ledger recording that decision: the file moved away, the next is still refused, nothing written
    path.rename(drop / "j-1.json.moved")
    (drop / ".reaper-decided").write_text(f"j-1 {MAX_SEQ - 1}\n", encoding="utf-8")
    one_line_refusal(config, record, "keep", 1)
    assert not path.exists() and not (drop / "Kept").exists()


def decided_with_a_pipe_at(fifo: Path, config, record) -> tuple[bool, object]:
    """A choose on ``record`` with a pipe at ``fifo``, in a thread given 10 s: (whether it finished, the decision
    made or the exception raised). A reader the old code left waiting to open the pipe is then given a writer."""
    os.mkfifo(fifo)
    outcome: list = []

    def run():
        try:
            outcome.append(_make(config, record, "choose", 1))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10.0)
    finished = not thread.is_alive()
    release(fifo)
    return finished, outcome[0] if outcome else None


def release(fifo: Path) -> None:
    """Give a reader stuck opening ``fifo`` a writer that goes away at once (the old code's hang ends)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waits
        pass


@pytest.mark.parametrize("name", [".ardour-decided", ".reaper-decided"])
def test_a_fifo_named_as_a_daw_ledger_is_no_ledger_and_holds_no_decision(tmp_path, name):
    config, record, drop = delivered(tmp_path)
    finished, made = decided_with_a_pipe_at(drop / name, config, record)
    assert finished, "the decision waits on the pipe for a writer"
    assert made.seq == 1, made  # an unreadable ledger counts as none, as the module says


def test_a_fifo_in_place_of_the_decision_file_is_unreadable_in_one_line(tmp_path):
    config, record, drop = delivered(tmp_path)
    (drop / ".daw-bridge-decisions").mkdir()
    finished, refused = decided_with_a_pipe_at(drop / ".daw-bridge-decisions" / "j-1.json", config, record)
    assert finished, "the decision waits on the pipe for a writer"
    assert isinstance(refused, BridgeError) and "move it away" in str(refused) and "\n" not in str(refused)


@pytest.mark.parametrize("span_start", [1e305, -1e305, 1e15])
def test_a_manifest_whose_span_start_lies_nowhere_in_a_song_is_refused_in_one_line(tmp_path, span_start):
    record = delivered_job(tmp_path, tempo=120.0)
    manifest = tmp_path / "song_v1.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "source": {"span_start": span_start}}))
    with pytest.raises(AuditionError, match=r"^job j-1: the manifest song_v1.json is damaged") as refused:
        load_programs(record, RATE, 2, 1)
    assert "\n" not in str(refused.value)


def test_a_variant_replaced_by_a_link_to_a_file_out_of_the_project_is_not_played(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    record = delivered_job(project, tempo=120.0)
    load_programs(record, RATE, 2, 1)  # as delivered: played
    outside = tmp_path / "outside" / "private.wav"
    outside.parent.mkdir()
    (project / "song_v1.wav").rename(outside)  # same length, rate and channels: every other check passes
    (project / "song_v1.wav").symlink_to(outside)
    with pytest.raises(AuditionError, match=r"^the variant's audio .*song_v1.wav now leads to .*private.wav") as no:
        load_programs(record, RATE, 2, 1)
    assert "\n" not in str(no.value)


def test_with_the_roots_given_a_variant_reached_through_a_linked_drop_folder_is_not_played(tmp_path):
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    record = delivered_job(outside, tempo=120.0)  # the manifest and its audio lie out of the project
    (project / "drop").symlink_to(outside)
    record.manifests = [str(project / "drop" / "song_v1.json")]
    config = Config(project_roots=(project,))
    with pytest.raises(AuditionError, match="now leads to"):
        load_programs(record, RATE, 2, 1, config=config)
    load_programs(record, RATE, 2, 1, config=Config(project_roots=(tmp_path,)))  # inside the roots: played


# -- the same through a running daemon and the CLI ----------------------------------------------------------------


def test_through_the_daemon_each_damage_is_refused_in_one_line_and_the_daemon_goes_on(project, daemon, client):
    outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", num_outputs=1,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    outside = project.root.parent / "outside"
    (outside / "decs").mkdir(parents=True)
    (outside / "kept").mkdir()
    (project.drop / ".daw-bridge-decisions").symlink_to(outside / "decs")
    (project.drop / "Kept").symlink_to(outside / "kept")
    refused = decide(client, job, "keep", "choice", 1)
    assert refused.name == "error" and "outside the project roots" in refused.args[-1], refused
    assert "\n" not in refused.args[-1] and sorted(outside.rglob("*")) == [outside / "decs", outside / "kept"]
    (project.drop / ".daw-bridge-decisions").unlink()
    (project.drop / "Kept").unlink()

    os.mkfifo(project.drop / ".ardour-decided")
    try:
        assert decide(client, job, "keep", "choice", 1).args == [job, "keep", 1, 1]  # the pipe is no ledger
        assert decide(client, job, "keep", "choice", 1).args == [job, "keep", 1, 2]
    finally:
        release(project.drop / ".ardour-decided")
    audio = json.loads(Path(outcome.args[1]).read_text(encoding="utf-8"))["audio"]
    assert [p.name for p in (project.drop / "Kept").iterdir()] == [audio], "kept twice: no hidden link left"

    path = project.drop / ".daw-bridge-decisions" / f"{job}.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"seq": 2', '"seq": 1e400'), encoding="utf-8")
    refused = decide(client, job, "keep", "choice", 1)
    assert refused.name == "error" and "move it away" in refused.args[-1] and "internal" not in refused.args[-1]
    shown = daw_bridge("jobs", "show", job, "--config", str(project.config), timeout=60)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "move it away" in json.loads(shown.stdout)["decision"]["error"]
    assert client.ping(timeout=5)
    log = daemon.log.read_text(encoding="utf-8")
    assert "Traceback" not in log and "internal" not in log
