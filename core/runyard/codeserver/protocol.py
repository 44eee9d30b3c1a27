"""The code server protocol's results, shared by the server (which builds them) and the client (which
parses them). Plain data only: nothing here imports the definitions API or user code.

Every ``from_json`` checks the shape it needs and raises :class:`ProtocolError` (a ``ValueError``)
when the answer is not what a runyard code server sends; the client turns that into a
:class:`runyard.codeserver.errors.CodeServerUnavailableError` naming the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "v1"
SNAPSHOT_FORMAT_VERSION = 1


class ProtocolError(ValueError):
    pass


def default_location_name(python_file: str | None = None, module: str | None = None) -> str:
    """A location's name when none is given: the file's stem, else the module name."""
    if python_file:
        return os.path.splitext(os.path.basename(python_file))[0]
    return module or "location"


def _require(data: Any, key: str, types: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}")
    if key not in data:
        if optional:
            return None
        raise ProtocolError(f"missing key '{key}'")
    value = data[key]
    if value is None and optional:
        return None
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ProtocolError(f"key '{key}' should be {names}, got {type(value).__name__}")
    return value


@dataclass
class SerializedError:
    """An error raised by user code (or while loading it): the message and the user's traceback."""

    message: str
    traceback: str | None = None
    kind: str | None = None  # load_error, user_code_error, timeout, not_found, bad_request, ...

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "traceback": self.traceback, "kind": self.kind}

    @classmethod
    def from_json(cls, data: Any) -> SerializedError:
        return cls(message=_require(data, "message", str),
                   traceback=_require(data, "traceback", str, optional=True),
                   kind=_require(data, "kind", str, optional=True))

    def __str__(self) -> str:
        return self.message


@dataclass
class RunRequestData:
    """One run a schedule or sensor asks for. ``job_name`` is always set (the request's own job, else
    the schedule's or sensor's). ``tags`` already include the schedule's tags."""

    job_name: str
    run_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"job_name": self.job_name, "run_config": self.run_config, "tags": self.tags,
                "run_key": self.run_key}

    @classmethod
    def from_json(cls, data: Any) -> RunRequestData:
        return cls(job_name=_require(data, "job_name", str), run_config=_require(data, "run_config", dict),
                   tags=_require(data, "tags", dict), run_key=_require(data, "run_key", str, optional=True))


@dataclass
class EvaluationResult:
    """What a schedule or sensor evaluation produced. Exactly one of: run requests (possibly none),
    a skip reason, or an error (the user's function raised, returned something invalid, or timed
    out). ``cursor`` is the sensor's cursor after the evaluation (unchanged if it did not set one)."""

    run_requests: list[RunRequestData] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None
    error: SerializedError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {"run_requests": [r.to_json() for r in self.run_requests], "skip_reason": self.skip_reason,
                "cursor": self.cursor, "error": self.error.to_json() if self.error else None}

    @classmethod
    def from_json(cls, data: Any) -> EvaluationResult:
        error = _require(data, "error", dict, optional=True)
        return cls(run_requests=[RunRequestData.from_json(r) for r in
                                 (_require(data, "run_requests", list, optional=True) or [])],
                   skip_reason=_require(data, "skip_reason", str, optional=True),
                   cursor=_require(data, "cursor", str, optional=True),
                   error=SerializedError.from_json(error) if error is not None else None)


@dataclass
class ConfigErrorData:
    """One run config problem: the full message, and its parts (``reason``, key ``path``, ``source``)."""

    message: str
    reason: str | None = None
    path: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "reason": self.reason, "path": self.path, "source": self.source}

    @classmethod
    def from_json(cls, data: Any) -> ConfigErrorData:
        return cls(message=_require(data, "message", str), reason=_require(data, "reason", str, optional=True),
                   path=_require(data, "path", str, optional=True),
                   source=_require(data, "source", str, optional=True))


