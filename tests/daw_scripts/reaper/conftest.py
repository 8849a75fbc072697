"""Run the REAPER scripts under lua5.4 against the fake REAPER in harness/, over a project the test sets up."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from osc_schema import load_request

REPO = Path(__file__).resolve().parents[3]
REAPACK_ROOT = REPO / "daw_scripts" / "reaper"
PACKAGE = REAPACK_ROOT / "DAW Bridge"
HARNESS = Path(__file__).resolve().parent / "harness"
# the ReaPack copy is what ships; until the generator writes it there, its first output stands in
CONSTANTS_CANDIDATES = [PACKAGE / "bridge_constants.lua", REPO / "daw_scripts" / "common" / "bridge_constants.lua"]

SCRIPTS = {
    "inpaint": "DAW Bridge - Inpaint time selection.lua",
    "extend": "DAW Bridge - Extend.lua",
    "companion": "DAW Bridge - Companion.lua",
    "import now": "DAW Bridge - Import results now.lua",
    "settings": "DAW Bridge - Settings.lua",
    "picture": "DAW Bridge - Show result picture.lua",
}

YES, NO = 6, 7  # ShowMessageBox answers


def lua5_4() -> str:
    """Path of lua5.4, or skip (fail under CI=true) when it is missing."""
    path = shutil.which("lua5.4")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("lua5.4 is missing (Debian package lua5.4)")
        pytest.skip("lua5.4 is missing (Debian package lua5.4)")
    return path


def to_lua(value) -> str:
    """A Lua literal for a JSON-like Python value."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, c)
            if ord(c) >= 32 or c in "\n\r\t" else f"\\{ord(c):03d}"
            for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"[{to_lua(str(k))}]={to_lua(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


@dataclass
class Result:
    """What one run of the scripts left behind."""

    state: dict
    console: str
    messages: list
    dialogs: list
    renders: list
    splits: list
    undo: list
    actions: list  # take actions run through Main_OnCommand (40129 delete active take, 40131 crop to it)
    outside_undo: list  # project changes made outside an undo block (each import and decision is one block)
    datagrams: list
    errors: list
    still_deferred: int
    deferred_runs: int
    gfx: dict | list  # what the gfx window showed (an empty Lua table comes back as [])
    opened: dict | list  # file name -> how often the scripts opened it (none: [])
    decoded: dict | list  # JSON text -> how often the scripts decoded it (none: [])
    enumerated: dict | list  # project record (extname) -> how often the scripts went through it (none: [])
    tick_cpu: list  # CPU seconds of each tick's deferred calls, this process's (for bench/reaper_records.py)

    @property
    def message_texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


