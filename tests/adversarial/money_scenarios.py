"""The money matrix: every way a MusicGPT job can reach a submit, each run through the real path.

Shared by ``tests/adversarial/test_money_matrix.py`` (one test per scenario) and ``bench/money_matrix.py`` (the
table): both run exactly this code. A scenario drives one project as a producer would — the real daemon process
(``python3 -m bridge serve``), the fake MusicGPT service on loopback with a fault queued, OSC through
``BridgeClient``, the CLI as a subprocess (``python3 -m bridge jobs retry|resolve|cancel ...``), SIGKILL of the
daemon — and reports what the fake counted: tasks created, which is what MusicGPT charges for.

The promise under test: one job, one task. Only the producer's explicit ``--not-submitted`` (after a server answer
that leaves the task's existence open) or a refusal the contract documents as "before work starts" (400, 401,
402, 403, 422, 429) may be followed by another POST; everything else — a 5xx, a dropped or timed-out answer, a
crash, a retry, a duplicated command or request file, a cancel mid-POST — must end with one task on the fake.

A scenario never stops at the first broken promise: each one it meets is written down as "observed ...; wanted
...", and the scenario goes on as the producer would (resolving with the task id the dashboard shows) so the table
shows the whole story and the count of tasks at the end.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.backends.musicgpt.spend import SpendGuard
from bridge.client import BridgeClient, Reply
from bridge.core.journal import Journal
from bridge.exceptions import BridgeError
from bridge.models import JobRecord
from tests.adversarial.support import Daemon, musicgpt_table
from tests.conftest import ROOT, Project, daemon_environment
from tests.fakes.musicgpt import FakeMusicGPT
from tests.frontends.test_inbox import drop_request

API_KEY = "sk-FAKE-money-matrix-5a4b3c2d1e0f"
REFUSALS = (400, 401, 402, 403, 422)  # the contract's "refused before work starts" (429 is retried: its own row)
AFTER_ACCEPT = (500, 502, 503, 504)  # the task was created, then the server answered this
KILL_STATES = ("accepted", "exporting", "submitting", "submitting, paid", "submitted", "generating", "delivering")


class ScenarioFailed(AssertionError):
    """The scenario could not go on (something it waits for never came); the message says what was seen."""


@dataclass
class Outcome:
    """What one path through the daemon came to."""

    path: str
    tasks: int = 0  # tasks the fake created (paid for)
    posts: int = 0  # submit POSTs the fake received, whatever their fate
    jobs: int = 0  # jobs the journal holds
    state: str = ""  # the final state of each job, comma separated
    story: list[str] = field(default_factory=list)  # the states and answers the producer saw, in order
    problems: list[str] = field(default_factory=list)  # broken promises: "observed ...; wanted ..."
    want_tasks: int = 1
    want_state: str = "delivered"

    def broke(self, observed: str, wanted: str) -> None:
        self.problems.append(f"observed {observed}; wanted {wanted}")

    def check_end(self) -> None:
        """The promise every path shares: tasks and final state as wanted (added to ``problems`` when not)."""
        if self.tasks != self.want_tasks:
            self.broke(f"{self.tasks} task(s) on MusicGPT for {self.jobs} job(s)", f"{self.want_tasks}")
        if self.state != self.want_state:
            self.broke(f"final state {self.state!r}", repr(self.want_state))


class Stage:
    """One project, one fake MusicGPT and the real daemon serving them, driven as the producer would.

    ``settings`` go to the ``[musicgpt]`` table (on top of the suite's fast delays); ``config`` is appended to the
    daemon's config. Use as a context manager: the daemon and the fake are stopped on the way out, whatever happened.
    """

    def __init__(self, root: Path, song: Path, *, settings: dict | None = None, config: str = "",
                 verbose: bool = False, api_key: str = API_KEY, time_scale: float = 0.01, eta: int = 20):
        self.project = Project(root, song)
        self.fake = FakeMusicGPT(api_key=api_key, time_scale=time_scale, eta=eta)
        self.settings = {"http_timeout_s": 2.0, **(settings or {})}
        self.config = config
        self.verbose = verbose
        self.env = {"MUSICGPT_API_KEY": api_key}
        self.daemon: Daemon | None = None
        self.client: BridgeClient | None = None
        self.cli_outputs: list[str] = []  # every CLI run's command and output, for the secrets checks
        self._journal: Journal | None = None

    def __enter__(self) -> Stage:
        self.fake.start()
        # The engine's warm worker is not needed by MusicGPT jobs; without it a daemon stops in a blink.
        self.project.write_config('backend = "musicgpt"\n' + self.config + "\n[local]\nwarm_up = false\n"
                                  + musicgpt_table(self.fake.url, **self.settings))
        self.client = BridgeClient("127.0.0.1", self.project.port)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            if self._journal is not None:
                self._journal.close()
            if self.client is not None:
                self.client.close()
            self.fake.stop()

    # -- the daemon ----------------------------------------------------------------------------------------------

    def start(self) -> Daemon:
        self.daemon = Daemon(self.project, env=self.env, verbose=self.verbose).start()
        return self.daemon

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut of the process."""
        if self.daemon is not None and self.daemon.alive():
            self.daemon.kill()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    # -- what the producer does ----------------------------------------------------------------------------------

    def inpaint(self, request_id: str, **extra) -> str:
        """Send an inpaint over OSC; its job id once accepted."""
        values = {"source": str(self.project.song), "start": 12.0, "end": 16.0, "prompt": "brass stabs",
                  "num_outputs": 1, "request_id": request_id}
        values.update(extra)
        self.client.send("inpaint", **values)
        reply = self.client.wait_for(lambda r: r.name in ("accepted", "error") and r.args[1:2] != [] and
                                     request_id in r.args[:2], timeout=30)
        if reply is None or reply.name != "accepted":
            raise ScenarioFailed(f"inpaint {request_id} not accepted: {reply}")
        return reply.args[1]

    def wait_event(self, job_id: str, state: str, timeout: float = 120) -> Reply:
        """The job's own reply (to the client that sent it) announcing ``state``; fails on an outcome before it."""
        def seen(reply: Reply) -> bool:
            if reply.name in ("failed", "done") and reply.args[0] == job_id:
                raise ScenarioFailed(f"job {job_id} ended before {state}: {reply.name} {reply.args}")
            return (reply.name == "accepted" and state == "accepted" and reply.args[1] == job_id) or \
                (reply.name == "state" and reply.args[0] == job_id and reply.args[1] == state)

        reply = self.client.wait_for(seen, timeout=timeout)
        if reply is None:
            raise ScenarioFailed(f"job {job_id} never announced {state}; journal: {self._describe(job_id)}")
        return reply

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``daw-bridge jobs ARGS`` as the producer types it (its own process)."""
        return self.bridge("jobs", *args, timeout=timeout)

    def bridge(self, command: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """``daw-bridge COMMAND ARGS --config ...`` in its own process; its output is kept in ``cli_outputs``."""
        result = subprocess.run([sys.executable, "-m", "bridge", command, *args, "--config", str(self.project.config)],
                                env=daemon_environment(self.env), cwd=ROOT, capture_output=True, text=True,
                                timeout=timeout, check=False)
        self.cli_outputs.append(f"$ daw-bridge {command} {' '.join(args)}\n{result.stdout}{result.stderr}")
        return result

    def osc(self, name: str, timeout: float = 30, **values) -> Reply | None:
        """A command from a socket of its own, so the direct answer is not mixed with the job's event stream."""
        with BridgeClient("127.0.0.1", self.project.port) as other:
            other.send(name, **values)
            return other.wait_for(lambda r: r.name in ("state", "error"), timeout=timeout)

    def resolve_from_dashboard(self, job_id: str, outcome: Outcome) -> subprocess.CompletedProcess:
        """What the producer does with a job in submission_unknown: look on the dashboard, resolve accordingly."""
        task = self.task_of(job_id)
        result = self.cli("resolve", job_id, *(["--task-id", task] if task else ["--not-submitted"]))
        outcome.story.append(f"resolve {'--task-id' if task else '--not-submitted'}: rc {result.returncode}")
        return result

    # -- what is seen ----------------------------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self.project.state / "journal.sqlite")
        return self._journal

    def record(self, job_id: str) -> JobRecord:
        record = self.journal.get(job_id)
        if record is None:
            raise ScenarioFailed(f"no job {job_id} in the journal")
        return record

    def records(self) -> list[JobRecord]:
        return list(reversed(self.journal.recent(10_000)))

    def settle(self, job_id: str, timeout: float = 120, leave: str | None = None) -> JobRecord:
        """The job's record once it is finished or waits for the producer (and, given ``leave``, is past it). The
        deadlines here are bounds for a loaded CI machine (a job that takes 3 s here took ten times as long there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.record(job_id)
            if (record.state.finished or record.state.waiting_for_producer) and record.state.value != leave:
                return record
            time.sleep(0.05)
        raise ScenarioFailed(f"job {job_id} never settled: {self._describe(job_id)}")

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"never saw {what}")
            time.sleep(0.02)

    def task_of(self, job_id: str) -> str | None:
        """The task MusicGPT's dashboard shows for this job: the fake's task, if it created one (one job a stage)."""
        return next(iter(self.fake.tasks), None)

    def ledger(self, job_id: str) -> list[dict]:
        """The spend ledger's rows for the job (state_dir/musicgpt/musicgpt-spend.sqlite, table submits), oldest
        first."""
        path = self.project.state / "musicgpt" / "musicgpt-spend.sqlite"
        return SpendGuard(path).entries(job_id) if path.exists() else []

    def finish(self, outcome: Outcome, job_ids: list[str] | None = None) -> Outcome:
        """Fill in the counts and the final states; check the shared promise."""
        records = self.records()
        wanted = [r for r in records if job_ids is None or r.job_id in job_ids] if job_ids else records
        outcome.tasks = self.fake.total_submits
        outcome.posts = sum(self.fake.submit_requests.values())
        outcome.jobs = len(records)
        outcome.state = ", ".join(r.state.value for r in wanted)
        for record in wanted:
            rows = self.ledger(record.job_id)
            outcome.story.append("ledger " + ("+".join(row["state"] for row in rows) or "empty"))
            if record.state.value != "delivered":
                continue
            # The ledger knows the one task that was paid for, and nothing left open about this job.
            accepted = [row["task_id"] for row in rows if row["state"] == "accepted"]
            task_id = (record.receipt or {}).get("task_id")
            if accepted != [task_id] or any(row["state"] in ("intent", "unknown") for row in rows):
                outcome.broke(f"the spend ledger of a delivered job holds {[(r['state'], r['task_id']) for r in rows]}",
                              f"one accepted row with its task {task_id}, no intent or unknown left")
        outcome.check_end()
        return outcome

    def _describe(self, job_id: str) -> str:
        try:
            record = self.journal.get(job_id)
        except (BridgeError, sqlite3.Error) as exc:  # the journal itself is part of what may be broken
            return f"journal unreadable: {exc}"
        if record is None:
            return "no such job"
        return f"{record.state.value} {record.error_code or ''} {record.error_message or record.message or ''}"


# -- checks shared by several paths ----------------------------------------------------------------------------------

def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


def retry_is_refused(stage: Stage, job_id: str, outcome: Outcome, *, by: str = "cli") -> None:
    """A retry of a job whose submit may have been paid for must be refused, in one line that says to resolve."""
    before = stage.record(job_id).state.value
    if by == "cli":
        result = stage.cli("retry", job_id)
        said = (result.stdout + result.stderr).strip()
        refused = result.returncode != 0
        outcome.story.append(f"jobs retry {'refused' if refused else 'ran'} (rc {result.returncode})")
    else:
        reply = stage.osc("retry", job_id=job_id)
        said = str(reply.args[-1]) if reply is not None else "no answer"
        refused = reply is not None and reply.name == "error"
        answered = "refused" if refused else "answered " + (reply.name if reply else "nothing")
        outcome.story.append(f"/bridge/retry {answered}")
    if not (refused and one_line(said) and "resolve" in said.lower()):
        outcome.broke(f"retry of the job (in state {before}) answered {said[:160]!r}",
                      "refused, in one line telling to resolve (jobs resolve JOB --task-id ID | --not-submitted)")


def unknown_then_resolved(stage: Stage, job_id: str, outcome: Outcome, *, tasks_before: int) -> None:
    """The common tail of an answer lost after the task was (or may have been) created: submission_unknown, no
    automatic resubmit, retry refused (CLI and OSC), then the producer resolves and the job is delivered."""
    record = stage.settle(job_id)
    outcome.story.append(record.state.value)
    if record.state.value != "submission_unknown":
        outcome.broke(f"the job ended {record.state.value} ({record.error_code}: {record.error_message})",
                      "submission_unknown, waiting for the producer")
    if stage.fake.total_submits != tasks_before:
        outcome.broke(f"{stage.fake.total_submits} task(s) before the producer acted", f"{tasks_before}")
    if record.state.value in ("submission_unknown", "failed"):
        retry_is_refused(stage, job_id, outcome, by="cli")
        retry_is_refused(stage, job_id, outcome, by="osc")
    if stage.record(job_id).state.value == "submission_unknown":
        stage.resolve_from_dashboard(job_id, outcome)
    outcome.story.append(stage.settle(job_id, leave="submission_unknown").state.value)


# -- the scenarios ---------------------------------------------------------------------------------------------------

def first_run(stage: Stage, outcome: Outcome) -> None:
    stage.start()
    job = stage.inpaint("first")
    outcome.story.append(stage.settle(job).state.value)


def kill_at(state: str) -> Callable[[Stage, Outcome], None]:
    """SIGKILL the daemon the moment the job announces ``state``, restart it, resolve as the producer would."""
    def scenario(stage: Stage, outcome: Outcome) -> None:
        stage.fake.slow_factor = 5.0  # a second of generating: the kill lands inside it
        if state.startswith("submitting"):  # MusicGPT takes (and charges for) the task, then its answer hangs
            stage.fake.inject("submit", "timeout_after_accept", seconds=30)
        stage.start()
        job = stage.inpaint(f"kill-{state}")
        if state != "accepted":  # the accepted reply is the one inpaint() waited for: kill at once
            stage.wait_event(job, state.split(",")[0])
        if state == "submitting, paid":
            stage.wait_until("the task created", lambda: stage.fake.total_submits >= 1, timeout=10)
        stage.kill()
        outcome.story.append(f"killed at {stage.record(job).state.value} ({stage.fake.total_submits} task)")
        stage.start()
        record = stage.settle(job)
        outcome.story.append(record.state.value)
        if stage.fake.total_submits == 0 and stage.fake.clear_faults("submit"):
            # the kill came before the POST left (a loaded machine): its hanging answer is not the resubmit's
            outcome.story.append("no POST had arrived")
        if record.state.waiting_for_producer:
            stage.resolve_from_dashboard(job, outcome)
            outcome.story.append(stage.settle(job, leave="submission_unknown").state.value)
    return scenario


def _failed_with_task(stage: Stage, job: str, outcome: Outcome, code: str) -> None:
    record = stage.settle(job)
    outcome.story.append(f"{record.state.value} ({record.error_code})")
    if record.state.value != "failed" or not (record.receipt or {}).get("task_id"):
        raise ScenarioFailed(f"wanted a failed job with a task id ({code}), got {record.summary()}")


def retry_after_download_404(by: str) -> Callable[[Stage, Outcome], None]:
    """A job failed on a download that answered 404 keeps its task id: retrying it polls that task again."""
    def scenario(stage: Stage, outcome: Outcome) -> None:
        stage.start()
        # the WAV, then the MP3 the client falls back to; the same again at the addresses byId is asked for again
        stage.fake.inject("download", "404", times=4)
        job = stage.inpaint("download-404")
        _failed_with_task(stage, job, outcome, "download_failed")
        if by == "cli":
            result = stage.cli("retry", job)
            outcome.story.append(f"jobs retry: rc {result.returncode}")
        else:
            reply = stage.osc("retry", job_id=job)
            outcome.story.append(f"/bridge/retry: {reply.name if reply else 'no answer'}")
        outcome.story.append(stage.settle(job, leave="failed").state.value)
    return scenario


def retry_after_generation_timeout(stage: Stage, outcome: Outcome) -> None:
    """The wait gave up (max_wait_s) while the task still ran; it finishes later; a retry fetches it."""
    stage.fake.slow_factor = 200.0  # 40 s of generating against a wait of 1 s
    stage.start()
    job = stage.inpaint("slow-task")
    _failed_with_task(stage, job, outcome, "generation_timeout")
    for task_id in list(stage.fake.tasks):
        stage.fake.finish(task_id)
    result = stage.cli("retry", job)
    outcome.story.append(f"jobs retry: rc {result.returncode}")
    outcome.story.append(stage.settle(job, leave="failed").state.value)


def lost_answer(fault: str, **options) -> Callable[[Stage, Outcome], None]:
    """The task was created, then the answer was lost or an error: submission_unknown, retry refused, resolve."""
    def scenario(stage: Stage, outcome: Outcome) -> None:
        stage.start()
        stage.fake.inject("submit", fault, **options)
        job = stage.inpaint(f"lost-{fault}-{options.get('status', '')}")
        unknown_then_resolved(stage, job, outcome, tasks_before=1)
    return scenario


def resolve_with_task_id(stage: Stage, outcome: Outcome) -> None:
    """The answer was dropped; the producer finds the task on the dashboard: the job waits for that task."""
    stage.start()
    stage.fake.inject("submit", "drop_after_accept")
    job = stage.inpaint("resolve-task")
    record = stage.settle(job)
    outcome.story.append(record.state.value)
    if record.state.value != "submission_unknown":
        raise ScenarioFailed(f"wanted submission_unknown, got {record.summary()}")
    result = stage.cli("resolve", job, "--task-id", stage.task_of(job))
    outcome.story.append(f"jobs resolve --task-id: rc {result.returncode}")
    record = stage.settle(job, leave="submission_unknown")
    outcome.story.append(record.state.value)
    if (record.receipt or {}).get("task_id") != stage.task_of(job):
        outcome.broke(f"the job's task id is {(record.receipt or {}).get('task_id')}", "the one resolved with")


def error_without_task(stage: Stage, outcome: Outcome) -> None:
    """A 500 that created nothing: nothing proves that, so submission_unknown; --not-submitted then pays once."""
    stage.start()
    stage.fake.inject("submit", "500")
    job = stage.inpaint("plain-500")
    unknown_then_resolved(stage, job, outcome, tasks_before=0)
    if sum(stage.fake.submit_requests.values()) != 2:
        outcome.broke(f"{sum(stage.fake.submit_requests.values())} POSTs",
                      "2: the one answered 500, and one after --not-submitted")


def refused_then_retried(status: int) -> Callable[[Stage, Outcome], None]:
    """A documented refusal before work starts: failed at once, no second POST; a retry then pays exactly once."""
    def scenario(stage: Stage, outcome: Outcome) -> None:
        stage.start()
        stage.fake.inject("submit", str(status))
        job = stage.inpaint(f"refused-{status}")
        record = stage.settle(job)
        outcome.story.append(f"{record.state.value} ({record.error_code})")
        posts = sum(stage.fake.submit_requests.values())
        if record.state.value != "failed" or posts != 1 or stage.fake.total_submits:
            outcome.broke(f"{record.state.value} after {posts} POST(s), {stage.fake.total_submits} task(s)",
                          "failed after 1 POST, 0 tasks")
        result = stage.cli("retry", job)
        outcome.story.append(f"jobs retry: rc {result.returncode}")
        outcome.story.append(stage.settle(job, leave="failed").state.value)
    return scenario


def rate_limited_then_accepted(stage: Stage, outcome: Outcome) -> None:
    """429 proves nothing was created: the client waits and sends again, and exactly one task results."""
    stage.start()
    stage.fake.inject("submit", "429", times=2)
    job = stage.inpaint("rate-limited")
    outcome.story.append(stage.settle(job).state.value)
    outcome.story.append(f"{sum(stage.fake.submit_requests.values())} POSTs")


def cancel_then_retry(stage: Stage, outcome: Outcome) -> None:
    """Cancelled while generating (the task is paid for), then retried: the same task is fetched."""
    stage.fake.slow_factor = 10.0
    stage.start()
    job = stage.inpaint("cancel-retry")
    stage.wait_event(job, "generating")
    result = stage.cli("cancel", job)
    said = (result.stdout + result.stderr).strip()
    outcome.story.append(f"jobs cancel: {said.rsplit(': ', 1)[-1][:30]}")
    if "cancelled" not in said:
        outcome.broke(f"the cancel answered {said[:160]!r}", "a reply saying cancelled")
    outcome.story.append(stage.settle(job).state.value)
    stage.fake.finish(stage.task_of(job))
    result = stage.cli("retry", job)
    outcome.story.append(f"jobs retry: rc {result.returncode}")
    outcome.story.append(stage.settle(job, leave="cancelled").state.value)


def cancel_during_submit(stage: Stage, outcome: Outcome) -> None:
    """Cancelled while the submit POST is in flight (the task is created, its answer slow): the reply says
    cancelled, and no later retry creates a second task."""
    answer_after = 2.0
    stage.start()
    stage.fake.inject("submit", "slow_accept", seconds=answer_after)
    job = stage.inpaint("cancel-mid-submit")
    stage.wait_until("the task created", lambda: stage.fake.total_submits >= 1, timeout=20)
    result = stage.cli("cancel", job)
    said = (result.stdout + result.stderr).strip()
    outcome.story.append(f"jobs cancel: {said.rsplit(': ', 1)[-1][:30]}")
    if "cancelled" not in said:
        outcome.broke(f"the cancel answered {said[:160]!r}", "a reply saying cancelled")
    outcome.story.append(stage.settle(job).state.value)
    # the late answer (or the daemon's timeout on it) is in the ledger: a retry or a resolve while the POST is still
    # in flight meets another story (a sleep to the answer's time plus 0.3 s was not always enough on a loaded machine)
    stage.wait_until("the in-flight submit settled in the ledger",
                     lambda: [row["state"] for row in stage.ledger(job)] not in ([], ["intent"]), timeout=60)
    result = stage.cli("retry", job)
    said = (result.stdout + result.stderr).strip()
    outcome.story.append(f"jobs retry {'refused' if result.returncode else 'ran'} (rc {result.returncode})")
    record = stage.settle(job)  # the CLI returns once the daemon has journaled its decision
    if record.state.waiting_for_producer:
        outcome.story.append(record.state.value)
        retry_is_refused(stage, job, outcome)
    if result.returncode != 0 and "resolve" in said:
        # Refused with the advice to resolve: the producer follows it, and the advice must work.
        resolved = stage.resolve_from_dashboard(job, outcome)
        if resolved.returncode != 0:
            outcome.broke(f"the refusal advised to resolve, and resolve answered {resolved.stdout.strip()[:160]!r}",
                          "the resolve accepted")
        else:
            record = stage.settle(job, leave=record.state.value)
        if record.state.value != "delivered":
            outcome.broke(f"resolving as the refusal advised left the job {record.state.value} "
                          f"({record.error_message or record.message})", "the job delivered from the paid task")
    outcome.story.append(record.state.value)


def resolve_during_submit(fault: str, flag: str, **options) -> Callable[[Stage, Outcome], None]:
    """Cancelled while the submit POST is in flight (the task is created, its answer late: 20 s, time for three
    commands on a loaded CI machine), then resolved at once, before that answer: the resolve is refused in one line
    (the POST's outcome is not known yet, and a resolve the late outcome then overwrote, or a resubmit beside the
    POST, would make the ledger lie or pay twice); once the answer is in, the producer goes on as the job then says,
    and the job is delivered from its one task."""
    def scenario(stage: Stage, outcome: Outcome) -> None:
        stage.start()
        stage.fake.inject("submit", fault, **options)
        job = stage.inpaint(f"resolve-mid-submit-{fault}-{flag}")
        stage.wait_until("the task created", lambda: stage.fake.total_submits >= 1, timeout=20)
        result = stage.cli("cancel", job)
        outcome.story.append(f"jobs cancel: rc {result.returncode}")
        outcome.story.append(stage.settle(job).state.value)
        in_flight = [row["state"] for row in stage.ledger(job)] == ["intent"]
        result = stage.cli("resolve", job, *(["--task-id", stage.task_of(job)] if flag == "task-id" else
                                             ["--not-submitted"]))
        said = (result.stdout + result.stderr).strip()
        outcome.story.append(f"resolve --{flag} mid-POST: rc {result.returncode} {said.rsplit(': ', 1)[-1][:40]}")
        if not in_flight:
            raise ScenarioFailed("the POST was answered before the resolve was sent (the fake answered too soon)")
        if result.returncode == 0 or not one_line(said) or "answer" not in said:
            outcome.broke(f"a resolve while the POST was in flight answered rc {result.returncode} {said[:160]!r}",
                          "refused in one line: the submit still waits for MusicGPT's answer")
        result = stage.cli("retry", job)  # refused too, saying the same (not "resolve it", which is refused)
        said = (result.stdout + result.stderr).strip()
        outcome.story.append(f"retry mid-POST: rc {result.returncode}")
        if result.returncode == 0 or not one_line(said) or "answer" not in said:
            outcome.broke(f"a retry while the POST was in flight answered rc {result.returncode} {said[:160]!r}",
                          "refused in one line: the submit still waits for MusicGPT's answer")
        stage.wait_until("the in-flight submit settled in the ledger",
                         lambda: [row["state"] for row in stage.ledger(job)][:1] not in ([], ["intent"]), timeout=60)
        stage.wait_until("the late outcome in the journal", lambda: stage.record(job).state.value != "cancelled" or
                         (stage.record(job).receipt or {}).get("task_id") or
                         ", but " in (stage.record(job).error_message or ""), timeout=60)
        record = stage.record(job)
        outcome.story.append(f"{record.state.value}, ledger {'+'.join(r['state'] for r in stage.ledger(job))}")
        if stage.fake.total_submits != 1:
            outcome.broke(f"{stage.fake.total_submits} tasks before the answer was even in", "1")
        if record.state.value == "delivered":
            return
        if (record.receipt or {}).get("task_id"):
            result = stage.cli("retry", job)
            outcome.story.append(f"jobs retry: rc {result.returncode}")
        else:
            stage.resolve_from_dashboard(job, outcome)
        outcome.story.append(stage.settle(job, leave=record.state.value).state.value)
    return scenario


def stop_during_cancelled_submit(stage: Stage, outcome: Outcome) -> None:
    """Cancelled while the submit POST is in flight, then the daemon is stopped before the answer comes: the POST
    was sent, so the ledger must not say it was not; after the restart a retry is refused (it would pay again) and
    the producer's resolve brings the one task in."""
    stage.start()
    stage.fake.inject("submit", "slow_accept", seconds=30.0)  # never answered before the stop, even on a slow machine
    job = stage.inpaint("stop-mid-submit")
    stage.wait_until("the task created", lambda: stage.fake.total_submits >= 1, timeout=20)
    result = stage.cli("cancel", job)
    outcome.story.append(f"jobs cancel: rc {result.returncode}")
    outcome.story.append(stage.settle(job).state.value)
    stage.stop()
    rows = [row["state"] for row in stage.ledger(job)]
    outcome.story.append(f"stopped mid-POST, ledger {'+'.join(rows)}")
    if rows != ["unknown"]:
        outcome.broke(f"the ledger says {rows} for a POST stopped while its answer was awaited", "['unknown']")
    stage.start()
    retry_is_refused(stage, job, outcome)
    if stage.record(job).state.value == "cancelled" and stage.fake.total_submits == 1:
        stage.resolve_from_dashboard(job, outcome)
    outcome.story.append(stage.settle(job, leave="cancelled").state.value)


def duplicated_osc_command(stage: Stage, outcome: Outcome) -> None:
    """The same inpaint (same request_id) arrives twice, as a resend after a lost reply would: one job."""
    stage.start()
    values = {"source": str(stage.project.song), "start": 12.0, "end": 16.0, "prompt": "brass", "num_outputs": 1,
              "request_id": "dup-osc"}
    stage.client.send("inpaint", **values)
    stage.client.send("inpaint", **values)
    answers = []
    deadline = time.monotonic() + 30
    while len(answers) < 2 and time.monotonic() < deadline:
        reply = stage.client.receive(timeout=max(deadline - time.monotonic(), 0.01))
        if reply is not None and reply.name in ("accepted", "error") and "dup-osc" in reply.args[:2]:
            answers.append(reply)
    outcome.story.append(" + ".join(f"{r.name} {r.args[1] if r.name == 'accepted' else r.args[-1]}"
                                    for r in answers))
    jobs = {r.args[1] for r in answers if r.name == "accepted"}
    for job in jobs:
        stage.settle(job)
    if len(jobs) != 1:
        outcome.broke(f"{len(jobs)} jobs for one request_id", "1 job (the resend answered with the same job id)")


def duplicated_request_file(stage: Stage, outcome: Outcome) -> None:
    """The same request file is written into the inbox twice (a client that did not see it go): one job."""
    stage.start()
    inbox = stage.project.inbox
    request = {"command": "inpaint", "source": str(stage.project.song), "start": 12.0, "end": 16.0,
               "prompt": "brass", "num_outputs": 1, "request_id": "dup-file"}
    for attempt in (1, 2):
        drop_request(inbox, "dup-file", request)
        stage.wait_until(f"request file {attempt} taken", lambda: not (inbox / "dup-file.json").exists() and
                         not any((inbox / "processing").glob("*")), timeout=30)
        for record in stage.records():
            stage.settle(record.job_id)
        outcome.story.append(f"written {attempt}x: {len(stage.records())} job(s)")
    if len(stage.records()) != 1:
        outcome.broke(f"{len(stage.records())} jobs for one request file written twice", "1 job")


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[Stage, Outcome], None]
    settings: dict = field(default_factory=dict)
    want_tasks: int = 1