@dataclass
class ValidationResult:
    """Run config validated against a job. When ``ok``: the execution plan (``steps`` in order, each
    with its ``upstream`` step keys), the run's tags (job tags merged with ``tags:`` from run config),
    the executor name and the selected step keys (None: all). Otherwise ``errors``."""

    ok: bool
    job_name: str
    errors: list[ConfigErrorData] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    executor: str | None = None
    step_keys_to_execute: list[str] | None = None

    @property
    def step_order(self) -> list[str]:
        return list((self.plan or {}).get("order", []))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "job_name": self.job_name, "errors": [e.to_json() for e in self.errors],
                "plan": self.plan, "tags": self.tags, "executor": self.executor,
                "step_keys_to_execute": self.step_keys_to_execute}

    @classmethod
    def from_json(cls, data: Any) -> ValidationResult:
        ok = _require(data, "ok", bool)
        plan = _require(data, "plan", dict, optional=True)
        if ok and plan is None:
            raise ProtocolError("an ok validation has no plan")
        if plan is not None:
            _require(plan, "order", list)
            _require(plan, "steps", list)
        return cls(ok=ok, job_name=_require(data, "job_name", str),
                   errors=[ConfigErrorData.from_json(e) for e in _require(data, "errors", list, optional=True) or []],
                   plan=plan, tags=_require(data, "tags", dict, optional=True) or {},
                   executor=_require(data, "executor", str, optional=True),
                   step_keys_to_execute=_require(data, "step_keys_to_execute", list, optional=True))


@dataclass
class HealthInfo:
    """``GET /v1/health``. ``status`` is ``ok`` or ``error`` (the definitions failed to load; see
    ``error``). ``code_pointer`` is where the server loads the definitions from — what a run created
    for this location stores so its run worker can load the job."""

    status: str
    location_name: str
    snapshot_id: str | None
    pid: int
    error: SerializedError | None = None
    code_pointer: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    api_version: str = API_VERSION
    evaluation_timeout: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "location_name": self.location_name, "snapshot_id": self.snapshot_id,
                "pid": self.pid, "error": self.error.to_json() if self.error else None,
                "code_pointer": self.code_pointer, "version": self.version, "api_version": self.api_version,
                "evaluation_timeout": self.evaluation_timeout}

    @classmethod
    def from_json(cls, data: Any) -> HealthInfo:
        status = _require(data, "status", str)
        if status not in ("ok", "error"):
            raise ProtocolError(f"unknown status '{status}'")
        error = _require(data, "error", dict, optional=True)
        return cls(status=status, location_name=_require(data, "location_name", str),
                   snapshot_id=_require(data, "snapshot_id", str, optional=True), pid=_require(data, "pid", int),
                   error=SerializedError.from_json(error) if error is not None else None,
                   code_pointer=_require(data, "code_pointer", dict, optional=True) or {},
                   version=_require(data, "version", str, optional=True),
                   api_version=_require(data, "api_version", str, optional=True) or API_VERSION,
                   evaluation_timeout=_require(data, "evaluation_timeout", (int, float), optional=True))


class LocationSnapshot:
    """``GET /v1/snapshot``: everything the daemon and the web UI need to know about a location's
    definitions, as JSON (``data``), with lookups by name. See docs/code-server.md for the fields."""

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.snapshot_id: str = data["snapshot_id"]
        self.jobs: dict[str, dict[str, Any]] = {j["name"]: j for j in data["jobs"]}
        self.schedules: dict[str, dict[str, Any]] = {s["name"]: s for s in data["schedules"]}
        self.sensors: dict[str, dict[str, Any]] = {s["name"]: s for s in data["sensors"]}
        self.resources: dict[str, dict[str, Any]] = {r["key"]: r for r in data["resources"]}

    @classmethod
    def from_json(cls, data: Any) -> LocationSnapshot:
        _require(data, "snapshot_id", str)
        for key in ("jobs", "schedules", "sensors", "resources"):
            for item in _require(data, key, list):
                _require(item, "key" if key == "resources" else "name", str)
        return cls(data)

    @property
    def job_names(self) -> list[str]:
        return sorted(self.jobs)

    def to_json(self) -> dict[str, Any]:
        return self.data

    def __repr__(self) -> str:
        return (f"<LocationSnapshot {self.snapshot_id[:12]} jobs={len(self.jobs)} "
                f"schedules={len(self.schedules)} sensors={len(self.sensors)}>")
