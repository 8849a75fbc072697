"""Every error daw-bridge reports, in one tree.

Each error carries a stable ``code`` (sent in ``/bridge/failed`` replies, status files and manifests) and a message
written for the producer: it names what was wrong and, where there is one, what to do.

    BridgeError
    ├── SourceError           source audio missing, unreadable, corrupt, or outside the project roots
    ├── NoMaterialError       the embedded engine found nothing in the song similar enough to re-use
    ├── DeliveryError         the drop folder cannot take the result (permissions, disk full)
    ├── JournalError          the job journal cannot be opened or is corrupt
    ├── Cancelled             the producer cancelled the job
    ├── Busy                  a command came while max_jobs + max_queued jobs were running or waiting
    └── BackendError          a generator failed
        ├── AuthError             the API key was refused (never retried)
        ├── CreditError           not enough credit (never retried)
        ├── RateLimited           429: retried after a backoff
        ├── TransientError        5xx, timeouts, dropped connections: retried a bounded number of times
        ├── SubmissionUnknown     a paid submit may or may not have reached the server: the producer decides
        ├── AlreadySubmitted      the spend ledger refused a second submit of one job (it would pay twice)
        └── SpendLimitReached     the configured spend guard refused a paid submit

``TransientError`` and ``RateLimited`` are the only retryable ones. A command that fails validation raises
``osc_schema.ValidationError`` (field, value, rule) instead: the schema package stands alone, and every trigger
(OSC, request file, MIDI, CLI) reports it with code ``invalid_argument``.
"""

from __future__ import annotations

from bridge.logs import one_line


class BridgeError(Exception):
    """Base of all daw-bridge errors. Its message is one line, whatever it quotes (a file name with a newline)."""

    code = "error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(one_line(message))
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class SourceError(BridgeError):
    code = "source_error"


class NoMaterialError(BridgeError):
    code = "no_material"


class DeliveryError(BridgeError):
    code = "delivery_failed"


class JournalError(BridgeError):
    code = "journal_error"


class Cancelled(BridgeError):
    code = "cancelled"


class Busy(BridgeError):
    code = "busy"


class BackendError(BridgeError):
    code = "backend_error"


class AuthError(BackendError):
    code = "auth_failed"


class CreditError(BackendError):
    code = "insufficient_credit"


class RateLimited(BackendError):
    code = "rate_limited"
    retryable = True


class TransientError(BackendError):
    code = "backend_unavailable"
    retryable = True


class SubmissionUnknown(BackendError):
    code = "submission_unknown"


class AlreadySubmitted(BackendError):
    code = "already_submitted"


class SpendLimitReached(BackendError):
    code = "spend_limit"

