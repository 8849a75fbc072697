"""The address space as data: every command, reply, argument, limit, default and job state.

Validation (``validate.py``), the OSC reference (``docs/osc.md``) and the Lua constants the DAW scripts use are all
derived from these tables, so a limit changes in exactly one place.

An argument name means the same thing, with the same type and limits, wherever it appears: ``ARGUMENTS`` holds each
once, and a command only chooses which ones it takes and whether their default applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

VERSION = "1.0.0"  # of the address space; /bridge/pong answers it so a DAW script can compare with its own copy
DEFAULT_OSC_PORT = 9010
MANIFEST_FORMAT = "daw-bridge.manifest/1"
# A producer's decision on a delivered job (/bridge/decide) is published for the DAW scripts as one JSON file per job,
# <drop folder>/DECISIONS_FOLDER/<job_id>.json, rewritten (atomically) with a higher "seq" at each new decision:
#   {"format": DECISION_FORMAT, "job_id": ..., "seq": 1, "decision": "choose"|"keep"|"discard", "choice": 0..n,
#    "manifests": [the job's manifest file names, in variant order], "decided_at": ISO 8601 UTC}
# The file holds the job's latest decision, so a script that was not running applies only the last one; it records
# (job_id, seq) once applied. A kept variant's audio is also linked into <drop folder>/KEPT_FOLDER/ under its own
# name, so it stands out in a file browser (Ableton Live's) without any script.
DECISION_FORMAT = "daw-bridge.decision/1"
DECISIONS_FOLDER = ".daw-bridge-decisions"
KEPT_FOLDER = "Kept"
# Each DAW script records every decision it applied in its own ledger beside the results, a line per decision:
# "<job_id> <seq>" (REAPER's companion) or "<job_id>\t<seq>" (Ardour's import hook). The daemon reads them to number a
# new decision past every one a script applied.
DECIDED_LEDGERS = {"reaper": ".reaper-decided", "ardour": ".ardour-decided"}
PREFIX = "/bridge/"

STRING, FLOAT, INT = "string", "float", "int"

# What one UDP datagram may hold. A packet beyond these is answered with /bridge/error and not parsed further:
# deeper nesting or more messages serve no DAW, and each message can cause a reply.
MAX_BUNDLE_DEPTH = 4
MAX_MESSAGES = 32
TYPE_TAGS = "ifdshbrmtTFN[]"  # OSC type tags the daemon decodes; any other tag is refused, not silently dropped


@dataclass(frozen=True)
class Arg:
    """One argument: its type, its limits, its default when optional, and what it means to the producer."""

    name: str
    type: str  # STRING | FLOAT | INT
    meaning: str
    default: object = None  # used when the argument is optional and absent (or given as null / OSC nil)
    unit: str = ""  # "s" for times, for the docs
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    min_length: int | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    file_safe: bool = False  # becomes part of a file name: printable, no path separators, no leading dot
    greater_than: str | None = None  # another argument of the same command this one must exceed (when both given)
    shorten: int | None = None  # replies only: longer text is cut to this many characters instead of refused
    path: bool = False  # a file or folder on this machine: 'daw-bridge send' makes a relative one absolute


@dataclass(frozen=True)
class CommandSpec:
    """A command a client sends: positional arguments in order, then optional ``key, value`` pairs."""

    name: str
    meaning: str
    positional: tuple[Arg, ...]
    options: tuple[Arg, ...]
    replies: tuple[str, ...]  # replies this command can cause, for the docs
    # Pairs of arguments of which exactly one must be given: the first stands in its positional slot, which is sent
    # as nil (or "") when the second (an option) is given instead; both at once is refused.
    either: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> str:
        return PREFIX + self.name

    @property
    def arguments(self) -> tuple[Arg, ...]:
        return self.positional + self.options

    def alternative(self, name: str) -> str | None:
        """The argument that may be given instead of ``name`` (see ``either``), or None."""
        for first, second in self.either:
            if name in (first, second):
                return second if name == first else first
        return None

    def argument(self, name: str) -> Arg | None:
        """The argument called ``name``, or None when the command has none by that name."""
        return next((arg for arg in self.arguments if arg.name == name), None)


@dataclass(frozen=True)
class ReplySpec:
    """A message the daemon sends back: fixed arguments, then optionally one ``repeated`` argument per item."""

    name: str
    meaning: str
    args: tuple[Arg, ...]
    repeated: Arg | None = None  # e.g. one manifest path per variant

    @property
    def address(self) -> str:
        return PREFIX + self.name


STATES: dict[str, str] = {
    "accepted": "Validated and journaled; waiting for a worker.",
    "exporting": "Reading the region (plus context) from the source audio.",
    "submitting": "About to hand the job to the backend; its answer is not recorded yet.",
    "submitted": "The backend took the job (for MusicGPT: a task id is recorded).",
    "generating": "The backend is working; progress rises from 0 to 1.",
    "delivering": "Splicing the variants and writing them into the drop folder.",
    "delivered": "Finished: every variant's audio and manifest is in the drop folder.",
    "failed": "Finished without a result; /bridge/failed says why.",
    "cancelled": "Finished because the producer cancelled it.",
    "submission_unknown": "A paid submit may or may not have reached the server; the producer decides (it is never "
                          "resubmitted on its own).",
}
FINISHED_STATES = ("delivered", "failed", "cancelled")

_SECONDS = dict(type=FLOAT, unit="s")
_PATH = dict(type=STRING, min_length=1, max_length=4096, path=True)
_DAW_ID = dict(type=STRING, max_length=256)

ARGUMENTS: dict[str, Arg] = {arg.name: arg for arg in (
    Arg("source", meaning="Path of the source audio file. It is read, never modified, and must lie inside a "
        "configured project root.", **_PATH),
    Arg("capture", STRING, "An audio plugin instance's capture, by its folder name under the daemon's captures_dir "
        "(as /bridge/plugin lists it), used instead of source: times are then timeline seconds, and the daemon "
        "exports what the host played there (the newest take) with the context the job needs. It is read, never "
        "modified; a range not played yet is refused naming the span to play.", min_length=1, max_length=128,
        file_safe=True),
    Arg("start", meaning="Start of the range to replace, in seconds of source time (timeline time with capture).",
        min=0, **_SECONDS),
    Arg("end", meaning="End of the range to replace, in seconds of source time (timeline time with capture).", min=0,
        greater_than="start", **_SECONDS),
    Arg("extend_after", meaning="Source time, in seconds, after which the new material continues the song (timeline "
        "time with capture).", min=0, **_SECONDS),
    Arg("duration", meaning="Seconds of new material to generate.", default=30.0, min=0, min_exclusive=True,
        max=600, **_SECONDS),
    Arg("prompt", STRING, "What the new material should sound like. May be empty, but the MusicGPT backend "
        "refuses an empty prompt; the embedded engine follows only its words about energy, density and "
        "brightness (calmer, less busy, more intense, brighter, build-up...) to choose among passages that fit.",
        default="", max_length=1000),
    Arg("lyrics", STRING, "The song's full lyrics, to help the generator place the new words.", default="",
        max_length=3000),
    Arg("lyrics_section_to_replace", STRING, "Lyrics for the replaced range.", default="", max_length=3000),
    Arg("lyrics_section_to_extend", STRING, "Lyrics for the new material.", default="", max_length=3000),
    Arg("gender", STRING, "Voice for generated vocals; absent lets the generator choose.",
        choices=("male", "female", "neutral")),
    Arg("num_outputs", INT, "How many variants to generate; each lands as its own audio file and manifest.",
        default=2, min=1, max=2),
    Arg("backend", STRING, "Generator to use; absent means the daemon's configured default.",
        choices=("local", "musicgpt")),
    Arg("delivery", STRING, "patch: the replaced range plus short handles of untouched source; full: the whole "
        "song with the range replaced. Absent means the daemon's configured default.", choices=("patch", "full")),
    Arg("request_id", STRING, "The client's name for this request, echoed in /bridge/accepted, the status file "
        "and the manifest. The same request sent again under it is the same job (never run twice); a different "
        "request under an id already used is refused.", default="", max_length=128, file_safe=True),
    Arg("position", meaning="Where the source's time 0 sits on the DAW timeline, in seconds (negative when the "
        "item's start is trimmed).", default=0.0, min=-1e6, max=1e7, **_SECONDS),
    Arg("item_id", meaning="The DAW's id of the item the range came from, copied into the manifest.", **_DAW_ID),
    Arg("track_id", meaning="The DAW's id of the track the range came from, copied into the manifest.", **_DAW_ID),
    Arg("take_id", meaning="The DAW's id of the take the range came from, copied into the manifest.", **_DAW_ID),
    Arg("reply_port", INT, "Send replies to the sender's host at this port instead of the port the message came "
        "from.", min=1, max=65535),
    Arg("drop_folder", meaning="Folder the results go to (it must be allowed by the daemon's config); absent means "
        "the configured drop folder.", **_PATH),
    Arg("job_id", STRING, "A job id, as /bridge/accepted gave it.", min_length=1, max_length=128, file_safe=True),
    Arg("task_id", STRING, "The MusicGPT task id the producer found for a job in submission_unknown (on the "
        "MusicGPT dashboard), or \"\" when the job never reached MusicGPT and may be submitted again.",
        max_length=128),
    Arg("operation", STRING, "What to do with the range (Live's loop, or the bars): inpaint it, extend the song "
        "from its start, or (context) only make it the session context that hardware pads act on.",
        choices=("inpaint", "extend", "context")),
    Arg("what", STRING, "What to audition: the original, variant (the one named by variant), the next or previous "
        "variant, ab (toggle between the original and the last variant heard), or stop.",
        choices=("original", "variant", "next", "previous", "ab", "stop")),
    Arg("variant", INT, "Which variant to audition (1 = the first delivered).", default=1, min=1, max=2),
    Arg("decision", STRING, "What the producer decided about a delivered job: choose (make choice the active take, "
        "the others stay), keep (keep choice, or the active one when choice is left out, and remove the job's other "
        "takes), discard (remove all the job's takes, leaving the original).", choices=("choose", "keep", "discard")),
    Arg("choice", INT, "The take decided on: 0 = the original, 1 = the first variant delivered.", min=0, max=2),
    Arg("anchor", STRING, "Where the bars lie from the DAW's play cursor: last (the whole bars before the one it is "
        "in), this (the bar it is in; bars is then 1), next (from the next bar line, or the one it stands on).",
        choices=("last", "this", "next")),
    Arg("bars", INT, "How many bars.", default=1, min=1, max=64),
)}


def _args(*names: str, no_defaults: bool = False) -> tuple[Arg, ...]:
    found = tuple(ARGUMENTS[name] for name in names)
    return tuple(replace(arg, default=None) for arg in found) if no_defaults else found


_JOB_TAIL = ("backend", "delivery", "request_id", "position", "item_id", "track_id", "take_id", "reply_port",
             "drop_folder")
_JOB_REPLIES = ("accepted", "state", "done", "failed", "error")

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in (
    CommandSpec("inpaint", "Replace the range start..end of the source (or of a plugin's capture) with new "
                "material.",
                _args("source", "start", "end", "prompt"),
                _args("capture", "lyrics", "lyrics_section_to_replace", "gender", "num_outputs", *_JOB_TAIL),
                _JOB_REPLIES, either=(("source", "capture"),)),
    CommandSpec("extend", "Continue the song (or a plugin's capture) after extend_after with duration seconds of "
                "new material.",
                _args("source", "extend_after"),
                _args("capture", "prompt", "lyrics", "lyrics_section_to_extend", "gender", "num_outputs", "duration",
                      *_JOB_TAIL), _JOB_REPLIES, either=(("source", "capture"),)),
    CommandSpec("cancel", "Cancel a job; it ends in state cancelled (or stays finished if it already was).",
                _args("job_id"), _args("reply_port"), ("state", "error")),
    CommandSpec("retry", "Run a failed or cancelled job again; a MusicGPT job with a task id resumes waiting for "
                "that task instead of paying again.", _args("job_id"), _args("reply_port"), ("state", "error")),
    CommandSpec("resolve", "Settle a job in submission_unknown: with the task id found on the MusicGPT dashboard "
                "the daemon waits for that task; with \"\" it submits again (paying again).",
                _args("job_id", "task_id"), _args("reply_port"), ("state", "error")),
    CommandSpec("status", "Ask for one /bridge/state per unfinished job (only the named job when job_id is given), "
                "then /bridge/status_listed with the count, so an answer arrives when no job runs. A job named by "
                "job_id also has its end sent: /bridge/done or /bridge/failed at once when it has ended, else when "
                "it does (a plugin reopened with the job follows it so).",
                (), _args("job_id", "reply_port"), ("state", "done", "failed", "status_listed", "error")),
    CommandSpec("plugins", "List the live audio plugin instances (captures updated recently, or whose process "
                "runs): one /bridge/plugin each, then /bridge/plugins_listed with the count.",
                (), _args("reply_port"), ("plugin", "plugins_listed", "error")),
    CommandSpec("plugin_prompt", "Set the prompt an audio plugin instance's requests get when its Preset parameter "
                "is 0 (for an instance without a GUI); the daemon keeps it per instance across restarts. Preset n "
                "uses the daemon's n-th [presets.NAME] of the MIDI mapping file instead. Either fills only what "
                "the request left at its default.", _args("capture", "prompt"), _args("reply_port"),
                ("plugin_prompt_set", "error")),
    CommandSpec("ping", "Check the daemon is there and which address-space version it speaks.",
                (), _args("reply_port"), ("pong", "error")),
    CommandSpec("context", "Set the session context (the current selection) that hardware pads act on. Every key "
                "is optional and absent keys read as null, so the receiver can tell given from not given; a key "
                "left out keeps the value it had.",
                (), _args("source", "start", "end", "position", "item_id", "track_id", "take_id", "drop_folder",
                          no_defaults=True) + _args("reply_port"), ("context_set", "error")),
    CommandSpec("ableton", "Act on Ableton Live's loop: the daemon reads the arrangement loop brace, the tempo and the "
                "selected (or configured) Session clip's audio file through AbletonOSC, then runs operation on that "
                "range of that file, with results in <Live project>/Samples/daw-bridge. Options left out take the "
                "defaults of /bridge/inpaint and /bridge/extend, except delivery, which is the [ableton] table's "
                "(full unless set: a whole-song result lines up in Live when placed where the original starts). An "
                "option of the other operation is refused. Needs the [ableton] table in the daemon's config.",
                _args("operation"),
                _args("prompt", "lyrics", "lyrics_section_to_replace", "lyrics_section_to_extend", "gender",
                      "num_outputs", "duration", "backend", "delivery", "request_id", no_defaults=True)
                + _args("reply_port"), ("accepted", "state", "done", "failed", "context_set", "error")),
    CommandSpec("audition", "Play a delivered job through the daemon's audio output (JACK, else the system's): a "
                "pre-roll of the source, then the variant or the original over the range, then a post-roll, each "
                "variant loudness-matched to the original. job_id \"last\" means the job delivered last. A switch "
                "while the job plays (another variant, next, previous, ab) keeps the place in the song and "
                "crossfades.", _args("job_id", "what"), _args("variant", "reply_port"), ("auditioning", "error")),
    CommandSpec("decide", "Choose, keep or discard a delivered job's variants in the DAW: the daemon publishes the "
                "decision in the drop folder (DECISIONS_FOLDER), where the REAPER companion and Ardour's import "
                "hook apply it as one undo step, and a plugin instance that made the job is told. job_id \"last\" "
                "means the job delivered last. choose needs choice; discard takes none.",
                _args("job_id", "decision"), _args("choice", "reply_port"), ("decided", "error")),
    CommandSpec("bars", "Act on whole bars counted from the DAW's play cursor, as its transport feedback ([midi.daw]: "
                "REAPER's /time and /tempo/raw, AbletonOSC's current_song_time, tempo and signature, Ardour's "
                "/position/time and /position/bbt) or the audio plugin's host (its capture index) tells it, "
                "on the session context's source (/bridge/context, or the last command; with the plugin, its "
                "capture). /bridge/selected says "
                "which bars, in bars and seconds, then the job's replies follow. Bars are counted at the current "
                "tempo from the timeline's start: bars over which, or before which, the DAW's cursor reported "
                "another tempo or signature are refused, with where it changed. Ardour reports no tempo: its bars "
                "are its own bar lines, seen as its transport rolled through them. Options left out take the "
                "defaults of /bridge/inpaint and /bridge/extend; an option of the other operation (or any, with "
                "context) is refused. An extension lasts as long as its bars.",
                _args("operation", "anchor", "bars"),
                _args("prompt", "lyrics", "lyrics_section_to_replace", "lyrics_section_to_extend", "gender",
                      "num_outputs", "backend", "delivery", "request_id", "reply_port", no_defaults=True),
                ("selected", *_JOB_REPLIES)),
)}

_TEXT = dict(type=STRING, shorten=1000)  # explanations: cut rather than refused, so a reply can always be sent

REPLIES: dict[str, ReplySpec] = {spec.name: spec for spec in (
    ReplySpec("accepted", "A command was admitted as a job.",
              (Arg("request_id", STRING, "The request_id the command carried (\"\" when it had none)."),
               Arg("job_id", STRING, "The daemon's id for the job, for /bridge/cancel and /bridge/status."))),
    ReplySpec("state", "A job moved to a new state or made progress.",
              (Arg("job_id", STRING, "The job."),
               Arg("state", STRING, "One of the job states below.", choices=tuple(STATES)),
               Arg("progress", FLOAT, "Fraction of the current step done, 0..1.", min=0, max=1),
               Arg("message", meaning="A short note for the producer (\"\" when there is none).", **_TEXT))),
    ReplySpec("done", "A job delivered; one manifest per variant is in the drop folder.",
              (Arg("job_id", STRING, "The job."),),
              repeated=Arg("manifests", STRING, "Paths of the variants' manifests (JSON), one argument each, in "
                           "variant order.")),
    ReplySpec("failed", "A job ended without a result.",
              (Arg("job_id", STRING, "The job."),
               Arg("code", STRING, "Stable error code, e.g. source_error, auth_failed, rate_limited."),
               Arg("message", meaning="What went wrong and, where there is one, what to do.", **_TEXT))),
    ReplySpec("error", "A message was rejected before any job existed.",
              (Arg("address", STRING, "The address of the rejected message."),
               Arg("request_id", STRING, "Its request_id (\"\" when unknown)."),
               Arg("field", STRING, "The argument at fault (\"\" when the error is not about one argument)."),
               Arg("reason", meaning="Field, value and rule, e.g. \"end: 10.0 must be greater than start (12.5)\".",
                   **_TEXT))),
    ReplySpec("plugin_prompt_set", "Answer to /bridge/plugin_prompt: the prompt the instance's requests now get.",
              (Arg("capture", STRING, "The instance's capture name."),
               Arg("prompt", meaning="The prompt kept for it (\"\" clears it).", **_TEXT))),
    ReplySpec("plugin", "One live audio plugin instance, in answer to /bridge/plugins.",
              (Arg("capture", STRING, "Its capture's name: the value of capture in /bridge/inpaint and "
                   "/bridge/extend."),
               Arg("label", STRING, "The name its index gives it (\"\" when it gives none)."),
               Arg("pid", INT, "The host process's id (0 when unknown)."),
               Arg("plugin_format", STRING, "LV2, VST3, CLAP, ... (\"\" when unknown)."),
               Arg("age", FLOAT, "Seconds since its capture index was last written.", unit="s"),
               Arg("played", meaning="The timeline it has captured, e.g. \"0.000-42.500 s, 60.000-75.000 s\" (\"\" "
                   "when nothing yet).", **_TEXT))),
    ReplySpec("plugins_listed", "Ends the answer to /bridge/plugins.",
              (Arg("count", INT, "How many /bridge/plugin replies came before it."),)),
    ReplySpec("status_listed", "Ends the answer to /bridge/status.",
              (Arg("count", INT, "How many /bridge/state replies came before it."),)),
    ReplySpec("context_set", "The session context was updated by /bridge/context (or /bridge/ableton context).",
              (Arg("keys", STRING, "The keys the message set, comma-separated (\"\" when it set none)."),)),
    ReplySpec("auditioning", "What the audition plays now, in answer to /bridge/audition.",
              (Arg("job_id", STRING, "The job auditioned (\"\" once stopped)."),
               Arg("playing", STRING, "original, variant or stopped.", choices=("original", "variant", "stopped")),
               Arg("variant", INT, "The variant playing (0 for the original or when stopped)."),
               Arg("gain_db", FLOAT, "The loudness-matching gain the variant plays with over the range (0 for the "
                   "original)."),
               Arg("output", STRING, "Where it is heard: the JACK client's name, or \"default output\"."))),
    ReplySpec("decided", "A decision was published, in answer to /bridge/decide.",
              (Arg("job_id", STRING, "The job decided on."),
               Arg("decision", STRING, "choose, keep or discard.", choices=("choose", "keep", "discard")),
               Arg("choice", INT, "The take it settled on: 0 the original (always 0 for discard), n variant n."),
               Arg("seq", INT, "The decision's number for this job (1, 2, ...), as written in its file."))),
    ReplySpec("selected", "The bars /bridge/bars chose.",
              (Arg("range", meaning="Which bars, e.g. \"bars 7-8 (12.000-16.000 s)\" (timeline seconds).", **_TEXT),
               Arg("start", FLOAT, "Start, in seconds of source time.", unit="s"),
               Arg("end", FLOAT, "End, in seconds of source time.", unit="s"),
               Arg("tempo", FLOAT, "The tempo the bars were counted at (BPM); 0 from a DAW that reports none "
                   "(Ardour: its own bar lines, seen as its transport rolled)."),
               Arg("beats_per_bar", FLOAT, "Beats in a bar (4 unless the DAW said otherwise; 0 with tempo 0)."))),
    ReplySpec("heard", "What the daemon's voice input made of a push-to-talk take, sent after each take to the "
              "[voice] table's reply_port (when set), so a control surface or script can show it.",
              (Arg("text", meaning="The sentence of the grammar it heard best (\"\" when none).", **_TEXT),
               Arg("command", meaning="The command it stands for, as JSON, e.g. {\"command\": \"inpaint\", "
                   "\"bars\": 4, \"anchor\": \"last\"} (as daw-bridge voice decode --json prints it; \"\" when "
                   "rejected).",
                   **_TEXT),
               Arg("confidence", FLOAT, "How sure the recogniser was, 0..1 (orders results; not a probability).",
                   min=0, max=1),
               Arg("outcome", STRING, "accepted (run, like its pad), rejected (nothing usable heard), refused (heard, "
                   "but it cannot run now: message says why), waiting (a paid command waits for \"bridge yes "
                   "confirm\" or the confirm pad), confirmed, dropped (not confirmed in time, or another command "
                   "came first).", choices=("accepted", "rejected", "refused", "waiting", "confirmed", "dropped")),
               Arg("message", meaning="What the producer should know, e.g. the refusal's reason, or the job it "
                   "started (\"\" when there is nothing to add).", **_TEXT))),
    ReplySpec("pong", "Answer to /bridge/ping.",
              (Arg("version", STRING, "The address-space version the daemon speaks (osc_schema VERSION)."),)),
)}
