"""A location's snapshot as typed models: what ``GET /v1/snapshot`` answers and what the daemon, the
web UI and the CLI read instead of importing the user's code.

The models mirror the JSON field for field (docs/code-server.md lists them); the server builds them
(:mod:`.snapshot_builder`) and the client validates every answer into them, so nothing outside this
package indexes snapshot dicts. Free-form parts (op config JSON schemas, run config, executor
config, tags given by user code) stay JSON values: they are the user's data, not runyard's shape.

Replicas agree on ``snapshot_id`` because it is the sha256 of the canonical JSON of
:meth:`LocationSnapshot.to_json` without the id (see :func:`.snapshot_builder.snapshot_id_of`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ..definitions.graph_view import downstream_of

SNAPSHOT_FORMAT_VERSION = 1


class WireModel(BaseModel):
    """Base of every code server protocol model: immutable, and tolerant of fields a newer server
    adds (an older client ignores them rather than refusing the location)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """JSON-native data, exactly the wire form."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """Validate ``data`` (parsed JSON); raises ``pydantic.ValidationError`` (a ``ValueError``)."""
        return cls.model_validate(data)


# ---- a job's graph ----------------------------------------------------------------------------------

class UpstreamOutput(WireModel):
    """One source of an input: output ``output`` of the node named ``op``."""

    op: str
    output: str


class InputSnapshot(WireModel):
    name: str
    type: str
    description: str | None = None
    has_default: bool = False
    fan_in: bool = False
    upstream: list[UpstreamOutput] = Field(default_factory=list)


NOTHING = "Nothing"


class OutputSnapshot(WireModel):
    name: str
    type: str  # "Nothing" for an output that only orders steps
    description: str | None = None
    io_manager_key: str = "io_manager"

    @property
    def is_nothing(self) -> bool:
        return self.type == NOTHING


class RetryPolicySnapshot(WireModel):
    """A :class:`runyard.RetryPolicy`."""

    max_retries: int
    delay: int | float | None = None
    backoff: str | None = None
    jitter: str | None = None


class CustomRetryPolicySnapshot(WireModel):
    """A retry policy object runyard does not know: only its type's qualified name."""

    type: str


class OpSnapshot(WireModel):
    """One node of a job: ``name`` is the node name (the step key), ``op`` the op it runs."""

    name: str
    op: str
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputSnapshot] = Field(default_factory=list)
    outputs: list[OutputSnapshot] = Field(default_factory=list)
    upstream: list[str] = Field(default_factory=list)
    config_schema: dict[str, Any] | None = None  # the op's Config model as JSON schema
    required_resources: list[str] = Field(default_factory=list)
    retry_policy: RetryPolicySnapshot | CustomRetryPolicySnapshot | None = None

    def output(self, name: str) -> OutputSnapshot:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(f"op '{self.name}' has no output '{name}'")


class ResourceSnapshot(WireModel):
    """A resource: ``kind`` is ``resource`` (an ``@resource``, maybe with a config schema) or
    ``object`` (a plain object used as it is; ``type`` is its class's qualified name)."""

    key: str
    kind: Literal["resource", "object"]
    type: str | None = None
    description: str | None = None
    config_schema: dict[str, Any] | None = None


class ExecutorSnapshot(WireModel):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class JobSnapshot(WireModel):
    """A job, and its graph as a :class:`runyard.definitions.graph_view.JobGraph`."""

    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    ops: list[OpSnapshot]
    op_order: list[str]
    required_resources: list[str] = Field(default_factory=list)
    resources: list[ResourceSnapshot] = Field(default_factory=list)
    executor: ExecutorSnapshot
    default_run_config: dict[str, Any] = Field(default_factory=dict)

    _ops_by_name: dict[str, OpSnapshot] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        self._ops_by_name = {op.name: op for op in self.ops}

    def node(self, name: str) -> OpSnapshot:
        """The op node named ``name``; ``KeyError`` naming the job's ops when there is none."""
        try:
            return self._ops_by_name[name]
        except KeyError:
            raise KeyError(f"job '{self.name}' has no op '{name}' (ops: {', '.join(self.op_order)})") from None

    # ---- JobGraph ---------------------------------------------------------------------------------
    @property
    def topological_order(self) -> list[str]:
        return self.op_order

    def has_node(self, node: str) -> bool:
        return node in self._ops_by_name

    def upstream_of(self, node: str) -> set[str]:
        return set(self.node(node).upstream)

    def input_sources(self, node: str) -> dict[str, list[tuple[str, str]]]:
        return {i.name: [(u.op, u.output) for u in i.upstream] for i in self.node(node).inputs if i.upstream}

    def is_nothing_output(self, node: str, output: str) -> bool:
        return self.node(node).output(output).is_nothing

    def downstream_of(self, node: str) -> set[str]:
        return downstream_of(self, node)


