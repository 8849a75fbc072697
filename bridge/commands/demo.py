"""``daw-bridge demo``: the whole product in one go, through the real daemon over real UDP.

It makes a song (generated here: nothing is downloaded), writes a config for a throw-away project, starts
``daw-bridge serve`` as its own process, sends an inpaint and an extend over OSC like a DAW would, waits for the
results, and prints where the manifests are.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bridge.client import BridgeClient, DaemonGone, Reply
from bridge.demo_song import make_song
from bridge.lifeline import ask_to_die_with_parent

SONG_SECONDS = 60.0


def demo(folder: Path | None) -> int:
    project = Path(folder or tempfile.mkdtemp(prefix="daw-bridge-demo-")).absolute()
    try:  # --dir naming a file, or a folder that cannot be made: one line, not a traceback
        project.mkdir(parents=True, exist_ok=True)
        song = make_song(project / "audio" / "demo-song.wav", seconds=SONG_SECONDS)
        port = _free_udp_port()
        config = _write_config(project, port)
        log = open(project / "daemon.log", "w")
    except OSError as exc:
        print(f"daw-bridge demo: cannot make the demo project in {project}: {exc.strerror or exc}"
              + (f" ({exc.filename})" if exc.filename and str(exc.filename) != str(project) else ""), file=sys.stderr)
        return 2
    print(f"demo project: {project}\nsong: {song} ({SONG_SECONDS:.0f} s, generated)")

    # the demo's daemon is the demo's: killed with it, not left serving a temporary project
    daemon = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT, preexec_fn=ask_to_die_with_parent)
    try:
        with BridgeClient("127.0.0.1", port) as client:
            if not _wait_for_daemon(client, daemon):
                print(f"the daemon did not start; its log: {project / 'daemon.log'}")
                return 1
            print(f"daemon up on 127.0.0.1:{port} (pid {daemon.pid}); sending commands over OSC")
            jobs = [("inpaint", dict(source=str(song), start=24.0, end=30.0, prompt="a fresh fill",
                                     request_id="demo-inpaint", position=0.0)),
                    ("extend", dict(source=str(song), extend_after=50.0, duration=20.0,
                                    request_id="demo-extend"))]
            manifests, ok = [], True
            for name, values in jobs:
                start = time.monotonic()
                try:
                    outcome, _ = client.run_job(name, timeout=600, on_reply=_show_progress,
                                                running=lambda: daemon.poll() is None, **values)
                except (DaemonGone, TimeoutError) as exc:
                    print()
                    what = f"the demo's daemon stopped (exit status {daemon.returncode}) before {name} was done" \
                        if isinstance(exc, DaemonGone) else f"{name}: {exc}"
                    print(f"{what}; its log: {project / 'daemon.log'}")
                    return 1
                print()
                if outcome.name == "done":
                    print(f"{name}: done in {time.monotonic() - start:.1f} s")
                    manifests += outcome.args[1:]
                else:
                    ok = False
                    print(f"{name}: {outcome.name}: {outcome.args[-1]}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
    _summarise(manifests)
    return 0 if ok else 1


def _write_config(project: Path, port: int) -> Path:
    config = project / "daw-bridge.toml"
    config.write_text(
        f'osc_port = {port}\n'
        f'inbox = {json.dumps(str(project / "inbox"))}\n'
        f'state_dir = {json.dumps(str(project / "state"))}\n'
        f'drop_folder = {json.dumps(str(project / "daw-bridge"))}\n'
        f'project_roots = [{json.dumps(str(project))}]\n', encoding="utf-8")
    return config


def _wait_for_daemon(client: BridgeClient, daemon: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.poll() is None:
        if client.ping(timeout=0.5):
            return True
    return False


def _show_progress(reply: Reply) -> None:
    if reply.name == "accepted":
        print(f"  accepted as {reply.args[1]}")
    elif reply.name == "state":
        sys.stdout.write(f"\r  {reply.args[1]:<12} {float(reply.args[2]) * 100:3.0f}%  {reply.args[3]:<40}")
        sys.stdout.flush()


def _summarise(manifests: list[str]) -> None:
    if not manifests:
        return
    print("\nmanifests:")
    for path in manifests:
        print(f"  {path}")
    print("\nsummary:")
    for path in manifests:
        m = json.loads(Path(path).read_text(encoding="utf-8"))
        joins = m["splice"].get("joins", [])
        confidence = min((j.get("confidence", 1.0) for j in joins), default=None)
        print(f"  {m['operation']:<7} v{m['variant']}: {m['audio']}  goes at {m['timeline']['position']:.2f} s, "
              f"{m['timeline']['length']:.2f} s long, {len(joins)} join(s)"
              + (f", lowest confidence {confidence:.2f}" if confidence is not None else ""))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
