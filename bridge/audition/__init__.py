"""Audition from the daemon: play a delivered result in context (pre-roll, variant or original, post-roll),
loudness-matched, through JACK or the system's default output, switched from pads, OSC and voice."""

from bridge.audition.actions import LAST, PAD_ACTIONS, WHATS, from_voice
from bridge.audition.player import Audition, Playing
from bridge.audition.program import AuditionError

__all__ = ["LAST", "PAD_ACTIONS", "WHATS", "Audition", "AuditionError", "Playing", "from_voice"]
