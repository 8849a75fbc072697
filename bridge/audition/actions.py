"""The audition's vocabulary, shared by OSC, pads and voice: what to play, and how each trigger names it.

Kept free of audio imports so the MIDI mapping can check pad actions without loading an audio stack.
"""

from __future__ import annotations

import osc_schema
from bridge.models import LAST  # noqa: F401  (the pads and the audition name "last" from here)

WHATS = osc_schema.ARGUMENTS["what"].choices  # original, variant, next, previous, ab, stop

# Pad actions (the MIDI mapping's `action = ...`) → (what, variant).
PAD_ACTIONS: dict[str, tuple[str, int | None]] = {
    "audition_original": ("original", None),
    **{f"audition_variant_{n}": ("variant", n) for n in range(1, int(osc_schema.ARGUMENTS["variant"].max) + 1)},
    "audition_next": ("next", None),
    "audition_previous": ("previous", None),
    "audition_ab": ("ab", None),
    "audition_stop": ("stop", None),
}


def from_voice(command: dict) -> tuple[str, int | None] | None:
    """(what, variant) for a decoded voice command (``bridge.voice.to_command``), None when it is no audition.

    "bridge audition two" → ("variant", 2); "bridge audition original" → ("original", None); "bridge next",
    "bridge previous", "bridge stop" → (that, None).
    """
    name = command.get("command")
    if name == "audition":
        variant = command.get("variant")
        return ("original", None) if variant == "original" else ("variant", variant)
    if name in ("next", "previous", "stop"):
        return name, None
    return None
