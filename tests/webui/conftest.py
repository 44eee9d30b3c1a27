"""Fixtures for the web UI tests: a real ``runyard webui`` process (waitress on a free port) over a
real SQLite or PostgreSQL instance, with a real code server for ``defs_webui.py``, driven over HTTP
and — in test_browser.py — by a real Chromium through Playwright."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runyard.testing import wait_until

DEFS = Path(__file__).with_name("defs_webui.py")
START_TIMEOUT = 60


class WebUI:
    """A ``runyard webui`` subprocess; ``gql`` posts GraphQL, ``get`` fetches a page."""

    def __init__(self, home: Path, cwd: Path, args: tuple[str, ...], env: dict[str, str]):
        self.home = home
        self.proc = subprocess.Popen([sys.executable, "-m", "runyard", "webui", *args], cwd=cwd,
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url = self._await_url()
        self.auth: tuple[str, str] | None = None

    def _await_url(self) -> str:
        found: dict[str, str] = {}

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                m = re.search(r"serving on (http://\S+)", line)
                if m:
                    found["url"] = m.group(1)

        threading.Thread(target=read, daemon=True).start()
        try:
            wait_until(lambda: found.get("url") or self.proc.poll() is not None, timeout=START_TIMEOUT,
                       what="the web UI to listen")
        except AssertionError:
            self.proc.kill()
            raise
        if "url" not in found:
            raise AssertionError(f"runyard webui exited {self.proc.returncode}:\n{''.join(self.lines)}"
                                 f"{self.proc.stderr.read()}")
        return found["url"]

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.auth:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        return headers

    def request(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, str]:
        req = urllib.request.Request(self.url + path, data=body, headers=self._headers(headers))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get(self, path: str) -> tuple[int, str]:
        return self.request(path)

    def gql_raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        status, text = self.request("/graphql", json.dumps({"query": query, "variables": variables}).encode(),
                                    {"Content-Type": "application/json"})
        assert status in (200, 400), f"HTTP {status}: {text}"
        return json.loads(text)

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of a GraphQL answer; fails on any GraphQL error."""
        body = self.gql_raw(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def launch(self, job: str, config: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        data = self.gql("""mutation($job: String!, $cfg: GenericScalar, $tags: [TagInput!], $ops: String) {
            launchRun(location: "defs_webui", jobName: $job, runConfig: $cfg, tags: $tags, ops: $ops) {
              ok message code run { runId status } errors { message path } } }""",
                        {"job": job, "cfg": config, "tags": kwargs.get("tags"), "ops": kwargs.get("ops")})
        return data["launchRun"]

    def wait_finished(self, run_id: str, timeout: float = 60) -> tuple[str, list[dict[str, Any]]]:
        """Follow the run's events by long poll until it finishes: (status, every event)."""
        events: list[dict[str, Any]] = []
        cursor = None

        def step():
            nonlocal cursor
            page = self.gql("""query($id: ID!, $after: Int) { runEvents(runId: $id, afterId: $after, waitSeconds: 5) {
                cursor runStatus finished events { id eventType stepKey level message data } } }""",
                            {"id": run_id, "after": cursor})["runEvents"]
            events.extend(page["events"])
            cursor = page["cursor"]
            return page["runStatus"] if page["finished"] and not page["events"] else None

        status = wait_until(step, timeout=timeout, interval=0, what=f"run {run_id} to finish")
        return status, events

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_webui(cli, home: Path, tmp_path: Path):
    """``start_webui(*args, env=None)``: a web UI on a free port; default args serve defs_webui.py."""
    started: list[WebUI] = []

    def start(*args: str, env: dict[str, str] | None = None, defs: bool = True) -> WebUI:
        full = (("-f", str(DEFS)) if defs else ()) + ("--port", "0") + args
        ui = WebUI(home, tmp_path, full, cli.env(**(env or {})))
        started.append(ui)
        return ui

    yield start
    for ui in started:
        code = ui.stop()
        assert code == 0, f"runyard webui exited {code} on SIGTERM:\n{''.join(ui.lines)}{ui.proc.stderr.read()}"


@pytest.fixture
def webui(start_webui) -> WebUI:
    return start_webui()


def write_instance(home: Path, text: str) -> None:
    (home / "runyard.yaml").write_text(text)


@pytest.fixture
def instance_file(home: Path):
    return lambda text: write_instance(home, text)


# ---- the browser: Debian's Chromium through Playwright ---------------------------------------------
SCREENSHOTS = Path(os.environ.get("RUNYARD_SCREENSHOTS", Path(__file__).parents[2] / "test-results" / "screenshots"))


def chromium_path() -> str:
    path = os.environ.get("RUNYARD_TEST_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(path):
        pytest.fail(f"Chromium not found at {path}: install Debian's chromium (scripts/test does) or set "
                    "RUNYARD_TEST_CHROMIUM", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # here: the launcher envs load this conftest without it

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.extend(_csp_violations([msg])))
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors (or Content-Security-Policy violations) on the page: {errors}"


@pytest.fixture
def csp_violations():
    """The Content-Security-Policy violations among console messages."""
    return _csp_violations


def _csp_violations(messages) -> list[str]:
    return [m.text for m in messages if m.type == "error" and "Content Security Policy" in m.text]


@pytest.fixture
def shot(request):
    """``shot(page, name)`` saves a full-page screenshot as ``<RUNYARD_SCREENSHOTS>/<test>-<name>.png``
    (default ``test-results/screenshots/``): every page the browser tests visit is kept for a look."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(pg, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return take
