"""``runyard dev`` runs what plugins contribute, and plugins own instance-file sections; core never
imports the web UI.

A third-party plugin (``devecho``) is installed for real by each test (the ``site`` fixture: a
module plus a ``.dist-info`` with an entry point in group ``runyard``, on ``PYTHONPATH``). It adds a ``runyard dev``
option, a service (a TCP greeter on a thread plus a child process, so a stop that leaks shows in
/proc), and an instance-file section with a secret. ``RUNYARD_DISABLE_PLUGINS=webui`` stands in for
an installation without runyard-webui.

Needs: real subprocesses, SQLite, Linux's /proc; runyard-webui installed (for the "with the web UI"
cases).
"""

from __future__ import annotations

import gc
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runyard.operations.serve import CallbackService, Service, ServiceRunner
from runyard.testing.helpers import descendants, live_pids_in_group, pid_gone, read_value_after, wait_until

REPO = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""A third-party runyard plugin: a dev service, its option, and an instance-file section."""
import os
import socket
import subprocess
import sys
import threading

import click
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from runyard import hookimpl
from runyard.operations.serve import Service


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "hello"
    token: SecretStr | None = None
    backlog: int = Field(5, ge=1)


class Greeter(Service):
    name = "echo"

    def __init__(self, greeting, marker, die_after):
        self.greeting, self.marker, self.die_after = greeting, marker, die_after
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stopped = threading.Event()
        self.thread = None
        self.child = None

    @property
    def address(self):
        return "tcp://127.0.0.1:%d" % self.sock.getsockname()[1]

    def start(self):
        # a child process too, so a stop that forgets it leaves a process behind
        self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(self.marker, "a") as f:
            f.write("started child=%d\\n" % self.child.pid)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.1)
        served = 0
        while not self.stopped.is_set():
            if self.die_after and served >= self.die_after:
                return
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(self.greeting.encode())
            served += 1

    @property
    def running(self):
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout):
        self.stopped.set()
        self.thread.join(timeout)
        self.sock.close()
        self.child.terminate()
        self.child.wait(timeout)
        with open(self.marker, "a") as f:
            f.write("stopped\\n")


@hookimpl
def runyard_register_instance_sections(registry):
    registry.add("devecho", EchoSettings)


@hookimpl
def runyard_dev_options():
    options = [click.Option(["--echo/--no-echo", "with_echo"], default=True, help="Run the greeter."),
               click.Option(["--echo-greeting"], default=None, help="What the greeter says.")]
    if os.environ.get("DEVECHO_CLASH"):
        options.append(click.Option(["-p", "--echo-port"], type=int))
    return options


@hookimpl
def runyard_dev_services(context):
    if os.environ.get("DEVECHO_RAISE"):
        raise ValueError("the greeter is broken")
    if not context.options["with_echo"]:
        return None
    settings = context.instance.section("devecho")
    greeting = context.options["echo_greeting"] or settings.greeting
    return [Greeter(greeting, os.environ["DEVECHO_MARKER"], int(os.environ.get("DEVECHO_DIE_AFTER", "0")))]
'''


@pytest.fixture
def devecho(site, tmp_path: Path) -> dict[str, str]:
    """The ``devecho`` plugin installed (distribution runyard-test-devecho); its environment."""
    return {**site("devecho", PLUGIN), "DEVECHO_MARKER": str(tmp_path / "marker.txt")}


@pytest.fixture
def defs(tiny_defs) -> Path:
    return tiny_defs


def _greet(address: str) -> str:
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        return conn.recv(100).decode()


def _read_values(proc: subprocess.Popen, *markers: str, timeout: float = 60) -> dict[str, str]:
    """The rest of the first stdout line holding each marker, whatever order they come in."""
    found: dict[str, str] = {}
    lines: list[str] = []

    def step():
        line = proc.stdout.readline()
        lines.append(line)
        for marker in markers:
            if marker in line and marker not in found:
                found[marker] = line.split(marker, 1)[1].strip()
        if not line and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{''.join(lines)}{proc.stderr.read()}")
        return len(found) == len(markers)

    wait_until(step, timeout=timeout, interval=0, what=f"{markers} on stdout")
    return found


def _stop_and_check_no_process_left(proc: subprocess.Popen, sig: int = signal.SIGINT) -> tuple[str, str]:
    kids = descendants(proc.pid)
    assert kids, "runyard dev should have started code servers"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_until(lambda: all(pid_gone(k) for k in kids), timeout=15, what="every child process to exit")
    return out, err


# ---- core never imports the web UI --------------------------------------------------------------
def test_core_never_imports_the_web_ui():
    pattern = re.compile(r"^\s*(from\s+runyard_webui\b|import\s+runyard_webui\b)", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "core").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"core imports the web UI in {offenders}"


def test_web_ui_never_imports_the_cli_or_the_daemon_internals():
    pattern = re.compile(r"^\s*(from|import)\s+runyard\.(cli|daemon\.daemon)\b", re.MULTILINE)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "webui").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"the web UI imports runyard.cli or runyard.daemon.daemon in {offenders}"


# ---- runyard dev with and without the web UI and a third-party service ---------------------------
def test_dev_runs_a_third_party_service_beside_the_web_ui(cli, defs, devecho, tmp_path):
    proc = cli.popen("dev", "-f", defs, "-p", "0", "--echo-greeting", "hi there", env=devecho,
                     start_new_session=True)
    try:
        values = _read_values(proc, "web UI: ", "echo: ")
        web, echo = values["web UI: "], values["echo: "]
        assert web.startswith("http://") and echo.startswith("tcp://")
        assert _greet(echo) == "hi there"
        child = int(re.search(r"child=(\d+)", Path(devecho["DEVECHO_MARKER"]).read_text()).group(1))
        assert child in descendants(proc.pid)
        _out, err = _stop_and_check_no_process_left(proc)
        assert "Stopping" in err
        assert Path(devecho["DEVECHO_MARKER"]).read_text().splitlines()[-1] == "stopped"
        assert pid_gone(child)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_dev_without_the_web_ui_still_runs_plugin_services(cli, defs, devecho):
    env = {**devecho, "RUNYARD_DISABLE_PLUGINS": "webui"}
    help_text = cli.ok("dev", "--help", env=env).stdout
    assert "--echo-greeting" in help_text and "--no-webui" not in help_text and "--port" not in help_text
    proc = cli.popen("dev", "-f", defs, env=env, start_new_session=True)
    try:
        echo = read_value_after(proc, "echo: ")
        assert _greet(echo) == "hello"  # the section's default
        out, err = _stop_and_check_no_process_left(proc, signal.SIGTERM)
        assert "web UI" not in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_dev_without_any_service_plugin_says_so(cli, defs):
    env = {"RUNYARD_DISABLE_PLUGINS": "webui"}
    assert "--no-webui" not in cli.ok("dev", "--help", env=env).stdout
    proc = cli.popen("dev", "-f", defs, env=env, start_new_session=True)
    try:
        assert " ok " in read_value_after(proc, "code location ")
        out, err = _stop_and_check_no_process_left(proc)
        assert "no plugin contributes a service" in err and "pip install runyard-webui" in err
        assert "web UI:" not in out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_no_webui_and_a_plugin_option_turn_services_off(cli, defs, devecho):
    proc = cli.popen("dev", "-f", defs, "--no-webui", "--no-echo", env=devecho, start_new_session=True)
    try:
        assert " ok " in read_value_after(proc, "code location ")
        out, _ = _stop_and_check_no_process_left(proc)
        assert "web UI:" not in out and "echo:" not in out
        assert not Path(devecho["DEVECHO_MARKER"]).exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_service_that_dies_stops_everything_with_an_error(cli, defs, devecho):
    env = {**devecho, "DEVECHO_DIE_AFTER": "1"}
    proc = cli.popen("dev", "-f", defs, "--no-webui", env=env, start_new_session=True)
    try:
        echo = read_value_after(proc, "echo: ")
        kids = descendants(proc.pid)
        _greet(echo)  # the greeter's thread ends after one greeting
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "the echo stopped unexpectedly" in err, err
        wait_until(lambda: all(pid_gone(k) for k in kids), timeout=15, what="every child process to exit")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_service_that_cannot_start_stops_what_already_started(cli, defs):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli.popen("dev", "-f", defs, "-p", str(port), start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err, err
    wait_until(lambda: not live_pids_in_group(proc.pid), timeout=15, what="the code server to exit")


def test_plugin_errors_name_the_plugin(cli, defs, devecho):
    proc = cli("dev", "--help", env={**devecho, "DEVECHO_CLASH": "1"})
    assert proc.returncode == 2
    assert re.search(r"runyard dev option '-p' of plugin (devecho|webui) is already used by plugin (webui|devecho)",
                     proc.stderr), proc.stderr
    proc = cli("dev", "-f", defs, "--no-webui", env={**devecho, "DEVECHO_RAISE": "1"}, timeout=60)
    assert proc.returncode == 2
    assert "plugin devecho failed in runyard_dev_services: ValueError: the greeter is broken" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- instance-file sections owned by plugins ------------------------------------------------------
def test_plugin_sections_are_validated_and_shown_with_secrets_masked(cli, home, devecho):
    (home / "runyard.yaml").write_text(
        "webui:\n  port: 4000\n  auth: {username: ops, password: {env: UI_PASSWORD}}\n"
        "devecho:\n  greeting: hey\n  token: {env: ECHO_TOKEN}\n")
    env = {**devecho, "UI_PASSWORD": "s3cret-ui", "ECHO_TOKEN": "s3cret-token"}
    info = cli.json("instance", "info", "--json", env=env)
    assert info["sections"]["webui"]["port"] == 4000
    assert info["sections"]["webui"]["auth"] == {"username": "ops", "password": "**********", "users": [],
                                                 "tokens": True}
    assert info["sections"]["devecho"] == {"greeting": "hey", "token": "**********", "backlog": 5}
    text = cli.ok("instance", "info", env=env).stdout
    assert "Section devecho" in text and "Section webui" in text
    assert "s3cret" not in text and "s3cret" not in str(info)


def test_an_invalid_webui_section_fails_instance_info_with_file_line_and_key_path(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  sqlite: {}\nwebui:\n  port: 3000\n  threads: 0\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{home / 'runyard.yaml'}, line 5: webui.threads: " in proc.stderr, proc.stderr
    (home / "runyard.yaml").write_text("webui:\n  colour: blue\n")
    proc = cli("run", "list")
    assert proc.returncode == 2 and "line 2: webui.colour: unknown key" in proc.stderr, proc.stderr


def test_a_third_party_section_error_names_the_key_path(cli, home, devecho):
    (home / "runyard.yaml").write_text("devecho:\n  backlog: 0\n")
    proc = cli("instance", "info", env=devecho)
    assert proc.returncode == 2 and "line 2: devecho.backlog: " in proc.stderr, proc.stderr


def test_an_unknown_top_level_key_names_the_installed_sections(cli, home, devecho):
    (home / "runyard.yaml").write_text("storage:\n  sqlite: {}\nweb_ui:\n  port: 1\n")
    proc = cli("run", "list", env=devecho)
    assert proc.returncode == 2
    assert "line 3: web_ui: unknown key" in proc.stderr
    installed = "sections of installed plugins: devecho (runyard-test-devecho), webui (runyard-webui)"
    assert installed in proc.stderr, proc.stderr
    assert "run_launcher" in proc.stderr


def test_a_section_whose_plugin_is_not_installed_says_what_to_install(cli, home):
    (home / "runyard.yaml").write_text("webui:\n  port: 3001\n")
    proc = cli("run", "list", env={"RUNYARD_DISABLE_PLUGINS": "webui"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "webui: this section belongs to runyard-webui, which is not installed" in proc.stderr
    assert "pip install runyard-webui" in proc.stderr


def test_a_file_with_core_keys_only_loads_no_plugin(tmp_path):
    """Opening an instance whose file has only runyard's keys imports no plugin for its sections."""
    (tmp_path / "runyard.yaml").write_text("daemon:\n  lease_seconds: 5\n")
    code = (f"import sys; from runyard import Instance; Instance.open(home={str(tmp_path)!r}); "
            "print('runyard_webui.plugin' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


# ---- the serve loop itself ------------------------------------------------------------------------
class _Recorder(Service):
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False):
        self.name, self.log, self.fail_start = name, log, fail_start

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self, timeout: float) -> None:
        self.log.append(f"stop {self.name}")


