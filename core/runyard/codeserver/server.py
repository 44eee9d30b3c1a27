"""``runyard code-server``: the one process that imports a location's definitions.

A stdlib ``ThreadingHTTPServer`` answering JSON under ``/v1/``:

======  ================================  =========================================================
GET     /v1/health                        status (ok | error), location name, snapshot id, load
                                          error with the user's traceback, pid, code pointer
GET     /v1/snapshot                      jobs, resources, schedules, sensors and ``snapshot_id``
POST    /v1/jobs/<job>/validate           ``{run_config, ops?}`` -> ok + plan, or the config errors
POST    /v1/schedules/<name>/evaluate     ``{tick_time}`` -> run requests or a skip reason
POST    /v1/sensors/<name>/evaluate       ``{cursor, last_tick_time}`` -> run requests / skip / cursor
POST    /v1/reload                        re-import the definitions
======  ================================  =========================================================

Every answer is JSON, errors included (``{"error": {"message", "traceback", "kind"}}``): 404 for an
unknown job, schedule, sensor or path (naming what exists), 400 for a bad request body, 503 from
every endpoint but health and reload while the definitions fail to load, 500 (still JSON) for a bug
in runyard. A user function that raises or times out is not an HTTP error: the evaluation result
carries it (HTTP 200).

A definitions file that fails to import leaves the server up; ``/v1/reload`` tries again.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import DefinitionError, DefinitionsLoadError, RunConfigError
from ..storage.records import CodePointer
from .protocol import (
    API_VERSION,
    ConfigErrorData,
    EvaluationResult,
    HealthInfo,
    RunRequestData,
    SerializedError,
    ValidationResult,
    default_location_name,
)

log = logging.getLogger("runyard.codeserver")

DEFAULT_PORT = 4000
DEFAULT_EVALUATION_TIMEOUT = 60.0
MAX_BODY_BYTES = 16 * 1024 * 1024
LISTENING_MESSAGE = "code server for location {name} listening on http://{host}:{port}"

ENDPOINTS = [
    "GET /v1/health",
    "GET /v1/snapshot",
    "POST /v1/jobs/<job>/validate",
    "POST /v1/schedules/<name>/evaluate",
    "POST /v1/sensors/<name>/evaluate",
    "POST /v1/reload",
]


class HttpError(Exception):
    """Answer ``status`` with ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, kind: str, *, traceback: str | None = None,
                 **extra: Any):
        self.status = status
        self.body = {"error": {"message": message, "kind": kind, "traceback": traceback, **extra}}
        super().__init__(message)


@dataclass
class LoadedState:
    """What one import of the definitions produced; swapped whole on reload, never mutated."""

    defs: Any = None
    snapshot: dict[str, Any] | None = None
    error: SerializedError | None = None
    loaded_at: float = 0.0

    @property
    def snapshot_id(self) -> str | None:
        return self.snapshot["snapshot_id"] if self.snapshot else None


# ---- loading ----------------------------------------------------------------------------------------

_RUNYARD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_library_file(path: str) -> bool:
    if path.startswith(_RUNYARD_DIR) or "site-packages" in path or "dist-packages" in path:
        return True
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return any(p and path.startswith(os.path.join(p, "lib")) for p in prefixes)


def _purge_user_modules(pointer: CodePointer, baseline: set[str]) -> None:
    """Forget the modules the last import brought in from the user's directories, so a reload
    re-executes them. Libraries (site-packages, the standard library, runyard) stay imported."""
    roots = [os.path.abspath(p) + os.sep for p in
             (pointer.working_directory, os.path.dirname(pointer.python_file or "")) if p]
    top = (pointer.module or "").split(".")[0]
    for name, module in list(sys.modules.items()):
        if name in baseline:
            continue
        path = os.path.abspath(getattr(module, "__file__", None) or "") if getattr(module, "__file__", None) else ""
        user_file = bool(path) and any(path.startswith(r) for r in roots) and not _is_library_file(path)
        if name.startswith("runyard_user_") or user_file or (top and (name == top or name.startswith(top + "."))):
            del sys.modules[name]
    importlib.invalidate_caches()


