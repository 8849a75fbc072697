"""``daw-bridge voice decode FILE``: decode a push-to-talk recording into a command, offline, as the daemon would
(its [voice] threshold, the preset names of its pads' mapping)."""

from __future__ import annotations

import argparse
import json
import sys

from bridge.commands import path_argument
from bridge.config import Config
from bridge.plugin_prompts import presets


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("decode", "grammar"), help="decode: a recording into a command; grammar: print "
                   "the JSGF grammar and its sentences")
    p.add_argument("file", nargs="?", type=path_argument, help="decode: the recording (any format libsndfile reads)")
    p.add_argument("--json", action="store_true", help="one line: {\"text\", \"command\", \"confidence\"}")


def voice(config: Config, args) -> int:
    try:
        from bridge.voice import VoiceDecoder, VoiceError, load, sentences
        from bridge.voice.grammar import jsgf
    except ImportError as exc:  # pocketsphinx is an extra
        return _no_pocketsphinx(exc)
    if args.action == "decode" and args.file is None:
        print("daw-bridge voice decode: name the recording (daw-bridge voice decode FILE.wav)", file=sys.stderr)
        return 2
    try:
        decoder = VoiceDecoder(threshold=config.voice["threshold"], presets=tuple(name for name, _ in presets(config)))
    except ImportError as exc:  # the decoder imports pocketsphinx when it is built
        return _no_pocketsphinx(exc)
    for note in decoder.unspeakable_notes():
        print(f"daw-bridge voice: {note}", file=sys.stderr)
    if args.action == "grammar":
        print(jsgf(decoder.presets))
        print("\n".join(sentences(decoder.presets)))
        return 0
    try:
        audio, rate = load(args.file)
    except VoiceError as exc:
        print(f"daw-bridge voice decode: {exc}", file=sys.stderr)
        return 2
    result = decoder.decode(audio, rate)
    if args.json:
        print(json.dumps(result.as_json()))
    elif result.command is None:
        print(f"rejected (heard {result.text or 'nothing'!r}, confidence {result.confidence:.2f})")
    else:
        print(f"{json.dumps(result.command)}  (heard {result.text!r}, confidence {result.confidence:.2f})")
    return 0


def _no_pocketsphinx(exc: ImportError) -> int:
    print(f"daw-bridge voice: pocketsphinx is not installed ({exc}); pip install 'daw-bridge[voice]'", file=sys.stderr)
    return 2
