"""Workspace files, supervised local code servers, ``runyard workspace list|reload``, and the promise
that a process using only ``Workspace`` + ``CodeServerClient`` (the daemon, the web UI) never imports
the user's code.

Needs: nothing beyond Python and Linux's /proc. Code servers are real subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from runyard.codeserver.client import CodeServerClient
from runyard.codeserver.protocol import ServerReady
from runyard.errors import ConfigError, RunyardError
from runyard.launchers.procinfo import state as proc_state
from runyard.testing import live_children, pid_gone, wait_until
from runyard.workspace.config import load_workspace_file
from runyard.workspace.workspace import Workspace

DEFS = '''
import os
import sys
import json

from runyard import Config, Definitions, RunRequest, job, op, schedule, sensor

MARKER = {marker!r}
if MARKER:
    with open(MARKER, "a") as f:
        f.write(json.dumps({{"pid": os.getpid(), "argv": sys.argv}}) + "\\n")


class Cfg(Config):
    n: int


@op
def extract(config: Cfg) -> int:
    return config.n


@op
def load(value: int) -> None:
    pass


@job
def etl():
    load(extract())


@schedule("* * * * *", job=etl)
def every_minute(context):
    return {{"ops": {{"extract": {{"config": {{"n": context.scheduled_time.minute}}}}}}}}


@sensor(job=etl)
def ticker(context):
    context.update_cursor(str(int(context.cursor or 0) + 1))
    return RunRequest(run_key=context.cursor, run_config={{"ops": {{"extract": {{"config": {{"n": 1}}}}}}}})


defs = Definitions(jobs=[etl], schedules=[every_minute], sensors=[ticker])
'''


def write_defs(path: Path, marker: Path | str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(DEFS.format(marker=str(marker))))
    return path


def write_workspace(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, "RUNYARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}


class ExternalCodeServer:
    """A ``runyard code-server`` the test runs itself, for ``code_server:`` entries."""

    def __init__(self, defs: Path, name: str, home: Path):
        ready = home / f"{name}.ready"
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard", "code-server", "-f", str(defs), "--port", "0",
                                      "--location-name", name, "--ready-file", str(ready)], env=child_env(home),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()  # the banner comes once the server listens ...
        assert "listening on http://" in line, line
        self.port = ServerReady.from_line(ready.read_text()).port  # ... and the handshake before it
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.proc.stdout.close()


@pytest.fixture
def external_server(tmp_path: Path):
    started: list[ExternalCodeServer] = []

    def start(defs: Path, name: str = "remote") -> ExternalCodeServer:
        srv = ExternalCodeServer(defs, name, tmp_path)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def workspace_factory():
    """``workspace_factory(path, **kwargs)``: a started Workspace, shut down after the test."""
    opened: list[Workspace] = []

    def make(path: Path, **kwargs) -> Workspace:
        ws = Workspace.from_file(str(path), **kwargs)
        opened.append(ws)
        return ws.start()

    yield make
    for ws in opened:
        ws.shutdown()


# ---- the workspace file ----------------------------------------------------------------------------

def test_parse_all_entry_kinds(tmp_path: Path):
    write_defs(tmp_path / "defs.py")
    write_defs(tmp_path / "sub" / "other.py")
    (tmp_path / "wd").mkdir()
    ws = write_workspace(tmp_path / "workspace.yaml", """
        load_from:
          - python_file: defs.py
          - python_file: sub/other.py
            location_name: other
            attribute: defs
            working_directory: wd
          - python_module: pkg.defs
          - python_module: pkg.defs
            location_name: pkg2
            working_directory: wd
          - code_server: {host: code.internal, port: 4100, location_name: remote}
          - code_server: {port: 4101}
    """)
    origins = load_workspace_file(str(ws))
    assert [(o.kind, o.location_name) for o in origins] == [
        ("python_file", "defs"), ("python_file", "other"), ("python_module", "pkg.defs"),
        ("python_module", "pkg2"), ("code_server", "remote"), ("code_server", "127.0.0.1:4101")]
    assert origins[0].python_file == str(tmp_path / "defs.py") and origins[0].working_directory == str(tmp_path)
    assert origins[1].python_file == str(tmp_path / "sub" / "other.py")
    assert origins[1].attribute == "defs" and origins[1].working_directory == str(tmp_path / "wd")
    assert origins[2].module == "pkg.defs" and origins[2].working_directory == str(tmp_path)
    assert origins[3].working_directory == str(tmp_path / "wd")
    assert (origins[4].host, origins[4].port, origins[4].is_local) == ("code.internal", 4100, False)
    assert origins[4].code_pointer() is None
    assert origins[1].code_pointer().to_dict() == {"python_file": str(tmp_path / "sub" / "other.py"),
                                                   "attribute": "defs", "working_directory": str(tmp_path / "wd")}


@pytest.mark.parametrize("text, message", [
    ("""
     load_from:
       - python_file: defs.py
       - python_file: missing.py
     """, "{ws}, line 3: load_from[1].python_file: definitions file not found: {dir}/missing.py"),
    ("""
     load_from:
       - python_file: defs.py
         atribute: defs
     """, "{ws}, line 3: load_from[0].atribute: unknown key"),
    ("""
     load_from:
       - python_file: defs.py
         python_module: defs
     """, "{ws}, line 2: load_from[0]: an entry needs exactly one of: python_file, python_module, code_server "
         "(found python_file, python_module)"),
    ("""
     load_from:
       - code_server:
           host: localhost
     """, "{ws}, line 2: load_from[0].code_server.port: required key is missing"),
    ("""
     load_from:
       - code_server: {port: lots}
     """, "{ws}, line 2: load_from[0].code_server.port: Input should be a valid integer"),
    ("""
     load_from:
       - code_server: {port: 4000}
         location_name: x
     """, "{ws}, line 2: load_from[0]: 'location_name' does not apply to a code_server entry"),
    ("""
     load_from:
       - python_file: defs.py
       - python_module: defs
     """, "{ws}, line 3: load_from[1]: two code locations are named 'defs' (the other is load_from[0])"),
    ("""
     load_from:
       - python_file: defs.py
         location_name: my location
     """, "{ws}, line 3: load_from[0].location_name: location name 'my location' must be"),
    ("""
     load_from:
       - python_file: defs.py
         working_directory: nowhere
     """, "{ws}, line 3: load_from[0].working_directory: working directory not found: {dir}/nowhere"),
    ("""
     load_from:
       - python_file:
     """, "{ws}, line 2: load_from[0]: python_file needs a value"),
    ("""
     locations:
       - python_file: defs.py
     """, "{ws}, line 1: invalid config:\n  load_from: required key is missing\n  locations: unknown key (line 1)"),
    ("""
     load_from:
       - python_file: defs.py
        - bad indentation
     """, "{ws}, line 3: invalid YAML"),
    ("", "{ws}: empty workspace file"),
])
def test_parse_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str):
    write_defs(tmp_path / "defs.py")
    ws = write_workspace(tmp_path / "workspace.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_workspace_file(str(ws))
    assert str(info.value).startswith(message.format(ws=ws, dir=tmp_path)), str(info.value)


def test_cli_reports_workspace_errors(cli, tmp_path: Path):
    proc = cli("workspace", "list")
    assert proc.returncode == 2
    assert f"Error: {tmp_path}/workspace.yaml: workspace file not found (give one with -w FILE" in proc.stderr
    write_workspace(tmp_path / "ws.yaml", "load_from:\n  - python_file: gone.py\n")
    proc = cli("workspace", "list", "-w", "ws.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"Error: ws.yaml, line 2: load_from[0].python_file: definitions file not "
                                   f"found: {tmp_path}/gone.py")


# ---- runyard workspace list / reload ----------------------------------------------------------------

def test_workspace_list_json(cli, tmp_path: Path, external_server):
    write_defs(tmp_path / "defs.py")
    write_defs(tmp_path / "remote_defs.py")
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    remote = external_server(tmp_path / "remote_defs.py", name="remote")
    write_workspace(tmp_path / "workspace.yaml", f"""
        load_from:
          - python_file: defs.py
          - python_module: defs
            location_name: as_module
          - python_file: broken.py
          - code_server: {{port: {remote.port}, location_name: remote}}
          - code_server: {{port: 1, location_name: nowhere}}
    """)
    rows = cli.json("workspace", "list", "--json")
    by_name = {r["location"]: r for r in rows}
    assert list(by_name) == ["defs", "as_module", "broken", "remote", "nowhere"]
    snapshot_id = CodeServerClient("127.0.0.1", remote.port).snapshot().snapshot_id
    for name in ("defs", "as_module", "remote"):
        row = by_name[name]
        assert (row["status"], row["jobs"], row["schedules"], row["sensors"], row["error"]) == ("ok", 1, 1, 1, None)
        assert row["snapshot_id"] == snapshot_id  # same code, same id, however it is served
    assert by_name["defs"]["origin"] == f"python_file {tmp_path}/defs.py"
    assert by_name["defs"]["origin_detail"] == {"kind": "python_file", "python_file": str(tmp_path / "defs.py"),
                                                "working_directory": str(tmp_path)}
    assert by_name["as_module"]["origin"] == "python_module defs"
    assert by_name["remote"]["origin"] == f"code_server 127.0.0.1:{remote.port}"
    broken = by_name["broken"]
    assert broken["status"] == "error" and broken["jobs"] is None and broken["snapshot_id"] is None
    assert "ModuleNotFoundError: No module named 'nonexistent_module_xyz'" in broken["error"]
    assert 'broken.py", line 1' in broken["traceback"]
    nowhere = by_name["nowhere"]
    assert nowhere["status"] == "unavailable"
    assert nowhere["error"].startswith("code server at 127.0.0.1:1 is unreachable: connection refused")

    text = cli.ok("workspace", "list").stdout
    assert "defs  OK  python_file" in text and "1 job(s), 1 schedule(s), 1 sensor(s)" in text
    assert "broken  ERROR" in text and "nowhere  UNAVAILABLE" in text


def test_workspace_reload(cli, tmp_path: Path, external_server):
    defs = write_defs(tmp_path / "remote_defs.py")
    remote = external_server(defs, name="remote")
    write_defs(tmp_path / "local.py")
    write_workspace(tmp_path / "workspace.yaml", f"""
        load_from:
          - python_file: local.py
          - code_server: {{port: {remote.port}, location_name: remote}}
    """)
    before = CodeServerClient("127.0.0.1", remote.port).snapshot().snapshot_id
    defs.write_text(defs.read_text().replace("def ticker(context):", "def ticker(context):\n    '''Ticks.'''"))
    result = cli.json("workspace", "reload", "remote", "--json")
    assert len(result) == 1 and result[0]["location"] == "remote" and result[0]["status"] == "ok"
    assert result[0]["changed"] is True and result[0]["snapshot_id"] != before
    snap = CodeServerClient("127.0.0.1", remote.port).snapshot()
    assert snap.snapshot_id == result[0]["snapshot_id"] and snap.sensors_by_name["ticker"].description == "Ticks."

    out = cli.ok("workspace", "reload").stdout
    assert "local  OK  snapshot" in out and "remote  OK  snapshot" in out and "(unchanged)" in out

    proc = cli("workspace", "reload", "elsewhere")
    assert proc.returncode == 1
    assert "no code location named 'elsewhere'" in proc.stderr and "Locations: local, remote" in proc.stderr

    defs.write_text("raise RuntimeError('broken on purpose')\n")
    proc = cli("workspace", "reload", "remote")
    assert proc.returncode == 1
    assert "remote  ERROR" in proc.stdout and "broken on purpose" in proc.stdout


# ---- supervision and shutdown -----------------------------------------------------------------------

def test_supervised_server_restarts_after_kill9(tmp_path: Path, workspace_factory):
    write_defs(tmp_path / "defs.py")
    ws = workspace_factory(write_workspace(tmp_path / "workspace.yaml", "load_from:\n  - python_file: defs.py\n"),
                           env=child_env(tmp_path))
    loc = ws.location("defs")
    assert loc.status == "ok" and loc.snapshot.job_names == ["etl"]
    first_pid, first_id = loc.pid, loc.snapshot_id
    assert loc.client.health().pid == first_pid
    os.kill(first_pid, signal.SIGKILL)
    wait_until(lambda: loc.pid != first_pid and loc.status == "ok", what="the code server to be restarted")
    assert not pid_gone(loc.pid) and loc.restarts == 1
    assert loc.client.health().pid == loc.pid  # the client follows the new process (and port)
    assert loc.snapshot_id == first_id
    assert loc.client.evaluate_sensor("ticker").run_requests[0].run_key == "1"
    assert proc_state(first_pid) is None  # the killed one was reaped


def test_shutdown_leaves_no_process(tmp_path: Path):
    write_defs(tmp_path / "a.py")
    # a location whose definitions start a process of their own: it is stopped with its server
    (tmp_path / "b.py").write_text(textwrap.dedent(f"""
        import subprocess, sys
        from runyard import Definitions, job, op

        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(tmp_path / "helper.pid")!r}, "w").write(str(helper.pid))

        @op
        def hello() -> None:
            pass

        @job
        def noop():
            hello()

        defs = Definitions(jobs=[noop])
    """))
    ws = Workspace.from_file(str(write_workspace(tmp_path / "workspace.yaml", """
        load_from:
          - python_file: a.py
          - python_file: b.py
    """)), env=child_env(tmp_path)).start()
    pids = [loc.pid for loc in ws.locations()]
    helper = int((tmp_path / "helper.pid").read_text())
    assert not any(pid_gone(p) for p in [*pids, helper]) and sorted(live_children(os.getpid())) == sorted(pids)
    ws.shutdown()
    assert [proc_state(p) for p in pids] == [None, None]  # stopped and reaped
    wait_until(lambda: pid_gone(helper), timeout=10, what="the user's helper process to stop")
    assert live_children(os.getpid()) == []
    assert all(loc.status == "unavailable" for loc in ws.locations())
    ws.shutdown()  # idempotent


def test_shutdown_while_the_supervisor_is_being_started(tmp_path: Path, monkeypatch):
    """A web UI stopped just as its code server answered: the background start was between making
    the supervisor thread and starting it when shutdown() came. Shutdown must neither fail (joining
    a thread not started yet raised RuntimeError) nor leave the server or a supervisor running."""
    import runyard.workspace.workspace as workspace_module

    write_defs(tmp_path / "defs.py")
    file = write_workspace(tmp_path / "workspace.yaml", "load_from:\n  - python_file: defs.py\n")
    ws = Workspace.from_file(str(file), env=child_env(tmp_path))
    starting, stopping_seen = threading.Event(), threading.Event()

    class SlowToStart(threading.Thread):
        def start(self) -> None:
            if self.name == "workspace supervisor":
                starting.set()
                # hold the start until shutdown() began (or for 2 s, when shutdown waits for us)
                if ws._stopping.wait(2):
                    stopping_seen.set()
            super().start()

    monkeypatch.setattr(workspace_module.threading, "Thread", SlowToStart)
    ws.start(wait=False)
    assert starting.wait(60), "the code server never answered"
    pid = ws.location("defs").pid
    ws.shutdown(timeout=10)  # raised "cannot join thread before it is started"
    assert not stopping_seen.is_set()  # shutdown waited for the start instead of racing it
    assert proc_state(pid) is None
    assert not any(t.name == "workspace supervisor" for t in threading.enumerate())


def test_code_servers_exit_when_the_workspace_process_is_killed(tmp_path: Path):
    write_defs(tmp_path / "defs.py")
    write_workspace(tmp_path / "workspace.yaml",
                    "load_from:\n  - python_file: defs.py\n  - python_module: defs\n    location_name: m\n")
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from runyard.workspace.workspace import Workspace
        ws = Workspace.from_file("workspace.yaml").start()
        print(" ".join(str(loc.pid) for loc in ws.locations()), flush=True)
        time.sleep(300)
    """)], cwd=tmp_path, env=child_env(tmp_path), stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in driver.stdout.readline().split()]
    assert len(pids) == 2 and not any(pid_gone(p) for p in pids)
    driver.kill()  # SIGKILL: no shutdown, no atexit
    driver.wait()
    driver.stdout.close()
    wait_until(lambda: all(pid_gone(p) for p in pids), timeout=15, what="orphaned code servers to exit")


