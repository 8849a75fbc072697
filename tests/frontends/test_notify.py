"""REAPER's companion runs the moment a result lands: the daemon triggers its action over REAPER's OSC surface."""

from __future__ import annotations

from bridge.client import BridgeClient
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
