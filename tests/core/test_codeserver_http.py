"""The code server's HTTP under bad input and slow or greedy clients: request size, Content-Length,
JSON nesting, slow senders and connection counts. Every answer is JSON, every bound is enforced
before the body is buffered, and nothing holds the server.

Needs: nothing beyond Python. Real ``runyard code-server`` subprocesses, raw sockets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from codeserver_proc import CodeServerProcess, json_error, raw_http, request_bytes

from runyard.codeserver.client import CodeServerClient

JSON = {"Content-Type": "application/json"}
VALIDATE = "/v1/jobs/etl/validate"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = CodeServerProcess(tmp_path_factory.mktemp("http"))
    yield srv
    assert srv.stop() == 0


def test_a_negative_content_length_is_refused_before_reading_the_body(server):
    # The old server read a negative length as "read to the end": it buffered whatever came (20 MB
    # answered 200, bypassing the 16 MB limit) and, with the connection kept open, never answered.
    head = request_bytes("POST", VALIDATE, None, JSON, content_length="-1")
    answer = raw_http(server.port, head + b'{"run_config": {}, "pad": "' + b"x" * 65536, timeout=10)
    status, kind, message = json_error(answer)
    assert status == 400 and kind == "bad_request"
    assert "Content-Length" in message


@pytest.mark.parametrize("value", ["abc", "1.5", "0x10", "+5", "5, 5"])
def test_a_malformed_content_length_is_400_naming_the_header(server, value):
    answer = raw_http(server.port, request_bytes("POST", VALIDATE, b"{}", JSON, content_length=value),
                      half_close=True)
    status, kind, message = json_error(answer)
    assert status == 400 and "Content-Length" in message, (value, message)


def test_a_missing_content_length_on_post_is_411(server):
    answer = raw_http(server.port, request_bytes("POST", VALIDATE, b'{"run_config": {}}', JSON, content_length=None),
                      half_close=True)
    status, kind, message = json_error(answer)
    assert status == 411 and "Content-Length" in message


def test_a_too_large_body_is_413_without_being_sent(server):
    started = time.monotonic()
    # only the headers are sent: the server must answer from Content-Length alone
    answer = raw_http(server.port, request_bytes("POST", VALIDATE, None, JSON, content_length=str(17 * 1024 * 1024)),
                      timeout=10)
    status, kind, message = json_error(answer)
    assert status == 413 and "Content-Length" in message and str(16 * 1024 * 1024) in message
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("depth", [100_000, 150])
def test_deeply_nested_json_is_400_naming_the_body(server, depth):
    body = b'{"run_config": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    status, kind, message = json_error(raw_http(server.port, request_bytes("POST", VALIDATE, body, JSON)))
    assert status == 400 and kind == "bad_request" and "request body" in message and "deep" in message, message
    status, kind, message = json_error(raw_http(server.port, request_bytes("POST", VALIDATE, b"[" * depth, JSON)))
    assert status == 400 and "request body" in message, message


def test_reasonable_nesting_still_validates(server):
    body = json.dumps({"run_config": {"ops": {"hello": {"config": {"a": {"b": {"c": {"d": 1}}}}}}}}).encode()
    status, headers, answer = raw_http(server.port, request_bytes("POST", VALIDATE, body, JSON))
    assert status == 200 and json.loads(answer)["ok"] is False  # hello takes no config: a config error, not a 400


def test_garbage_is_a_json_400(server):
    status, kind, message = json_error(raw_http(server.port, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400 and kind == "bad_request"


# ---- slow and greedy clients -----------------------------------------------------------------------

@pytest.fixture
def impatient_server(tmp_path: Path):
    srv = CodeServerProcess(tmp_path / "impatient", "--request-timeout", "2", "--max-connections", "8")
    yield srv
    assert srv.stop() == 0


def _closed_by_server(sock: socket.socket, drip: bytes | None, within: float) -> bool:
    """True once the server closes ``sock`` (dripping ``drip`` every 0.3 s meanwhile)."""
    deadline = time.monotonic() + within
    sock.settimeout(0.3)
    while time.monotonic() < deadline:
        try:
            if drip is not None:
                sock.sendall(drip)
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return True
    return False


def test_a_client_sending_headers_slowly_is_cut_off(impatient_server):
    with socket.create_connection(("127.0.0.1", impatient_server.port)) as s:
        s.sendall(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\n")
        # A header line every 0.3 s keeps the connection "active" forever; the request as a whole
        # must still arrive within --request-timeout (2 s). Generous bound: the bug held it for ever.
        assert _closed_by_server(s, b"X-Slow: 1\r\n", within=20)
    assert CodeServerClient("127.0.0.1", impatient_server.port, timeout=5).health().ok


def test_a_silent_client_is_cut_off(impatient_server):
    with socket.create_connection(("127.0.0.1", impatient_server.port)) as s:
        s.sendall(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert _closed_by_server(s, None, within=20)


def test_connections_are_bounded_and_slow_ones_do_not_hold_the_server(impatient_server):
    held = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", impatient_server.port))
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(s)
        time.sleep(0.5)
        # the listening socket plus at most --max-connections accepted ones; the rest wait in the backlog
        assert impatient_server.open_sockets() <= 1 + 8
    finally:
        for s in held:
            s.close()
    answers: list[object] = []
    thread = threading.Thread(target=lambda: answers.append(
        CodeServerClient("127.0.0.1", impatient_server.port, timeout=30).health()))
    thread.start()
    thread.join(30)
    assert answers and answers[0].ok
