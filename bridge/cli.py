"""The ``daw-bridge`` command."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

import osc_schema
from bridge import __version__, logs
from bridge.commands import path_argument, port_number, seconds
from bridge.config import Config, ConfigError, load


def main(argv: list[str] | None = None) -> int:
    # One BLAS thread: on a machine busy with a DAW, OpenBLAS's spinning threads made small matrix products up to
    # 100x slower. Must be set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    before, argv = _leading_options(parser, argv)
    args, extra = parser.parse_known_args(argv)
    # A command's arguments may come after its options too ("send inpaint --wait source=... start=...", "jobs
    # resolve --not-submitted JOB"): argparse ends the optional and nargs="*" positionals at the first option and
    # refuses the rest, so such a line is read again with the options first (argv[0] names the command).
    if extra and not any(a.startswith("-") for a in extra):
        try:
            args = args.parser.parse_intermixed_args(argv[1:])
        except TypeError:  # a command with commands of its own (install TARGET) cannot be read so
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "config", None) is None and before.config is not None:  # named after the command, it wins
        args.config = before.config
    args.verbose = getattr(args, "verbose", False) or before.verbose
    logs.install(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    stdout = sys.stdout
    if hasattr(stdout, "reconfigure"):  # a terminal that is not UTF-8 shows a song named in Japanese as \u6b4c
        stdout.reconfigure(errors="backslashreplace")
    sys.stdout = _Output(stdout) if stdout is not None else None
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"daw-bridge: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except socket.gaierror as exc:  # the commands resolve one name only: where the daemon listens (osc_host)
        print(f"daw-bridge: the daemon's address (osc_host) cannot be resolved: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away ('daw-bridge send ... | head -1'): stop, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # so the exit's flush fails quietly too
        return 141  # 128 + SIGPIPE
    except _OutputLost as exc:  # 'daw-bridge jobs > list.txt' on a full disk
        print(f"daw-bridge: cannot write the output: {exc}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # what is still buffered is lost the same way
        return 1
    finally:
        sys.stdout = stdout


def _leading_options(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """--config and -v named before the command ('daw-bridge --config FILE doctor', as git and systemctl take
    theirs; 'invalid choice: FILE' before), and the command line from the command on."""
    leading = argparse.ArgumentParser(prog=parser.prog, add_help=False)
    leading.error = parser.error  # its usage, not the helper's
    leading.add_argument("--config", type=path_argument)
    leading.add_argument("-v", "--verbose", action="store_true")
    take = 0
    while take < len(argv) and argv[take].startswith("-") and argv[take] not in ("-h", "--help", "--version"):
        take += 2 if argv[take] == "--config" else 1
    before, unknown = leading.parse_known_args(argv[:take])
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return before, argv[take:]


class _OutputLost(Exception):
    """Standard output could not be written (a full disk behind a redirection, a terminal gone)."""


class _Output:
    """Standard output whose failed writes are told apart from the OSErrors of the files a command works on, so
    that a full disk behind 'daw-bridge jobs > list.txt' is named as such, not as a traceback or a failed job."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputLost(exc.strerror or str(exc)) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputLost(exc.strerror or str(exc)) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


