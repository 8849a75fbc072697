"""The audition stories' JACK server."""

from __future__ import annotations

import pytest

from tests.conftest import require_tool
from tests.frontends.jack import JackServer

RATE, PERIOD = 48000, 1024  # -p 1024: no xruns on 2 busy cores


@pytest.fixture(scope="module")
def jack(tmp_path_factory):
    """A private JACK dummy server per module, with this process pointed at it."""
    for tool in ("jackd", "jack_lsp"):
        require_tool(tool)
    server = JackServer(tmp_path_factory.mktemp("jack"), period=PERIOD, rate=RATE).start()
    yield server
    server.stop()
