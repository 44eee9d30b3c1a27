"""The code server protocol's messages as pydantic models, shared by the server (which builds them)
and the client (which validates every answer into them). Plain data only: nothing here imports the
definitions API or user code.

A malformed answer fails validation with a ``pydantic.ValidationError`` (a ``ValueError``) or a
:class:`ProtocolError`; the client turns either into a
:class:`runyard.codeserver.errors.CodeServerUnavailableError` naming the server. The snapshot's own
models live in :mod:`.snapshot`.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, StrictStr, model_validator

from .snapshot import SNAPSHOT_FORMAT_VERSION, LocationSnapshot, WireModel

API_VERSION = "v1"

__all__ = [
    "API_VERSION", "SNAPSHOT_FORMAT_VERSION", "ConfigErrorData", "EvaluationResult", "ExecutionPlanData",
    "HealthInfo", "LocationSnapshot", "PartitionRunData", "PartitionRunsRequest", "PartitionRunsResult",
    "PlanStep", "ProtocolError", "ReloadResult", "RunRequestData",
    "ScheduleEvaluationRequest", "SensorEvaluationRequest", "SerializedError", "ValidateRequest",
    "ValidationResult", "WireModel", "default_location_name",
]


class ProtocolError(ValueError):
    pass


def default_location_name(python_file: str | None = None, module: str | None = None) -> str:
    """A location's name when none is given: the file's stem, else the module name."""
    if python_file:
        return os.path.splitext(os.path.basename(python_file))[0]
    return module or "location"


# ---- requests (the bodies of the POST endpoints) -------------------------------------------------------
# Strict types: the server answers 400 for a wrong type rather than guessing ("5" is not a time).
# Each field's description is what the 400 answer says the field must be.

EpochSeconds = Annotated[StrictInt | StrictFloat, "seconds since the epoch"]


class ValidateRequest(WireModel):
    """``POST /v1/jobs/<job>/validate``. ``run_config`` is checked by the job's own schema (a bad one
    is an ``ok: false`` answer, not a bad request)."""

    run_config: Any = None
    ops: StrictStr | list[StrictStr] | None = Field(
        default=None, description="an op selection string or a list of op names")


class ScheduleEvaluationRequest(WireModel):
    """``POST /v1/schedules/<name>/evaluate``."""

    tick_time: EpochSeconds = Field(description="the tick's time in epoch seconds")


class SensorEvaluationRequest(WireModel):
    """``POST /v1/sensors/<name>/evaluate``."""

    cursor: StrictStr | None = Field(default=None, description="a string or null")
    last_tick_time: EpochSeconds | None = Field(default=None, description="epoch seconds or null")


class PartitionRunsRequest(WireModel):
    """``POST /v1/partition-runs``: the run config and tags of runs of ``job`` for ``partition_keys``."""

    job: StrictStr = Field(description="a job name")
    partition_keys: list[StrictStr] = Field(description="a list of partition keys (strings)")


# ---- answers ----------------------------------------------------------------------------------------

class SerializedError(WireModel):
    """An error raised by user code (or while loading it): the message and the user's traceback.
    ``kind``: load_error, user_code_error, invalid_result, timeout, not_found, bad_request, ..."""

    message: str
    traceback: str | None = None
    kind: str | None = None

    def __str__(self) -> str:
        return self.message


class RunRequestData(WireModel):
    """One run a schedule or sensor asks for. ``job_name`` is always set (the request's own job, else
    the schedule's or sensor's). ``tags`` already include the schedule's tags."""

    job_name: str
    run_config: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    run_key: str | None = None
    #: a run of this partition: ``run_config`` and ``tags`` already hold the partition's; the
    #: daemon sets ``runyard/partition`` (reserved, so not among ``tags``)
    partition_key: str | None = None


class EvaluationResult(WireModel):
    """What a schedule or sensor evaluation produced. Exactly one of: run requests (possibly none),
    a skip reason, or an error (the user's function raised, returned something invalid, or timed
    out). ``cursor`` is the sensor's cursor after the evaluation (unchanged if it did not set one)."""

    run_requests: list[RunRequestData] = Field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None
    error: SerializedError | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_list_is_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("run_requests", []) is None:
            data = {**data, "run_requests": []}
        return data

    @property
    def ok(self) -> bool:
        return self.error is None


