"""Telling a DAW at once that results arrived, through its own OSC surface (REAPER: run the companion action)."""

from __future__ import annotations

import logging
import socket

from bridge.frontends.osc_wire import encode
from bridge.models import JobRecord
from bridge.settings_schema import check_table

log = logging.getLogger(__name__)


class DawNotifier:
    """Sends one OSC message to a DAW after each delivery, e.g. REAPER's ``/action/_RS…`` for the importer.

    Config: ``[notify] host = "127.0.0.1", port = 8000, address = "/action/_RS7d3c…"``; ``args`` are sent with the
    address (REAPER's ``/action/str`` takes the command id as a string argument).
    """

    def __init__(self, table: dict):
        """``table``: the ``[notify]`` table, checked (again, harmlessly) by the settings schema."""
        settings = check_table("notify", table)
        self.target = (settings["host"], settings["port"])
        self.address = settings["address"]
        self.args = list(settings["args"])
        self._sock: socket.socket | None = None  # made for the family the host resolves to ("::1" too)
        try:
            resolve(*self.target)
        except OSError as exc:  # said once, at start: each delivery says it only in the debug log
            log.warning("[notify] host %r cannot be resolved (%s): the DAW is not told of results until it can",
                        self.target[0], exc.strerror or exc)

    def __call__(self, record: JobRecord, event: str) -> None:
        if event != "done":
            return
        try:
            family, address = resolve(*self.target)
            if self._sock is None or self._sock.family != family:
                self.close()
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sock.sendto(encode(self.address, self.args), address)
        except OSError as exc:  # the DAW is closed: its importer will find the manifests when it starts
            log.debug("could not notify %s:%d: %s", *self.target, exc)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def resolve(host: str, port: int) -> tuple[int, tuple]:
    """The address family and socket address of ``host:port``, the first the resolver gives; OSError if none."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return family, address
