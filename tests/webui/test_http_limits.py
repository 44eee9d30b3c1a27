"""The web UI's HTTP limits, over real HTTP against a real ``runyard webui`` (waitress) process:
malformed ``/graphql`` bodies answer JSON 4xx, bodies are bounded, query depth, aliases, field count
and cost are bounded, long polls cannot take every request thread, and half-open connections cannot
freeze the server. ``/healthz`` stays fast under all of it. Needs: nothing beyond the dev venv."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse

import pytest
from graphql import get_introspection_query

from runyard.testing import wait_until

SLOW = 5.0  # generous: every refusal below took from 60 s to minutes before the limits


def _raw(url: str, payload: bytes, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """Send ``payload`` (a whole HTTP request) on a raw socket; the parsed answer."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading everything: read its answer
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _post(ui, body: bytes, content_type: str = "application/json", method: str = "POST") -> tuple[int, dict, dict]:
    host = urllib.parse.urlsplit(ui.url).netloc
    request = (f"{method} /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    status, headers, raw = _raw(ui.url, request)
    return status, headers, raw


def _assert_json_error(status: int, headers: dict, raw: bytes, code: int | tuple[int, ...] = 400) -> str:
    codes = code if isinstance(code, tuple) else (code,)
    assert status in codes, (status, raw[:500])
    assert headers.get("content-type", "").startswith("application/json"), (headers, raw[:500])
    body = json.loads(raw)
    assert body["errors"] and isinstance(body["errors"][0]["message"], str), body
    return body["errors"][0]["message"]


def _timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return time.monotonic() - started, result


def test_malformed_graphql_requests_answer_json_4xx(webui):
    nested = "[" * 5000 + "]" * 5000
    deep_vars = {"v": {}}
    cursor = deep_vars["v"]
    for _ in range(200):
        cursor["x"] = {}
        cursor = cursor["x"]
    cases = {
        "a JSON string": b'"abc"',
        "a JSON number": b"42",
        "JSON null": b"null",
        "a batch of 1,000 operations": json.dumps([{"query": "{ instance { version } }"}] * 1000).encode(),
        "an empty batch": b"[]",
        "invalid JSON": b"{not json",
        "invalid UTF-8": b'{"query": "\xff\xfe"}',
        "JSON nested 5,000 deep": (b'{"query": "{ instance { version } }", "variables": {"v": '
                                   + nested.encode() + b"}}"),
        "variables nested 200 deep": json.dumps({"query": "query($v: GenericScalar) { instance { version } }",
                                                  "variables": deep_vars}).encode(),
        "a query that is not a string": b'{"query": 5}',
        "no query": b'{"variables": {}}',
        "variables that are not an object": b'{"query": "{ instance { version } }", "variables": [1]}',
        "an operationName that is not a string": b'{"query": "{ instance { version } }", "operationName": 7}',
    }
    for what, body in cases.items():
        status, headers, raw = _post(webui, body)
        message = _assert_json_error(status, headers, raw, (400, 413))
        assert "Traceback" not in message, (what, message)
    # a document that does not parse is a GraphQL error: JSON, status 200 as for application/json clients
    status, headers, raw = _post(webui, b'{"query": "{ instance { "}')
    assert status == 200 and json.loads(raw)["errors"][0]["message"].startswith("Syntax Error")
    batch = _post(webui, json.dumps([{"query": "{ instance { version } }"}] * 2).encode())
    assert "batch" in _assert_json_error(*batch)
    _assert_json_error(*_post(webui, b"query=%7Binstance%7D", "application/x-www-form-urlencoded"))
    _assert_json_error(*_post(webui, b"{}", "text/plain"))
    _assert_json_error(*_post(webui, b"{}", method="PUT"), (405,))
    status, text = webui.request("/graphql?query=%7B%20instance%20%7B%20version%20%7D%20%7D&variables=%5B",
                                 headers={"Accept": "application/json"})
    assert status == 400 and json.loads(text)["errors"], text
    assert webui.get("/healthz")[0] == 200


def test_bodies_over_the_limit_answer_413_json_without_being_read(start_webui, instance_file):
    instance_file("webui:\n  max_body_bytes: 65536\n")
    ui = start_webui()
    host = urllib.parse.urlsplit(ui.url).netloc
    # 200 MB announced: refused from the headers, before the body is sent
    head = (f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\n\r\n").encode()
    elapsed, (status, headers, raw) = _timed(_raw, ui.url, head + b"{" * 1024)
    assert "max_body_bytes" in _assert_json_error(status, headers, raw, 413)
    assert elapsed < SLOW
    # chunked: refused once the limit is passed
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    chunked = (f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n").encode() + body
    _assert_json_error(*_raw(ui.url, chunked), 413)
    # just under the limit: served
    query = json.dumps({"query": "{ instance { version } }" + " " * 60000}).encode()
    status, _, raw = _post(ui, query)
    assert status == 200 and json.loads(raw)["data"]["instance"]["version"], raw[:300]
    assert ui.get("/healthz")[0] == 200


def test_alias_bombs_deep_queries_and_fragment_bombs_are_refused_fast(webui):
    aliases = " ".join(f"a{i}: runs(limit: 500) {{ runs {{ runId events {{ message }} }} }}" for i in range(200))
    elapsed, body = _timed(webui.gql_raw, "{ " + aliases + " }")
    assert elapsed < SLOW and body["data"] is None
    assert "aliases" in body["errors"][0]["message"] and body["errors"][0]["extensions"]["code"] == "TOO_COMPLEX"

    huge = "{ " + " ".join(f"a{i}: instance {{ version }}" for i in range(100_000)) + " }"  # 2.8 MB
    elapsed, body = _timed(webui.gql_raw, huge)
    assert elapsed < SLOW and "tokens" in body["errors"][0]["message"] and body["data"] is None

    deep = "{ __schema { types { " + "ofType { " * 40 + "name" + " }" * 40 + " } } }"
    body = webui.gql_raw(deep)
    assert "deep" in body["errors"][0]["message"] and body["data"] is None

    fragments = ["fragment f0 on Instance { version home }"]
    for i in range(1, 30):
        fragments.append(f"fragment f{i} on Instance {{ ...f{i - 1} ...f{i - 1} }}")
    elapsed, body = _timed(webui.gql_raw, "{ instance { ...f29 } } " + " ".join(fragments))
    assert elapsed < SLOW and "fields" in body["errors"][0]["message"]

    costly = "{ runs(limit: 500) { runs { runId events(limit: 1000) { message } } } }"
    assert "cost" in webui.gql_raw(costly)["errors"][0]["message"]

    # a limit given as a variable counts with its value, request by request, though the text is kept
    by_variable = "query($n: Int) { runs(limit: $n) { runs { runId events(limit: 1000) { message } } } }"
    for n, refused in ((2, False), (500, True), (2, False), (500, True)):
        body = webui.gql_raw(by_variable, {"n": n})
        assert ("cost" in body["errors"][0]["message"]) if refused else ("errors" not in body), (n, body)

    # what clients really send stays within the limits: GraphiQL's introspection, the run page's query
    assert webui.gql(get_introspection_query())["__schema"]["queryType"]["name"] == "Query"
    assert webui.gql("""{ runs { count runs { runId jobName status createdAt duration tags { key value } } } }""")


def test_long_polls_cannot_take_every_request_thread(start_webui, instance_file):
    instance_file("webui:\n  threads: 4\n  max_long_polls: 2\n  long_poll_seconds: 30\n")
    ui = start_webui()
    run_id = ui.launch("sleepy", {"ops": {"nap": {"config": {"seconds": 120}}}})["run"]["runId"]
    wait_until(lambda: any(e["message"] == "napping" for e in ui.gql(
        """query($id: ID!) { runEvents(runId: $id) { events { message } } }""", {"id": run_id})["runEvents"]["events"]),
        timeout=60, what="the run to nap")
    cursor = ui.gql("""query($id: ID!) { runEvents(runId: $id) { cursor } }""", {"id": run_id})["runEvents"]["cursor"]

    # many long-polling fields in one request: refused before anything waits
    two = ("query($id: ID!) { a: runEvents(runId: $id, waitSeconds: 30) { cursor } "
           "b: runEvents(runId: $id, waitSeconds: 30) { cursor } }")
    elapsed, body = _timed(ui.gql_raw, two, {"id": run_id})
    assert elapsed < SLOW and "one long-polling" in body["errors"][0]["message"]

    # 8 concurrent long polls of 30 s on 4 threads: 2 wait, the others answer at once, pages stay fast
    poll = """query($id: ID!, $after: Int) {
        runEvents(runId: $id, afterId: $after, waitSeconds: 30) { events { id } } }"""
    answers: list[tuple[float, int]] = []

    def long_poll():
        elapsed, body = _timed(ui.gql_raw, poll, {"id": run_id, "after": cursor})
        answers.append((elapsed, len(body["data"]["runEvents"]["events"])))

    threads = [threading.Thread(target=long_poll, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    for path in ("/healthz", "/runs", f"/runs/{run_id}"):
        elapsed, (status, _) = _timed(ui.get, path)
        assert status == 200 and elapsed < 2.0, (path, elapsed)
    wait_until(lambda: len(answers) >= 6, timeout=10, what="the long polls without a slot to answer")
    time.sleep(0.5)
    assert len(answers) == 6 and all(elapsed < SLOW and n == 0 for elapsed, n in answers), answers  # 2 still wait
    assert ui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { ok } }""", {"id": run_id})["terminateRun"]["ok"]
    for t in threads:
        t.join(40)
    assert len(answers) == 8 and all(n > 0 for _, n in answers[6:]), answers  # the waiting ones saw the cancel


def test_half_open_connections_cannot_freeze_the_server(start_webui, instance_file):
    instance_file("webui:\n  channel_timeout_seconds: 3\n  cleanup_interval_seconds: 1\n")
    ui = start_webui()
    parts = urllib.parse.urlsplit(ui.url)
    sockets = []
    try:
        for i in range(150):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
            # a request that never completes: headers cut short, or a body that never comes
            sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Len" if i % 2 else
                         b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            sockets.append(sock)
        elapsed, (status, _) = _timed(ui.get, "/healthz")
        assert status == 200 and elapsed < 2.0, elapsed
        assert ui.gql("{ instance { version } }")
        # the idle ones are closed after channel_timeout_seconds
        sockets[0].settimeout(15)
        assert sockets[0].recv(100) == b""
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize("key, value", [("max_body_bytes", 0), ("max_query_depth", 0), ("max_long_polls", -1),
                                        ("connection_limit", 0), ("channel_timeout_seconds", ".inf")])
def test_limit_settings_are_validated(cli, instance_file, key, value):
    instance_file(f"webui:\n  {key}: {value}\n")
    proc = cli("instance", "info")
    assert proc.returncode == 2 and f"webui.{key}" in proc.stderr, proc.stderr
