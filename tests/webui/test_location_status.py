"""Location and daemon status in the web UI tell the truth (issue 10, item 7): a separately run code
server that stops shows as unavailable in ``runyard workspace list``, in GraphQL and on the status
page; a kill -9'd daemon shows as dead. The daemon-side checks are in tests/core/test_daemon_status.py.

Needs: nothing beyond Python, SQLite and Linux; the daemon, the code server and the web UI are real
processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runyard.testing import wait_until

FAST = "daemon: {heartbeat_interval_seconds: 0.5, schedule_interval_seconds: 0.5, lease_seconds: 30}\n"


@pytest.fixture(autouse=True)
def fast_daemon(home: Path):
    (home / "runyard.yaml").write_text(FAST)


def _start_code_server(cli, procs, defs: Path, tmp_path: Path) -> tuple[subprocess.Popen, int]:
    ready = tmp_path / "ready.json"
    proc = procs.add(cli.popen("code-server", "-f", defs, "--port", "0", "--location-name", "remote",
                                 "--ready-file", ready, start_new_session=True))
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60, what="the code server")
    assert proc.poll() is None, proc.stderr.read()
    return proc, json.loads(ready.read_text())["port"]


def _start_daemon(cli, procs, *args) -> subprocess.Popen:
    proc = procs.add(cli.popen("daemon", *args, start_new_session=True))
    wait_until(lambda: proc.poll() is not None
               or (cli.json("daemon", "status", "--json")["lease"] or {}).get("holder"),
               timeout=60, what="the daemon to lead")
    assert proc.poll() is None, proc.stderr.read()
    return proc


def test_a_stopped_code_server_is_unavailable_everywhere(cli, home, start_webui, procs, tiny_defs, tmp_path):
    server, port = _start_code_server(cli, procs, tiny_defs, tmp_path)
    ws = tmp_path / "workspace.yaml"
    ws.write_text(f"load_from:\n  - code_server: {{host: 127.0.0.1, port: {port}, location_name: remote}}\n")
    daemon = _start_daemon(cli, procs, "-w", ws)
    ui = start_webui("-w", str(ws), defs=False)
    (row,) = cli.json("workspace", "list", "-w", ws, "--json")
    assert row["status"] == "ok"
    assert ui.gql("{ locations { name status } }")["locations"] == [{"name": "remote", "status": "ok"}]
    query = "{ daemonStatus { daemons { daemonId state ageSeconds heartbeatIntervalSeconds } } }"
    (d,) = ui.gql(query)["daemonStatus"]["daemons"]
    assert d["state"] == "leader" and d["heartbeatIntervalSeconds"] == 0.5

    assert procs.stop(server) == 0
    (row,) = cli.json("workspace", "list", "-w", ws, "--json")
    assert row["status"] == "unavailable" and f"127.0.0.1:{port}" in row["error"]
    started = time.monotonic()
    wait_until(lambda: ui.gql("{ locations { status } }")["locations"] == [{"status": "unavailable"}],
               timeout=15, what="the web UI to show the stopped code server as unavailable")
    assert time.monotonic() - started < 15
    page = ui.get("/status")[1]
    assert "unavailable" in page and f"127.0.0.1:{port}" in page

    procs.stop(daemon, signal.SIGKILL)
    wait_until(lambda: ui.gql(query)["daemonStatus"]["daemons"][0]["state"] == "dead", timeout=20,
               what="GraphQL to show the killed daemon as dead")
    assert 'data-state="dead"' in ui.get("/status")[1]
