"""REAPER's companion runs the moment a result lands: the daemon triggers its action over REAPER's OSC surface."""

from __future__ import annotations

import socket

from bridge.client import BridgeClient
from bridge.frontends.notify import DawNotifier
from bridge.frontends.osc_wire import decode
from tests.conftest import DaemonProcess, free_udp_port


def test_each_delivery_sends_the_configured_action_to_the_daw(project):
    reaper_port = free_udp_port()
    project.write_config(f'[notify]\nport = {reaper_port}\naddress = "/action/_RS_daw_bridge_companion"\n')
    with BridgeClient("127.0.0.1", project.port, bind_port=reaper_port) as reaper:
        process = DaemonProcess(project).start()
        try:
            with BridgeClient("127.0.0.1", project.port) as client:
                outcome, _ = client.run_job("extend", source=str(project.song), extend_after=20.0, duration=4.0,
                                            num_outputs=1, timeout=300)
            assert outcome.name == "done"
            action = reaper.wait_for(lambda r: True, timeout=10)
        finally:
            process.stop()
    assert action is not None and action.address == "/action/_RS_daw_bridge_companion" and action.args == []


def test_the_message_carries_its_configured_arguments_for_reapers_action_str():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reaper:
        reaper.bind(("127.0.0.1", 0))
        reaper.settimeout(5)
        notifier = DawNotifier({"port": reaper.getsockname()[1], "address": "/action/str",
                                "args": ["_RS_daw_bridge_companion", 2]})
        try:
            notifier(None, "state")  # only a delivery is announced
            notifier(None, "done")
            assert decode(reaper.recv(65536)) == [("/action/str", ["_RS_daw_bridge_companion", 2])]
        finally:
            notifier.close()
