"""What the launchpad page (``/locations/<location>/jobs/<job>/launchpad``) starts from: the run config
text (the job's scaffold, or a run's config with ``?from_run=``), the op selection (``?ops=``, or the
run's), the tags (the run's own, reserved ones left out), and the schema the editor completes keys
from. The editor itself is static/launchpad.js; it validates through GraphQL ``validateRunConfig``
(:mod:`runyard_webui.validation`) as you type and launches through ``launchRun``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from .context import INVALID, NOT_FOUND, WebError

if TYPE_CHECKING:  # pragma: no cover
    from runyard.codeserver.snapshot import JobSnapshot
    from runyard.storage.records import RunRecord

    from .context import WebContext


@dataclass(frozen=True, kw_only=True)
class LaunchpadStart:
    """The launchpad's starting state. ``from_run``: the run it was prefilled from, if any."""

    run_config_yaml: str
    ops: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    from_run: RunRecord | None = None


def dump_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True) if value else ""


def launchpad_start(web: WebContext, job: JobSnapshot, scaffold: dict, ops: str | None = None,
                    from_run: str | None = None) -> LaunchpadStart:
    """The starting state for ``job``: ``scaffold`` (the job's config scaffold) and ``ops``; with
    ``from_run``, that run's config, tags and op selection (``ops`` still wins when given). An
    unknown run is NOT_FOUND, a run of another job INVALID."""
    from runyard.tags import reserved_tags

    if not from_run:
        return LaunchpadStart(run_config_yaml=dump_yaml(scaffold), ops=ops or "")
    run = web.storage.get_run(from_run)
    if run is None:
        raise WebError(f"no run with id '{from_run}'", NOT_FOUND)
    if run.job_name != job.name:
        raise WebError(f"run {from_run} is a run of job '{run.job_name}', not of '{job.name}'", INVALID)
    refused = set(reserved_tags(run.tags))  # runyard sets those itself on the new run
    config_tags = (run.run_config or {}).get("tags") or {}
    # the job's tags and the run config's come back with the run config and the job on their own
    tags = {k: v for k, v in run.tags.items() if k not in refused and job.tags.get(k) != v
            and str(config_tags.get(k)) != v}
    selection = ops
    if not selection and run.step_keys_to_execute is not None:
        selection = ",".join(k for k in run.step_keys_to_execute if job.has_node(k))
    return LaunchpadStart(run_config_yaml=dump_yaml(run.run_config), ops=selection or "", tags=tags, from_run=run)


def completion_schema(job: JobSnapshot) -> dict[str, Any]:
    """What the editor completes keys from: each op's and resource's config JSON schema (None: it
    takes no config) and each installed executor's, by name. The executors are those installed
    with the web UI (the code location's environment may differ: the validation has the last word).
    Ops inside nested graphs are keyed by their dotted node name; ``graphs`` has each nested graph
    by dotted path (``mapped``: configured through its config mapping, whose schema is ``config``)."""
    return {"ops": {op.name: op.config_schema for op in job.ops},
            "graphs": {g.path: {"mapped": g.config_mapped, "config": g.config_schema} for g in job.graphs},
            "resources": {r.key: r.config_schema for r in job.resources},
            "executors": _executor_schemas(job.executor.name)}


def _executor_schemas(job_executor: str) -> dict[str, Any]:
    from runyard.plugins import get_registry

    schemas: dict[str, Any] = {job_executor: None}
    try:
        registry = get_registry("executor")
        for name in registry.names():
            model = getattr(registry.get(name), "config_model", None)
            schemas[name] = model.model_json_schema() if model is not None else None
    except Exception:  # noqa: BLE001 - a broken plugin costs completions, not the page
        pass
    return schemas


__all__ = ["LaunchpadStart", "completion_schema", "dump_yaml", "launchpad_start"]