def test_runner_stops_in_reverse_order_on_a_signal_and_restores_handlers():
    log: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with ServiceRunner(poll_interval=0.05) as runner:
        runner.callback(lambda: log.append("release"))
        runner.start(_Recorder("a", log))
        runner.start(CallbackService("b", lambda: log.append("start b"), lambda t: log.append("stop b")))
        os.kill(os.getpid(), signal.SIGTERM)  # only sets the flag: nothing stops inside the handler
        assert log == ["start a", "start b"]
        t0 = time.monotonic()
        assert runner.wait() == 0
        assert time.monotonic() - t0 < 5
    assert log == ["start a", "start b", "stop b", "stop a", "release"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_signal_landing_anywhere_in_the_wait_loop_stops_the_command():
    """The handler runs between any two lines of the main thread, possibly while that thread holds
    a lock (the wait loop's own Event lock once: setting the Event from the handler then hung
    ``runyard dev`` for good on Ctrl-C). Here the handler is run at each successive line the wait
    loop executes, in a child process whose every runner must stop."""
    code = textwrap.dedent("""
        import signal, sys
        from runyard.operations.serve import ServiceRunner

        for n in range(1, 80):
            with ServiceRunner(poll_interval=0.005) as runner:
                seen = 0

                def tracer(frame, event, arg):
                    global seen
                    if event == "line":
                        seen += 1
                        if seen == n:
                            runner._on_signal(signal.SIGTERM, None)
                    return tracer

                sys.settrace(tracer)
                try:
                    runner.wait()
                finally:
                    sys.settrace(None)
        print("every runner stopped")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "every runner stopped" in done.stdout, done.stderr


def test_runner_stops_what_started_when_a_later_start_fails():
    log: list[str] = []
    with pytest.raises(RuntimeError, match="c cannot start"), ServiceRunner() as runner:
        runner.start(_Recorder("a", log))
        runner.start(_Recorder("b", log))
        runner.start(_Recorder("c", log, fail_start=True))
    assert log == ["start a", "start b", "stop b", "stop a"]


def test_runner_pauses_the_garbage_collector_while_services_start_only():
    assert gc.isenabled()
    with ServiceRunner(poll_interval=0.05) as runner:
        assert not gc.isenabled()  # imports and schemas of a start-up are not scanned for cycles
        runner.start(_Recorder("a", []))
        runner.request_stop()
        runner.wait()
        assert gc.isenabled()  # serving: collected as ever
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="c cannot start"), ServiceRunner():
        assert not gc.isenabled()
        raise RuntimeError("c cannot start")  # a start that fails never reaches wait()
    assert gc.isenabled()
    gc.disable()  # a caller that keeps it off keeps it off
    try:
        with ServiceRunner() as runner:
            runner.request_stop()
            runner.wait()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
