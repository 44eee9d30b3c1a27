"""Turning a :class:`runyard.Definitions` into its :class:`LocationSnapshot`, and the content hash
that identifies it. Runs in the code server only (it reads the user's definitions).

The snapshot holds nothing specific to one process or machine (no paths, pids, addresses or object
reprs), so every replica of a location serving the same code computes the same ``snapshot_id``:
sha256 of the canonical JSON (sorted keys, no whitespace) of the snapshot without the id. That JSON
is exactly what the server sends (:meth:`LocationSnapshot.to_json`), so anyone can check the id.
Changing what goes into it changes every location's id: tests/core/test_codeserver.py keeps the id
of a fixed definitions file to catch that.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .snapshot import SNAPSHOT_FORMAT_VERSION, LocationSnapshot

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
    from ..definitions.dynamic import mapped_nodes
    from ..definitions.hooks import node_hooks
    from ..definitions.types import describe_type

    mapped = mapped_nodes(job)
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
                           "upstream": [{"op": up, "output": out} for up, out in deps],
                           "collect": input_name in node.collect,
                           "mapped": name in mapped and input_name not in node.collect and any(
                               up in mapped or job.nodes[up].op.outs[out].is_dynamic for up, out in deps)})
        outputs = [{"name": out_name, "type": "Nothing" if out.is_nothing else describe_type(out.type),
                    "description": out.description, "io_manager_key": out.io_manager_key,
                    "is_required": out.is_required, "is_dynamic": out.is_dynamic}
                   for out_name, out in op.outs.items()]
        ops.append({"name": name, "op": op.name, "description": op.description, "tags": dict(op.tags),
                    "inputs": inputs, "outputs": outputs, "upstream": sorted(node.upstream),
                    "config_schema": config_json_schema(op.config_model),
                    "required_resources": sorted(op.required_resource_keys),
                    "retry_policy": _retry_policy(op.retry_policy)})
        hooks = node_hooks(job, node)
        if hooks:  # absent when none, as before hooks existed (snapshot ids stay put)
            ops[-1]["hooks"] = [{"name": h.name, "kind": h.kind, "required_resources": sorted(h.required_resource_keys),
                                 "description": h.description} for h in hooks]
    data = {"name": job.name, "description": job.description, "tags": dict(job.tags),
            "ops": ops, "op_order": list(job.topological_order),
            "required_resources": sorted(job.required_resource_keys()),
            "resources": [_resource(k, job.resource_defs[k]) for k in sorted(job.resource_defs)],
            "executor": {"name": job.executor_name, "config": job.executor_config},
            "default_run_config": job.default_run_config}
    partitions_def = getattr(job, "partitions_def", None)
    if partitions_def is not None:  # absent, not null: ids of locations without partitions stay put
        data["partitions"] = partitions_def.to_snapshot()
    if job.structure.subgraphs:  # likewise for nested graphs
        from ..definitions.graphs import graphs_snapshot

        data["graphs"] = graphs_snapshot(job.structure)
    return data


def build_snapshot(defs: Definitions) -> LocationSnapshot:
    """The snapshot of ``defs``, ``snapshot_id`` included.

    The JSON is assembled first and validated into the models, and the id is the hash of the
    models' own JSON: what is hashed is what is served, whatever the models normalise.
    """
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
    data = jsonable({
        "format_version": SNAPSHOT_FORMAT_VERSION,
        "jobs": jobs,
        "resources": [_resource(k, defs.resources[k]) for k in sorted(defs.resources)],
        "schedules": schedules,
        "sensors": sensors,
    })
    unhashed = LocationSnapshot.model_validate({**data, "snapshot_id": ""})
    return unhashed.model_copy(update={"snapshot_id": snapshot_id_of(unhashed.model_dump(mode="json"))})
