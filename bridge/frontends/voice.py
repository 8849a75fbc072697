"""Voice commands act as pads: a talk pad held (or a listen pad pressed) records, and what is heard runs the pad
action or command a pad would run, on the same selection, through the MIDI frontend.

"bridge inpaint|extend ... bars" is a command pad with those bars from the play cursor ("... with NAME": with the
mapping's [presets.NAME]); "bridge audition two", "next", "previous", "stop" are the audition pads; cancel and retry
act on the last job; keep and discard decide on the job delivered last. The talk pad's LED answers: lit while it
records, then two slow flashes when the command was accepted, five fast ones when nothing usable was heard (or the
command was refused); a job it started lights it until the job ends, as a command pad's does.

A command that would spend money (MusicGPT: the config's default backend, or a retry of a MusicGPT job) does not run
at once: the talk pad stays lit for CONFIRM_SECONDS, and "bridge yes confirm" or a confirm pad runs it; otherwise
it is dropped, and the pad flashes failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import osc_schema
from bridge.audition.actions import PAD_ACTIONS as AUDITION_ACTIONS
from bridge.audition.actions import from_voice
from bridge.config import Config
from bridge.exceptions import BridgeError
from bridge.frontends.midi import MidiFrontend
from bridge.frontends.midi_mapping import ACTIONS, Pad, Trigger
from bridge.frontends.osc_wire import encode
from bridge.models import JobRecord
from bridge.voice.decode import Result
from bridge.voice.grammar import CONFIRM, WAKE_WORD
from bridge.voice.listener import Listener
from osc_schema import ValidationError

log = logging.getLogger(__name__)

LISTEN_SECONDS = 3.0  # a listen pad's take
CONFIRM_SECONDS = 5.0  # how long a paid command waits for "bridge yes confirm" or the confirm pad
PAID_BACKENDS = ("musicgpt",)
_AUDITION_PADS = {what: action for action, what in AUDITION_ACTIONS.items()}  # (what, variant) -> pad action


class VoiceFrontend:
    """Start it with ``await start()`` (loads the recogniser, opens the input); ``await close()`` lets them go."""

    def __init__(self, pads: MidiFrontend, config: Config):
        self.pads = pads
        self.default_backend = config.backend
        self.listener = Listener(config.voice, self.heard, presets=tuple(pads.mapping.presets))
        # a paid command, its timeout, and its request as resolved when it was heard (the cursor moves on meanwhile)
        self._waiting: tuple[Pad, int, asyncio.TimerHandle, Result, tuple | None] | None = None
        self._asking: asyncio.Task | None = None  # a paid command being checked before it waits (see _ask)
        self._holds: set[asyncio.Task] = set()
        port = config.voice.get("reply_port")
        self._reply_to = (config.voice["reply_host"], port) if port else None
        self._reply_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if port else None

    async def start(self) -> None:
        await self.listener.start()
        if (problem := self.pads.mapping.why_voice_never_listens()) is not None:
            log.warning("voice: %s", problem)

    async def close(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
        if self._waiting is not None:
            self._waiting[2].cancel()
        for task in list(self._holds):
            task.cancel()
        await self.listener.close()
        if self._reply_socket is not None:
            self._reply_socket.close()

    # -- pads -------------------------------------------------------------------------------------------------------

    def pressed(self, action: str, led: tuple) -> None:
        """A talk, listen or confirm pad was pressed (the MIDI frontend's pad action)."""
        if action == "confirm":
            self.confirm(led)
            return
        task = asyncio.get_running_loop().create_task(
            self.listener.hold(led, LISTEN_SECONDS if action == "listen" else None))
        self._holds.add(task)

        def held(task: asyncio.Task) -> None:
            self._holds.discard(task)
            if task.cancelled():
                return
            if task.exception() is not None:
                log.warning("voice: %s", task.exception())
                self.pads.leds.flash(led, "failed")
            elif task.result():
                self.pads.leds.light(led)

        task.add_done_callback(held)

    def released(self, led: tuple) -> None:
        """A talk pad was let go: its take is decoded."""
        self.listener.release(led)

    def confirm(self, led: tuple, said: Result | None = None) -> None:
        """Run the paid command waiting for confirmation (a confirm pad, or "bridge yes confirm")."""
        if self._waiting is None:
            log.warning("voice: nothing waits for confirmation")
            self.pads.leds.flash(led, "failed")
            if said is not None:
                self._tell(said, "refused", "nothing waits for confirmation")
            return
        pad, channel, timeout, result, prepared = self._waiting
        self._waiting = None
        timeout.cancel()
        log.info("%s confirmed", pad.name)
        self._run(pad, channel, result, "confirmed", prepared)

    # -- what was heard ---------------------------------------------------------------------------------------------

    def heard(self, result: Result, led: tuple) -> None:
        """Act on a decoded take (called on the loop by the listener)."""
        command = result.command
        log.info("voice: heard %r (confidence %.2f): %s", result.text, result.confidence,
                 "rejected" if command is None else command)
        if command is None:
            self.pads.leds.flash(led, "failed")
            self._tell(result, "rejected", f"not sure enough of {result.text!r}: say it again" if result.text else
                       "nothing heard: hold the talk pad while you speak")
            return
        if command["command"] == "confirm":
            self.confirm(led, result)
            return
        self._drop("another command came first")
        try:
            pad = self.pad_for(command, led, result.text)
            paid = self._backend(pad) in PAID_BACKENDS
        except (ValidationError, BridgeError) as exc:
            log.warning("voice: %r: %s", result.text, exc)
            self.pads.leds.flash(led, "failed")
            self._tell(result, "refused", str(exc))
            return
        if paid:
            self._asking = asyncio.get_running_loop().create_task(self._ask(pad, led, result))
            return
        self._run(pad, led[2], result, "accepted")

    async def _ask(self, pad: Pad, led: tuple, result: Result) -> None:
        """Ask for the go-ahead on a paid command, once it is known that it would be admitted: refused now, not after
        the producer gave it. The check looks at the song and the drop folder in a thread, as an admission does (a
        project on a share that does not answer held up the whole daemon while the check waited on the loop)."""
        try:
            # what is confirmed is what was heard: "the last four bars" counted from the cursor now, not seconds later
            prepared = await self.pads.prepare(pad) if pad.command is not None else None
            if prepared is not None:
                await asyncio.to_thread(self.pads.service.check, osc_schema.parse_request(prepared[0]))
        except Exception as exc:
            self.pads.press_failed(pad, led, exc, lambda _, error: self._tell(result, "refused", str(error)))
            return
        finally:
            if self._asking is asyncio.current_task():
                self._asking = None
        timeout = asyncio.get_running_loop().call_later(CONFIRM_SECONDS, self._drop, "not confirmed in time")
        self._waiting = (pad, led[2], timeout, result, prepared)
        wait = (f"would spend MusicGPT credits: say \"{WAKE_WORD} {CONFIRM}\" or press the confirm pad within "
                f"{CONFIRM_SECONDS:g} s")
        log.warning("voice: %r %s", result.text, wait)
        self.pads.leds.light(led)
        self._tell(result, "waiting", wait)

    def _run(self, pad: Pad, channel: int, result: Result, outcome: str, prepared: tuple | None = None) -> None:
        """Press the pad a command stands for (with the request ``prepared`` when it was heard), and say what came of
        it."""
        def told(record: JobRecord | None, error: Exception | None) -> None:
            if error is not None:  # logged and flashed by the pads
                self._tell(result, "refused", str(error))
            else:
                self._tell(result, outcome, f"job {record.job_id}" if record is not None else "")

        try:
            self.pads.act(pad, channel, prepared, then=told)
        except (ValidationError, BridgeError) as exc:
            told(None, exc)

    def _tell(self, result: Result, outcome: str, message: str) -> None:
        """/bridge/heard to the [voice] reply_port, when one is set."""
        if self._reply_to is None:
            return
        command = json.dumps(result.command) if result.command is not None else ""
        address, args = osc_schema.reply("heard", text=result.text, command=command,
                                         confidence=result.confidence, outcome=outcome, message=message)
        try:
            self._reply_socket.sendto(encode(address, args), self._reply_to)
        except OSError as exc:  # nobody listens there now: the LED has answered
            log.debug("voice: could not send /bridge/heard to %s:%d: %s", *self._reply_to, exc)

    def pad_for(self, command: dict, led: tuple, text: str) -> Pad:
        """The pad a voice command stands for, pressed on the talk pad's trigger (so its LED answers)."""
        trigger = Trigger(led[0], led[1], led[2])
        name = f'voice "{text}"'
        name_of = command["command"]
        if name_of in ("inpaint", "extend"):
            preset = self.pads.mapping.presets.get(command.get("preset"), {})  # its arguments are checked at the press
            return Pad(trigger, name_of, None, dict(preset), None, name, (command["anchor"], command["bars"]))
        audition = from_voice(command)
        action = _AUDITION_PADS.get(audition) if audition is not None else name_of
        if action is None:
            raise ValidationError("variant", command.get("variant"), "is not a variant a job can have")
        if action not in ACTIONS:
            raise ValidationError("action", action, "is not a pad action of this daemon")
        return Pad(trigger, None, action, {}, None, name)

    def _backend(self, pad: Pad) -> str | None:
        """The backend a pad's job would run on: a command's default, a retried job's own; None for the rest."""
        if pad.command is not None:
            return pad.args.get("backend") or self.default_backend
        if pad.action == "retry":
            record = self.pads.service.get(self.pads.last_job_id) if self.pads.last_job_id else None
            return record.spec.backend if record is not None else None
        return None

    def _drop(self, reason: str) -> None:
        if self._asking is not None:  # still being checked: it never asks
            self._asking.cancel()
            self._asking = None
        if self._waiting is None:
            return
        pad, channel, timeout, result, _ = self._waiting
        self._waiting = None
        timeout.cancel()
        log.warning("%s dropped: %s", pad.name, reason)
        self.pads.leds.flash((pad.trigger.kind, pad.trigger.number, channel), "failed")
        self._tell(result, "dropped", reason)
