"""A producer's first hour with the command line and the config: Ctrl-C in the terminal, the service and its config
file, songs named relative to the folder the producer stands in."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bridge.client import BridgeClient
from bridge.lifeline import ask_to_die_with_parent
from tests.adversarial.support import journal_records
from tests.conftest import ROOT, DaemonProcess, adopting_orphans, daemon_environment, wait_for_pictures
from tests.frontends.test_inbox import drop_request, wait_for_status
from tests.test_cli import daw_bridge


class TerminalDaemon(DaemonProcess):
    """``daw-bridge serve`` in a terminal of its own (started in ``cwd``): Ctrl-C there reaches every process of its
    process group."""

    def __init__(self, project, cwd: Path = ROOT):
        super().__init__(project)
        self.cwd = cwd

    def start(self, timeout: float = 60.0) -> "TerminalDaemon":
        args = [sys.executable, "-m", "bridge", "serve", "--config", str(self.project.config)]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=daemon_environment(),
                                         cwd=self.cwd, preexec_fn=ask_to_die_with_parent, start_new_session=True)
        with BridgeClient("127.0.0.1", self.project.port) as client:
            while not client.ping(timeout=0.3):
                if self.proc.poll() is not None or timeout <= 0:
                    self.stop()
                    raise RuntimeError(f"daemon did not answer ping:\n{self.log.read_text()}")
                timeout -= 0.3
        return self

    def ctrl_c(self) -> int:
        """What the terminal does on Ctrl-C: SIGINT to the whole foreground process group; the exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)


def test_ctrl_c_in_the_daemons_terminal_stops_it_without_a_traceback_from_its_workers(project):
    # Ctrl-C reaches the engine's and the pictures' worker processes too: each printed a KeyboardInterrupt traceback
    # ('Process _LifelineProcess-1: Traceback ... KeyboardInterrupt') into the terminal under the daemon's clean stop
    daemon = TerminalDaemon(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=4.0, end=6.0, prompt="",
                                        num_outputs=1, timeout=300)
        assert outcome.name == "done", outcome
        wait_for_pictures(project.drop)  # the engine's worker and the pictures' are both up now
        status = daemon.ctrl_c()
    finally:
        daemon.stop()
    log = daemon.log.read_text()
    assert status == 0, log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "INFO bridge.daemon: stopping" in log, log


def _unit_command(unit: Path) -> tuple[list[str], dict[str, str]]:
    """The command a systemd unit's ExecStart= runs, and the Environment= it sets."""
    lines = unit.read_text(encoding="utf-8").splitlines()
    [start] = [line[len("ExecStart="):] for line in lines if line.startswith("ExecStart=")]
    env = dict(shlex.split(line[len("Environment="):])[0].split("=", 1)
               for line in lines if line.startswith("Environment="))
    return shlex.split(start), env


@pytest.mark.parametrize("where", ["before TARGET", "after TARGET"])
def test_the_service_installed_with_a_config_file_runs_the_daemon_of_that_file(project, home, tmp_path, where):
    # 'daw-bridge install --config FILE service' was taken, and the unit ran 'daw-bridge serve' on the default
    # config: the service listened elsewhere and watched another inbox; '... service --config FILE' was refused
    unit = tmp_path / "units" / "daw-bridge.service"
    relative = os.path.relpath(project.config, project.root)  # from the project folder, as a producer types it
    flags = ["service", "--unit-path", str(unit), "--no-start"]
    args = ["install", "--config", relative, *flags] if where == "before TARGET" else ["install", *flags, "--config",
                                                                                         relative]
    done = daw_bridge(*args, cwd=project.root, timeout=120, env={"HOME": str(home)})
    assert done.returncode == 0, done.stdout + done.stderr
    command, env = _unit_command(unit)
    assert command[-3:] == ["serve", "--config", str(project.config)], command
    # the service manager runs it from "/" with the unit's environment: it is the project's daemon
    service = subprocess.Popen(command, cwd="/", env=daemon_environment({"HOME": str(home), **env}),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=ask_to_die_with_parent)
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            while not client.ping(timeout=0.3):
                assert service.poll() is None, "the service's daemon did not start"
    finally:
        service.terminate()
        service.wait(timeout=60)


