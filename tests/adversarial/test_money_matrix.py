"""One job, one paid MusicGPT task, on every path that can reach a submit.

Each row of the matrix (``money_scenarios.SCENARIOS``; ``bench/money_matrix.py`` prints the same rows as a table)
runs the real daemon process against the fake MusicGPT service on loopback, with real SIGKILL, real OSC and the
real ``daw-bridge jobs`` CLI, and counts the tasks the fake created. A row fails with every promise it saw broken,
each as "observed ...; wanted ...".

Below the matrix, the spend ledger on its own: whatever asks it, it refuses a second intent for a job whose last
submit was accepted or may have been (intent, unknown).
"""

from __future__ import annotations

import pytest

from bridge.backends.musicgpt.spend import SpendGuard
from bridge.demo_song import make_song
from bridge.exceptions import BridgeError
from tests.adversarial.money_scenarios import SCENARIOS, run_scenario

@pytest.fixture(scope="module")
def short_song(song_cache):
    """A 24 s generated song: the 12-16 s inpaint has context on both sides, and every row stays quick."""
    return make_song(song_cache / "money-matrix.wav", seconds=24.0)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_path_to_a_submit_creates_exactly_one_task(name, tmp_path, short_song, figures):
    outcome = run_scenario(SCENARIOS[name], tmp_path / "project", short_song)
    figures.setdefault("money matrix", {})[name] = (
        f"{outcome.tasks} task(s), {outcome.posts} POST(s), {outcome.state or 'no job'}: {' > '.join(outcome.story)}")
    assert outcome.problems == [], "\n".join(outcome.problems)


# -- the spend ledger on its own -------------------------------------------------------------------------------------

def _ledger(tmp_path) -> SpendGuard:
    return SpendGuard(tmp_path / "musicgpt" / "musicgpt-spend.sqlite")


def _settle(guard: SpendGuard, entry: int, state: str) -> None:
    if state == "accepted":
        guard.record_accepted(entry, "task-1", 0.1)
    elif state == "unknown":
        guard.record_unknown(entry, "the answer was lost")
    elif state == "refused":
        guard.record_refused(entry, "HTTP 422")
    elif state == "resolved":
        guard.record_unknown(entry, "the answer was lost")
        guard.record_resolved("job-a", "task-1")
    # "intent": left as written, as a crash between writing it and the answer leaves it


@pytest.mark.parametrize("last", ["accepted", "unknown", "intent", "resolved"])
def test_the_ledger_refuses_a_second_submit_of_a_job_that_may_have_paid(last, tmp_path):
    guard = _ledger(tmp_path)
    _settle(guard, guard.record_intent("job-a", "inpaint"), last)
    before = guard.entries("job-a")
    with pytest.raises(BridgeError) as refused:
        guard.record_intent("job-a", "inpaint")
    assert refused.value.code != "spend_limit", "refused for the wrong reason: no limit is set"
    assert "job-a" in str(refused.value), f"the refusal does not name the job: {refused.value}"
    assert guard.entries("job-a") == before, "the refused intent was written down anyway"
    # Another ledger on the same file (a second daemon, the CLI) refuses it too: the refusal lives in the file.
    with pytest.raises(BridgeError):
        _ledger(tmp_path).record_intent("job-a", "extend")
    # Other jobs are not held back by it.
    assert _ledger(tmp_path).record_intent("job-b", "inpaint") > 0


def test_the_ledger_lets_a_refused_submit_be_sent_again(tmp_path):
    """A documented refusal (400/401/402/403/422/429) proves nothing was created: one more intent is fine."""
    guard = _ledger(tmp_path)
    _settle(guard, guard.record_intent("job-a", "inpaint"), "refused")
    second = guard.record_intent("job-a", "inpaint")
    assert [e["state"] for e in guard.entries("job-a")] == ["refused", "intent"]
    guard.record_accepted(second, "task-2", 0.1)
    with pytest.raises(BridgeError):
        guard.record_intent("job-a", "inpaint")
