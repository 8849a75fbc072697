"""The daemon's ears, push-to-talk: record the voice input only while a pad is held, decode the take off the loop.

The input is a JACK client of its own (``daw-bridge-voice:in``) where a JACK server runs, else the system's default
input through PortAudio (sounddevice). Its audio callback runs all the time but only copies, and only while a take
is armed, into one buffer allocated when the input opens ([voice] max_seconds long): it never allocates, locks,
waits, logs or does I/O. The event loop arms and disarms a take through one attribute holding an immutable tuple
(storing a reference is atomic in CPython), as the audition's Mixer does. Decoding runs on one thread of its own,
where the pocketsphinx decoder is built once, at start, and reused. The input runs in a process of its own
(``bridge.audio_process``), recording into memory the daemon's Take shares.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bridge import audio_process
from bridge.audio_clients import JackClient, sounddevice
from bridge.exceptions import BridgeError
from bridge.voice.decode import Result

log = logging.getLogger(__name__)

CLIENT_NAME = "daw-bridge-voice"


class VoiceInputError(BridgeError):
    code = "voice_input"


class Take:
    """One preallocated mono buffer; the audio callback appends to it while a take is armed.

    Its state is three integers beside the samples, in ``memory`` (shared with the input's process: both sides
    make a Take over the same bytes), else in memory of its own. The loop writes only the request, the callback only
    the rest; an aligned 8-byte store is whole on every platform we run on."""

    _REQUEST, _SEEN, _FRAMES = range(3)  # request: sequence * 2, plus 1 while armed

    def __init__(self, frames: int, memory=None):
        memory = bytearray(self.size(frames)) if memory is None else memory
        self._state = np.frombuffer(memory, np.int64, 3)
        self._buffer = np.frombuffer(memory, np.float32, frames, offset=self._state.nbytes)

    @staticmethod
    def size(frames: int) -> int:
        """The bytes a Take of ``frames`` needs."""
        return 3 * 8 + 4 * frames

    # -- the loop's side ---------------------------------------------------------------------------------------------

    def arm(self) -> None:
        """Start a new take (from the next audio block on)."""
        self._state[self._REQUEST] = (self._state[self._REQUEST] // 2 + 1) * 2 + 1

    def disarm(self) -> np.ndarray:
        """End the take; a copy of what it recorded (empty when the callback never ran while it was armed)."""
        request = int(self._state[self._REQUEST])
        taken_up = request % 2 and self._state[self._SEEN] == request
        frames = int(self._state[self._FRAMES]) if taken_up else 0  # read before the callback can reset it
        self._state[self._REQUEST] = (request // 2 + 1) * 2
        # A block in flight may still land after the read: it is past the frames copied, so it changes none of them.
        return self._buffer[:frames].copy()

    @property
    def armed(self) -> bool:
        return bool(self._state[self._REQUEST] % 2)

    # -- the callback's side -----------------------------------------------------------------------------------------

    def write(self, block: np.ndarray) -> None:
        """Append one block of samples (1-D float32) while armed; past the buffer's end the rest is dropped."""
        state = self._state
        request = state[self._REQUEST]
        if request != state[self._SEEN]:
            state[self._FRAMES] = 0  # first: a release that sees the new take taken up must not read the last's length
            state[self._SEEN] = request
        if not request % 2:
            return
        at = int(state[self._FRAMES])
        count = min(len(block), len(self._buffer) - at)
        if count > 0:
            self._buffer[at:at + count] = block[:count]
            state[self._FRAMES] = at + count


class JackInput(JackClient):
    """A JACK client with one input port, connected to ``port`` or else to the first physical capture port."""

    def __init__(self, max_seconds: float, server: str = "", port: str | None = None, make_take=Take):
        super().__init__(CLIENT_NAME, server, VoiceInputError, "listen")
        import jack

        with self.setting_up():
            self._port = self.client.inports.register("in")
            self.take = make_take(round(max_seconds * self.sample_rate))
            self.client.set_process_callback(self._process)
            self.client.activate()
        source = port or next((p.name for p in self.client.get_ports(is_audio=True, is_output=True,
                                                                     is_physical=True)), None)
        if source:
            try:
                self.client.connect(source, self._port)
            except jack.JackError as exc:
                log.warning("voice: cannot connect %s to %s: %s", source, self._port.name, exc)
        self.name = self._port.name

    def _process(self, frames: int) -> None:
        self.take.write(self._port.get_array())


class PortAudioInput:
    """The system's default input device (its first channel), through PortAudio."""

    kind = "portaudio"
    alive = True

    def __init__(self, max_seconds: float, make_take=Take):
        sd = sounddevice(VoiceInputError, "listen")
        try:
            self.stream = sd.InputStream(channels=1, dtype="float32", callback=self._callback)
        except sd.PortAudioError as exc:
            raise VoiceInputError(f"no audio input device to listen through ({exc})") from None
        self.sample_rate = int(self.stream.samplerate)
        self.take = make_take(round(max_seconds * self.sample_rate))
        self.name = "default input"
        self.stream.start()

    def _callback(self, indata, frames, time, status) -> None:
        self.take.write(indata[:, 0])

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def open_input(settings: dict):
    """The input the [voice] table asks for, listening from a process of its own where the platform allows
    (``bridge.audio_process`` says why)."""
    if not audio_process.CAN_PASS_DESCRIPTORS:
        return open_device(settings)
    return InputProcess(settings)


