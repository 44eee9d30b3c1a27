#!/usr/bin/env python3
"""``runyard-healthcheck [webui|daemon|code-server]``: the HEALTHCHECK of runyard's service images.

One image runs three services, so the probe finds out which one this container runs: the service
named on its command line, else the first ``runyard webui|daemon|code-server`` process in the
container (``/proc``). Then:

* web UI: ``GET /healthz`` answers 200 (it does when storage answers; 503 names the reason);
* code server: ``GET /v1/health`` says ``status: ok`` (the definitions are loaded; the server's
  token, when it has one, from the variable its ``--token-env`` names or ``RUNYARD_CODE_SERVER_TOKEN``);
* daemon: its heartbeat is fresh in storage: ``runyard daemon status --check ID`` with the id the
  daemon wrote to ``$RUNYARD_DAEMON_ID_FILE`` (``runyard daemon --id-file``).

The port and host come from the service's own command line (``--port``/``-p``, ``--host``), else
``RUNYARD_WEBUI_PORT`` / ``RUNYARD_CODE_SERVER_PORT``, else runyard's defaults (3000, 4000).
Exit 0 when healthy, 1 (with one line saying why) when not. Standard library only: it runs every
few seconds and must stay cheap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

SERVICES = ("webui", "daemon", "code-server")
DEFAULT_PORTS = {"webui": ("RUNYARD_WEBUI_PORT", 3000), "code-server": ("RUNYARD_CODE_SERVER_PORT", 4000)}
TIMEOUT_SECONDS = 4.0


def find_service() -> tuple[str, list[str]] | None:
    """The first runyard service process in this container: (service, its argv)."""
    for proc in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        for i, arg in enumerate(argv[:-1]):
            if arg.endswith("runyard") or (arg == "-m" and argv[i + 1] == "runyard"):
                rest = [a for a in argv[i + 1:] if a != "runyard" and not a.startswith("-")]
                if rest and rest[0] in SERVICES and "status" not in rest:
                    return rest[0], argv
    return None


def option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def address(service: str, argv: list[str]) -> str:
    env_name, default = DEFAULT_PORTS[service]
    port = option(argv, "--port", "-p") or os.environ.get(env_name) or str(default)
    host = option(argv, "--host") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def get_json(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def check(service: str, argv: list[str]) -> str:
    """'' when healthy, else why not."""
    if service == "webui":
        url = f"http://{address(service, argv)}/healthz"
        status, body = get_json(url)
        return "" if status == 200 else f"{url} answered {status}: {body.get('error', body)}"
    if service == "code-server":
        url = f"http://{address(service, argv)}/v1/health"
        token_env = option(argv, "--token-env") or "RUNYARD_CODE_SERVER_TOKEN"
        status, body = get_json(url, os.environ.get(token_env))
        if status != 200:
            return f"{url} answered {status}"
        return "" if body.get("status") == "ok" else f"definitions not loaded: {body.get('error') or body}"
    id_file = Path(option(argv, "--id-file") or os.environ.get("RUNYARD_DAEMON_ID_FILE", "/tmp/runyard-daemon.id"))
    try:
        daemon_id = id_file.read_text().strip()
    except OSError:
        return f"the daemon has not started yet (no id in {id_file})"
    proc = subprocess.run(["runyard", "daemon", "status", "--check", daemon_id], capture_output=True, text=True,
                          timeout=30)
    return "" if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()


def main(args: list[str]) -> int:
    if args and args[0] not in SERVICES:
        print(f"usage: runyard-healthcheck [{'|'.join(SERVICES)}] (got {args[0]!r})", file=sys.stderr)
        return 2
    found = find_service()
    if args:
        service, argv = args[0], (found[1] if found and found[0] == args[0] else [])
    elif found:
        service, argv = found
    else:
        print("no runyard webui, daemon or code-server process runs in this container", file=sys.stderr)
        return 1
    try:
        problem = check(service, argv)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"{service} unhealthy: {problem}", file=sys.stderr)
        return 1
    print(f"{service} healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
