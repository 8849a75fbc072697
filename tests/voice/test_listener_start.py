"""A talk pad pressed as the daemon starts: its take is decoded once the recogniser has loaded, not lost."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from bridge.settings_schema import defaults
from bridge.voice import decode, listener
from bridge.voice.decode import Result
from bridge.voice.listener import Listener, Take


class SlowDecoder:
    """The recogniser, loading until the test lets it."""

    go = threading.Event()

    def __init__(self, threshold: float, presets: tuple = ()):
        assert self.go.wait(30)

    def unspeakable_notes(self) -> list[str]:
        return []

    def decode(self, audio: np.ndarray, rate: int) -> Result:
        return Result("bridge stop", {"command": "stop"}, 0.9, detail={"frames": len(audio)})


class Input:
    kind, name, sample_rate, alive = "jack", "test:in", 16000, True

    def __init__(self):
        self.take = Take(1000)

    def close(self) -> None:
        pass


def test_a_take_let_go_of_while_the_recogniser_still_loads_is_decoded_once_it_has(monkeypatch):
    # Released before the recogniser had loaded (a press as the daemon starts, on a loaded machine), the take was
    # decoded by no one: an AttributeError in the pads' handler, the recording lost and the talk pad left lit.
    monkeypatch.setattr(decode, "VoiceDecoder", SlowDecoder)
    monkeypatch.setattr(listener, "open_input", lambda settings: Input())
    SlowDecoder.go.clear()

    async def story() -> list:
        heard = []
        done = asyncio.Event()
        voice = Listener(defaults("voice"), lambda result, key: (heard.append((result, key)), done.set()))
        starting = asyncio.create_task(voice.start())
        try:
            await asyncio.sleep(0.1)  # the recogniser loads
            assert await voice.hold("talk")  # the press opens the input itself
            voice.input.take.write(np.ones(100, np.float32))  # the input's callback
            voice.release("talk")  # the recogniser has not loaded yet
            SlowDecoder.go.set()
            await starting
            await asyncio.wait_for(done.wait(), 10)
        finally:
            SlowDecoder.go.set()
            await voice.close()
        return heard

    [(result, key)] = asyncio.run(story())
    assert key == "talk" and result.command == {"command": "stop"} and result.detail["frames"] == 100
