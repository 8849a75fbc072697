"""The daemon's own audio clients, the audition's output and the voice's input: a JACK client where a JACK server
runs, else the system's default device through PortAudio (sounddevice). Opening one never starts a JACK server, and
says in one line why it cannot be done; a JACK client notices when its server goes away."""

from __future__ import annotations

from bridge.exceptions import BridgeError
from bridge.quiet_libraries import silence_client_libraries


class JackClient:
    """A JACK client named ``name`` on ``server`` ("" for the default one). ``error`` is raised, naming ``verb``
    ("play", "listen"), when JACK-Client or libjack is missing or no server runs."""

    kind = "jack"

    def __init__(self, name: str, server: str, error: type[BridgeError], verb: str):
        try:
            import jack
        except (ImportError, OSError) as exc:  # OSError: the package is there, libjack is not
            raise error(f"JACK unavailable to {verb} through: {exc} (pip install JACK-Client; apt install "
                        "libjack-jackd2-0)") from None
        silence_client_libraries()  # no server: libjack printed five lines of its own around ours
        try:
            self.client = jack.Client(name, servername=server or None, no_start_server=True)
        except jack.JackOpenError:
            raise error(f"no JACK server {server or 'running'} to {verb} through") from None
        self.sample_rate = self.client.samplerate
        self.alive = True  # False once the server went away (stopped, restarted): the next use opens a new client
        self.client.set_shutdown_callback(self._shutdown)

    def _shutdown(self, status, reason: str) -> None:
        self.alive = False

    def close(self) -> None:
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
