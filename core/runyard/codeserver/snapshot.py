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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_serializer

from ..definitions.graph_view import downstream_of

SNAPSHOT_FORMAT_VERSION = 1


class WireModel(BaseModel):
    """Base of every code server protocol model: immutable, and tolerant of fields a newer server
    adds (an older client ignores them rather than refusing the location)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

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
    #: dynamic fan-out (runyard.execution.dynamic): the input receives one value per mapping key
    #: (its op is mapped: ``op[key]`` steps), or every value of a dynamic output as a list (``.collect()``)
    mapped: bool = False
    collect: bool = False

    @model_serializer(mode="wrap")
    def _omit_static(self, handler: Any) -> dict[str, Any]:
        # absent when False, as before dynamic outputs: snapshot ids of locations without them stay put
        return _without_defaults(handler(self), {"mapped": False, "collect": False})


NOTHING = "Nothing"


def _without_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    for key, value in defaults.items():
        if key in data and data[key] == value:
            del data[key]
    return data


class OutputSnapshot(WireModel):
    name: str
    type: str  # "Nothing" for an output that only orders steps
    description: str | None = None
    io_manager_key: str = "io_manager"
    #: False: ``Out(is_required=False)``, the op may leave it out (what reads it is then skipped)
    is_required: bool = True
    #: a ``DynamicOut``: any number of values, one per mapping key
    is_dynamic: bool = False

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: Any) -> dict[str, Any]:
        # absent when default, as before optional outputs: snapshot ids of older locations stay put
        return _without_defaults(handler(self), {"is_required": True, "is_dynamic": False})

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


class HookSnapshot(WireModel):
    """A success or failure hook of an op node (runyard.definitions.hooks)."""

    name: str
    kind: Literal["success", "failure"]
    required_resources: list[str] = Field(default_factory=list)
    description: str | None = None


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
    #: the node's hooks: its own (``op.with_hooks``) and the job's (``@job(hooks=...)``), by name
    hooks: list[HookSnapshot] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_no_hooks(self, handler: Any) -> dict[str, Any]:
        # an op without hooks serializes as before hooks existed: snapshot ids of locations without
        # hooks do not change
        data = handler(self)
        if data.get("hooks", None) == []:
            del data["hooks"]
        return data

    def output(self, name: str) -> OutputSnapshot:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(f"op '{self.name}' has no output '{name}'")

    @property
    def graph_path(self) -> str:
        """The dotted path of the nested graph holding this node (``""`` at the job's top level)."""
        return self.name.rpartition(".")[0]


class GraphInputTarget(WireModel):
    """An op input a graph input feeds: input ``input`` of the node named ``op``."""

    op: str
    input: str


class GraphInputSnapshot(WireModel):
    name: str
    description: str | None = None
    targets: list[GraphInputTarget] = Field(default_factory=list)


class GraphOutputSnapshot(WireModel):
    """A graph output: output ``source`` of an op, or (``from_input``) a graph input passed through."""

    name: str
    description: str | None = None
    source: UpstreamOutput | None = None
    from_input: str | None = None


class GraphSnapshot(WireModel):
    """A graph nested in a job, at dotted ``path`` (``outer.inner``); ``name`` is the graph's own name.
    Its ops are the nodes whose names start with ``path.``. ``config_schema``: the JSON schema of its
    config mapping (``ops: {path...: {config: ...}}``), None when its ops are configured one by one."""

    path: str
    name: str
    description: str | None = None
    inputs: list[GraphInputSnapshot] = Field(default_factory=list)
    outputs: list[GraphOutputSnapshot] = Field(default_factory=list)
    config_mapped: bool = False
    config_schema: dict[str, Any] | None = None


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


class PartitionsSnapshot(WireModel):
    """A job's partitions (:mod:`runyard.definitions.partitions`). ``kind`` ``static``: ``keys`` lists
    them. ``time_window``: the definition's parameters, from which :meth:`get_partition_keys`
    computes the keys at any time (they grow as windows end, so they are not frozen into the
    snapshot: replicas loaded on different days agree on its id)."""

    kind: Literal["static", "time_window"]
    keys: list[str] | None = None
    cadence: Literal["hourly", "daily", "weekly", "monthly"] | None = None
    start: str | None = None  # ISO wall-clock time in ``timezone``
    timezone: str | None = None
    fmt: str | None = None
    minute_offset: int = 0
    hour_offset: int = 0
    day_offset: int = 0
    end_offset: int = 0
    end: str | None = None

    _definition: Any = PrivateAttr(default=None)

    def definition(self) -> Any:
        """The :class:`runyard.definitions.partitions.PartitionsDefinition` this describes (built
        once; plain data, no user code)."""
        if self._definition is None:
            from ..definitions.partitions import partitions_def_from_snapshot

            self._definition = partitions_def_from_snapshot(self.model_dump())
        return self._definition

    def get_partition_keys(self, current_time: Any = None) -> list[str]:
        """The keys at ``current_time`` (default: now)."""
        if self.kind == "static":
            return list(self.keys or [])
        return self.definition().get_partition_keys(current_time)

    def has_partition_key(self, key: str, current_time: Any = None) -> bool:
        return self.definition().has_partition_key(key, current_time)


class JobSnapshot(WireModel):
    """A job, and its graph as a :class:`runyard.definitions.graph_view.JobGraph`. ``partitions``:
    the job's partitions, None (and absent from the JSON) for a job without."""

    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    ops: list[OpSnapshot]
    op_order: list[str]
    required_resources: list[str] = Field(default_factory=list)
    resources: list[ResourceSnapshot] = Field(default_factory=list)
    executor: ExecutorSnapshot
    default_run_config: dict[str, Any] = Field(default_factory=dict)
    partitions: PartitionsSnapshot | None = None
    graphs: list[GraphSnapshot] = Field(default_factory=list)  # nested graphs, parents first

    _ops_by_name: dict[str, OpSnapshot] = PrivateAttr(default_factory=dict)

    @model_serializer(mode="wrap")
    def _omit_absent_partitions(self, handler: Any) -> dict[str, Any]:
        # a job without partitions serializes as before partitions existed, so the snapshot ids of
        # locations without partitioned jobs do not change
        data = handler(self)
        if data.get("partitions", 0) is None:
            del data["partitions"]
        if data.get("graphs") == []:  # likewise for jobs without nested graphs
            del data["graphs"]
        return data

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

    def graph_members(self, path: str) -> list[str]:
        if not any(g.path == path for g in self.graphs):
            return []
        return [n for n in self.op_order if n.startswith(path + ".")]


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