# ---- schedules and sensors ----------------------------------------------------------------------------

DefaultStatus = Literal["RUNNING", "STOPPED"]


class ScheduleSnapshot(WireModel):
    """A schedule. ``run_config`` is set for a schedule without a function (its fixed run config);
    a schedule with one (``has_evaluation_fn``) is evaluated on the code server at each tick."""

    name: str
    job_name: str
    cron_schedule: str
    execution_timezone: str = "UTC"
    default_status: DefaultStatus = "STOPPED"
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    has_evaluation_fn: bool = False
    run_config: dict[str, Any] | None = None


class SensorSnapshot(WireModel):
    """A sensor. ``job_name`` is None when its run requests must each name their job."""

    name: str
    job_name: str | None = None
    minimum_interval_seconds: int | float
    default_status: DefaultStatus = "STOPPED"
    description: str | None = None


# ---- the location -----------------------------------------------------------------------------------

class LocationSnapshot(WireModel):
    """``GET /v1/snapshot``: everything the daemon and the web UI know about a location's
    definitions. The lists (``jobs``, ``schedules``, ...) are the wire's, sorted by name;
    ``*_by_name`` look them up."""

    format_version: int = SNAPSHOT_FORMAT_VERSION
    snapshot_id: str
    jobs: list[JobSnapshot]
    resources: list[ResourceSnapshot]
    schedules: list[ScheduleSnapshot]
    sensors: list[SensorSnapshot]

    _jobs: dict[str, JobSnapshot] = PrivateAttr(default_factory=dict)
    _schedules: dict[str, ScheduleSnapshot] = PrivateAttr(default_factory=dict)
    _sensors: dict[str, SensorSnapshot] = PrivateAttr(default_factory=dict)
    _resources: dict[str, ResourceSnapshot] = PrivateAttr(default_factory=dict)
    _json: dict[str, Any] | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any) -> None:
        self._jobs = {j.name: j for j in self.jobs}
        self._schedules = {s.name: s for s in self.schedules}
        self._sensors = {s.name: s for s in self.sensors}
        self._resources = {r.key: r for r in self.resources}

    def to_json(self) -> dict[str, Any]:
        # Served on every GET /v1/snapshot: dumped once (the model is immutable). Callers must not
        # mutate the dict they get.
        if self._json is None:
            self._json = self.model_dump(mode="json")
        return self._json

    # pydantic's equality would also compare the lookup tables and the cached JSON above
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocationSnapshot):
            return NotImplemented
        return self.snapshot_id == other.snapshot_id and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.snapshot_id)

    @property
    def jobs_by_name(self) -> dict[str, JobSnapshot]:
        return self._jobs

    @property
    def schedules_by_name(self) -> dict[str, ScheduleSnapshot]:
        return self._schedules

    @property
    def sensors_by_name(self) -> dict[str, SensorSnapshot]:
        return self._sensors

    @property
    def resources_by_key(self) -> dict[str, ResourceSnapshot]:
        return self._resources

    @property
    def job_names(self) -> list[str]:
        return sorted(self._jobs)

    @property
    def schedule_names(self) -> list[str]:
        return sorted(self._schedules)

    @property
    def sensor_names(self) -> list[str]:
        return sorted(self._sensors)

    def instigators(self, kind: Literal["schedule", "sensor"]
                    ) -> dict[str, ScheduleSnapshot] | dict[str, SensorSnapshot]:
        """``schedules_by_name`` or ``sensors_by_name``, for code that handles both kinds alike."""
        if kind == "schedule":
            return self._schedules
        if kind == "sensor":
            return self._sensors
        raise ValueError(f"unknown instigator kind '{kind}' (schedule or sensor)")

    def __repr__(self) -> str:
        return (f"<LocationSnapshot {self.snapshot_id[:12]} jobs={len(self._jobs)} "
                f"schedules={len(self._schedules)} sensors={len(self._sensors)}>")