def _load(pointer: CodePointer) -> LoadedState:
    from ..workspace.loader import _user_traceback, load_definitions
    from .snapshot import build_snapshot

    try:
        defs = load_definitions(pointer)
        snapshot = build_snapshot(defs)
    except DefinitionsLoadError as exc:
        return LoadedState(error=SerializedError(str(exc), exc.user_traceback, "load_error"), loaded_at=time.time())
    except Exception as exc:  # e.g. a config model whose JSON schema cannot be generated
        return LoadedState(error=SerializedError(f"error while loading {pointer.describe()}: "
                                                 f"{type(exc).__name__}: {exc}",
                                                 _user_traceback(exc, None), "load_error"),
                           loaded_at=time.time())
    return LoadedState(defs=defs, snapshot=snapshot, loaded_at=time.time())


# ---- evaluation --------------------------------------------------------------------------------------

class _UserCodeInvalid(Exception):
    """The user's function returned something runyard cannot use (no traceback to show)."""


def _run_request(item: Any, default_job: str | None, base_tags: dict[str, str], what: str,
                 job_names: set[str]) -> RunRequestData:
    from ..definitions.sensors import RunRequest

    if isinstance(item, dict):
        item = RunRequest(run_config=item)
    if not isinstance(item, RunRequest):
        raise _UserCodeInvalid(f"{what} produced {type(item).__name__}; expected a RunRequest, a SkipReason "
                               "or a run config dict")
    job_name = item.job_name or default_job
    if not job_name:
        raise _UserCodeInvalid(f"{what} has no job, so its RunRequest must name one (RunRequest(job_name=...))")
    if job_name not in job_names:
        raise _UserCodeInvalid(f"{what} requested a run of unknown job '{job_name}' "
                               f"(jobs: {', '.join(sorted(job_names)) or 'none'})")
    try:
        run_config = json.loads(json.dumps(item.run_config or {}))
    except (TypeError, ValueError) as exc:
        raise _UserCodeInvalid(f"{what} produced a run config that is not JSON-serializable: {exc}") from None
    if not isinstance(run_config, dict):
        raise _UserCodeInvalid(f"{what} produced a run config that is not a mapping")
    tags = {**base_tags, **{str(k): str(v) for k, v in (item.tags or {}).items()}}
    run_key = None if item.run_key is None else str(item.run_key)
    return RunRequestData(job_name=job_name, run_config=run_config, tags=tags, run_key=run_key)


def _collect(value: Any, default_job: str | None, base_tags: dict[str, str], what: str,
             job_names: set[str]) -> EvaluationResult:
    """Normalise what a schedule or sensor function returned (or yielded)."""
    from ..definitions.sensors import RunRequest, SkipReason

    if value is None:
        return EvaluationResult(skip_reason=None)
    if isinstance(value, (dict, RunRequest, SkipReason)):
        items: list[Any] = [value]
    elif hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        items = list(value)  # runs the user's generator: still inside the timed evaluation
    else:
        raise _UserCodeInvalid(f"{what} returned {type(value).__name__}; expected a RunRequest, a SkipReason, "
                               "a run config dict, or a list/generator of them")
    skips = [i for i in items if isinstance(i, SkipReason)]
    requests = [i for i in items if not isinstance(i, SkipReason)]
    if skips and requests:
        raise _UserCodeInvalid(f"{what} produced both run requests and a SkipReason")
    if skips:
        return EvaluationResult(skip_reason=skips[0].message or "")
    return EvaluationResult(run_requests=[_run_request(i, default_job, base_tags, what, job_names)
                                          for i in requests])


def _config_errors(exc: RunConfigError) -> list[ConfigErrorData]:
    """One entry per bad key path: pydantic reports every problem of a config block at once, and
    :func:`runyard.config_models.validate_model` joins them into one message."""
    head = "invalid config:\n"
    if exc.path is None and exc.message.startswith(head):
        out = []
        for line in exc.message[len(head):].splitlines():
            path, sep, reason = line.strip().partition(": ")
            if not sep:
                break
            message = str(RunConfigError(reason, source=exc.source, path=path))
            out.append(ConfigErrorData(message, reason, path, exc.source))
        else:
            return out
    return [ConfigErrorData(str(exc), exc.message, exc.path, exc.source)]


