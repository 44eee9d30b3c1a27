"""The code location service: one location's loaded definitions and what each endpoint answers.

Transport-free (:mod:`.transport` maps HTTP requests onto these methods; :mod:`.serving` runs the
process). Every method returns a protocol model or raises :class:`HttpError`: 404 for an unknown
job, schedule or sensor (naming what exists), 400 for a bad request body, 503 from every endpoint
but health and reload while the definitions fail to load. A user function that raises or times out
is not an error here: the evaluation result carries it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..storage.records import CodePointer
from .auth import RequestGuard
from .evaluation import evaluate_schedule, evaluate_sensor
from .httpd import HttpLimits, HttpServer
from .loading import LoadedState, load_location, purge_user_modules
from .protocol import (
    EvaluationResult,
    HealthInfo,
    PartitionRunsRequest,
    PartitionRunsResult,
    ReloadResult,
    ScheduleEvaluationRequest,
    SensorEvaluationRequest,
    ValidateRequest,
    ValidationResult,
    default_location_name,
)
from .snapshot import LocationSnapshot
from .transport import HttpError, make_wsgi_app
from .validation import validate_run

log = logging.getLogger("runyard.codeserver")

DEFAULT_PORT = 4000
DEFAULT_EVALUATION_TIMEOUT = 60.0

R = TypeVar("R", bound=BaseModel)


def parse_request(model: type[R], body: dict[str, Any]) -> R:
    """``body`` as ``model``; a 400 naming the first bad field and what it must be otherwise."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        field = str(problem["loc"][0]) if problem["loc"] else "body"
        info = model.model_fields.get(field)
        wanted = info.description if info is not None and info.description else problem["msg"]
        if problem["type"] == "missing":
            message = f"'{field}' ({wanted}) is required"
        else:
            message = f"'{field}' must be {wanted}"
        raise HttpError(400, message, "bad_request") from None


class CodeLocationServer:
    """Loads the definitions at ``pointer`` and serves them on ``host:port`` (0: a free port).
    With a ``token``, every request but ``GET /healthz`` must carry it (see :mod:`.auth`)."""

    def __init__(self, pointer: CodePointer, *, location_name: str | None = None, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, evaluation_timeout: float = DEFAULT_EVALUATION_TIMEOUT,
                 token: str | None = None, limits: HttpLimits | None = None, image: str | None = None):
        from .. import __version__

        self.pointer = pointer
        self.location_name = location_name or default_location_name(pointer.python_file, pointer.module)
        self.evaluation_timeout = float(evaluation_timeout)
        self.version = __version__
        self.image = image
        self._baseline_modules = set(sys.modules)
        self._reload_lock = threading.Lock()
        # Bind before importing user code: a port that is taken fails fast, and connections made
        # while the definitions import wait in the listen backlog instead of being refused.
        self.httpd = HttpServer(host, port, make_wsgi_app(self, RequestGuard(token)), limits or HttpLimits())
        self.host = host
        self.state: LoadedState = load_location(pointer)

    @property
    def port(self) -> int:
        return self.httpd.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        self.httpd.shutdown()

    # ---- endpoints ----------------------------------------------------------------------------------
    def health(self) -> HealthInfo:
        state = self.state
        return HealthInfo(status="error" if state.error else "ok", location_name=self.location_name,
                          snapshot_id=state.snapshot_id, pid=os.getpid(), error=state.error,
                          code_pointer=self.pointer.to_dict(), image=self.image, version=self.version,
                          evaluation_timeout=self.evaluation_timeout)

    def _loaded(self) -> LoadedState:
        state = self.state
        if state.error:
            raise HttpError(503, f"location '{self.location_name}' failed to load: {state.error.message}",
                            "load_error", traceback=state.error.traceback)
        return state

    def snapshot(self) -> LocationSnapshot:
        return self._loaded().snapshot  # type: ignore[return-value]

    def _lookup(self, kind: str, table: dict[str, Any], name: str) -> Any:
        if name not in table:
            names = sorted(table)
            raise HttpError(404, f"no {kind} named '{name}' in location '{self.location_name}'. "
                                 f"{kind.capitalize()}s: {', '.join(names) or '(none)'}",
                            "not_found", available=names)
        return table[name]

    def validate(self, job_name: str, body: dict[str, Any]) -> ValidationResult:
        job = self._lookup("job", self._loaded().defs.jobs, job_name)
        request = parse_request(ValidateRequest, body)
        return validate_run(job, request.run_config or {}, request.ops)

    def evaluate_schedule(self, name: str, body: dict[str, Any]) -> EvaluationResult:
        defs = self._loaded().defs
        self._lookup("schedule", defs.schedules, name)
        request = parse_request(ScheduleEvaluationRequest, body)
        return evaluate_schedule(defs, name, float(request.tick_time), self.evaluation_timeout)

    def evaluate_sensor(self, name: str, body: dict[str, Any]) -> EvaluationResult:
        defs = self._loaded().defs
        self._lookup("sensor", defs.sensors, name)
        request = parse_request(SensorEvaluationRequest, body)
        return evaluate_sensor(defs, name, request.cursor, request.last_tick_time, self.evaluation_timeout)

    def partition_runs(self, body: dict[str, Any]) -> PartitionRunsResult:
        from .partition_runs import partition_runs

        request = parse_request(PartitionRunsRequest, body)
        job = self._lookup("job", self._loaded().defs.jobs, request.job)
        return partition_runs(job, list(request.partition_keys), self.evaluation_timeout)

    def reload(self) -> ReloadResult:
        with self._reload_lock:
            previous = self.state
            purge_user_modules(self.pointer, self._baseline_modules)
            state = load_location(self.pointer)
            self.state = state
        if state.error:
            log.error("reload of location %s failed: %s", self.location_name, state.error.message)
        return ReloadResult(status="error" if state.error else "ok", location_name=self.location_name,
                            snapshot_id=state.snapshot_id, previous_snapshot_id=previous.snapshot_id,
                            changed=state.snapshot_id != previous.snapshot_id, error=state.error)