def _scenarios() -> list[Scenario]:
    out = [Scenario("first run", first_run)]
    out += [Scenario(f"SIGKILL at {state}, restart", kill_at(state)) for state in KILL_STATES]
    out += [Scenario("download 404, jobs retry", retry_after_download_404("cli")),
            Scenario("download 404, /bridge/retry", retry_after_download_404("osc")),
            Scenario("generation_timeout, jobs retry", retry_after_generation_timeout, {"max_wait_s": 1.0}),
            Scenario("answer dropped, jobs resolve --task-id", resolve_with_task_id),
            Scenario("answer dropped after accept", lost_answer("drop_after_accept")),
            Scenario("answer timed out after accept", lost_answer("timeout_after_accept", seconds=5),
                     {"http_timeout_s": 1.0})]
    out += [Scenario(f"task created, then HTTP {status}", lost_answer("status_after_accept", status=status))
            for status in AFTER_ACCEPT]
    out += [Scenario("HTTP 500, no task created, --not-submitted", error_without_task)]
    out += [Scenario(f"refused {status}, jobs retry", refused_then_retried(status)) for status in REFUSALS]
    out += [Scenario("429 twice, then accepted", rate_limited_then_accepted),
            Scenario("cancel while generating, jobs retry", cancel_then_retry),
            Scenario("cancel while the submit is in flight, retry", cancel_during_submit),
            Scenario("cancel mid-POST, resolve --not-submitted before the answer",
                     resolve_during_submit("slow_accept", "not-submitted", seconds=20.0), {"http_timeout_s": 40.0}),
            Scenario("cancel mid-POST, resolve --task-id before the answer, answer lost",
                     resolve_during_submit("timeout_after_accept", "task-id", seconds=60.0), {"http_timeout_s": 20.0}),
            Scenario("cancel mid-POST, daemon stopped before the answer, retry", stop_during_cancelled_submit,
                     {"http_timeout_s": 20.0}),
            Scenario("same OSC request_id twice", duplicated_osc_command),
            Scenario("same request file twice", duplicated_request_file)]
    return out


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _scenarios()}


