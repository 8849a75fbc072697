"""The daw-bridge address space as data: commands, replies, limits and job states, and the checks built on them.

It stands alone (no import of ``bridge``): the daemon validates every trigger with it, and the OSC reference and the
DAW scripts' Lua constants are generated from it (``python -m osc_schema.generate``).
"""

from osc_schema.spec import (
                             ARGUMENTS,
                             COMMANDS,
                             DECIDED_LEDGERS,
                             DECISION_FORMAT,
                             DECISIONS_FOLDER,
                             DEFAULT_OSC_PORT,
                             KEPT_FOLDER,
                             MANIFEST_FORMAT,
                             REPLIES,
                             STATES,
                             VERSION,
                             Arg,
                             CommandSpec,
                             ReplySpec,
)
from osc_schema.validate import (
                             Command,
                             ValidationError,
                             error_reply,
                             load_request,
                             parse_osc,
                             parse_reply,
                             parse_request,
                             reply,
                             show,
                             to_osc_args,
)

__version__ = VERSION

__all__ = ["ARGUMENTS", "COMMANDS", "DECIDED_LEDGERS", "DECISION_FORMAT", "DECISIONS_FOLDER", "DEFAULT_OSC_PORT",
           "KEPT_FOLDER", "MANIFEST_FORMAT", "REPLIES", "STATES", "VERSION", "Arg", "Command", "CommandSpec",
           "ReplySpec", "ValidationError", "error_reply", "load_request", "parse_osc", "parse_reply", "parse_request",
           "reply", "show", "to_osc_args"]
