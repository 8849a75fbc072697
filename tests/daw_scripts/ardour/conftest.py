"""Run the Ardour scripts: their plain-Lua core under lua5.4, and whole stories in a real headless Ardour.

A headless run is ``ardour7-lua`` (Debian's ``ardour`` package) with the "None (Dummy)" audio backend, given
``harness/prelude.lua`` followed by the test's own Lua steps. Steps report back with ``report(value)``, one JSON
line each. One run loads at most one session: closing a session and loading another in the same process is not
something Ardour's Lua host survives reliably, so each step of a story that needs a fresh load is its own run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from osc_schema import DECISION_FORMAT, DECISIONS_FOLDER
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "daw_scripts" / "ardour"
SEND_SCRIPT = SCRIPTS / "daw_bridge_send.lua"
IMPORT_SCRIPT = SCRIPTS / "daw_bridge_import.lua"
HARNESS = Path(__file__).resolve().parent / "harness"
RESULT_JSON = HARNESS.parent.parent / "result_json.lua"  # shared with the REAPER harness
MARKER = "DAW_BRIDGE_RESULT "
STEPS_DONE = "DAW_BRIDGE_STEPS_DONE"  # what a run prints once its steps are done
RATE = 44100


def lua_string(value: str) -> str:
    """A Lua string literal."""
    return '"' + "".join({"\\": "\\\\", '"': '\\"', "\n": "\\n"}.get(c, c) for c in value) + '"'


def reports(output: str) -> list:
    return [json.loads(line[len(MARKER):]) for line in output.splitlines() if line.startswith(MARKER)]


class LuaRun:
    """Runs Lua steps under lua5.4 with the scripts' cores loaded (no Ardour): SEND and IMPORT."""

    def __init__(self, lua: str, workdir: Path):
        self.lua = lua
        self.workdir = workdir

    def __call__(self, steps: str) -> list:
        driver = self.workdir / "steps.lua"
        driver.write_text(f"""
DAW_BRIDGE_HEADLESS = true
dofile({lua_string(str(SEND_SCRIPT))}); SEND = DAW_BRIDGE
dofile({lua_string(str(IMPORT_SCRIPT))}); IMPORT = DAW_BRIDGE
local encode = dofile({lua_string(str(RESULT_JSON))})
function report(value) print("{MARKER}" .. encode(value)) end
{steps}
""", encoding="utf-8")
        done = subprocess.run([self.lua, str(driver)], capture_output=True, text=True, timeout=30, cwd=self.workdir)
        if done.returncode != 0:
            raise AssertionError(f"lua5.4 failed:\n{done.stdout}\n{done.stderr}")
        return reports(done.stdout)


@pytest.fixture
def lua(tmp_path) -> LuaRun:
    path = shutil.which("lua5.4")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("lua5.4 is missing (Debian package lua5.4)")
        pytest.skip("lua5.4 is missing (Debian package lua5.4)")
    return LuaRun(path, tmp_path)


