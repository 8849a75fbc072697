"""Where an audition is heard: a JACK client of its own where a JACK server runs, else the system's default output
through PortAudio (sounddevice). Both drive the same Mixer from their audio callback."""

from __future__ import annotations

import logging

from bridge.audio_clients import JackClient, sounddevice
from bridge.audition.mixer import Mixer
from bridge.audition.program import AuditionError

log = logging.getLogger(__name__)

# Not "daw-bridge", the MIDI virtual ports' client: opened first after a JACK restart, it took that name and the
# ports came back as "daw-bridge-01:pads in", which the producer's patchbay does not join.
CLIENT_NAME = "daw-bridge-audition"
OUTPUTS = ("auto", "jack", "portaudio", "none")


class JackOutput(JackClient):
    """A JACK client with two output ports (out_1, out_2), connected to ``ports`` or else to the speakers."""

    def __init__(self, server: str = "", ports: tuple[str, ...] = ()):
        super().__init__(CLIENT_NAME, server, AuditionError, "play")
        import jack
        self.mixer = Mixer(self.sample_rate)
        with self.setting_up():
            self._ports = [self.client.outports.register(f"out_{n}") for n in (1, 2)]
            self.client.set_process_callback(self._process)
            self.client.activate()
        targets = list(ports) or [p.name for p in self.client.get_ports(is_audio=True, is_input=True,
                                                                         is_physical=True)]
        for n, port in enumerate(self._ports):
            if targets:
                target = targets[min(n, len(targets) - 1)]
                try:
                    self.client.connect(port, target)
                except jack.JackError as exc:
                    log.warning("audition: cannot connect %s to %s: %s", port.name, target, exc)
        self.name = self.client.name

    def _process(self, frames: int) -> None:
        self.mixer.render([port.get_array() for port in self._ports], frames)


class PortAudioOutput:
    """The system's default output device, through PortAudio."""

    kind = "portaudio"
    alive = True

    def __init__(self):
        sd = sounddevice(AuditionError, "play")
        try:
            self.stream = sd.OutputStream(channels=2, dtype="float32", callback=self._callback)
        except sd.PortAudioError as exc:
            raise AuditionError(f"no audio output device to play through ({exc})") from None
        self.sample_rate = int(self.stream.samplerate)
        self.mixer = Mixer(self.sample_rate)
        self.name = "default output"
        self.stream.start()

    def _callback(self, outdata, frames, time, status) -> None:
        self.mixer.render(outdata.T, frames)

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def open_device(settings: dict):
    """The output the [audition] table asks for; ``auto``: JACK when a server runs, else PortAudio."""
    choice = settings.get("output", "auto")
    if choice == "none":
        raise AuditionError('audition is switched off ([audition] output = "none")')
    if choice in ("auto", "jack"):
        try:
            return JackOutput(settings.get("jack_server") or "", tuple(settings.get("jack_ports") or ()))
        except AuditionError as exc:
            if choice == "jack":
                raise
            log.info("audition: %s; trying the default output", exc)
    return PortAudioOutput()
