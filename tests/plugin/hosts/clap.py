"""The CLAP test host (clap_host.c), compiled on first use into a temp folder keyed by its source, and run on a song.

Imported by the tests and by bench/plugin_cpu.py: nothing here needs pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.lifeline import ask_to_die_with_parent

SOURCE = Path(__file__).with_name("clap_host.c")
CLAP_HEADERS = Path("/usr/share/dpf/distrho/src")  # the CLAP 1.1 headers Debian's dpf-source ships (clap/*.h)


def build_clap_host() -> Path:
    """The compiled host; built once per version of its source (renamed into place: parallel runs may race)."""
    source = SOURCE.read_bytes()
    folder = Path(tempfile.gettempdir()) / f"daw-bridge-clap-host-{hashlib.sha256(source).hexdigest()[:12]}"
    binary = folder / "clap_host"
    if not binary.exists():
        folder.mkdir(exist_ok=True)
        partial = folder / f".clap_host.{os.getpid()}"
        subprocess.run(["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O2", "-pthread", "-Wall", "-Wextra",
                        "-Werror", f"-I{CLAP_HEADERS}", str(SOURCE), "-o", str(partial), "-ldl", "-lm"],
                       check=True, capture_output=True, text=True)
        partial.replace(binary)
    return binary


@dataclass
class ClapRun:
    output: np.ndarray  # every processed frame's output, (frames, 2) float32, in processing order
    latency: int  # as the plugin reports it to the host
    block_ns: list[tuple[int, float]]  # per play/stop step: (blocks, median time of a process() call in ns)


def start_clap_host(plugin: Path, song: np.ndarray, folder: Path, steps: list[str], block: int = 256,
                    rate: int = 48000, bpm: float = 120.0, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    """Start the host on ``song`` (timeline-indexed stereo float32); finish it with ``finish_clap_host``."""
    folder.mkdir(parents=True, exist_ok=True)
    song_file, out_file = folder / "song.f32", folder / "out.f32"
    np.ascontiguousarray(song, np.float32).tofile(song_file)
    proc = subprocess.Popen([str(build_clap_host()), str(plugin), str(song_file), str(out_file), str(rate),
                             str(block), repr(bpm), *steps], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})}, preexec_fn=ask_to_die_with_parent)
    return proc, out_file


def finish_clap_host(proc: subprocess.Popen, out_file: Path) -> ClapRun:
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"clap_host exited with {proc.returncode}: {stderr.strip()}")
    lines = [line.split() for line in stdout.splitlines()]
    return ClapRun(output=np.fromfile(out_file, np.float32).reshape(-1, 2),
                   latency=next(int(words[1]) for words in lines if words[0] == "latency"),
                   block_ns=[(int(words[3]), float(words[5])) for words in lines if words[0] == "step"])


def run_clap_host(plugin: Path, song: np.ndarray, folder: Path, steps: list[str], **options) -> ClapRun:
    """Process ``steps`` (see clap_host.c) through the plugin and return what came out."""
    return finish_clap_host(*start_clap_host(plugin, song, folder, steps, **options))
