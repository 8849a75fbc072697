"""Ardour's real GUI (``ardour``, Debian's package) under Xvfb, driven without a mouse: actions and track selection
over Ardour's own OSC surface (``/access_action``, ``/strip/select``), the scripts in a private HOME, the session
file read back after ``Common/Save``, and screenshots of the screen.

One ``ArdourGUI`` is one Xvfb and one Ardour on one session; ``stop`` ends both (and takes a last screenshot).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import soundfile as sf

from bridge.lifeline import ask_to_die_with_parent
from tests.conftest import adopting_orphans, free_udp_port, require_tool
from tests.daw_scripts.ardour.conftest import RATE, SCRIPTS, Ardour, lua_string

SCREEN = "1600x1000x24"
TOOLS = ("Xvfb", "xdotool", "import", "oscsend", "ardour")
TRACKS = ["Song", "Other"]  # the test session's tracks, in order: OSC strips 1 and 2

# An action-script helper: writes the names of the tracks selected in the editor to $HOME/selection.txt.
REPORT_SELECTION = """
function factory () return function ()
	local names = {}
	for route in Editor:get_selection().tracks:routelist():iter() do names[#names + 1] = route:name() end
	local path = os.getenv("HOME") .. "/selection.txt"
	local file = io.open(path .. ".part", "w")
	file:write(table.concat(names, "\\n"))
	file:close()
	os.rename(path .. ".part", path)
end end"""

# The hook signal LuaTimerS (once a second) as a bit number: its place in gtk2_ardour/luasignal_syms.h of Ardour 7.3.
# A hook's saved "signals" attribute is a bit string whose last character is bit 0.
LUA_TIMER_S = 46


def runnable(source: str) -> str:
    """A script's text in the form ui_scripts stores it (Ardour stores its factory's bytecode): a chunk returning
    what its factory returns. The script header's ``ardour`` is Ardour's script scanner's, absent when it runs."""
    return ("local function ardour () end\n" + source.replace("\nfunction factory (", "\nlocal function factory (")
            + "\nreturn factory (...)\n")


def _saved_script(table: str, name: str, source: str) -> str:
    """The Lua Ardour's script manager saves for one script: ``table`` = name, source, factory, arguments."""
    return (f'{table} = {{}} {table}["n"] = {lua_string(name)} {table}["s"] = {lua_string(source)} '
            f'{table}["f"] = {lua_string(runnable(source))} {table}["a"] = {{}} ')


def ui_scripts(actions: list[tuple[str, str]], hooks: list[tuple[str, str, int]] = ()) -> str:
    """Ardour's ui_scripts file: action slot N (from 1) runs the Nth (name, source); each hook (name, source,
    signal bit) runs its factory's function on that signal."""
    slots = "scripts = {} " + "".join(_saved_script(f"scripts[{slot}]", name, source)
                                      for slot, (name, source) in enumerate(actions, start=1))
    callbacks = "".join(
        f'    <LuaCallback lua="Lua 5.3" id="{9000 + n}" name="{name}" signals="1{"0" * bit}">'
        f'{base64.b64encode(_saved_script("s", name, source).encode()).decode()}</LuaCallback>\n'
        for n, (name, source, bit) in enumerate(hooks))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<UIScripts>\n'
            f'  <ActionScript lua="Lua 5.3">{base64.b64encode(slots.encode()).decode()}</ActionScript>\n'
            f'  <ActionHooks>\n{callbacks}  </ActionHooks>\n</UIScripts>\n')


def ardour_rc(osc_port: int) -> str:
    """Ardour's configuration: the silent "None (Dummy)" engine started with the session, OSC on ``osc_port``."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Ardour>
  <Config>
    <Option name="try-autostart-engine" value="1"/>
    <Option name="hide-dummy-backend" value="0"/>
    <Option name="osc-port" value="{osc_port}"/>
  </Config>
  <Extra>
    <AudioMIDISetup>
      <EngineStates>
        <State backend="None (Dummy)" driver="" device="Silence" input-device="" output-device=""
               sample-rate="{RATE}" buffer-size="1024" n-periods="2" input-latency="0" output-latency="0"
               input-channels="0" output-channels="0" lm-input="" lm-output="" active="1" use-buffered-io="0"
               midi-option="" lru="1">
          <MIDIDevices/>
        </State>
      </EngineStates>
    </AudioMIDISetup>
  </Extra>
</Ardour>
"""


def wait_for(what: str, check, timeout: float, interval: float = 0.1):
    """``check()``'s first true value, polled; an AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_display() -> str:
    for number in range(140, 600):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return f":{number}"
    raise AssertionError("no free X display number")


def make_session(ardour: Ardour, folder: Path, setup: str = "") -> tuple[Path, dict]:
    """A session named after ``folder`` with the stereo audio tracks TRACKS and OSC enabled; the tracks' ids.
    ``setup``: Lua run in the new session before it is saved (a tempo map, say)."""
    [ids] = ardour.run(f"""