class CodeLocationServer:
    """Loads the definitions at ``pointer`` and serves them on ``host:port`` (0: a free port)."""

    def __init__(self, pointer: CodePointer, *, location_name: str | None = None, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, evaluation_timeout: float = DEFAULT_EVALUATION_TIMEOUT):
        from .. import __version__

        self.pointer = pointer
        self.location_name = location_name or default_location_name(pointer.python_file, pointer.module)
        self.evaluation_timeout = float(evaluation_timeout)
        self.version = __version__
        self._baseline_modules = set(sys.modules)
        self._reload_lock = threading.Lock()
        # Bind before importing user code: a port that is taken fails fast, and connections made
        # while the definitions import wait in the listen backlog instead of being refused.
        server_cls = _HTTPServer6 if ":" in host else _HTTPServer
        self.httpd = server_cls((host, port), _Handler)
        self.httpd.app = self  # type: ignore[attr-defined]
        self.host = host
        self.state = _load(pointer)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- endpoints ----------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        state = self.state
        return HealthInfo(status="error" if state.error else "ok", location_name=self.location_name,
                          snapshot_id=state.snapshot_id, pid=os.getpid(), error=state.error,
                          code_pointer=self.pointer.to_dict(), version=self.version,
                          evaluation_timeout=self.evaluation_timeout).to_json()

    def _loaded(self) -> LoadedState:
        state = self.state
        if state.error:
            raise HttpError(503, f"location '{self.location_name}' failed to load: {state.error.message}",
                            "load_error", traceback=state.error.traceback)
        return state

    def snapshot(self) -> dict[str, Any]:
        return self._loaded().snapshot  # type: ignore[return-value]

    def _lookup(self, kind: str, table: dict[str, Any], name: str) -> Any:
        if name not in table:
            names = sorted(table)
            raise HttpError(404, f"no {kind} named '{name}' in location '{self.location_name}'. "
                                 f"{kind.capitalize()}s: {', '.join(names) or '(none)'}",
                            "not_found", available=names)
        return table[name]

    def validate(self, job_name: str, body: dict[str, Any]) -> dict[str, Any]:
        from ..definitions.config import resolve_run_config, validate_executor
        from ..definitions.selection import check_fresh_selection, parse_op_selection
        from ..execution.plan import ExecutionPlan

        job = self._lookup("job", self._loaded().defs.jobs, job_name)
        run_config = body.get("run_config") or {}
        ops = body.get("ops")
        if ops is not None and not isinstance(ops, (str, list)):
            raise HttpError(400, "'ops' must be an op selection string or a list of op names", "bad_request")
        try:
            job._check_resources(final=True)
            resolved = resolve_run_config(job, run_config)
            validate_executor(resolved)
            step_keys = None if ops is None else parse_op_selection(job, ops)
            plan = ExecutionPlan.build(job, step_keys)
            if step_keys is not None:
                check_fresh_selection(job, step_keys)
        except RunConfigError as exc:
            return ValidationResult(ok=False, job_name=job.name, errors=_config_errors(exc)).to_json()
        except DefinitionError as exc:
            return ValidationResult(ok=False, job_name=job.name, errors=[ConfigErrorData(str(exc))]).to_json()
        return ValidationResult(
            ok=True, job_name=job.name, tags={**job.tags, **resolved.tags}, executor=resolved.executor_name,
            step_keys_to_execute=step_keys,
            plan={"job_name": job.name, "order": list(plan.order),
                  "steps": [{"key": s.key, "op": s.node_name, "upstream": sorted(s.upstream),
                             "priority": s.priority} for s in (plan.steps[k] for k in plan.order)]},
        ).to_json()

    def _evaluate(self, what: str, call: Callable[[], EvaluationResult]) -> EvaluationResult:
        """Run ``call`` (the user's function and the normalisation of its result) in a thread, for at
        most ``evaluation_timeout`` seconds. A function that overruns keeps its thread (Python cannot
        stop it) but the caller gets an error now."""
        from ..workspace.loader import _user_traceback

        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["result"] = call()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller, SystemExit too
                box["exc"] = exc

        thread = threading.Thread(target=target, name=f"evaluate {what}", daemon=True)
        thread.start()
        thread.join(self.evaluation_timeout)
        if thread.is_alive():
            log.warning("%s did not finish within %ss", what, self.evaluation_timeout)
            return EvaluationResult(error=SerializedError(
                f"{what} timed out: it did not finish within {self.evaluation_timeout:g} seconds "
                "(code server --evaluation-timeout)", None, "timeout"))
        exc = box.get("exc")
        if isinstance(exc, _UserCodeInvalid):
            return EvaluationResult(error=SerializedError(str(exc), None, "invalid_result"))
        if exc is not None:
            return EvaluationResult(error=SerializedError(f"error in {what}: {type(exc).__name__}: {exc}",
                                                          _user_traceback(exc, None), "user_code_error"))
        return box["result"]

    def evaluate_schedule(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from ..definitions.schedules import ScheduleEvaluationContext

        defs = self._loaded().defs
        schedule = self._lookup("schedule", defs.schedules, name)
        tick_time = body.get("tick_time")
        if isinstance(tick_time, bool) or not isinstance(tick_time, (int, float)):
            raise HttpError(400, "'tick_time' (the tick's time in epoch seconds) is required", "bad_request")
        what = f"schedule '{name}'"
        job_names = set(defs.jobs)

        def call() -> EvaluationResult:
            if schedule.evaluation_fn is None:
                return _collect(dict(schedule.run_config or {}), schedule.job_name, schedule.tags, what, job_names)
            scheduled_time = datetime.fromtimestamp(float(tick_time), ZoneInfo(schedule.execution_timezone))
            context = ScheduleEvaluationContext(scheduled_time=scheduled_time, schedule_name=name)
            return _collect(schedule.evaluation_fn(context), schedule.job_name, schedule.tags, what, job_names)

        result = self._evaluate(what, call)
        if result.ok and not result.run_requests and result.skip_reason is None:
            result.skip_reason = "the schedule function requested no run"
        return result.to_json()

    def evaluate_sensor(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from ..definitions.sensors import SensorEvaluationContext

        defs = self._loaded().defs
        sensor = self._lookup("sensor", defs.sensors, name)
        cursor = body.get("cursor")
        last_tick_time = body.get("last_tick_time")
        if cursor is not None and not isinstance(cursor, str):
            raise HttpError(400, "'cursor' must be a string or null", "bad_request")
        if last_tick_time is not None and (isinstance(last_tick_time, bool)
                                           or not isinstance(last_tick_time, (int, float))):
            raise HttpError(400, "'last_tick_time' must be epoch seconds or null", "bad_request")
        what = f"sensor '{name}'"
        job_names = set(defs.jobs)
        context = SensorEvaluationContext(sensor_name=name, cursor=cursor, last_tick_time=last_tick_time)

        def call() -> EvaluationResult:
            result = _collect(sensor.evaluation_fn(context), sensor.job_name, {}, what, job_names)
            result.cursor = None if context.cursor is None else str(context.cursor)
            return result

        result = self._evaluate(what, call)
        if result.error:
            result.cursor = cursor  # a failed evaluation does not move the cursor
        return result.to_json()

    def reload(self) -> dict[str, Any]:
        with self._reload_lock:
            previous = self.state
            _purge_user_modules(self.pointer, self._baseline_modules)
            state = _load(self.pointer)
            self.state = state
        if state.error:
            log.error("reload of location %s failed: %s", self.location_name, state.error.message)
        return {"status": "error" if state.error else "ok", "location_name": self.location_name,
                "snapshot_id": state.snapshot_id, "previous_snapshot_id": previous.snapshot_id,
                "changed": state.snapshot_id != previous.snapshot_id,
                "error": state.error.to_json() if state.error else None}

    # ---- routing ------------------------------------------------------------------------------------
    def route(self, method: str, path: str, body: Callable[[], dict[str, Any]]) -> tuple[int, Any]:
        parts = [unquote(p) for p in urlsplit(path).path.strip("/").split("/")]
        if not parts or parts[0] != API_VERSION:
            raise self._unknown_path(path)
        rest = parts[1:]
        routes: dict[tuple[str, ...], tuple[str, Callable[..., Any]]] = {
            ("health",): ("GET", lambda: self.health()),
            ("snapshot",): ("GET", lambda: self.snapshot()),
            ("reload",): ("POST", lambda: self.reload()),
        }
        if len(rest) == 1 and (rest[0],) in routes:
            expected, handler = routes[(rest[0],)]
            self._check_method(method, expected, path)
            return 200, handler()
        if len(rest) == 3 and (rest[0], rest[2]) in (("jobs", "validate"), ("schedules", "evaluate"),
                                                      ("sensors", "evaluate")):
            self._check_method(method, "POST", path)
            handler = {"jobs": self.validate, "schedules": self.evaluate_schedule,
                       "sensors": self.evaluate_sensor}[rest[0]]
            return 200, handler(rest[1], body())
        raise self._unknown_path(path)

    @staticmethod
    def _check_method(method: str, expected: str, path: str) -> None:
        if method != expected:
            raise HttpError(405, f"{path} takes {expected}, not {method}", "method_not_allowed")

    @staticmethod
    def _unknown_path(path: str) -> HttpError:
        return HttpError(404, f"no endpoint {path}. Endpoints: {'; '.join(ENDPOINTS)}", "not_found",
                         endpoints=ENDPOINTS)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "runyard-code-server"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "bad Content-Length", "bad_request") from None
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes", "bad_request")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, f"request body is not JSON: {exc}", "bad_request") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object", "bad_request")
        return data

    def _handle(self, method: str) -> None:
        app: CodeLocationServer = self.server.app  # type: ignore[attr-defined]
        try:
            status, payload = app.route(method, self.path, self._body)
        except HttpError as exc:
            status, payload = exc.status, exc.body
        except Exception as exc:  # a bug in runyard: still a JSON answer, never a bare 500
            log.exception("error handling %s %s", method, self.path)
            status, payload = 500, {"error": {"message": f"internal error in the code server: "
                                                         f"{type(exc).__name__}: {exc}",
                                              "kind": "internal_error", "traceback": traceback.format_exc()}}
        data = json.dumps(payload, default=str).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


