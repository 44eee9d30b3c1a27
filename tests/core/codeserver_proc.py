"""A real ``python -m runyard code-server`` subprocess for the HTTP and auth tests, and raw HTTP over
a socket (no client library smoothing over what the server really sends)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFS = '''
import os

from runyard import Definitions, RunRequest, job, op, sensor

with open(os.path.join(os.path.dirname(__file__), "token_seen_by_user_code"), "w") as f:
    f.write(repr([v for k, v in os.environ.items() if "TOKEN" in k]))


@op
def hello() -> int:
    return 1


@job
def etl():
    hello()


@sensor(job=etl)
def pings(context):
    return RunRequest(run_key="one")


defs = Definitions(jobs=[etl], sensors=[pings])
'''


def child_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNYARD_")}
    return {**env, "RUNYARD_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


class CodeServerProcess:
    """``runyard code-server -f defs.py --port 0 ARGS`` in ``directory``; the port comes from the
    readiness handshake (``--ready-file``)."""

    def __init__(self, directory: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "defs.py").write_text(DEFS)
        (directory / "home").mkdir(exist_ok=True)
        ready = directory / "ready.json"
        ready.unlink(missing_ok=True)
        self.argv = [sys.executable, "-m", "runyard", "code-server", "-f", "defs.py", "--port", "0",
                     "--ready-file", str(ready), *args]
        self.proc = subprocess.Popen(self.argv, cwd=directory, env=env or child_env(directory / "home"),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.output: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                        for stream in (self.proc.stdout, self.proc.stderr)]
        for reader in self.readers:
            reader.start()
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("code server did not start:\n" + "".join(self.output))
            time.sleep(0.05)
        self.port = json.loads(ready.read_text())["port"]

    def _read(self, stream) -> None:
        for line in stream:
            self.output.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for reader in self.readers:
                reader.join(5)
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code

    def open_sockets(self) -> int:
        """How many sockets the server process holds (listening one included)."""
        fds = Path(f"/proc/{self.proc.pid}/fd")
        count = 0
        for fd in fds.iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:  # closed meanwhile
                pass
        return count


def raw_http(port: int, request: bytes, *, timeout: float = 30.0, half_close: bool = False
             ) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is; read the answer until the server closes. (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):  # the server answered early and closed
            pass
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def request_bytes(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                  *, content_length: str | None = "auto") -> bytes:
    """One HTTP/1.1 request with ``Connection: close``; ``content_length=None`` leaves the header out."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if content_length == "auto":
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def json_error(status_headers_body: tuple[int, dict[str, str], bytes]) -> tuple[int, str, str]:
    """(status, error kind, error message) of a JSON error answer; insists it is JSON."""
    status, headers, body = status_headers_body
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:300])
    error = json.loads(body)["error"]
    return status, error["kind"], error["message"]