class Project:
    """A REAPER project as the fake REAPER holds it, with the installed scripts and the daemon's folders."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.scripts_dir = tmp_path / "Scripts" / "DAW Bridge"
        self.project_path = tmp_path / "song"
        self.inbox = tmp_path / "inbox"
        self.project_path.mkdir(parents=True)
        self._install_scripts()
        self.state: dict = {
            "project_path": str(self.project_path),
            "now": 1000.0,
            "tracks": [],
            "extstate": {"daw_bridge/inbox": str(self.inbox)},
            "project_info": {"RENDER_SETTINGS": 1, "RENDER_BOUNDSFLAG": 1, "RENDER_STARTPOS": 0.0,
                             "RENDER_ENDPOS": 0.0, "RENDER_TAILFLAG": 2, "RENDER_ADDTOPROJ": 1,
                             "RENDER_NORMALIZE": 9, "RENDER_SRATE": 44100, "RENDER_CHANNELS": 2},
            "project_info_strings": {"RENDER_FILE": "/home/me/renders", "RENDER_PATTERN": "$project-master",
                                     "RENDER_FORMAT": "bDNwbUAAAAAAAAAAAAA=", "RENDER_FORMAT2": "ZXZhdxgAAQ=="},
        }
        self._guids = 0
        self._saved: dict | None = None

    def _install_scripts(self):
        """Copy the package as ReaPack would install it, with the constants module beside the scripts."""
        self.scripts_dir.mkdir(parents=True)
        for path in PACKAGE.glob("*.lua"):
            shutil.copy(path, self.scripts_dir / path.name)
        constants = next(p for p in CONSTANTS_CANDIDATES if p.exists())
        shutil.copy(constants, self.scripts_dir / "bridge_constants.lua")

    @property
    def drop_folder(self) -> Path:
        return self.project_path / "daw-bridge"

    def guid(self) -> str:
        self._guids += 1
        return "{%08X-1111-4111-8111-%012d}" % (self._guids, self._guids)

    def add_track(self, name: str = "Mix", selected: bool = False) -> dict:
        track = {"guid": self.guid(), "name": name, "items": [], "selected": selected}
        self.state["tracks"].append(track)
        return track

    def add_item(self, track: dict, *, position: float, length: float, file: str | None = "/music/song/mix.wav",
                 offset: float = 0.0, playrate: float = 1.0, source_length: float = 240.0, selected: bool = True,
                 source: dict | None = None, **take) -> dict:
        """An item playing `file` from source second `offset` at `playrate`, placed at `position`."""
        src = source or {"file": file, "type": "WAVE", "length": source_length}
        item = {"guid": self.guid(), "position": position, "length": length, "selected": selected, "active_take": 1,
                "takes": [{"guid": self.guid(), "name": "mix.wav", "source": src, "startoffs": offset,
                           "playrate": playrate, "ppitch": 1, **take}]}
        track["items"].append(item)
        return item

    def select_time(self, start: float, end: float):
        self.state["time_selection"] = [start, end]

    def setting(self, key: str, value: str):
        self.state["extstate"][f"daw_bridge/{key}"] = value

    def restart(self):
        """REAPER quits and starts again with the saved project: ExtState not marked persistent is gone."""
        volatile = self.state.pop("extstate_volatile", {}) or {}
        self.state["extstate"] = {k: v for k, v in (self.state.get("extstate") or {}).items()
                                  if k.split("/", 1)[1] not in volatile}

    def save(self):
        """The producer saves the project: its tracks and its extended state go into the .RPP."""
        self._saved = copy.deepcopy({"tracks": self.state["tracks"], "projext": self.state.get("projext") or {}})

    def close_without_saving(self):
        """The producer closes the project without saving (or REAPER crashes) and opens it again: what was saved
        last comes back, the tracks and the project's extended state alike; REAPER's own ExtState stays."""
        assert self._saved is not None, "the test never saved the project"
        saved = copy.deepcopy(self._saved)
        self.state["tracks"], self.state["projext"] = saved["tracks"], saved["projext"]
        self.state.pop("undo_last", None)

    def undo(self):
        """Edit > Undo of the last undo block the scripts made: the tracks go back to what they were before it; the
        project's extended state is no part of undo and stays."""
        last = self.state.pop("undo_last")
        self.state["tracks"] = last["tracks"]
        for track in self.state["tracks"]:
            if track.get("items") in ({}, None):
                track["items"] = []

    def project_record(self, section: str) -> dict[str, str]:
        """What the scripts recorded in the project's extended state under `section` (name -> value)."""
        prefix = section + "/"
        return {unquote(k[len(prefix):]): v for k, v in (self.state.get("projext") or {}).items()
                if k.startswith(prefix)}

    def imported(self) -> list[str]:
        """The manifests this project records as imported."""
        return sorted(self.project_record("daw_bridge_imported"))

    def run(self, *scripts: str, dialog: list | None = None, answers: list | None = None, ticks: int = 0,
            tick_seconds: float = 1.0, on_tick: dict[int, str] | None = None, fake_socket: bool = False,
            render_writes_file: bool = True, gfx_frames: int = 3) -> Result:
        """Run the named scripts in order (then `ticks` rounds of deferred calls) and keep the project they leave."""
        state = dict(self.state, dialog_answers=list(dialog or []), message_answers=list(answers or []),
                     render_writes_file=render_writes_file, gfx_frames=gfx_frames)
        paths = [str(self.scripts_dir / SCRIPTS[name]) for name in scripts]
        hooks = "{" + ",".join(f"[{n}]={code}" for n, code in (on_tick or {}).items()) + "}"
        scenario = self.tmp / "scenario.lua"
        scenario.write_text(
            f"scenario = {{state={to_lua(state)}, scripts={to_lua(paths)}, ticks={ticks}, "
            f"tick_seconds={tick_seconds!r}, on_tick={hooks}, fake_socket={to_lua(fake_socket)}}}\n",
            encoding="utf-8")
        result_path = self.tmp / "result.json"
        env = dict(os.environ, HOME=str(self.tmp))
        proc = subprocess.run([lua5_4(), str(HARNESS / "run.lua"), str(scenario), str(result_path)],
                              capture_output=True, text=True, timeout=60, env=env)
        assert proc.returncode == 0, proc.stderr
        raw = json.loads(result_path.read_text(encoding="utf-8"))
        result = Result(**raw)
        for key in ("dialog_answers", "message_answers", "render_writes_file", "gfx_frames"):
            result.state.pop(key, None)
        for key in ("extstate", "project_info", "project_info_strings", "projext"):
            if result.state.get(key) == []:
                result.state[key] = {}
        for track in result.state["tracks"]:
            if track.get("items") == {}:
                track["items"] = []
        self.state = result.state
        return result

    # reading the project afterwards ------------------------------------------------------------------------------

    def items(self, track_index: int = 0) -> list[dict]:
        return self.state["tracks"][track_index]["items"]

    def requests(self) -> list[dict]:
        """The request files in the inbox, oldest first, each one passed by the daemon's own validator."""
        files = sorted(self.inbox.glob("*.json")) if self.inbox.exists() else []
        for path in files:
            load_request(path.read_bytes())
        return [json.loads(p.read_text(encoding="utf-8")) for p in files]


@pytest.fixture
def project(tmp_path) -> Project:
    """An empty REAPER project with the DAW Bridge scripts installed and the daemon's inbox configured."""
    lua5_4()
    return Project(tmp_path)