def test_a_service_config_file_with_a_mistake_is_refused_before_the_unit_is_written(project, home, tmp_path):
    unit = tmp_path / "units" / "daw-bridge.service"
    project.write_config("[local]\nworkers = \"two\"\n")
    done = daw_bridge("install", "service", "--config", str(project.config), "--unit-path", str(unit), "--no-start",
                      timeout=120, env={"HOME": str(home)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f'daw-bridge: {project.config}:7: [local] workers = "two": must be a whole '
                                        'number'], done.stderr
    assert not unit.exists()


def test_an_inbox_pointed_at_a_folder_of_the_producers_own_json_files_leaves_them_where_they_are(project):
    # 'serve --inbox ~/Music/song' (a project folder, or ~, or /): every .json file there (a DAW's or another tool's
    # settings, a package.json) was taken as a request file and moved to rejected/ ('command: missing'), where
    # [retention] deleted it after files_days. A request with a typo in a key is still answered, as before.
    folder = project.audio
    own = {"session.json": b'{"tempo": 120, "markers": [1.5, 8.0]}\n', "package.json": b'{"name": "my-song"}'}
    for name, content in own.items():
        (folder / name).write_bytes(content)
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(
        f'inbox = "{project.inbox}"', f'inbox = "{folder}"'), encoding="utf-8")
    daemon = DaemonProcess(project).start()
    try:
        (folder / "later.json").write_bytes(b'{"theme": "dark"}')  # one saved there while the daemon runs
        own["later.json"] = b'{"theme": "dark"}'
        drop_request(folder, "typo", {"comand": "extend", "source": str(project.song), "extend_after": 20.0})
        drop_request(folder, "capitals", {"Command": "extend", "Source": str(project.song)})
        drop_request(folder, "empty", {})
        drop_request(folder, "real", {"command": "extend", "source": str(project.song), "extend_after": 20.0,
                                      "duration": 4.0, "num_outputs": 1, "request_id": "real"})
        assert wait_for_status(folder, "real", timeout=120)["state"] == "delivered"
        assert [wait_for_status(folder, name, timeout=60)["state"] for name in ("typo", "capitals", "empty")] == [
            "failed"] * 3
    finally:
        daemon.stop()
    assert {name: (folder / name).read_bytes() for name in own} == own
    assert sorted(p.name for p in (folder / "rejected").iterdir()) == [
        "capitals.error.json", "capitals.json", "empty.error.json", "empty.json", "typo.error.json", "typo.json"]
    log = daemon.log.read_text(encoding="utf-8")
    said = "is a JSON file naming none of a request's keys, not a request: it is left where it is"
    assert [log.count(f"{name} in the inbox {folder} {said}") for name in own] == [1, 1, 1], log


def test_relative_folders_in_a_config_file_are_the_config_files_folders_whichever_folder_a_command_runs_in(
        project, tmp_path):
    # inbox = "inbox", state_dir = "state", project_roots = ["."] beside the project's config: each was taken from
    # the folder the command ran in, so the service (run from /) and a 'daw-bridge jobs' typed elsewhere each used
    # other folders (the daemon refused the project's songs as outside its roots; jobs said 'no jobs yet')
    project.config.write_text(f'osc_port = {project.port}\ninbox = "inbox"\nstate_dir = "state"\n'
                              'drop_folder = "results"\nproject_roots = ["."]\n', encoding="utf-8")
    daemon_folder, cli_folder = tmp_path / "daemon-cwd", tmp_path / "cli-cwd"
    daemon_folder.mkdir()
    cli_folder.mkdir()
    daemon = TerminalDaemon(project, cwd=daemon_folder).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            outcome, _ = client.run_job("inpaint", source=str(project.song), start=4.0, end=6.0, prompt="",
                                        num_outputs=1, timeout=300)
        jobs = daw_bridge("jobs", "--json", "--config", str(project.config), cwd=cli_folder, timeout=120)
    finally:
        daemon.stop()
    assert outcome.name == "done", outcome
    [manifest] = outcome.args[1:]
    assert Path(manifest).parent == project.root / "results", manifest
    assert [job["job_id"] for job in json.loads(jobs.stdout)] == [outcome.args[0]], jobs.stdout + jobs.stderr
    assert (project.root / "inbox").is_dir() and (project.root / "state" / "journal.sqlite").is_file()
    assert list(daemon_folder.iterdir()) == list(cli_folder.iterdir()) == []


def test_send_takes_a_song_and_a_drop_folder_named_from_the_folder_the_producer_stands_in(project):
    # 'daw-bridge inpaint song.wav' works from the song's folder, but 'daw-bridge send inpaint source=song.wav' was
    # refused ('must be an absolute path'): the daemon cannot know the producer's folder, the command line does
    daemon = DaemonProcess(project).start()
    try:
        sent = daw_bridge("send", "inpaint", f"source={project.song.name}", "start=4", "end=6", "prompt=",
                          "num_outputs=1", "drop_folder=takes", "--wait", "--config", str(project.config),
                          cwd=project.audio, timeout=600)
    finally:
        daemon.stop()
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [done] = [line for line in sent.stdout.splitlines() if line.startswith("/bridge/done ")]
    assert Path(done.split()[-1]).parent == project.audio / "takes", done


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux's /sys, where no one may make a folder")
def test_a_drop_folder_that_cannot_be_made_is_refused_before_the_song_is_worked_on(project):
    # '--out' on a disk or folder where nothing may be written (read-only, or another user's): the job was generated
    # (on MusicGPT: paid) and failed only at delivery. /sys refuses a new folder even to root, as a read-only disk does
    done = daw_bridge("inpaint", str(project.song), "--start", "4", "--end", "6", "--num-outputs", "1", "--out",
                      "/sys/daw-bridge-takes", "--config", str(project.config), timeout=600)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["daw-bridge inpaint: drop_folder: '/sys/daw-bridge-takes' cannot be made: /sys "
                                        "takes no new folder (Operation not permitted)"], done.stderr


