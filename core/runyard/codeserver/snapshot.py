"""A location's snapshot: its definitions as plain JSON, and the content hash that identifies it.

The snapshot holds nothing specific to one process or machine (no paths, pids, addresses or object
reprs), so every replica of a location serving the same code computes the same ``snapshot_id``:
sha256 of the canonical JSON (sorted keys, no whitespace) of the snapshot without the id.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .protocol import SNAPSHOT_FORMAT_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.definitions import Definitions
    from ..definitions.job import JobDefinition


def jsonable(value: Any) -> Any:
    """``value`` as JSON-native data: tuples and sets become lists (sets sorted), enums their value,
    mappings get string keys; anything else becomes its type's qualified name (never a repr, which
    may hold a memory address and would make replicas disagree)."""
    from enum import Enum

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return f"<{qualified_type_name(value)}>"


def qualified_type_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def snapshot_id_of(snapshot: dict[str, Any]) -> str:
    body = {k: v for k, v in snapshot.items() if k != "snapshot_id"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _resource(key: str, definition: Any) -> dict[str, Any]:
    from ..definitions.config import config_json_schema
    from ..definitions.resources import ResourceDefinition

    if isinstance(definition, ResourceDefinition):
        return {"key": key, "kind": "resource", "type": None, "description": definition.description,
                "config_schema": config_json_schema(definition.config_model)}
    return {"key": key, "kind": "object", "type": qualified_type_name(definition),
            "description": None, "config_schema": None}


def _retry_policy(policy: Any) -> dict[str, Any] | None:
    from ..definitions.retry import RetryPolicy

    if policy is None:
        return None
    if isinstance(policy, RetryPolicy):
        return {"max_retries": policy.max_retries, "delay": policy.delay,
                "backoff": policy.backoff.value if policy.backoff else None,
                "jitter": policy.jitter.value if policy.jitter else None}
    return {"type": qualified_type_name(policy)}


def _job(job: JobDefinition) -> dict[str, Any]:
    from ..definitions.config import config_json_schema
    from ..definitions.types import describe_type

    ops = []
    for name in job.topological_order:
        node = job.nodes[name]
        op = node.op
        inputs = []
        for input_name, spec in op.ins.items():
            deps = node.inputs.get(input_name, [])
            inputs.append({"name": input_name, "type": describe_type(spec.type),
                           "description": spec.description, "has_default": spec.has_default,
                           "fan_in": input_name in node.fan_in,
                           "upstream": [{"op": up, "output": out} for up, out in deps]})
        outputs = [{"name": out_name, "type": "Nothing" if out.is_nothing else describe_type(out.type),
                    "description": out.description, "io_manager_key": out.io_manager_key}
                   for out_name, out in op.outs.items()]
        ops.append({"name": name, "op": op.name, "description": op.description, "tags": dict(op.tags),
                    "inputs": inputs, "outputs": outputs, "upstream": sorted(node.upstream),
                    "config_schema": config_json_schema(op.config_model),
                    "required_resources": sorted(op.required_resource_keys),
                    "retry_policy": _retry_policy(op.retry_policy)})
    return {"name": job.name, "description": job.description, "tags": dict(job.tags),
            "ops": ops, "op_order": list(job.topological_order),
            "required_resources": sorted(job.required_resource_keys()),
            "resources": [_resource(k, job.resource_defs[k]) for k in sorted(job.resource_defs)],
            "executor": {"name": job.executor_name, "config": job.executor_config},
            "default_run_config": job.default_run_config}


class SnapshotGraph:
    """A job's graph rebuilt from its snapshot (``snapshot["jobs"][i]``): the parts that planning a
    re-execution reads (``topological_order``, ``nodes[name].inputs/upstream``, whether an output
    is ``Nothing``, ``downstream_of``), for processes that must not import user code."""

    class _Out:
        def __init__(self, is_nothing: bool):
            self.is_nothing = is_nothing

    class _Op:
        def __init__(self, outs: dict[str, Any]):
            self.outs = outs

    class _Node:
        def __init__(self, op: dict[str, Any]):
            self.upstream = set(op.get("upstream", []))
            self.inputs = {i["name"]: [(u["op"], u["output"]) for u in i.get("upstream", [])]
                           for i in op.get("inputs", [])}
            self.op = SnapshotGraph._Op({o["name"]: SnapshotGraph._Out(o.get("type") == "Nothing")
                                         for o in op.get("outputs", [])})

    def __init__(self, job: dict[str, Any]):
        self.name = job["name"]
        self.topological_order: list[str] = list(job["op_order"])
        self.nodes = {op["name"]: self._Node(op) for op in job["ops"]}

    def downstream_of(self, name: str) -> set[str]:
        from ..definitions.job import GraphDefinition

        return GraphDefinition.downstream_of(self, name)  # reads only self.nodes[*].upstream


def build_snapshot(defs: Definitions) -> dict[str, Any]:
    """The snapshot of ``defs`` as JSON-native data, ``snapshot_id`` included."""
    jobs = [_job(defs.jobs[name]) for name in sorted(defs.jobs)]
    schedules = [{"name": s.name, "job_name": s.job_name, "cron_schedule": s.cron_schedule,
                  "execution_timezone": s.execution_timezone, "default_status": s.default_status,
                  "description": s.description, "tags": dict(s.tags),
                  "has_evaluation_fn": s.evaluation_fn is not None,
                  "run_config": s.run_config if s.evaluation_fn is None else None}
                 for s in (defs.schedules[n] for n in sorted(defs.schedules))]
    sensors = [{"name": s.name, "job_name": s.job_name, "minimum_interval_seconds": s.minimum_interval_seconds,
                "default_status": s.default_status, "description": s.description}
               for s in (defs.sensors[n] for n in sorted(defs.sensors))]
    snapshot = jsonable({
        "format_version": SNAPSHOT_FORMAT_VERSION,
        "jobs": jobs,
        "resources": [_resource(k, defs.resources[k]) for k in sorted(defs.resources)],
        "schedules": schedules,
        "sensors": sensors,
    })
    snapshot["snapshot_id"] = snapshot_id_of(snapshot)
    return snapshot