def test_unknown_location_and_startup_failure(tmp_path: Path, workspace_factory):
    write_defs(tmp_path / "defs.py")
    ws = workspace_factory(write_workspace(tmp_path / "workspace.yaml", """
        load_from:
          - python_file: defs.py
            attribute: no_such_attribute
    """), env=child_env(tmp_path))
    loc = ws.location("defs")
    assert loc.status == "error" and "has no attribute 'no_such_attribute'" in loc.error.message
    with pytest.raises(RunyardError, match="no code location named 'nope' .* Locations: defs"):
        ws.location("nope")

    # a server that cannot start at all (the interpreter is not Python) is unavailable, not raised
    bad = Workspace.from_file(str(tmp_path / "workspace.yaml"), python="/bin/false", supervise=False).start()
    try:
        loc = bad.location("defs")
        assert loc.status == "unavailable" and "exited with code 1 before listening" in loc.error.message
        with pytest.raises(RunyardError, match="no running code server"):
            loc.client  # noqa: B018
    finally:
        bad.shutdown()


# ---- no user code in the daemon / web UI ------------------------------------------------------------

DRIVER = """
import json, os, signal, sys, time

from runyard.workspace.workspace import Workspace

ws = Workspace.from_file(sys.argv[1]).start()
children = set()
out = {"pid": os.getpid(), "results": {}}
try:
    def query(loc):
        children.add(loc.pid)
        client = loc.client
        snapshot = client.snapshot()
        validation = client.validate("etl", {"ops": {"extract": {"config": {"n": 3}}}})
        bad = client.validate("etl", {"ops": {"extract": {"config": {"n": "x"}}}})
        tick = client.evaluate_schedule("every_minute", 1_700_000_000)
        sensor = client.evaluate_sensor("ticker", cursor="41")
        return {"jobs": snapshot.job_names, "plan": validation.step_order,
                "bad": [e.path for e in bad.errors], "schedule": tick.run_requests[0].run_config,
                "cursor": sensor.cursor, "reload": client.reload().status}

    for loc in ws.locations():
        out["results"][loc.name] = query(loc)
    # a supervised restart imports the definitions again: in the new child, not here
    loc = ws.locations()[0]
    old = loc.pid
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (loc.pid == old or loc.status != "ok") and time.monotonic() < deadline:
        time.sleep(0.05)
    out["results"]["after_restart"] = query(loc)
    out["user_modules"] = sorted(name for name, m in sys.modules.items()
                                 if name.startswith("runyard_user_") or name == "defs"
                                 or (getattr(m, "__file__", None) or "").startswith(sys.argv[2]))
finally:
    ws.shutdown()
out["children"] = sorted(children)
print(json.dumps(out))
"""