def open_device(settings: dict, make_take=Take):
    """The input device the [voice] table asks for; ``auto``: JACK when a server runs, else PortAudio."""
    choice, seconds = settings["input"], settings["max_seconds"]
    if choice in ("auto", "jack"):
        try:
            return JackInput(seconds, settings["jack_server"], settings["jack_port"], make_take)
        except VoiceInputError as exc:
            if choice == "jack":
                raise
            log.info("voice: %s; trying the default input", exc)
    return PortAudioInput(seconds, make_take)


class InputProcess(audio_process.DeviceProcess):
    """The input device opened in a child process; ``take`` is a Take over the memory its callback records into."""

    def __init__(self, settings: dict):
        super().__init__(_serve, settings, VoiceInputError)
        frames, = self.opened
        self.take = Take(frames, audio_process.received(self.pipe, Take.size(frames), writable=True))


def _serve(pipe, settings: dict, state) -> None:
    """In the input's process: open the device, recording takes into shared memory, and hand that memory over."""
    shared = {}

    def shared_take(frames: int) -> Take:
        descriptor = audio_process.anonymous_file(Take.size(frames))
        shared.update(frames=frames, descriptor=descriptor)
        return Take(frames, mmap.mmap(descriptor, Take.size(frames)))

    try:
        device = open_device(settings, shared_take)
    except VoiceInputError as exc:
        pipe.send(("failed", str(exc)))
        return
    audio_process.serve(pipe, state, device, opened=(shared["frames"],), descriptor=shared["descriptor"])


Heard = Callable[[Result, object], None]


class Listener:
    """Records while held, decodes on release; ``heard(result, key)`` is called on the loop with the pad's key."""

    def __init__(self, settings: dict, heard: Heard, presets: tuple[str, ...] = ()):
        """``presets``: the names a command may end with ("... with NAME"), the pads' [presets.NAME]."""
        self.settings = settings
        self.heard = heard
        self.presets = presets
        self.input = None
        self._decoder = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="voice-decode")
        self._holder: object | None = None  # the key of the pad whose take runs
        self._opening = asyncio.Lock()
        self._window: asyncio.TimerHandle | None = None
        self._decoding: set[asyncio.Future] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Load the recogniser (refused with the reason when it cannot be) and open the input (the daemon runs on
        without one: each press tries again)."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._loop.run_in_executor(self._executor, self._load)
        except ImportError as exc:
            raise BridgeError(f"[voice] needs pocketsphinx ({exc}): pip install 'daw-bridge[voice]'",
                              code="voice_unavailable") from None
        for note in self._decoder.unspeakable_notes():
            log.warning("voice: %s (name the preset with dictionary words, e.g. [presets.warm_strings])", note)
        await self._open()

    def _load(self) -> None:
        """The recogniser, loaded on the decoding thread, where every take is decoded after it: a take let go of while
        it still loads (a talk pad pressed as the daemon starts) waits for it there, instead of finding none (its
        recording was lost, the pad left lit)."""
        from bridge.voice.decode import VoiceDecoder

        self._decoder = VoiceDecoder(threshold=self.settings["threshold"], presets=self.presets)

    def _decode(self, audio: np.ndarray, rate: int) -> Result:
        """A take, on the decoding thread (after the recogniser's load: see _load)."""
        return self._decoder.decode(audio, rate)

    async def _open(self) -> bool:
        if self.input is not None and self.input.alive:
            return True
        async with self._opening:
            if self.input is not None and not self.input.alive:
                dead, self.input = self.input, None
                log.info("voice: the input's %s; opening it again", dead.gone)
                await asyncio.to_thread(dead.close)
            if self.input is None:
                try:
                    self.input = await asyncio.to_thread(open_input, self.settings)
                except VoiceInputError as exc:
                    log.warning("voice: %s; the next press tries again", exc)
                    return False
                log.info("voice listens through %s (%s, %d Hz) while a talk pad is held", self.input.name,
                         self.input.kind, self.input.sample_rate)
            return True

    async def hold(self, key: object, window: float | None = None) -> bool:
        """Start a take for the pad ``key``; with ``window``, it ends by itself that many seconds later. False when
        the pad was let go before the input was open (nothing is recorded then)."""
        if self._window is not None:
            self._window.cancel()
        self._holder = key
        opened = await self._open()  # at once, unless the input has to be opened (again)
        if self._holder != key:
            return False
        if not opened:
            self._holder = None
            raise VoiceInputError("no voice input to listen through (see the daemon's log)")
        self.input.take.arm()
        if window is not None:
            self._window = self._loop.call_later(window, self.release, key)
        return True

    def release(self, key: object) -> None:
        """End the take the pad ``key`` started, and decode it in the background."""
        if self._holder != key:
            return
        self._holder = None
        if self.input is None or not self.input.take.armed:
            return
        audio, rate = self.input.take.disarm(), self.input.sample_rate
        future = self._loop.run_in_executor(self._executor, self._decode, audio, rate)
        self._decoding.add(future)
        future.add_done_callback(lambda done: self._decoded(done, key))

    def _decoded(self, future: asyncio.Future, key: object) -> None:
        self._decoding.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("voice: decoding failed unexpectedly", exc_info=error)
            result = Result("", None, 0.0)
        else:
            result = future.result()
        self.heard(result, key)

    async def close(self) -> None:
        if self._window is not None:
            self._window.cancel()
        for future in list(self._decoding):
            future.cancel()
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        if self.input is not None:
            dead, self.input = self.input, None
            await asyncio.to_thread(dead.close)