def run_scenario(scenario: Scenario, root: Path, song: Path) -> Outcome:
    """Run one path in a fresh project under ``root``; its outcome (a scenario that could not go on says why)."""
    outcome = Outcome(scenario.name, want_tasks=scenario.want_tasks)
    with Stage(root, song, settings=scenario.settings) as stage:
        try:
            scenario.run(stage, outcome)
        except ScenarioFailed as exc:
            outcome.broke(f"the path stopped: {exc}", "it to run to its end")
        finally:
            stage.stop()
        stage.finish(outcome)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    """path x tasks on the fake x final state, one row per path; broken promises under the table."""
    width = max(len(o.path) for o in outcomes)
    lines = [f"{'path':<{width}}  tasks  POSTs  final state          story",
             f"{'-' * width}  -----  -----  -------------------  -----"]
    for o in outcomes:
        mark = "" if not o.problems else "  <-- " + str(len(o.problems)) + " broken"
        lines.append(f"{o.path:<{width}}  {o.tasks:>5}  {o.posts:>5}  {o.state:<19}  {' > '.join(o.story)}{mark}")
    broken = [(o.path, p) for o in outcomes for p in o.problems]
    if broken:
        lines += ["", "broken promises:"] + [f"- {path}: {problem}" for path, problem in broken]
    return "\n".join(lines)

