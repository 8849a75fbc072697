"""The command line as an outsider first meets it: odd terminals, full disks, deleted folders, odd home folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

import osc_schema
from bridge.client import BridgeClient
from bridge.frontends.osc_wire import decode
from bridge.lifeline import ask_to_die_with_parent
from tests.adversarial.support import Daemon
from tests.conftest import ROOT, daemon_environment


def _run(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("cwd", ROOT)
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "bridge", *args], stderr=subprocess.PIPE, text=True, timeout=600,
                          env=daemon_environment(env), preexec_fn=ask_to_die_with_parent, check=False, **kwargs)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_sent_to_a_full_disk_is_named_in_one_line(project):
    # 'daw-bridge doctor > report.txt' on a full disk ended in an OSError traceback from print()
    with open("/dev/full", "w") as full:
        result = _run("doctor", "--config", str(project.config), stdout=full)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == ["daw-bridge: cannot write the output: No space left on device"]


def test_a_terminal_that_is_not_utf8_shows_a_japanese_folder_name_escaped(project):
    # A latin-1 terminal: the doctor's line naming a project root called 歌 ended in a UnicodeEncodeError traceback
    song_folder = project.root / "歌"
    song_folder.mkdir()
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(
        f'project_roots = ["{project.root}"]', f'project_roots = ["{project.root}", "{song_folder}"]'),
        encoding="utf-8")
    result = _run("doctor", "--config", str(project.config), env={"PYTHONIOENCODING": "latin-1"})
    assert "Traceback" not in result.stderr, result.stderr
    assert f"project root {project.root}/\\u6b4c" in result.stdout, result.stdout


NO_USER = "~daw-bridge-no-such-user"


def test_a_config_folder_under_the_home_of_no_user_is_refused_in_one_line(project):
    # inbox = "~nosuchuser/inbox" (a typo of ~/): every command ended in 'RuntimeError: Could not determine home
    # directory', the daemon's start too
    written = project.config.read_text(encoding="utf-8").splitlines()
    for key, value in (("inbox", f'"{NO_USER}/inbox"'), ("project_roots", f'["{project.root}", "{NO_USER}/Music"]')):
        line = next(n for n, text in enumerate(written, 1) if text.startswith(f"{key} ="))
        project.config.write_text("\n".join(text if n != line else f"{key} = {value}"
                                            for n, text in enumerate(written, 1)) + "\n", encoding="utf-8")
        result = _run("doctor", "--config", str(project.config))
        assert result.returncode == 2, result.stderr
        [said] = result.stderr.splitlines()
        assert said.startswith(f"daw-bridge: {project.config}:{line}: {key} = "), said
        assert said.endswith(f": {NO_USER} is no user on this machine"), said


def test_a_song_under_the_home_of_no_user_is_a_usage_error(project):
    result = _run("inpaint", f"{NO_USER}/song.wav", "--start", "1", "--end", "2", "--config", str(project.config))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == (f"daw-bridge inpaint: error: argument source: {NO_USER}/song.wav: "
                                              f"{NO_USER} is no user on this machine")


def _in_a_deleted_folder(folder, *args: str) -> subprocess.CompletedProcess:
    """``daw-bridge ARGS`` started in ``folder``, which is deleted just before the command runs."""
    folder.mkdir()
    return subprocess.run(["sh", "-c", 'rmdir "$PWD" && exec "$0" "$@"', sys.executable, "-m", "bridge", *args],
                          cwd=folder, capture_output=True, text=True, timeout=600, env=daemon_environment(),
                          preexec_fn=ask_to_die_with_parent, check=False)


def test_a_one_shot_run_from_a_folder_deleted_since_still_delivers(project, tmp_path):
    # multiprocessing's spawn hands each engine worker the current folder: once it was deleted, every job failed as
    # 'internal error: FileNotFoundError' (the daemon's too, with its warm-up in the log as a traceback)
    result = _in_a_deleted_folder(tmp_path / "gone", "inpaint", str(project.song), "--start", "4", "--end", "6",
                                  "--num-outputs", "1", "--config", str(project.config))
    assert result.returncode == 0, result.stderr
    assert [p.suffix for p in project.visible_drop_files() if p.suffix != ".png"] == [".json", ".wav"]


def test_a_relative_song_from_a_folder_deleted_since_is_a_usage_error(project, tmp_path):
    result = _in_a_deleted_folder(tmp_path / "gone", "inpaint", "song.wav", "--start", "4", "--end", "6",
                                  "--config", str(project.config))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1] == ("daw-bridge inpaint: error: argument source: song.wav: the current "
                                              "folder has been deleted; give the whole path, or cd to a folder that "
                                              "exists")


def test_a_key_given_twice_to_send_is_refused_not_silently_overridden(project):
    # 'send inpaint ... start=1 end=5 start=2' ran an inpaint of 2..5 s without a word
    result = _run("send", "inpaint", f"source={project.song}", "start=1", "end=5", "start=2", "prompt=x",
                  "--config", str(project.config))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout.splitlines() == ["daw-bridge send: start: '2' is a second start (after '1'): give each key "
                                          "once"]


def test_send_jobs_and_doctor_reach_a_daemon_listening_on_ipv6_loopback(project):
    # osc_host = "::1" is loopback and the daemon listened there, but the commands' IPv4 socket could not send to it:
    # send ended in a gaierror traceback, doctor said 'cannot be reached'
    project.write_config('osc_host = "::1"\n')
    daemon = Daemon(project, host="::1", ping_from="::1").start()
    try:
        pong = _run("send", "ping", "--config", str(project.config))
        keep = _run("jobs", "keep", "last", "--config", str(project.config))
        doctor = _run("doctor", "--config", str(project.config))
    finally:
        daemon.stop()
    assert pong.returncode == 0 and pong.stdout.startswith("/bridge/pong"), (pong.stdout, pong.stderr)
    assert keep.returncode == 2 and keep.stdout.startswith("daw-bridge jobs keep: "), (keep.stdout, keep.stderr)
    assert f"ok   OSC ::1:{project.port}: a daemon is answering" in doctor.stdout.splitlines(), doctor.stdout


def _refused_inpaint(project) -> str:
    """The reason a daemon on ``project``'s config gives for refusing an inpaint of its song (fails if accepted)."""
    daemon = Daemon(project).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            client.send("inpaint", source=str(project.song), start=4.0, end=6.0, prompt="")
            reply = client.wait_for(lambda r: r.name in ("accepted", "error"), timeout=30)
    finally:
        daemon.stop()
    assert reply is not None and reply.name == "error", reply
    return osc_schema.parse_reply(reply.address, reply.args)[1]["reason"]