def test_send_and_wait_with_no_daemon_running_says_so_as_send_without_wait_does(project):
    # 'daw-bridge send inpaint ... --wait' with the daemon down (or not listening yet): the command was lost, and
    # send waited in silence for the job's 600 s before saying 'no outcome ... the job goes on if the daemon runs'
    done = daw_bridge("send", "inpaint", f"source={project.song}", "start=4", "end=6", "prompt=", "--wait", "--config",
                      str(project.config), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"no reply from a daemon on 127.0.0.1:{project.port} (is 'daw-bridge serve' "
                                        "running? If it is, it may still take the command: see 'daw-bridge jobs' "
                                        "before sending it again)"], done.stdout


@pytest.mark.parametrize("wait", [True, False], ids=["--wait", "no wait"])
def test_send_to_a_daemon_slower_than_five_seconds_to_answer_is_not_told_there_is_no_daemon(project, wait):
    # the daemon held up for 7 s as the command came (a loaded machine, a source on a slow share): send said 'no
    # reply from a daemon (is serve running?)' after 5 s and exited 1, while the daemon went on to take the job;
    # sent again, that was a second job (on MusicGPT, paid twice)
    daemon = DaemonProcess(project).start()
    try:
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        timer = threading.Timer(7.0, os.kill, (daemon.proc.pid, signal.SIGCONT))
        timer.start()
        try:
            done = daw_bridge("send", "inpaint", f"source={project.song}", "start=4", "end=6", "prompt=",
                              "num_outputs=1", *(["--wait"] if wait else []), "--config", str(project.config),
                              timeout=600)
        finally:
            timer.join()
    finally:
        daemon.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.splitlines()
    assert said[0].startswith("/bridge/accepted ") and "/bridge/pong" not in done.stdout, said
    assert not wait or said[-1].startswith("/bridge/done "), said
    assert len(journal_records(project)) == 1


