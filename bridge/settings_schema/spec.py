"""The config file as data: every table and key, its type, default, limits and meaning, declared once.

The validator (``validate.py``), the defaults the settings classes start from and the config reference
(``docs/config.md``, written by ``daw-bridge generate``) are all derived from these tables. Choices that the address
space also knows (backend names, delivery modes) come from ``osc_schema``, so they change in one place.

This module imports nothing of ``bridge`` beyond its own package: config, frontends and backends may all read it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import osc_schema

BOOL, INT, FLOAT, STRING, PATH, LIST = "bool", "int", "float", "string", "path", "list"
NUMBER = "number"  # list items only: int or float
LOG_LEVELS = ("debug", "info", "warning", "error")
RETENTION_FOREVER = 0  # a retention period of 0 days keeps things forever

@dataclass(frozen=True)
class Key:
    """One setting: its type and limits, its default when absent, and what it means to the producer."""

    name: str
    type: str  # BOOL | INT | FLOAT | STRING | PATH | LIST
    meaning: str
    default: object = None  # None: absent means "not set" (the meaning says what that does)
    default_text: str = ""  # for the docs, when the default is computed at run time
    unit: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    fold_case: bool = False  # choices match whatever the case; the value is kept in lower case
    words: Mapping[str, object] = field(default_factory=dict)  # strings accepted besides the type → their value
    rule: str | None = None  # an extra check by name (validate.RULES); for a list, every item follows it
    items: tuple[str, ...] = ()  # LIST only: the item types allowed
    required: bool = False  # needed whenever its table is present
    secret: bool = False  # never shown in an error message
    beyond_loopback_needs: str | None = None  # a non-loopback address here needs this list key to be non-empty

    @property
    def nullable(self) -> bool:
        """Whether an already-validated value may be None (absent, or a word that stands for None)."""
        return self.default is None or None in self.words.values()


@dataclass(frozen=True)
class Table:
    """A TOML table: its keys and sub-tables. ``optional`` tables switch a feature on by being present."""

    name: str  # dotted: "" for the top level, "midi.daw" for [midi.daw]
    meaning: str
    keys: tuple[Key, ...]
    tables: tuple["Table", ...] = ()
    optional: bool = False  # absent: the feature is off and no defaults are filled in

    def key(self, name: str) -> Key | None:
        return next((key for key in self.keys if key.name == name), None)

    def table(self, name: str) -> "Table | None":
        return next((table for table in self.tables if table.name.rsplit(".", 1)[-1] == name), None)

    @property
    def title(self) -> str:
        return f"[{self.name}]" if self.name else "top level"


_PORT = dict(type=INT, min=1, max=65535)
_POSITIVE_SECONDS = dict(unit="s", min=0, min_exclusive=True)
_LOOPBACK = dict(type=STRING, default="127.0.0.1", rule="loopback")
_DAYS = dict(type=FLOAT, unit="days", min=0, max=36500)

LOCAL = Table("local", "The embedded engine (the default backend): offline, free, re-uses the song's own passages.", (
    # 0.1, not 0.2: on bench/engine_coverage.py's dev part it delivers as well on short gaps (better than both
    # baselines of all 2/5/10 s cases 92 against 91 %) and far more on the evaluation's 100 s gaps in whole songs
    # (--long: 53 against 37 %, better among delivered 62 against 61 %); below 0.1 the joins go bad (0 of 4 better).
    # Inpaint ranges over 10 s are held to a share of it (engine.floor_for).
    Key("min_confidence", FLOAT, "A variant whose weakest join scores below this is not delivered; an inpaint range "
        "longer than 10 s is held to that share of it (a 100 s range: a tenth).", default=0.1, min=0, max=1),
    Key("workers", INT, "Engine processes working at once.", default=1, min=1, max=64),
    Key("warm_up", BOOL, "Start the engine worker with the daemon (~110 MB resident); false: the first job takes "
        "~1.5 s longer instead.", default=True),
))

WEBHOOK = Table("musicgpt.webhook", "Optional: a receiver MusicGPT calls when a task finishes, so jobs need fewer "
                "polls. Present means on.", (
    Key("public_url", STRING, "The address at which MusicGPT reaches the receiver (your tunnel's), e.g. "
        "https://hooks.example.net/daw-bridge; it forwards to bind_host:bind_port.", required=True, rule="http_url"),
    Key("bind_host", STRING, "Where the receiver listens.", default="127.0.0.1", rule="ip_address",
        beyond_loopback_needs="allowed_senders"),
    Key("bind_port", INT, "Where the receiver listens; 0: any free port.", default=0, min=0, max=65535),
    Key("path_prefix", STRING, "The receiver answers only below this path.", default="/musicgpt/", rule="slashes"),
    Key("allowed_senders", LIST, "Addresses allowed to call the receiver (your tunnel's); required with a bind_host "
        "beyond loopback.", default=(), items=(STRING,), rule="ip_network"),
), optional=True)

MUSICGPT = Table("musicgpt", "The MusicGPT cloud backend, offered when an API key is configured.", (
    Key("api_key", STRING, "The API key, if not in MUSICGPT_API_KEY or the system keyring; the file must then be "
        "readable only by you (chmod 600).", rule="nonblank", secret=True),
    Key("base_url", STRING, "The API's address; MUSICGPT_BASE_URL in the environment wins over it.",
        default="https://api.musicgpt.com/api/public", rule="api_url"),
    Key("context_s", FLOAT, "Seconds of untouched song uploaded on each side of the range; \"whole\": the whole "
        "file.", default=30.0, unit="s", min=0, max=600, words=MappingProxyType({"whole": None})),
    Key("poll_calls_per_minute", INT, "Your plan's byId budget: 20 free, 200 or 500 paid.", default=20, min=1),
    Key("concurrency", INT, "Tasks your plan generates at once (1 free, 3-5 Plus, 10 Pro): more are queued.",
        default=1, min=1),
    Key("max_wait_s", FLOAT, "How long one wait polls a task before the job fails, keeping its task id "
        "(`daw-bridge jobs retry JOB` resumes it).", default=900.0, **_POSITIVE_SECONDS),
    Key("hourly_limit", INT, "Spend guard: paid requests per rolling hour; absent: no limit.", min=0),
    Key("daily_limit", INT, "Spend guard: paid requests per rolling day; absent: no limit.", min=0),
    Key("dry_run", BOOL, "Prepare and show what would be sent, send nothing.", default=False),
    Key("http_timeout_s", FLOAT, "Timeout of one HTTP request.", default=60.0, **_POSITIVE_SECONDS),
    Key("poll_interval_s", FLOAT, "Tuning: first poll interval after the answered eta has passed; grows 1.5x.",
        default=3.0, **_POSITIVE_SECONDS),
    Key("poll_max_interval_s", FLOAT, "Tuning: the longest poll interval.", default=30.0, **_POSITIVE_SECONDS),
    Key("eta_scale", FLOAT, "Tuning: multiplies the eta MusicGPT answers before the first poll.", default=1.0,
        min=0),
    Key("retry_base_s", FLOAT, "Tuning: first backoff after a 5xx or network error.", default=1.0, min=0,
        unit="s"),
    Key("rate_limit_backoff_s", FLOAT, "Tuning: first hold-back after a 429.", default=10.0, min=0, unit="s"),
    Key("crossfade_s", FLOAT, "Tuning: each join's equal-power crossfade, inside the untouched context.",
        default=0.1, min=0, unit="s"),
    Key("max_shift_s", FLOAT, "Tuning: how far the returned audio may sit from the uploaded timeline.", default=2.0,
        **_POSITIVE_SECONDS),
), tables=(WEBHOOK,))

FEEDBACK = Table("midi.daw", "Optional: follow a DAW's loop points (the pads' session context) and play cursor (bars). "
                 "Present means on.", (
    Key("host", **_LOOPBACK, meaning="Where the feedback listeners bind."),
    Key("reaper_port", **_PORT, meaning="REAPER's OSC device sends its feedback here; absent: REAPER is not "
        "followed."),
    Key("ableton", BOOL, "Follow Ableton Live's loop through AbletonOSC.", default=False),
    Key("ableton_port", **_PORT, default=11000, meaning="AbletonOSC listens here."),
    Key("ableton_reply_port", **_PORT, default=11001, meaning="...and answers here, on the asking host."),
    Key("ableton_interval", FLOAT, "Seconds between queries (listeners also push changes).", default=2.0, unit="s",
        min=0.2, max=60),
    Key("ardour", BOOL, "Follow Ardour's play cursor and bar lines through its OSC surface (Ardour's Preferences > "
        "Control Surfaces > Open Sound Control); the daemon registers with /set_surface.", default=False),
    Key("ardour_port", **_PORT, default=3819, meaning="Ardour's OSC surface listens here."),
), optional=True)

MIDI = Table("midi", "Optional: hardware pads (any DAW); see docs/midi-mapping.example.toml, `daw-bridge midi ports` "
             "and `daw-bridge midi learn`. The daemon uses them when port is set.", (
    Key("port", STRING, "The controller's MIDI input port: its name, a glob, or part of it.", rule="nonblank"),
    Key("output_port", STRING, "The port that lights the pads' LEDs; absent: no LEDs.", rule="nonblank"),
    Key("virtual", BOOL, "Open virtual ports of these names instead of connecting to existing ones.", default=False),
    Key("mapping", PATH, "The mapping file; a relative path is read beside the config file.",
        default="midi-mapping.toml", rule="nonblank"),
    Key("api", STRING, "rtmidi API, e.g. LINUX_ALSA, UNIX_JACK, MACOSX_CORE, WINDOWS_MM; absent: rtmidi's default.",
        rule="nonblank"),
    Key("poll_interval", FLOAT, "Seconds between checks for a controller plugged in or out.", default=1.0, unit="s",
        min=0.1, max=10),
), tables=(FEEDBACK,), optional=True)

NOTIFY = Table("notify", "Optional: after each delivery send one OSC message to the DAW (REAPER: run the companion "
               "importer at once, `/action/str` with the command id as its argument, as `daw-bridge install reaper` "
               "prints it). Present means on.", (
    Key("host", STRING, "Where the DAW listens for OSC.", default="127.0.0.1", rule="nonblank"),
    Key("port", **_PORT, default=8000, meaning="The DAW's OSC port."),
    Key("address", STRING, "The OSC address to send, e.g. REAPER's \"/action/str\".",
        required=True, rule="osc_address"),
    Key("args", LIST, "Arguments sent with it, e.g. [\"_RS7d3c…\"] for REAPER's /action/str.", default=(),
        items=(STRING, NUMBER)),
), optional=True)

ABLETON = Table("ableton", "Ableton Live through AbletonOSC: act on the loop brace; see daw_scripts/ableton/.", (
    Key("enabled", BOOL, "Talk to Live (AbletonOSC must be installed there).", default=False),
    Key("host", **{**_LOOPBACK, "rule": "ipv4_loopback"}, meaning="Where Live runs."),
    Key("port", **_PORT, default=11000, meaning="AbletonOSC listens here."),
    Key("reply_port", **_PORT, default=11001, meaning="...and answers here, on the asking host (AbletonOSC's fixed "
        "response port)."),
    Key("timeout", FLOAT, "Seconds to wait for each answer.", default=2.0, unit="s", min=0.05, max=30),
    Key("clip", STRING, "The Session clip holding the song, by name; \"\": the selected clip.", default=""),
    Key("clip_position", FLOAT, "Arrangement seconds where the clip's file starts.", default=0.0, unit="s", min=0,
        max=1e6),
    Key("delivery", STRING, "Delivery for /bridge/ableton jobs: a whole-song result lines up in Live when placed "
        "where the original starts.", default="full", choices=osc_schema.ARGUMENTS["delivery"].choices),
))

AUDITION = Table("audition", "Audition from the daemon (/bridge/audition, pads, voice): where it is heard and how much "
                 "of the song surrounds the result.", (
    Key("output", STRING, "auto: JACK when a server runs, else the system's default output (PortAudio); jack or "
        "portaudio: only that one; none: audition off.", default="auto", choices=("auto", "jack", "portaudio", "none")),
    Key("jack_server", STRING, "The JACK server's name; \"\": the default server.", default=""),
    Key("jack_ports", LIST, "JACK ports the audition's out_1 and out_2 connect to (one port: both to it); empty: "
        "the first physical playback ports.", default=(), items=(STRING,), rule="nonblank"),
    Key("pre_roll_bars", FLOAT, "Bars of the source played before the range (4/4 at the song's tempo; 120 BPM when "
        "it is not known).", default=2.0, min=0, max=16),
    Key("post_roll_bars", FLOAT, "Bars played after the range.", default=1.0, min=0, max=16),
))

VOICE = Table("voice", "Voice commands, push-to-talk: the daemon records its voice input only while a `talk` pad is "
              "held (or for a moment after a `listen` pad), then decodes the recording offline (pip install "
              "'daw-bridge[voice]'). Needs [midi] for the pads.", (
    Key("enabled", BOOL, "Open the voice input and load the recogniser when the daemon starts.", default=False),
    Key("input", STRING, "auto: JACK when a server runs, else the system's default input (PortAudio); jack or "
        "portaudio: only that one.", default="auto", choices=("auto", "jack", "portaudio")),
    Key("jack_server", STRING, "The JACK server's name; \"\": the default server.", default=""),
    Key("jack_port", STRING, "The JACK port the voice input (daw-bridge-voice:in) connects to, e.g. "
        "\"system:capture_1\"; absent: the first physical capture port.", rule="nonblank"),
    Key("max_seconds", FLOAT, "The longest recording kept from one press (the buffer is allocated once).",
        default=8.0, unit="s", min=1, max=60),
    Key("reply_host", **_LOOPBACK, meaning="Where /bridge/heard goes (see reply_port)."),
    Key("reply_port", **_PORT, meaning="After each take, send /bridge/heard (what was heard, the command, its "
        "confidence and what came of it) to this UDP port, e.g. a control surface's display; absent: none."),
    Key("threshold", FLOAT, "Confidence below which a decoded command is rejected: higher refuses more under music, "
        "lower acts on more, and more often wrongly; a take under loud music needs more, and a command must also "
        "beat every other sentence by a margin (bench/voice.py).", default=0.17, min=0, max=1),
))

RETENTION = Table("retention", "How long finished work is kept; 0 keeps it forever.", (
    Key("jobs_days", **_DAYS, default=30.0, meaning="Finished jobs' journal rows, spend-ledger rows and work "
        "folders older than this are pruned."),
    Key("files_days", **_DAYS, default=7.0, meaning="Status files and processed or rejected request files older "
        "than this are pruned."),
))

TOP = Table("", "Where the daemon listens, which files it may touch, and its defaults for jobs.", (
    Key("osc_host", STRING, "Where the daemon listens for OSC.", default="127.0.0.1", rule="nonblank",
        beyond_loopback_needs="allowed_senders"),
    Key("osc_port", **_PORT, default=osc_schema.DEFAULT_OSC_PORT, meaning="UDP port for OSC commands."),
    Key("allowed_senders", LIST, "Addresses allowed to send OSC, e.g. [\"192.168.1.20\"] for a tablet; needed (only) "
        "with an osc_host beyond loopback. Add \"127.0.0.1\" for daw-bridge send, jobs and plugin on this machine.",
        default=(), items=(STRING,), rule="ip_network"),
    Key("inbox", PATH, "Folder watched for request files (REAPER's scripts write here); a folder of its own: not "
        "the drop folder or the state folder, whose .json files it would take as requests.",
        default="~/daw-bridge/inbox", rule="nonblank"),
    Key("drop_folder", PATH, "Where results go; absent or \"\": a folder \"daw-bridge\" beside each source, unless "
        "the command names one."),
    Key("project_roots", LIST, "Source audio and drop folders must lie inside these (symlinks resolved).",
        default=("~",), items=(STRING,), rule="folder"),
    Key("state_dir", PATH, "Journal, analysis cache and work files.", rule="nonblank",
        default_text="~/.local/state/daw-bridge (macOS: ~/Library/Application Support/daw-bridge/state; Windows: "
                     "%LOCALAPPDATA%\\daw-bridge)"),
    Key("captures_dir", PATH, "Where the audio plugin's instances keep their captures (one folder each), for "
        "commands that name a capture; it must lie inside project_roots (symlinks resolved).", rule="nonblank",
        default_text="the plugin's own: $DAW_BRIDGE_CAPTURE_DIR, else $XDG_STATE_HOME/daw-bridge/captures, else "
                     "~/.local/state/daw-bridge/captures"),
    Key("backend", STRING, "The backend for commands that name none.", default="local",
        choices=osc_schema.ARGUMENTS["backend"].choices),
    Key("delivery", STRING, "patch: the range plus handles; full: the whole song with the range replaced.",
        default="patch", choices=osc_schema.ARGUMENTS["delivery"].choices),
    Key("handle", FLOAT, "Seconds of untouched source kept on each side of a patch.", default=1.0, unit="s", min=0,
        max=10),
    Key("max_jobs", INT, "Jobs generating at once; more wait their turn.", default=4, min=1),
    Key("max_queued", INT, "Jobs that may wait for their turn beyond max_jobs; a command past them (a script or a "
        "controller sending in a loop) is refused as busy, naming how many run, and starts nothing; a request file "
        "waits in the inbox's processing/ for its turn instead.", default=100, min=0),
    Key("log_level", STRING, "How much the daemon logs.", default="info", choices=LOG_LEVELS, fold_case=True),
), tables=(LOCAL, MUSICGPT, MIDI, NOTIFY, ABLETON, AUDITION, VOICE, RETENTION))


def find_table(name: str) -> Table:
    """The table declared as ``name`` (dotted, "" for the top level); KeyError when there is none."""
    table = TOP
    for part in name.split(".") if name else ():
        table = table.table(part)
        if table is None:
            raise KeyError(name)
    return table


def all_tables(table: Table = TOP):
    """Every table, depth first, the top level first."""
    yield table
    for sub in table.tables:
        yield from all_tables(sub)


def secret_names() -> frozenset[str]:
    """The names of the keys whose values are never shown (``api_key``)."""
    return frozenset(key.name for table in all_tables() for key in table.keys if key.secret)


_CREDENTIAL_WORDS = ("key", "token", "secret", "pass", "auth", "cred", "bearer")


def may_hold_a_secret(name: str) -> bool:
    """Whether a key of this name may hold a credential, so its value is never shown: a secret's own name, one
    mistyped ("apikey"), or a name that says so even though we do not know it ("token", "password")."""
    lowered = name.strip().lower()
    return (any(word in lowered for word in _CREDENTIAL_WORDS)
            or bool(difflib.get_close_matches(lowered, secret_names(), n=1, cutoff=0.6)))


def defaults(name: str) -> dict:
    """The table's keys with their defaults (None where absent means "not set"), sub-tables left out."""
    return {key.name: key.default for key in find_table(name).keys}