def test_results_are_never_dropped_into_the_inbox_where_their_manifests_would_be_taken_as_requests(project):
    # An inbox named "daw-bridge" beside the songs is also where results go by default: each delivered manifest was
    # taken as a request file and moved to rejected/ ('command: missing'), so no importer ever saw the results
    inbox = project.audio / "daw-bridge"
    project.config.write_text(f'osc_port = {project.port}\ninbox = "{inbox}"\nstate_dir = "{project.state}"\n'
                              f'project_roots = ["{project.root}"]\n', encoding="utf-8")
    reason = _refused_inpaint(project)
    assert reason.startswith("drop_folder: '") and reason.endswith(
        " is the inbox, which would take the results' manifests as request files"), reason
    assert not (inbox / "rejected").exists() or not list((inbox / "rejected").iterdir())
    # a drop_folder configured as the inbox refuses every job: said before the first one
    project.write_config()
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(
        f'drop_folder = "{project.drop}"', f'drop_folder = "{project.inbox}"'), encoding="utf-8")
    doctor = _run("doctor", "--config", str(project.config))
    assert (f"BAD  drop_folder {project.inbox} is the inbox, which would take the results' manifests as request "
            f"files, so every job that uses it is refused") in doctor.stdout.splitlines(), doctor.stdout


def test_a_notice_sent_to_the_daemons_own_port_is_refused_in_one_line(project):
    # [notify] port = osc_port (copied from the line above): after each delivery the daemon notified itself and the
    # DAW never heard, without a word
    project.write_config('[notify]\nport = {port}\naddress = "/action/str"\nargs = ["_RS7d3c"]\n'.format(
        port=project.port))
    result = _run("doctor", "--config", str(project.config))
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [f"daw-bridge: {project.config}:7: [notify] port = {project.port}: is "
                                          f"osc_port too: each notice would reach the daemon itself, not the DAW"]


