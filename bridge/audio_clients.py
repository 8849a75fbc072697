"""The daemon's own audio clients, the audition's output and the voice's input: a JACK client where a JACK server
runs, else the system's default device through PortAudio (sounddevice). Opening one never starts a JACK server, and
says in one line why it cannot be done; a JACK client notices when its server goes away.

Every dead JACK client (its server stopped or restarted) is closed before any new one opens, whoever owns it: once
a client of the new server is open, closing one of the old server's (the voice's, after a press opened the
audition's again) breaks libjack's bookkeeping, and closing the new one then crashes the process (measured: a
segfault). Its owner's own ``close()`` later does nothing more."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from bridge.exceptions import BridgeError
from bridge.quiet_libraries import silence_client_libraries

_LOCK = threading.Lock()  # opening and closing JACK clients, from whichever thread
_OPEN: list["JackClient"] = []  # every JACK client open in this process


def _close_dead() -> None:
    """Close every JACK client whose server went away (with ``_LOCK`` held); done before a new client opens."""
    for client in [c for c in _OPEN if not c.alive]:
        client._close()


class JackClient:
    """A JACK client named ``name`` on ``server`` ("" for the default one). ``error`` is raised, naming ``verb``
    ("play", "listen"), when JACK-Client or libjack is missing or no server runs."""

    kind = "jack"
    gone = "JACK server went away"  # why ``alive`` is False, for the log

    def __init__(self, name: str, server: str, error: type[BridgeError], verb: str):
        try:
            import jack
        except (ImportError, OSError) as exc:  # OSError: the package is there, libjack is not
            raise error(f"JACK unavailable to {verb} through: {exc} (pip install JACK-Client; apt install "
                        "libjack-jackd2-0)") from None
        silence_client_libraries()  # no server: libjack printed five lines of its own around ours
        with _LOCK:
            _close_dead()
            try:
                self.client = jack.Client(name, servername=server or None, no_start_server=True)
            except jack.JackOpenError:
                raise error(f"no JACK server {server or 'running'} to {verb} through") from None
            self._error = error
            self.sample_rate = self.client.samplerate
            self.alive = True  # False once the server went away (stopped, restarted): the next use opens a new one
            self._closed = False
            self.client.set_shutdown_callback(self._shutdown)
            _OPEN.append(self)

    @contextmanager
    def setting_up(self):
        """Registering the client's ports and activating it: the server's refusal (its port limit reached) said in
        one line, and the client closed."""
        import jack

        try:
            yield
        except jack.JackError as exc:
            name = self.client.name  # none once closed
            self.close()
            raise self._error(f"the JACK server would not take {name}'s ports ({exc})") from None

    def _shutdown(self, status, reason: str) -> None:
        self.alive = False

    def close(self) -> None:
        with _LOCK:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _OPEN.remove(self)
        if self.alive:
            self.client.deactivate()
        self.client.close()


def sounddevice(error: type[BridgeError], verb: str):
    """The sounddevice module (PortAudio); ``error`` naming ``verb`` when it or libportaudio is missing."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise error(f"PortAudio unavailable to {verb} through: {exc} (pip install sounddevice; apt install "
                    "libportaudio2)") from None
    return sounddevice