def test_the_demo_whose_daemon_dies_says_so_at_once_in_one_line(tmp_path):
    # the demo's daemon gone mid-job (a crash, the OOM killer, a kill): the demo waited the job's 600 s for an answer
    # no one would send, then ended in a TimeoutError traceback
    demo = subprocess.Popen([sys.executable, "-m", "bridge", "demo", "--dir", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=daemon_environment(),
                            cwd=ROOT, preexec_fn=ask_to_die_with_parent)
    status = None  # the demo never said its daemon was up
    try:
        for line in demo.stdout:
            if line.startswith("daemon up on "):
                daemon_pid = int(line.split("(pid ")[1].split(")")[0])
                with adopting_orphans():  # its workers end with it
                    os.kill(daemon_pid, signal.SIGKILL)
                    status = demo.wait(timeout=120)
                break
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert status == 1, out + err
    assert err == "", err
    said = out.splitlines()[-1]
    assert said.startswith("the demo's daemon stopped (exit status -9) before ") and said.endswith(
        f"was done; its log: {tmp_path / 'demo' / 'daemon.log'}"), said


@pytest.mark.parametrize("flag, what", [("--state-dir", "state folder"), ("--inbox", "inbox")])
def test_a_daemon_folder_that_is_a_file_is_named_with_what_it_is_for(project, flag, what):
    # 'serve --state-dir notes.txt' (or --inbox): 'cannot start: [Errno 17] File exists: ...', which said neither
    # which folder it was nor what was wrong with it
    notes = project.root / "notes.txt"
    notes.write_text("my notes", encoding="utf-8")
    for folder, blocker in ((notes, notes), (notes / "sub", notes)):
        done = daw_bridge("serve", "--config", str(project.config), flag, str(folder), timeout=120)
        assert done.returncode == 2, done.stderr
        [said] = done.stderr.splitlines()
        assert said.endswith(f"ERROR bridge.daemon: the {what} {folder} cannot be made: {blocker} is a file"), said
    assert notes.read_text(encoding="utf-8") == "my notes"


def test_a_config_folder_naming_an_unset_environment_variable_is_refused_in_one_line(project):
    # inbox = "$PROJECTS/inbox", with PROJECTS set in the producer's shell but not where the service runs: a folder
    # named '$PROJECTS' was made and watched, and requests written to the real one were never answered
    written = project.config.read_text(encoding="utf-8").splitlines()
    for key, value, variable in (("inbox", '"$DAW_BRIDGE_NO_SUCH_VAR/inbox"', "$DAW_BRIDGE_NO_SUCH_VAR"),
                                 ("project_roots", f'["{project.root}", "${{DAW_BRIDGE_NO_SUCH_VAR}}/Music"]',
                                  "${DAW_BRIDGE_NO_SUCH_VAR}")):
        line = next(n for n, text in enumerate(written, 1) if text.startswith(f"{key} ="))
        project.config.write_text("\n".join(text if n != line else f"{key} = {value}"
                                            for n, text in enumerate(written, 1)) + "\n", encoding="utf-8")
        done = daw_bridge("doctor", "--config", str(project.config), timeout=120, cwd=project.root)
        assert done.returncode == 2, done.stdout + done.stderr
        [said] = done.stderr.splitlines()
        assert said.startswith(f"daw-bridge: {project.config}:{line}: {key} = "), said  # the value, perhaps cut
        assert said.endswith(f": {variable} is not set in this environment"), said
    assert sorted(p.name for p in project.root.iterdir()) == ["audio", "daw-bridge.toml"]


def test_the_config_file_and_verbose_may_be_named_before_the_command_too(project):
    # 'daw-bridge --config FILE doctor', as git and systemctl take their options: 'invalid choice: FILE'
    done = daw_bridge("--config", str(project.config), "-v", "doctor", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"ok   config: {project.config}", done.stdout
    # named after it as well, the command's own wins
    other = project.root / "other.toml"
    other.write_text(project.config.read_text(encoding="utf-8"), encoding="utf-8")
    done = daw_bridge("--config", str(project.config), "doctor", "--config", str(other), timeout=120)
    assert done.stdout.splitlines()[0] == f"ok   config: {other}", done.stdout + done.stderr


def test_relative_xdg_folders_in_the_environment_are_ignored_as_the_xdg_rules_say(tmp_path):
    # XDG_STATE_HOME=state (relative): the journal went into a 'state' folder under whichever folder a command ran
    # in, so 'daw-bridge jobs' from another folder saw another journal; the XDG rules say to ignore such a value
    home, cwd = tmp_path / "home", tmp_path / "somewhere"
    home.mkdir()
    cwd.mkdir()
    done = daw_bridge("doctor", timeout=120, env={"HOME": str(home), "XDG_STATE_HOME": "state",
                                                  "XDG_CONFIG_HOME": "config"}, cwd=cwd)
    lines = done.stdout.splitlines()
    assert lines[0] == f"ok   config: {home}/.config/daw-bridge/config.toml (not present: defaults)", done.stdout
    assert f"ok   state folder {home}/.local/state/daw-bridge" in lines, done.stdout + done.stderr
    assert list(cwd.iterdir()) == []


def test_voice_decode_of_a_pipe_is_refused_in_one_line_instead_of_waiting_for_a_writer(tmp_path):
    # 'daw-bridge voice decode take.wav' where take.wav is a FIFO (a recorder's live output): it waited for good
    take = tmp_path / "take.wav"
    os.mkfifo(take)
    done = daw_bridge("voice", "decode", str(take), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"daw-bridge voice decode: {take}: is not a regular file (a pipe or a device), "
                                        "not a recording"], done.stderr


def test_a_mapping_file_that_is_a_pipe_is_refused_by_doctor_and_serve_instead_of_hanging_them(project):
    # [midi] mapping naming a FIFO: doctor waited for good, and serve too, deaf to SIGTERM (only SIGKILL ended it)
    os.mkfifo(project.root / "pads.toml")
    project.write_config('[midi]\nport = "nanoPAD*"\nmapping = "pads.toml"\n')
    said = f"{project.root / 'pads.toml'}: is not a regular file (a pipe or a device)"
    doctor, serve, presets = (daw_bridge("--config", str(project.config), *command.split(), timeout=120)
                              for command in ("doctor", "serve", "plugin presets"))  # it holds the plugin's presets
    assert doctor.returncode == 1 and f"BAD  MIDI: {said}" in doctor.stdout.splitlines(), doctor.stdout
    assert presets.returncode == 2 and presets.stdout.splitlines() == [
        f"daw-bridge plugin presets: preset: the presets cannot be read: {said}"], (presets.stdout, presets.stderr)
    assert serve.returncode == 2 and serve.stderr.splitlines()[-1].endswith(f"ERROR bridge.daemon: {said}"), \
        serve.stderr