create_session({lua_string(str(folder))}, {lua_string(folder.name)}, {RATE})
local ids = {{}}
for _, name in ipairs({{ {", ".join(lua_string(t) for t in TRACKS)} }}) do
	local track = Session:new_audio_track(2, 2, nil, 1, name, ARDOUR.PresentationInfo.max_order,
		ARDOUR.TrackMode.Normal, true):front()
	ids[name] = track:to_stateful():id():to_s()
end
{setup}
Session:save_state("")
report(ids)
""")
    session_file = folder / f"{folder.name}.ardour"
    text = session_file.read_text(encoding="utf-8")
    osc = re.search(r'<Protocol name="Open Sound Control \(OSC\)" active="0"', text)
    assert osc, "the session file names no OSC surface"
    session_file.write_text(text[:osc.start()] + osc.group().replace('"0"', '"1"') + text[osc.end():],
                            encoding="utf-8")
    return session_file, ids


class ArdourGUI:
    """Xvfb and Ardour's GUI on ``session_file``, with ``actions`` in the Lua action slots and ``hooks`` as
    editor hooks; the scripts under daw_scripts/ardour are installed in the private HOME's scripts folder."""

    def __init__(self, home: Path, session_file: Path, actions: list[tuple[str, str]],
                 hooks: list[tuple[str, str, int]] = ()):
        for tool in TOOLS:
            require_tool(tool)
        self.home, self.session_file = home, session_file
        self.osc_port = free_udp_port()
        self.display = free_display()
        config = home / ".config" / "ardour7"
        (config / "scripts").mkdir(parents=True, exist_ok=True)
        (config / ".a7").write_text("")  # no first-run wizard
        (config / "config").write_text(ardour_rc(self.osc_port))
        (config / "ui_scripts").write_text(ui_scripts(actions + [("report selection", REPORT_SELECTION)], hooks))
        for script in SCRIPTS.glob("*.lua"):  # as `daw-bridge install ardour` does
            (config / "scripts" / script.name).write_bytes(script.read_bytes())
        self.env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        XDG_CACHE_HOME=str(home / ".cache"), DISPLAY=self.display)
        self.env.pop("WAYLAND_DISPLAY", None)
        self.report_slot = len(actions) + 1
        self.xvfb = self.ardour = None
        self.log_path = home / "ardour.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop)

    def start(self):
        self.xvfb = subprocess.Popen([require_tool("Xvfb"), self.display, "-screen", "0", SCREEN, "-nolisten", "tcp"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=ask_to_die_with_parent)
        wait_for("Xvfb", lambda: self.xvfb.poll() is not None or subprocess.run(
            ["xdotool", "getdisplaygeometry"], env=self.env, capture_output=True, check=False).returncode == 0, 20, 0.2)
        assert self.xvfb.poll() is None, "Xvfb did not start"
        # stdbuf: Ardour's console output (Lua's print among it) reaches the log line by line
        self.ardour = subprocess.Popen(["stdbuf", "-oL", require_tool("ardour"), str(self.session_file)], env=self.env,
                                       cwd=self.home, stdout=self.log, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=ask_to_die_with_parent)
        wait_for("Ardour's editor window", lambda: self._alive() and self.window(f"^{self.session_file.stem} - "),
                 90, 0.25)
        wait_for("Ardour's OSC surface", lambda: self._alive() and not self._udp_free(), 30)
        wait_for("the selection report", lambda: self.selection() is not None, 30, 0.5)

    def _udp_free(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", self.osc_port))
            except OSError:
                return False
        return True

    def _alive(self) -> bool:
        if self.ardour.poll() is not None:
            raise AssertionError(f"Ardour exited ({self.ardour.returncode}):\n{self.log_text()[-3000:]}")
        return True

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def window(self, name: str) -> str | None:
        """The id of a visible window whose title matches the regular expression ``name``."""
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=self.env,
                               capture_output=True, text=True, check=False).stdout.split()
        return found[0] if found else None

    def osc(self, address: str, types: str, *values):
        subprocess.run(["oscsend", "127.0.0.1", str(self.osc_port), address, types, *map(str, values)], check=True)

    def action(self, name: str):
        self.osc("/access_action", "s", name)

    def run_script(self, slot: int):
        self.action(f"LuaAction/script-{slot}")

    def screenshot(self, path: Path) -> Path:
        subprocess.run(["import", "-display", self.display, "-window", "root", str(path)], check=True,
                       env=self.env, capture_output=True)
        return path

    def selection(self) -> list[str] | None:
        """The tracks selected in the editor, as Lua sees them; None when the report did not come."""
        report = self.home / "selection.txt"
        report.unlink(missing_ok=True)
        self.run_script(self.report_slot)
        try:
            wait_for("the selection report", report.exists, 5)
        except AssertionError:
            return None
        return sorted(line for line in report.read_text().splitlines() if line)

    def select(self, track_names: list[str]):
        """Select the tracks ``track_names`` (none when empty) in the editor."""
        self.action("Common/deselect-all")  # run later, in the GUI thread: wait for it before selecting
        wait_for("no selection", lambda: self.selection() == [], 15, 0.3)
        for name in track_names:
            self.osc("/strip/select", "ii", TRACKS.index(name) + 1, 0)
        wait_for(f"the selection {track_names}", lambda: self.selection() == sorted(track_names), 15, 0.3)

    def save(self) -> Path:
        before = self.session_file.stat().st_mtime_ns
        self.action("Common/Save")
        wait_for("the session to be saved", lambda: self.session_file.stat().st_mtime_ns != before, 30, 0.2)
        return self.session_file

    def stop(self, last_screenshot: Path | None = None):
        try:
            if last_screenshot and self.xvfb and self.xvfb.poll() is None:
                self.screenshot(last_screenshot)
        finally:
            # Ardour's and Xvfb's own children outlive them by an instant: reaped here, not left to init as zombies
            with adopting_orphans():
                for process in (self.ardour, self.xvfb):
                    if process and process.poll() is None:
                        os.killpg(process.pid, signal.SIGTERM)
                        try:
                            process.wait(15)
                        except subprocess.TimeoutExpired:
                            os.killpg(process.pid, signal.SIGKILL)
                            process.wait(10)
            self.log.close()


def regions_in_session_file(session_file: Path) -> list[dict]:
    """Every region on a track's playlist in the saved session file: track, name, position, length, start (the
    times in samples), layer (Ardour 7 saves its order as the layering index: higher lies above), muted, and
    source (the name of its first channel's source file)."""
    root = ET.parse(session_file).getroot()
    superclock = 282240000 // RATE  # Ardour 7's superclock ticks per second over the session rate
    tracks = {route.get("audio-playlist"): route.get("name") for route in root.iter("Route")}
    sources = {source.get("id"): source.get("name") for source in root.find("Sources")}

    def samples(value: str) -> int:  # "a<superclock>" (audio time), or "a<length>@a<position>" for a length
        return int(value.split("@")[0].lstrip("a")) // superclock

    found = []
    for playlist in root.find("Playlists").iter("Playlist"):
        track = tracks.get(playlist.get("id"))
        for region in playlist.iter("Region"):
            found.append({"track": track, "name": region.get("name"), "layer": int(region.get("layering-index")),
                          "position": int(region.get("length").split("@a")[1]) // superclock,
                          "length": samples(region.get("length")), "start": samples(region.get("start")),
                          "muted": region.get("muted") == "1", "source": sources.get(region.get("source-0"))})
    return found


def is_image(path: Path) -> bool:
    """``path`` is a non-empty PNG image."""
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



@contextlib.contextmanager
def running_gui(ardour: Ardour, folder: Path, actions: list[tuple[str, str]], hooks: list[tuple[str, str, int]] = (),
                setup: str = ""):
    """Ardour's GUI on a new session in ``folder`` (with an empty drop folder); ``ids`` are its tracks' ids and
    ``shots`` the folder for screenshots."""
    session_file, ids = make_session(ardour, folder / "Sess", setup)
    (session_file.parent / "daw-bridge").mkdir()
    gui = ArdourGUI(folder / "home", session_file, actions, hooks)
    gui.ids, gui.shots = ids, folder
    try:
        gui.start()
        yield gui
    finally:
        gui.stop(folder / "last.png")


def write_result(drop: Path, stem: str, track_id: str, seconds_at: float, frames: int, confidence: float):
    """A delivered result the way the daemon writes it: a stereo WAV and its manifest, for the track ``track_id``."""
    audio = drop / f"{stem}.wav"
    sf.write(audio, np.full((frames, 2), 0.1, dtype="float32"), RATE, subtype="FLOAT")
    manifest = {
        "format": "daw-bridge.manifest/1", "job_id": stem, "request_id": "ardour-1-1", "operation": "inpaint",
        "variant": 1, "variants": 1, "backend": "local", "delivery": "patch", "audio": audio.name,
        "sample_rate": RATE, "channels": 2, "frames": frames, "timeline": {"position": seconds_at, "length": 1.0},
        "source": {}, "ids": {"track": track_id}, "request": {"prompt": stem}, "splice": {"confidence": confidence},
    }
    part = drop / f".{stem}.json.part"
    part.write_text(json.dumps(manifest), encoding="utf-8")
    part.rename(drop / f"{stem}.json")