class PartitionRunData(WireModel):
    """What a run of one partition gets: the partitioned config's run config and tags, the tags
    including ``runyard/partition`` (:data:`runyard.tags.PARTITION_TAG`). A caller passes the
    reserved tag as runyard's own (``runyard_tags``), the others as the run's user tags."""

    partition_key: str
    run_config: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class PartitionRunsResult(WireModel):
    """``POST /v1/partition-runs``: one result per requested key, in order, or an ``error``: kind
    ``unknown_partition`` (the job is not partitioned or lacks a key; nothing else is computed),
    ``user_code_error`` / ``invalid_result`` / ``timeout`` (the partitioned config's function)."""

    results: list[PartitionRunData] = Field(default_factory=list)
    error: SerializedError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ConfigErrorData(WireModel):
    """One run config problem: the full message, and its parts (``reason``, key ``path``, ``source``).
    ``keys``: the key path as its keys and list indexes, when known (a front end finds the key's line
    in the YAML the user wrote with it; ``path`` alone is ambiguous when a key holds a dot)."""

    message: str
    reason: str | None = None
    path: str | None = None
    source: str | None = None
    keys: list[str | int] | None = None


class PlanStep(WireModel):
    key: str
    op: str  # the node the step runs
    upstream: list[str] = Field(default_factory=list)
    priority: int = 0


class ExecutionPlanData(WireModel):
    """The execution plan of a validated run: ``steps`` in ``order``, each with its upstream keys."""

    job_name: str | None = None
    order: list[str]
    steps: list[PlanStep]


class ValidationResult(WireModel):
    """Run config validated against a job. When ``ok``: the execution plan, the run's tags (job tags
    merged with ``tags:`` from run config), the executor name and the selected step keys (None:
    all). Otherwise ``errors``."""

    ok: bool
    job_name: str
    errors: list[ConfigErrorData] = Field(default_factory=list)
    plan: ExecutionPlanData | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    executor: str | None = None
    step_keys_to_execute: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, **{k: v for k, v in (("errors", []), ("tags", {})) if data.get(k, v) is None}}
        return data

    @model_validator(mode="after")
    def _ok_has_a_plan(self) -> ValidationResult:
        if self.ok and self.plan is None:
            raise ProtocolError("an ok validation has no plan")
        return self

    @property
    def step_order(self) -> list[str]:
        return list(self.plan.order) if self.plan else []


class HealthInfo(WireModel):
    """``GET /v1/health``. ``status`` is ``ok`` or ``error`` (the definitions failed to load; see
    ``error``). ``code_pointer`` is where the server loads the definitions from — what a run created
    for this location stores so its run worker can load the job. ``image`` is the container image the
    server runs from, when it was told (``--image`` or ``RUNYARD_CODE_IMAGE``): runs of the location
    use it with a container launcher."""

    status: Literal["ok", "error"]
    location_name: str
    snapshot_id: str | None = None
    pid: int
    error: SerializedError | None = None
    code_pointer: dict[str, Any] = Field(default_factory=dict)
    image: str | None = None
    version: str | None = None
    api_version: str = API_VERSION
    evaluation_timeout: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, **{k: v for k, v in (("code_pointer", {}), ("api_version", API_VERSION))
                               if data.get(k, v) is None}}
        return data

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ReloadResult(WireModel):
    """``POST /v1/reload``: a load error is reported here (``status == "error"``), not raised."""

    status: Literal["ok", "error"]
    location_name: str | None = None
    snapshot_id: str | None = None
    previous_snapshot_id: str | None = None
    changed: bool = False
    error: SerializedError | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class ServerReady(WireModel):
    """The readiness handshake: written once, as one JSON line, when the server listens (its
    definitions loaded or not: ``/v1/health`` says which)."""

    host: str
    port: int
    pid: int
    location: str
    api_version: str = API_VERSION

    def to_line(self) -> bytes:
        return (self.model_dump_json() + "\n").encode("utf-8")

    @classmethod
    def from_line(cls, line: bytes | str) -> ServerReady:
        """Parse the handshake line; raises ``pydantic.ValidationError`` (a ``ValueError``)."""
        return cls.model_validate_json(line)
