"""The client of a code location server: what the daemon and the web UI use instead of importing the
user's code. Standard library only (``urllib``).

Every method either returns a typed result (the pydantic models of :mod:`runyard.codeserver.protocol`
and :mod:`runyard.codeserver.snapshot`, validated here at the boundary) or raises a
:class:`runyard.codeserver.errors.CodeServerError` whose message names ``host:port``:

* :class:`CodeServerUnavailableError` — nothing listens there, no answer within the timeout, or the
  answer is not the code server protocol (HTML from some other server, non-JSON, wrong shape);
* :class:`CodeLocationLoadError` — the server is up but the definitions fail to import (HTTP 503);
  ``user_traceback`` holds the user's traceback;
* :class:`CodeServerNotFoundError` — no such job, schedule or sensor (HTTP 404); ``available``
  lists the names that exist;
* :class:`CodeServerError` — any other error answer (bad request, internal error).

A user function that raises or times out is *not* an exception here: the
:class:`EvaluationResult` carries it in ``error``.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from .errors import CodeLocationLoadError, CodeServerError, CodeServerNotFoundError, CodeServerUnavailableError
from .protocol import (
    API_VERSION,
    EvaluationResult,
    HealthInfo,
    LocationSnapshot,
    PartitionRunData,
    PartitionRunsRequest,
    PartitionRunsResult,
    ProtocolError,
    ReloadResult,
    ScheduleEvaluationRequest,
    SensorEvaluationRequest,
    ValidateRequest,
    ValidationResult,
)

T = TypeVar("T")

# Code servers are reached directly: an http_proxy in the environment (meant for the internet) must
# not route the daemon's calls to an internal code server through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

DEFAULT_TIMEOUT = 30.0
# The server gives a user function up to its --evaluation-timeout (default 60 s) before answering
# with a timeout error; the client waits a little longer than that for the answer.
DEFAULT_EVALUATION_TIMEOUT = 90.0


class CodeServerClient:
    """Talks to the code server at ``host:port``, sending ``token`` (when given) as
    ``Authorization: Bearer``. Thread-safe (one connection per call)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4000, timeout: float = DEFAULT_TIMEOUT,
                 *, evaluation_timeout: float = DEFAULT_EVALUATION_TIMEOUT, token: str | None = None):
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.evaluation_timeout = float(evaluation_timeout)
        self.token = token

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.address}/{API_VERSION}"

    def __repr__(self) -> str:
        return f"CodeServerClient({self.address})"

    # ---- endpoints ----------------------------------------------------------------------------------
    def health(self, *, timeout: float | None = None) -> HealthInfo:
        """``GET /v1/health``. Answers even when the definitions fail to load (``status == "error"``).
        ``timeout``: wait this long instead of the client's timeout (a status check must be quick)."""
        return self._call("GET", "/health", None, HealthInfo.model_validate, timeout=timeout)

    def snapshot(self) -> LocationSnapshot:
        """``GET /v1/snapshot``: jobs, resources, schedules, sensors and ``snapshot_id``."""
        return self._call("GET", "/snapshot", None, LocationSnapshot.model_validate)

    def validate(self, job_name: str, run_config: dict[str, Any] | None = None,
                 ops: str | list[str] | None = None) -> ValidationResult:
        """``POST /v1/jobs/<job>/validate``: ``ok`` with the execution plan, or the config errors
        (each with its key path). ``ops`` is an op selection (``"*load"``, ``["a", "b"]``)."""
        if ops is not None and not isinstance(ops, str):
            ops = list(ops)
        body = ValidateRequest(run_config=run_config or {}, ops=ops).to_json()
        return self._call("POST", f"/jobs/{quote(job_name, safe='')}/validate", body, ValidationResult.model_validate)

    def evaluate_schedule(self, name: str, tick_time: float, *, timeout: float | None = None) -> EvaluationResult:
        """``POST /v1/schedules/<name>/evaluate`` for the tick at ``tick_time`` (epoch seconds)."""
        body = ScheduleEvaluationRequest(tick_time=tick_time).to_json()
        return self._call("POST", f"/schedules/{quote(name, safe='')}/evaluate", body,
                          EvaluationResult.model_validate, timeout=timeout or self.evaluation_timeout)

    def evaluate_sensor(self, name: str, cursor: str | None = None, last_tick_time: float | None = None,
                        *, timeout: float | None = None) -> EvaluationResult:
        """``POST /v1/sensors/<name>/evaluate``; the result's ``cursor`` is the one to store."""
        body = SensorEvaluationRequest(cursor=cursor, last_tick_time=last_tick_time).to_json()
        return self._call("POST", f"/sensors/{quote(name, safe='')}/evaluate", body, EvaluationResult.model_validate,
                          timeout=timeout or self.evaluation_timeout)

    def partition_runs_result(self, job_name: str, partition_keys: list[str], *,
                              timeout: float | None = None) -> PartitionRunsResult:
        """``POST /v1/partition-runs``: the answer as it is (its ``error`` not raised)."""
        body = PartitionRunsRequest(job=job_name, partition_keys=list(partition_keys)).to_json()
        return self._call("POST", "/partition-runs", body, PartitionRunsResult.model_validate,
                          timeout=timeout or self.evaluation_timeout)

    def partition_runs(self, job_name: str, partition_keys: list[str], *,
                       timeout: float | None = None) -> list[PartitionRunData]:
        """The run config and tags (``runyard/partition`` included) of a run of ``job_name`` for
        each of ``partition_keys``, in order. Raises
        :class:`runyard.definitions.partitions.PartitionKeyError` naming the job and the key when the
        job is not partitioned or lacks a key, :class:`runyard.definitions.partitions.PartitionConfigError`
        when the job's partitioned config failed (the user's traceback in ``user_traceback``); an
        unknown job is a :class:`CodeServerNotFoundError`."""
        from ..definitions.partitions import PartitionConfigError, PartitionKeyError

        result = self.partition_runs_result(job_name, partition_keys, timeout=timeout)
        if result.error is not None:
            if result.error.kind == "unknown_partition":
                raise PartitionKeyError(result.error.message, job_name=job_name)
            raise PartitionConfigError(result.error.message, user_traceback=result.error.traceback,
                                       kind=result.error.kind)
        return list(result.results)

    def reload(self, *, timeout: float | None = None) -> ReloadResult:
        """``POST /v1/reload``: re-import the definitions. A load error is reported in the result
        (``status == "error"``), not raised."""
        return self._call("POST", "/reload", {}, ReloadResult.model_validate,
                          timeout=timeout or self.evaluation_timeout)

    def wait_until_ready(self, timeout: float = 30.0, interval: float = 0.1) -> HealthInfo:
        """Poll ``health()`` until the server answers; raise the last error after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.health()
            except CodeServerUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(interval)

    # ---- transport ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None, parse: Callable[[Any], T],
              *, timeout: float | None = None) -> T:
        url = self.base_url + path
        where = f"code server at {self.address}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        wait = timeout or self.timeout
        try:
            with _OPENER.open(request, timeout=wait) as response:
                status, content_type, raw = response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:
            status, content_type = exc.code, exc.headers.get("Content-Type", "") if exc.headers else ""
            try:
                raw = exc.read()
            except Exception:  # noqa: BLE001 - the body is optional
                raw = b""
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise CodeServerUnavailableError(f"{where} did not answer {method} {path} within {wait:g}s",
                                                 address=self.address) from None
            if isinstance(reason, ConnectionRefusedError):
                detail = "connection refused (is `runyard code-server` running there?)"
            else:
                detail = str(reason)
            raise CodeServerUnavailableError(f"{where} is unreachable: {detail}", address=self.address) from None
        except TimeoutError:
            raise CodeServerUnavailableError(f"{where} did not answer {method} {path} within {wait:g}s",
                                             address=self.address) from None
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise CodeServerUnavailableError(f"{where} broke off {method} {path}: {type(exc).__name__}: {exc}",
                                             address=self.address) from None
        payload = self._decode(raw, status, content_type, method, path, where)
        if status >= 400 or (isinstance(payload, dict) and status != 200 and "error" in payload):
            raise self._error(status, payload, method, path, where)
        try:
            return parse(payload)
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError too
            raise CodeServerUnavailableError(
                f"{where} sent an unexpected answer to {method} {path} ({_describe(exc)}); is it a runyard "
                f"code server speaking API {API_VERSION}?", address=self.address, status=status,
                payload=payload) from None

    def _decode(self, raw: bytes, status: int, content_type: str, method: str, path: str, where: str) -> Any:
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kind = content_type.split(";")[0].strip() or "no content type"
            sample = raw[:80].decode("utf-8", "replace").strip().replace("\n", " ")
            raise CodeServerUnavailableError(
                f"{where} answered {method} {path} with HTTP {status} and {kind}, not JSON "
                f"({sample!r}{'...' if len(raw) > 80 else ''}); is something other than a runyard code "
                "server listening there?", address=self.address, status=status) from None

    def _error(self, status: int, payload: Any, method: str, path: str, where: str) -> CodeServerError:
        error = payload.get("error") if isinstance(payload, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            return CodeServerUnavailableError(
                f"{where} answered {method} {path} with HTTP {status} and JSON that is not a code server "
                "error; is something other than a runyard code server listening there?",
                address=self.address, status=status, payload=payload)
        message = f"{where}: {error['message']}"
        kw = {"address": self.address, "status": status, "payload": payload}
        if status == 503 and error.get("kind") == "load_error":
            return CodeLocationLoadError(message, user_traceback=error.get("traceback"), **kw)
        if status == 404:
            return CodeServerNotFoundError(message, available=error.get("available"), **kw)
        return CodeServerError(message, **kw)


def _describe(exc: Exception) -> str:
    """A validation failure in one line: pydantic's first problems with their paths, not its
    multi-line report with documentation links."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            problems = errors(include_url=False)
        except TypeError:
            problems = None
        if problems:
            parts = [f"{'.'.join(str(p) for p in e.get('loc', ())) or 'answer'}: {e.get('msg')}"
                     for e in problems[:3]]
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            return "; ".join(parts) + more
    return str(exc)