# ---- the command -------------------------------------------------------------------------------------

def _watch_parent(stop: threading.Event) -> None:
    """Stop when the process that started us is gone (we were re-parented): a workspace's children
    must not outlive it, even if it was killed with SIGKILL."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("parent process %s exited; stopping", parent)
            stop.set()


def run_code_server(pointer: CodePointer, *, location_name: str | None, host: str, port: int,
                    evaluation_timeout: float, exit_with_parent: bool = False,
                    echo: Callable[[str], None] = print) -> int:
    """Serve until SIGTERM/SIGINT (or, with ``exit_with_parent``, until the parent exits)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = CodeLocationServer(pointer, location_name=location_name, host=host, port=port,
                                    evaluation_timeout=evaluation_timeout)
        thread = threading.Thread(target=server.serve_forever, name="code-server", daemon=True)
        thread.start()
        if server.state.error:
            error = server.state.error
            log.error("definitions of location %s failed to load (the server stays up, reports it on /v1/health "
                      "and loads again on /v1/reload): %s%s", server.location_name, error.message,
                      "\n" + error.traceback.rstrip() if error.traceback else "")
        echo(LISTENING_MESSAGE.format(name=server.location_name, host=host, port=server.port))
        sys.stdout.flush()
        if exit_with_parent:
            threading.Thread(target=_watch_parent, args=(stop,), name="watch-parent", daemon=True).start()
        while not stop.wait(0.5):
            pass
        server.shutdown()
        thread.join(5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        os._exit(0)  # a thread the user's code started would keep us alive: we were told to stop
    return 0