def test_a_one_shot_refused_before_it_starts_says_so_in_exactly_one_line(project):
    # the refusal came after an empty line (meant to end a progress bar that was never drawn), so
    # 'daw-bridge inpaint ... 2>&1 | head -1' showed nothing
    result = _run("inpaint", str(project.song), "--start", "9", "--end", "3", "--config", str(project.config))
    assert result.returncode == 2
    assert result.stderr == "daw-bridge inpaint: end: 3.0 must be greater than start (9.0)\n"


def test_a_demo_folder_that_cannot_be_made_is_named_in_one_line(tmp_path):
    # 'daw-bridge demo --dir NAME' with NAME a file ended in a FileExistsError traceback
    notes = tmp_path / "notes.txt"
    notes.write_text("mine", encoding="utf-8")
    for where, reason in ((notes, "File exists"), (notes / "demo", "Not a directory")):
        result = _run("demo", "--dir", str(where))
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"daw-bridge demo: cannot make the demo project in {where}: {reason}\n"
    assert notes.read_text(encoding="utf-8") == "mine"


def test_a_musicgpt_address_that_is_no_address_is_refused_in_one_line_from_the_file_and_the_environment(project):
    # base_url = "http://[::1" (a bracket left open) ended the config check in 'ValueError: Invalid IPv6 URL'; from
    # MUSICGPT_BASE_URL, which was not checked at all, the daemon's start ended in an httpx.InvalidURL traceback
    # (and "garbage" was taken, each job then failing as unreachable)
    project.write_config('[musicgpt]\nbase_url = "http://[::1"\n')
    result = _run("doctor", "--config", str(project.config), env={"MUSICGPT_API_KEY": "sk-test"})
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [f'daw-bridge: {project.config}:7: [musicgpt] base_url = "http://[::1": '
                                          f'must be an http:// or https:// address']
    project.write_config()
    for address in ("http://[::1", "http://127.0.0.1:abc/", "garbage"):
        result = _run("serve", "--config", str(project.config),
                      env={"MUSICGPT_API_KEY": "sk-test", "MUSICGPT_BASE_URL": address})
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == ["daw-bridge: environment: MUSICGPT_BASE_URL: must be an http:// or "
                                              "https:// address"], result.stderr
    # a gateway's ?token=: the API's paths would land in the query; refused like the file's, the token unshown
    result = _run("serve", "--config", str(project.config), env={
        "MUSICGPT_API_KEY": "sk-test", "MUSICGPT_BASE_URL": "http://127.0.0.1:9/api?token=sk-gateway-1234"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == ["daw-bridge: environment: MUSICGPT_BASE_URL: must have no ?query or "
                                          "#fragment (paths are added to it)"], result.stderr


def test_the_jobs_list_shows_a_song_name_holding_a_newline_or_an_escape_sequence_on_one_inert_line(project):
    # A song named with ESC [31m (or a newline) went to the terminal raw: the listing turned red, or split in two
    song = project.audio / "take\x1b[31m\nred.wav"
    song.write_bytes(project.song.read_bytes())
    one_shot = _run("inpaint", str(song), "--start", "4", "--end", "6", "--num-outputs", "1", "--config",
                    str(project.config))
    assert one_shot.returncode == 0, one_shot.stderr
    listed = _run("jobs", "--config", str(project.config))
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert "\x1b" not in line and "take\\x1b[31m\\nred.wav 4.00-6.00s" in line, line


def test_an_api_key_pasted_with_a_no_break_space_is_refused_in_one_line_without_showing_it(project):
    # copied from a web page: the key's no-break space ended the one-shot in a UnicodeEncodeError traceback when its
    # first request was built, and doctor said only "'ascii' codec can't encode character"
    key = "sk-live-4f3e\u00a02d1c"
    env = {"MUSICGPT_API_KEY": key, "MUSICGPT_BASE_URL": "http://127.0.0.1:9/api"}
    said = ("the MusicGPT API key in MUSICGPT_API_KEY holds a space or a line break (character 13 of it): copy the "
            "key again from your MusicGPT account")
    one_shot = _run("inpaint", str(project.song), "--start", "4", "--end", "6", "--backend", "musicgpt",
                    "--config", str(project.config), env=env)
    assert one_shot.returncode == 2, one_shot.stderr
    assert one_shot.stderr.splitlines() == [f"daw-bridge inpaint: {said}"]
    doctor = _run("doctor", "--config", str(project.config), env=env)
    assert f"BAD  backends: {said}" in doctor.stdout.splitlines(), doctor.stdout
    assert "4f3e" not in one_shot.stderr + doctor.stdout


def test_midi_ports_without_a_midi_server_say_so_in_one_line(project):
    # JACK's client library printed five lines of its own before our one (the daemon's log got them at each look for
    # a controller while JACK was down: thousands an hour); ALSA's printed one where there is no sequencer
    pytest.importorskip("rtmidi")
    env = {"JACK_DEFAULT_SERVER": f"daw-bridge-no-server-{os.getpid()}", "JACK_NO_START_SERVER": "1"}
    for api in ("UNIX_JACK", "LINUX_ALSA"):
        result = _run("midi", "ports", "--api", api, "--config", str(project.config), env=env)
        if api == "LINUX_ALSA" and result.returncode == 0:
            continue  # this machine has an ALSA sequencer: the ports were listed
        assert result.returncode == 1, (api, result.stdout, result.stderr)
        [said] = (result.stdout + result.stderr).splitlines()
        assert said.startswith("daw-bridge midi ports: MIDI is not available: "), said


def test_an_audition_with_no_jack_server_leaves_no_lines_of_libjacks_own_in_the_log(project):
    # each press with JACK down put libjack's five lines ('Cannot connect to server socket...') into the daemon's log
    pytest.importorskip("jack")
    daemon = Daemon(project, env={"JACK_DEFAULT_SERVER": f"daw-bridge-no-server-{os.getpid()}",
                                  "JACK_NO_START_SERVER": "1"}).start()
    try:
        with BridgeClient("127.0.0.1", project.port) as client:
            done, _ = client.run_job("inpaint", timeout=300, source=str(project.song), start=4.0, end=6.0,
                                     prompt="", num_outputs=1)
            assert done.name == "done", done
            client.send("audition", job_id=done.args[0], what="variant")
            answer = client.wait_for(lambda r: r.name in ("auditioning", "error"), timeout=60)
    finally:
        daemon.stop()
    assert answer is not None, "the audition was not answered"
    log = daemon.log.read_text()
    assert "Cannot connect to server" not in log and "JackShmReadWritePtr" not in log, log


def test_generate_from_a_wheel_writes_nothing_into_site_packages_and_says_where_it_works(tmp_path):
    # installed from a wheel, 'generate --check' called every generated file stale and 'generate' wrote a docs/ and
    # a daw_scripts/ into site-packages
    site = tmp_path / "site-packages"
    for package in ("bridge", "osc_schema"):
        shutil.copytree(ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for argv in (("generate", "--check"), ("generate",)):
        result = subprocess.run([sys.executable, "-m", "bridge", *argv], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, env={**daemon_environment(), "PYTHONPATH": str(site)}, check=False)
        assert result.returncode == 1, (argv, result.stdout, result.stderr)
        assert result.stderr.splitlines() == [f"daw-bridge generate: the generated files are not in this installation "
                                              f"({site}); run it in daw-bridge's source folder, installed with "
                                              f"python3 -m pip install -e ."], result.stderr
    assert sorted(p.name for p in site.iterdir()) == ["bridge", "osc_schema"]


def test_a_daemon_whose_allowlist_leaves_out_this_machine_is_named_as_such_not_as_absent(project):
    # allowed_senders = ["192.168.1.20"] for a tablet, and 127.0.0.1 not added: the daemon ran, yet send said 'is
    # daw-bridge serve running?', jobs said 'start it with daw-bridge serve' and doctor 'taken by another program'
    project.write_config('osc_host = "0.0.0.0"\nallowed_senders = ["127.0.0.2/32"]\n')
    daemon = Daemon(project, ping_from="127.0.0.2").start()
    try:
        ping = _run("send", "ping", "--timeout", "0.5", "--config", str(project.config))
        keep = _run("jobs", "keep", "last", "--config", str(project.config))
        doctor = _run("doctor", "--config", str(project.config))
    finally:
        daemon.stop()
    why = ('allowed_senders does not list 127.0.0.1, so a daemon there ignores the commands of this machine: add '
           '"127.0.0.1" to it')
    assert ping.returncode == 1 and ping.stdout.splitlines() == [f"no reply from a daemon on 127.0.0.1:{project.port} "
                                                                 f"({why})"], ping.stdout
    assert keep.returncode == 1 and keep.stdout.splitlines() == [f"no daemon answered on 127.0.0.1:{project.port}: "
                                                                 f"{why}"], keep.stdout
    assert f"BAD  OSC 0.0.0.0:{project.port}: taken, and nothing answers: {why}" in doctor.stdout.splitlines()


def test_closing_the_terminal_the_daemon_runs_in_stops_it_cleanly(project):
    # the terminal's SIGHUP killed 'daw-bridge serve' outright, like a SIGKILL: no clean stop, and a delivery under
    # way left its hidden half file in the drop folder
    daemon = Daemon(project).start()
    try:
        daemon.proc.send_signal(signal.SIGHUP)
        status = daemon.proc.wait(timeout=120)
    finally:
        daemon.stop()
    assert status == 0, daemon.log.read_text()
    assert "INFO bridge.daemon: stopping" in daemon.log.read_text(), daemon.log.read_text()


def test_a_file_called_daw_bridge_beside_the_song_refuses_the_job_before_any_work(project):
    # results go to a folder "daw-bridge" beside the song by default; a file of that name (the producer's notes)
    # was found only at delivery, after the (perhaps paid) generation: 'could not write the result ... File exists'
    notes = project.audio / "daw-bridge"
    notes.write_text("my notes", encoding="utf-8")
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(f'drop_folder = "{project.drop}"\n',
                                                                                 ""), encoding="utf-8")
    reason = _refused_inpaint(project)
    assert reason.startswith("drop_folder: '") and reason.endswith(" is not a folder"), reason
    assert notes.read_text(encoding="utf-8") == "my notes"


def test_an_osc_host_no_name_service_knows_is_one_line_for_send_jobs_and_plugin(project):
    # doctor said so already; send, jobs and plugin ended in a socket.gaierror traceback
    project.write_config('osc_host = "no-such-host.invalid"\nallowed_senders = ["127.0.0.1"]\n')
    for argv in (("send", "ping"), ("jobs", "keep", "last"), ("plugin", "list")):
        result = _run(*argv, "--config", str(project.config))
        assert result.returncode == 1 and "Traceback" not in result.stderr, (argv, result.stderr)
        [said] = result.stderr.splitlines()
        assert said.startswith("daw-bridge: the daemon's address (osc_host) cannot be resolved: "), said


def test_a_daw_notified_on_ipv6_loopback_hears_it_and_a_host_no_one_knows_is_named(project):
    # [notify] host = "::1" passed the config check, but the notice left from an IPv4 socket and was lost (said in
    # the debug log only); a host no name service knows was never said at all, by doctor or the daemon
    from bridge.frontends.notify import DawNotifier

    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as daw:
        daw.bind(("::1", 0))
        daw.settimeout(30)
        notifier = DawNotifier({"host": "::1", "port": daw.getsockname()[1], "address": "/action/str",
                                "args": ["_RS_daw_bridge_companion"]})
        try:
            notifier(None, "done")
            assert decode(daw.recv(65536)) == [("/action/str", ["_RS_daw_bridge_companion"])]
        finally:
            notifier.close()
    project.write_config('[notify]\nhost = "no-such-host.invalid"\naddress = "/action/str"\n')
    doctor = _run("doctor", "--config", str(project.config))
    assert doctor.returncode == 1
    [said] = [line for line in doctor.stdout.splitlines() if "notify" in line]
    assert said.startswith("BAD  notify no-such-host.invalid:8000: cannot be resolved ("), said
    assert said.endswith("), so the DAW is never told of results"), said


def test_an_inbox_reached_through_a_symlink_takes_requests_while_the_daemon_runs(project):
    # inbox under a linked folder (~/Music on another disk): the watch heard nothing through the link, so a request
    # dropped while the daemon ran waited, unanswered, until its next start
    from tests.frontends.test_inbox import drop_request, wait_for_status

    real = project.root / "requests"
    real.mkdir()
    linked = project.root / "inbox-link"
    linked.symlink_to(real)
    project.config.write_text(project.config.read_text(encoding="utf-8").replace(
        f'inbox = "{project.inbox}"', f'inbox = "{linked}"'), encoding="utf-8")
    daemon = Daemon(project).start()
    try:
        drop_request(linked, "through-link", {"command": "inpaint", "source": str(project.song), "start": 4.0,
                                              "end": 6.0, "prompt": "", "num_outputs": 1})
        status = wait_for_status(linked, "through-link", timeout=120)
    finally:
        daemon.stop()
    assert status["state"] == "delivered", status
    assert (real / "processed" / "through-link.json").exists()


@pytest.mark.parametrize("loading", ["bridge.config", "bridge.commands.midi"])  # the command's, its options'
def test_ctrl_c_while_the_command_is_still_loading_ends_it_quietly_like_ctrl_c_later(loading):
    """The installed command's entry point (pyproject's [project.scripts]) is run with Ctrl-C arriving while it
    imports the command's modules, or those its options are built from (the longer wait, 0.1 s against 0.03 s):
    status 130 and nothing on stderr, as for Ctrl-C once the command runs."""
    import tomllib

    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["daw-bridge"]
    module, function = entry.split(":")
    code = ("import sys\n"
            "class CtrlC:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name == {loading!r}:\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, CtrlC())\n"
            f"from {module} import {function}\n"
            f"sys.exit({function}())\n")
    done = subprocess.run([sys.executable, "-c", code, "--version"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=daemon_environment(), preexec_fn=ask_to_die_with_parent, check=False)
    assert (done.returncode, done.stderr) == (130, "")


def test_a_delivery_is_as_readable_as_any_file_the_producer_makes_there(project):
    """Results were mode 0600 whatever the umask (mkstemp's mode, kept by the rename into place): a project folder
    shared with a bandmate's account, or a file server or DAW running as another user, listed them but could not
    read them, beside the producer's own 0644 files."""
    umask = os.umask(0o022)
    try:
        result = _run("inpaint", str(project.song), "--start", "4", "--end", "6", "--num-outputs", "1", "--config",
                      str(project.config))
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr
    delivered = project.pictured_drop_files()
    assert sorted(p.suffix for p in delivered) == [".json", ".png", ".wav"]
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in delivered} == {p.name: "0o644" for p in delivered}


def test_an_inbox_pointed_at_a_folder_of_results_leaves_their_manifests_where_they_are(project):
    """'serve --inbox' given the folder results were delivered to (the songs' "daw-bridge" folder, or the drop
    folder): at start every delivered manifest was taken as a request file and moved to rejected/ ('command:
    missing'), so the DAW's importer, which acts on manifests only, no longer saw any of those results."""
    delivered = _run("inpaint", str(project.song), "--start", "4", "--end", "6", "--num-outputs", "1", "--config",
                     str(project.config))
    assert delivered.returncode == 0, delivered.stderr
    before = sorted(p.name for p in project.pictured_drop_files())
    assert [name for name in before if name.endswith(".json")], before
    project.config.write_text(f'osc_port = {project.port}\ninbox = "{project.drop}"\nstate_dir = "{project.state}"\n'
                              f'project_roots = ["{project.root}"]\n', encoding="utf-8")
    daemon = Daemon(project).start()
    try:
        # a request dropped after the start: once it is answered, the files that waited there were looked at first
        request = {"command": "inpaint", "source": str(project.song), "start": 8.0, "end": 10.0, "prompt": "",
                   "request_id": "after-start", "drop_folder": str(project.root / "elsewhere")}
        (project.drop / ".after-start.part").write_text(json.dumps(request), encoding="utf-8")
        os.rename(project.drop / ".after-start.part", project.drop / "after-start.json")
        status = project.drop / "status" / "after-start.json"
        deadline = time.monotonic() + 120
        while not (status.exists() and json.loads(status.read_text(encoding="utf-8"))["state"] == "delivered"):
            assert time.monotonic() < deadline, status.read_text(encoding="utf-8") if status.exists() else "no status"
            time.sleep(0.1)
    finally:
        daemon.stop()
    assert sorted(p.name for p in project.visible_drop_files() if p.is_file()) == before
    assert sorted(p.name for p in (project.drop / "rejected").iterdir()) == []
    manifest = next(name for name in before if name.endswith(".json"))
    assert f"{manifest} in the inbox {project.drop} is a delivered result's manifest, not a request" in \
        daemon.log.read_text(encoding="utf-8")
