"""Voice commands, offline: a fixed grammar decoded by pocketsphinx's bundled English model (``pip install
'daw-bridge[voice]'``). See grammar.py for the sentences and decode.py for the decoding and the confidence check."""

from bridge.voice.decode import Result, VoiceDecoder, VoiceError, load
from bridge.voice.grammar import JSGF, WAKE_WORD, sentences, to_command

__all__ = ["JSGF", "WAKE_WORD", "Result", "VoiceDecoder", "VoiceError", "load", "sentences", "to_command"]