ABOUT = """\
Rework a range of a song from your DAW: inpaint it, or extend it, on the embedded
engine (offline, the default) or on MusicGPT. The daemon (serve) takes commands over
OSC, MIDI, request files or the audio plugin and delivers the results into the
project; inpaint and extend also work without it.
First time: daw-bridge demo, then daw-bridge doctor."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daw-bridge", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=ABOUT)
    parser.add_argument("--version", action="version", version=f"daw-bridge {__version__}")
    parser.add_argument("--config", help="config file, for any command (named after the command too)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail, for any command")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", type=path_argument, help="config file (default: the platform config folder)")
        p.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
        p.set_defaults(run=run, parser=p)
        return p

    p = command("serve", _serve, "run the daemon in the foreground")
    _daemon_flags(p)

    p = command("send", _send, "send one OSC command to a running daemon and print its replies")
    p.add_argument("name", help=f"command: {', '.join(osc_schema.COMMANDS)} (docs/osc.md says what each takes)")
    p.add_argument("values", nargs="*", metavar="KEY=VALUE", help="arguments, e.g. source=/x.wav start=12.5")
    p.add_argument("--port", type=port_number, help="daemon OSC port (default: from the config)")
    p.add_argument("--wait", action="store_true", help="for inpaint/extend: wait until the job is done")
    p.add_argument("--timeout", type=seconds, help="seconds to wait for replies (default 5; with --wait, for the "
                   "job's outcome: 600)")

    for name, help in (("inpaint", "replace a range of a song, without a daemon"),
                       ("extend", "continue a song after a point, without a daemon")):
        p = command(name, _one_shot, help)
        p.set_defaults(operation=name)
        p.add_argument("source", type=path_argument, help="the song (any format libsndfile reads)")
        if name == "inpaint":
            p.add_argument("--start", type=float, required=True, help="start of the range, seconds")
            p.add_argument("--end", type=float, required=True, help="end of the range, seconds")
        else:
            p.add_argument("--after", type=float, required=True, help="extend after this point, seconds")
            p.add_argument("--duration", type=float, help="seconds of new material (default 30)")
        p.add_argument("--prompt", default="", help="what it should sound like (MusicGPT); the embedded engine "
                       "follows only words of energy and brightness (calmer, more intense, brighter...)")
        p.add_argument("--lyrics", help="the song's lyrics (MusicGPT)")
        p.add_argument("--section-lyrics", help="lyrics for the new part (MusicGPT)")
        p.add_argument("--gender", choices=osc_schema.ARGUMENTS["gender"].choices, help="voice for new vocals "
                       "(MusicGPT)")
        p.add_argument("--num-outputs", type=int, help="variants, 1 or 2 (default 2)")
        p.add_argument("--backend", choices=osc_schema.ARGUMENTS["backend"].choices, help="local: the embedded "
                       "engine, offline; musicgpt: the paid cloud (default: the config's backend)")
        p.add_argument("--delivery", choices=osc_schema.ARGUMENTS["delivery"].choices, help="patch: the range "
                       "with short handles; full: the whole song with the range replaced (default: the config's)")
        p.add_argument("--out", type=path_argument, help="drop folder (default: beside the source)")

    p = command("jobs", _jobs, "list, show, cancel, retry or resolve jobs; choose, keep or discard a delivered "
                "job's takes")
    p.add_argument("action", nargs="?", default="list",
                   choices=("list", "show", "cancel", "retry", "resolve", *osc_schema.ARGUMENTS["decision"].choices))
    p.add_argument("job_id", nargs="?", help="a job id, or 'last' (choose, keep, discard: the job delivered last)")
    p.add_argument("choice", nargs="?", type=int, help="choose, keep: the take, 0 = the original, 1 = the first "
                   "variant (keep without it: the chosen one)")
    p.add_argument("--task-id", help="resolve: the MusicGPT task id you found for this job")
    p.add_argument("--not-submitted", action="store_true", help="resolve: the job never reached MusicGPT")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = command("midi", _midi, "MIDI pads: list the ports, or learn a pad (press it; its mapping entry is written)")
    from bridge.commands.midi import add_arguments as midi_arguments

    midi_arguments(p)

    p = command("voice", _voice, "voice commands, offline: decode a recording into a command")
    from bridge.commands.voice import add_arguments as voice_arguments

    voice_arguments(p)

    p = command("plugin", _plugin, "the audio plugin's live instances, an instance's prompt, the presets it chooses "
                "from")
    from bridge.commands.plugin import add_arguments as plugin_arguments

    plugin_arguments(p)

    p = command("doctor", _doctor, "check the config, ports, folders and backends")
    p = command("demo", _demo, "make a song, start the daemon, inpaint and extend it over OSC, show the results")
    p.add_argument("--dir", type=path_argument, help="where to put the demo project (default: a new temporary folder)")

    from bridge.commands.install import add_arguments as install_arguments

    for name, installing, help in (("install", True, "put the DAW scripts or the user service in place (TARGET: "
                                     "reaper, ardour, service, plugin)"),
                                   ("uninstall", False, "take out what `install TARGET` put in place")):
        p = command(name, _install, help)
        p.set_defaults(installing=installing)
        install_arguments(p, installing)

    p = command("generate", _generate, "regenerate docs/osc.md and the Lua constants from osc_schema, "
                "docs/config.md from the settings schema, and the REAPER package's ReaPack index.xml from its "
                "scripts' headers")
    p.add_argument("--check", action="store_true", help="only report stale generated files")
    p.add_argument("--base-url", help="ReaPack index: the repository's raw-file address (default: "
                   "bridge.reapack_index.BASE_URL)")
    return parser


def _daemon_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--osc-port", type=int, help="UDP port for OSC commands")
    p.add_argument("--inbox", type=path_argument, help="folder watched for request files")
    p.add_argument("--drop-folder", type=path_argument, help="drop folder (default: beside each source)")
    p.add_argument("--backend", choices=osc_schema.ARGUMENTS["backend"].choices, help="default backend")
    p.add_argument("--state-dir", type=path_argument, help="journal, cache and work files")


def _config(args) -> Config:
    config = load(args.config)
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(config.log_level.upper())
    return config.with_overrides(osc_port=getattr(args, "osc_port", None), inbox=getattr(args, "inbox", None),
                                 drop_folder=getattr(args, "drop_folder", None),
                                 backend=getattr(args, "backend", None), state_dir=getattr(args, "state_dir", None))


def _serve(args) -> int:
    from bridge.daemon import serve

    return serve(_config(args))


def _send(args) -> int:
    from bridge.commands.send import send

    return send(_config(args), args)


def _one_shot(args) -> int:
    from bridge.commands.one_shot import one_shot

    return one_shot(_config(args), args)


def _jobs(args) -> int:
    from bridge.commands.jobs import jobs

    return jobs(_config(args), args)


def _midi(args) -> int:
    from bridge.commands.midi import midi

    return midi(_config(args), args)


def _voice(args) -> int:
    from bridge.commands.voice import voice

    return voice(_config(args), args)


def _doctor(args) -> int:
    from bridge.commands.doctor import doctor

    return doctor(_config(args))


def _demo(args) -> int:
    from bridge.commands.demo import demo

    return demo(args.dir)


def _plugin(args) -> int:
    from bridge.commands.plugin import run

    return run(_config(args), args)


def _install(args) -> int:
    from bridge.commands.install import run

    return run(args, args.installing)


def _generate(args) -> int:
    from bridge import reapack_index
    from bridge.settings_schema import generate as config_docs
    from osc_schema import generate

    # From a wheel the files it writes are not there: --check called them all stale, and generate wrote a docs/ and
    # a daw_scripts/ into site-packages.
    if not (reapack_index.ROOT / "pyproject.toml").is_file():
        print(f"daw-bridge generate: the generated files are not in this installation ({reapack_index.ROOT}); run it "
              "in daw-bridge's source folder, installed with python3 -m pip install -e .", file=sys.stderr)
        return 1
    status = generate.main(["--check"] if args.check else [])
    status = max(status, config_docs.main(check=args.check))
    return max(status, reapack_index.main(check=args.check, base_url=args.base_url))


if __name__ == "__main__":
    sys.exit(main())
