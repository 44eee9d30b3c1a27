"""The HTML pages over HTTP, basic auth, and ``runyard webui`` / ``runyard dev`` with bad input:
malformed instance file, bad ``webui:`` keys, a taken port, an unreachable database or code server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from runyard.testing import wait_until


def test_pages_render_runs_jobs_and_automation(webui):
    run_id = webui.launch("hello", {"ops": {"greet": {"config": {"name": "pages"}}}})["run"]["runId"]
    webui.wait_finished(run_id)
    status, html = webui.get("/")
    assert status == 200 and run_id[:8] in html and "hello" in html and "SUCCESS" in html
    status, html = webui.get(f"/runs/{run_id}")
    assert status == 200 and "RUN_SUCCESS" in html and "hello pages" in html and "greet" in html
    assert "name: pages" in html  # the run config, as YAML
    status, html = webui.get("/jobs")
    assert status == 200 and "/locations/defs_webui/jobs/hello" in html and "Greets, then shouts" in html
    status, html = webui.get("/locations/defs_webui/jobs/hello")
    assert status == 200 and 'href="/locations/defs_webui/jobs/hello/launchpad"' in html  # the launchpad's page
    assert f'data-run-id="{run_id}"' in html  # the job's recent runs
    status, html = webui.get("/locations/defs_webui/jobs/hello/launchpad")
    assert status == 200 and 'id="launchpad"' in html and "name: world" in html  # default config prefilled
    status, html = webui.get("/runs?job=hello")
    assert status == 200 and run_id[:8] in html and "Runs of hello" in html
    status, html = webui.get("/runs?job=broken")
    assert status == 200 and run_id[:8] not in html
    status, html = webui.get("/automation")
    assert status == 200 and "nightly_hello" in html and "0 3 * * *" in html and "file_sensor" in html
    status, html = webui.get("/runs?status=FAILURE")
    assert status == 200 and run_id[:8] not in html
    status, css = webui.get("/static/style.css")
    assert status == 200 and ".status" in css


def test_unknown_things_are_404_pages_that_say_what(webui):
    status, html = webui.get("/runs/doesnotexist")
    assert status == 404 and "no run with id &#39;doesnotexist&#39;" in html
    status, html = webui.get("/locations/defs_webui/jobs/nope")
    assert status == 404 and "no job named &#39;nope&#39;" in html
    status, html = webui.get("/runs?status=DONE")
    assert status == 400 and "unknown status" in html
    status, html = webui.get("/healthz")
    assert status == 200 and '"ok"' in html


def test_failed_run_page_shows_the_error_and_traceback(webui):
    run_id = webui.launch("broken")["run"]["runId"]
    webui.wait_finished(run_id)
    status, html = webui.get(f"/runs/{run_id}")
    assert status == 200 and "FAILURE" in html
    assert "the op exploded on purpose" in html and "raise ValueError" in html


def test_basic_auth_guards_pages_and_api(start_webui, instance_file):
    instance_file("webui:\n  auth:\n    username: admin\n    password: {env: WEBUI_PASSWORD}\n")
    ui = start_webui(env={"WEBUI_PASSWORD": "s3cret"})
    assert ui.get("/runs")[0] == 401
    assert ui.request("/graphql", b'{"query": "{ runs { count } }"}', {"Content-Type": "application/json"})[0] == 401
    assert ui.get("/healthz")[0] == 200  # load balancers probe without credentials
    ui.auth = ("admin", "wrong")
    assert ui.get("/runs")[0] == 401
    ui.auth = ("admin", "s3cret")
    assert ui.get("/runs")[0] == 200
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0
    assert not any("s3cret" in line for line in ui.lines)


def test_unreachable_code_server_shows_as_unavailable(start_webui, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = tmp_path / "workspace.yaml"
    ws.write_text(f"load_from:\n  - code_server: {{host: 127.0.0.1, port: {port}, location_name: remote}}\n")
    ui = start_webui("-w", str(ws), defs=False)
    [loc] = ui.gql("{ locations { name status error jobs { name } } }")["locations"]
    assert (loc["name"], loc["status"], loc["jobs"]) == ("remote", "unavailable", [])
    assert f"127.0.0.1:{port}" in loc["error"]
    status, html = ui.get("/jobs")
    assert status == 200 and "unavailable" in html and f"127.0.0.1:{port}" in html
    launch = ui.gql("""mutation { launchRun(location: "remote", jobName: "x") { ok code message } }""")["launchRun"]
    assert launch["code"] == "UNAVAILABLE" and "remote" in launch["message"]
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_webui_without_workspace_still_browses_runs(start_webui):
    ui = start_webui(defs=False)
    assert ui.gql("{ locations { name } runs { count } }") == {"locations": [], "runs": {"count": 0}}
    status, html = ui.get("/jobs")
    assert status == 200 and "No code locations" in html


# ---- bad input at start: a clear message, a non-zero exit, nothing listening ----------------------
def test_malformed_instance_file(cli, home):
    (home / "runyard.yaml").write_text("webui:\n  port: [3000\n")
    proc = cli("webui", "--port", "0", timeout=30)
    assert proc.returncode == 2
    assert "runyard.yaml" in proc.stderr and "line" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_webui_keys_name_the_key_path(cli, home):
    (home / "runyard.yaml").write_text("webui:\n  threads: 0\n  colour: blue\n")
    proc = cli("webui", "--port", "0", timeout=30)
    assert proc.returncode == 2
    assert "webui.threads" in proc.stderr and "webui.colour" in proc.stderr, proc.stderr
    (home / "runyard.yaml").write_text("webui:\n  auth: {username: admin, password: {env: NOT_SET_ANYWHERE}}\n")
    proc = cli("webui", "--port", "0", timeout=30)
    assert proc.returncode == 2 and "NOT_SET_ANYWHERE" in proc.stderr, proc.stderr


def test_port_in_use(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cli("webui", "--port", str(port), timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "already in use" in proc.stderr, proc.stderr


def test_unknown_storage_plugin_and_unreachable_database(cli, home):
    (home / "runyard.yaml").write_text("storage:\n  mongo: {}\n")
    proc = cli("webui", "--port", "0", timeout=30)
    assert proc.returncode == 2 and "mongo" in proc.stderr and "sqlite" in proc.stderr, proc.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (home / "runyard.yaml").write_text(
        f"storage:\n  postgres: {{url: 'postgresql://nobody@127.0.0.1:{port}/x', connect_timeout: 2, "
        "reconnect_timeout: 0}\n")
    t0 = time.monotonic()
    proc = cli("webui", "--port", "0", timeout=60)
    assert proc.returncode != 0 and f"127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert "serving on" not in proc.stdout and time.monotonic() - t0 < 30


def test_dev_serves_the_web_ui_with_the_daemon(cli, tmp_path):
    from runyard.testing import read_value_after

    proc = cli.popen("dev", "-f", str(Path(__file__).with_name("defs_webui.py")), "--port", "0")
    try:
        found = read_value_after(proc, "web UI: ")
        assert found.startswith("http://")
        import urllib.request

        with urllib.request.urlopen(found + "/automation", timeout=30) as resp:
            assert resp.status == 200 and "nightly_hello" in resp.read().decode()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Stopping" in err


def test_webui_help_lists_its_options():
    proc = subprocess.run([sys.executable, "-m", "runyard", "webui", "--help"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0 and "--read-only" in proc.stdout and "--threads" in proc.stdout


def test_sigterm_under_load_stops_cleanly(start_webui):
    """SIGTERM while every request thread is busy (long polls and a queue of run-list requests)
    lets the web UI stop within its grace period and exit 0, with no request left hanging."""
    import signal
    import threading

    ui = start_webui("--threads", "2")
    run_id = ui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 30}}}})["run"]["runId"]
    stop = threading.Event()
    outcomes: list[str] = []

    def poll():
        try:
            while not stop.is_set():
                ui.gql_raw("""query($id: ID!) { runEvents(runId: $id, afterId: 999999, waitSeconds: 5) { cursor } }""",
                           {"id": run_id})
                ui.gql_raw("{ runs { count runs { steps { status } } } }")
        except Exception as exc:  # noqa: BLE001 - the server going away mid-request is expected
            outcomes.append(type(exc).__name__)

    clients = [threading.Thread(target=poll, daemon=True) for _ in range(8)]
    for t in clients:
        t.start()
    time.sleep(1.5)
    t0 = time.monotonic()
    ui.proc.send_signal(signal.SIGTERM)
    ui.proc.wait(30)
    assert ui.proc.returncode == 0, ui.proc.stderr.read()
    assert time.monotonic() - t0 < 20
    stop.set()
    for t in clients:
        t.join(15)
    assert not any(t.is_alive() for t in clients), "a client request hung after the web UI stopped"
    from runyard import Instance

    inst = Instance.open(home=str(ui.home))  # the run outlives the web UI (its own worker): stop it
    try:
        inst.terminate_run(run_id)
        wait_until(lambda: inst.get_run(run_id).status.is_finished, timeout=30, what="the run to stop")
    finally:
        inst.dispose()


def test_runs_page_pages_through_older_runs(webui):
    import re

    from runyard import Instance

    inst = Instance.open(home=str(webui.home))
    try:
        ids = [inst.create_run(job_name="hello").run_id for _ in range(55)]  # oldest first
    finally:
        inst.dispose()
    status, first = webui.get("/runs")
    assert status == 200 and ids[-1][:8] in first and ids[5][:8] in first and ids[4][:8] not in first
    older = re.search(r'id="older" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    status, second = webui.get(older)
    assert status == 200 and ids[4][:8] in second and ids[0][:8] in second and ids[5][:8] not in second
    assert 'id="older"' not in second and 'id="newest"' in second and "data-live-runs" not in second
    status, html = webui.get("/runs?cursor=nosuchrun")
    assert status == 400 and "unknown cursor" in html


def test_status_page_shows_the_daemon_and_locations(webui, cli):
    status, html = webui.get("/status")
    assert status == 200 and "no leader" in html and "defs_webui" in html and "No daemon has ever reported" in html
    daemon = cli.popen("daemon")
    try:
        def leader():
            data = webui.gql("""{ daemonStatus { lease { holder expiresInSeconds }
                                                 daemons { daemonId leader loops { name } } } }""")["daemonStatus"]
            loops = {loop["name"] for d in data["daemons"] for loop in d["loops"]}
            return data if data["lease"] and {"schedules", "sensors", "monitoring"} <= loops else None

        found = wait_until(leader, timeout=60, what="the daemon to take the lease")
        [d] = found["daemons"]
        assert d["leader"] and d["daemonId"] == found["lease"]["holder"]
        assert {"schedules", "sensors", "monitoring"} <= {loop["name"] for loop in d["loops"]}
        status, html = webui.get("/status")
        assert status == 200 and "holds the lease" in html and d["daemonId"] in html and 'data-loop="schedules"' in html
    finally:
        daemon.terminate()
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0