class Ardour:
    """Headless Ardour runs with a private HOME, so nothing touches the producer's own Ardour configuration."""

    def __init__(self, executable: str, home: Path):
        self.executable = executable
        self.home = home
        self.env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        XDG_CACHE_HOME=str(home / ".cache"), DAW_BRIDGE_SEND_SCRIPT=str(SEND_SCRIPT),
                        DAW_BRIDGE_IMPORT_SCRIPT=str(IMPORT_SCRIPT),
                        DAW_BRIDGE_RESULT_JSON=str(RESULT_JSON))
        self.runs = 0

    def run(self, steps: str, timeout: float = 90.0) -> list:
        """Run the prelude plus ``steps`` in a fresh ardour7-lua; the values the steps reported."""
        self.runs += 1
        driver = self.home / f"run-{self.runs}.lua"
        # The run ends with SIGKILL once the steps are done and their output is out, since ardour7-lua's ends crash
        # now and then: its own teardown after a session was closed, and os.exit's exit() too, whose static
        # destructors free what the engine's threads still run (a plugin's LV2 world: 3 crashes in 25 runs of one
        # test; a session left open: 1 in a CI run even with the engine stopped first). It waits on its stdin to be
        # killed (see _run_until_done).
        driver.write_text((HARNESS / "prelude.lua").read_text(encoding="utf-8") + "\n" + steps
                          + f'\nprint("{STEPS_DONE}")\nio.stdout:flush()\nio.read("l")\n', encoding="utf-8")
        return reports(self._call([str(driver)], timeout, killed_when_done=True))

    def script(self, script: Path, *args: str, timeout: float = 90.0, cwd: Path | None = None) -> str:
        """Run a shipped script the way a producer would from a terminal (in ``cwd``); its output."""
        return self._call([str(script), *args], timeout, cwd)

    def _call(self, argv: list[str], timeout: float, cwd: Path | None = None, killed_when_done: bool = False) -> str:
        try:
            done = (self._run_until_done(argv, timeout) if killed_when_done else
                    subprocess.run([self.executable, *argv], capture_output=True, text=True, timeout=timeout,
                                   env=self.env, cwd=cwd or self.home))
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"ardour7-lua ran longer than {timeout:.0f} s:\n{exc.stdout}\n{exc.stderr}") from None
        ended = (done.returncode == -signal.SIGKILL and STEPS_DONE in done.stdout.splitlines() if killed_when_done
                 else done.returncode == 0)
        if not ended or "Error:" in done.stdout:
            raise AssertionError(f"ardour7-lua failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def _run_until_done(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        """Run ``argv`` and SIGKILL it from here once it printed STEPS_DONE (it then waits on its stdin). The run
        killed itself through os.execute("kill ..."): the shell it started outlived it, a zombie handed to init."""
        with subprocess.Popen([self.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.home) as process:
            expired = threading.Event()
            late = threading.Timer(timeout, lambda: (expired.set(), process.kill()))
            errors: list[str] = []
            reader = threading.Thread(target=lambda: errors.append(process.stderr.read()))
            late.start()
            reader.start()
            out = []
            try:
                for line in process.stdout:
                    out.append(line)
                    if line.rstrip("\n") == STEPS_DONE:
                        process.kill()
                        break
                out.append(process.stdout.read())
                process.wait()
                reader.join()
            finally:
                late.cancel()
                late.join()
        if expired.is_set():
            raise subprocess.TimeoutExpired(argv, timeout, "".join(out), "".join(errors))
        return subprocess.CompletedProcess(argv, process.returncode, "".join(out), "".join(errors))

    def make_session(self, folder: Path, song: Path, *, frames: int, position: int, trim: int, length: int) -> Path:
        """A session named after ``folder`` with a stereo track "Song" holding ``song`` as a trimmed region."""
        return self.make_session_with_ids(folder, song, frames=frames, position=position, trim=trim,
                                          length=length)[0]

    def make_session_with_ids(self, folder: Path, song: Path, **placement) -> tuple[Path, dict]:
        """``make_session``, and the ids of the track and of the song's region (``track_id``, ``region_id``)."""
        name = folder.name
        [ids] = self.run(f"""
create_session({lua_string(str(folder))}, {lua_string(name)}, {RATE})
Session:new_audio_track(2, 2, nil, 1, "Song", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
report(place_audio({lua_string(str(folder / (name + '.ardour')))}, "Song", {lua_string(str(song))}, 2,
                   {placement['frames']}, {placement['position']}, {placement['trim']}, {placement['length']}, "song"))
""")
        return folder / f"{name}.ardour", ids


@pytest.fixture(scope="module")
def ardour(tmp_path_factory) -> Ardour:
    executable = require_tool("ardour7-lua")
    return Ardour(executable, tmp_path_factory.mktemp("ardour-home"))


def load(session_file: Path) -> str:
    """Lua that loads the session stored in ``session_file``."""
    return f"load_session({lua_string(str(session_file.parent))}, {lua_string(session_file.stem)})\n"


def write_decision(drop: Path, job_id: str, seq: int, decision: str, choice: int, manifests: list[str]) -> None:
    """A job's decision file as the daemon publishes it (osc_schema's DECISION_FORMAT): renamed into place."""
    folder = drop / DECISIONS_FOLDER
    folder.mkdir(exist_ok=True)
    part = folder / f".{job_id}.json.part"
    part.write_text(json.dumps({"format": DECISION_FORMAT, "job_id": job_id, "seq": seq, "decision": decision,
                                "choice": choice, "manifests": manifests, "decided_at": "2026-11-30T07:00:00Z"}))
    part.rename(folder / f"{job_id}.json")
