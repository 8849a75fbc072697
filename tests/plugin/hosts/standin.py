"""A UDP socket on 127.0.0.1 where the daemon would be: it takes the plugin's inpaint and delivers given variants.

What the plugin hears is what the real daemon says (accepted, then done with the manifests), and the drop folder
holds what the daemon writes there: each variant as a float32 WAV, then its manifest beside it.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf

from bridge.frontends.osc_wire import decode, encode


class StandInDaemon:
    def __init__(self, timeout: float = 10.0):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(timeout)
        self.port = self.socket.getsockname()[1]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.socket.close()

    def answer_inpaint(self, drop: Path, variants: list[np.ndarray], position_s: float, rate: int) -> list:
        """Wait for the plugin's /bridge/inpaint, accept it and deliver ``variants`` (stereo float32 arrays placed at
        ``position_s`` on the timeline). Returns the request's arguments."""
        datagram, reply_to = self.socket.recvfrom(65536)
        [(address, args)] = decode(datagram)
        if address != "/bridge/inpaint":
            raise AssertionError(f"expected /bridge/inpaint from the plugin, got {address} {args}")
        request_id, job_id = args[args.index("request_id") + 1], "j-standin-1"
        self.socket.sendto(encode("/bridge/accepted", [request_id, job_id]), reply_to)
        drop.mkdir(parents=True, exist_ok=True)
        manifests = []
        for number, audio in enumerate(variants, 1):
            name = f"song_inpaint_v{number}"
            sf.write(str(drop / f"{name}.wav"), audio, rate, subtype="FLOAT")
            manifest = {"format": "daw-bridge.manifest/1", "job_id": job_id, "request_id": request_id,
                        "operation": "inpaint", "variant": number, "variants": len(variants), "backend": "local",
                        "delivery": "patch", "audio": f"{name}.wav", "sample_rate": rate, "channels": 2,
                        "frames": len(audio), "timeline": {"position": position_s, "length": len(audio) / rate}}
            (drop / f"{name}.json").write_text(json.dumps(manifest, indent=2))
            manifests.append(str(drop / f"{name}.json"))
        self.socket.sendto(encode("/bridge/done", [job_id, *manifests]), reply_to)
        return args