FAKE_SERVER = """#!{python}
import sys, time
args = sys.argv[1:]
fd = int(args[args.index("--ready-fd") + 1])
print("code server for location defs listening on http://127.0.0.1:1", flush=True)
if {garbage!r}:
    import os
    os.write(fd, b"listening on 127.0.0.1:1\\n")
time.sleep(60)
"""


@pytest.mark.parametrize("garbage", [False, True])
def test_port_comes_from_the_handshake_not_the_banner(tmp_path: Path, garbage: bool):
    """A process that prints the human banner but never writes the JSON handshake (or writes
    something else on the handshake pipe) is not taken for a listening code server."""
    write_defs(tmp_path / "defs.py")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_SERVER.format(python=sys.executable, garbage=garbage))
    fake.chmod(0o755)
    ws = Workspace.from_file(str(write_workspace(tmp_path / "workspace.yaml", """
        load_from:
          - python_file: defs.py
    """)), python=str(fake), supervise=False, startup_timeout=3).start()
    try:
        loc = ws.location("defs")
        assert loc.status == "unavailable"
        if garbage:
            assert "sent a ready line that is not the handshake" in loc.error.message
        else:
            assert "did not start listening within 3s" in loc.error.message
    finally:
        ws.shutdown()


def test_daemon_side_process_never_imports_user_code(tmp_path: Path):
    marker = tmp_path / "imports.jsonl"
    code_dir = tmp_path / "code"
    write_defs(code_dir / "defs.py", marker)
    ws_file = write_workspace(tmp_path / "workspace.yaml", """
        load_from:
          - python_file: code/defs.py
          - python_module: defs
            location_name: as_module
            working_directory: code
    """)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    # the driver runs from the code directory, so `import defs` would succeed there if anything tried
    proc = subprocess.run([sys.executable, str(driver), str(ws_file), str(code_dir)], cwd=code_dir,
                          env=child_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    expected = {"jobs": ["etl"], "plan": ["extract", "load"], "bad": ["ops.extract.config.n"],
                "schedule": {"ops": {"extract": {"config": {"n": 13}}}}, "cursor": "42", "reload": "ok"}
    assert out["results"] == {"defs": expected, "as_module": expected, "after_restart": expected}
    assert out["user_modules"] == []
    assert len(out["children"]) == 3  # two servers, one of them restarted

    imports = [json.loads(line) for line in marker.read_text().splitlines()]
    importer_pids = {i["pid"] for i in imports}
    # every import happened in a code server child of the driver; none in the driver or in this test
    assert importer_pids == set(out["children"])
    assert out["pid"] not in importer_pids and os.getpid() not in importer_pids
    assert all(i["argv"][1:2] == ["code-server"] for i in imports), imports
    assert len(imports) == 6  # 3 starts + 3 reloads
    assert all(pid_gone(p) for p in out["children"])
