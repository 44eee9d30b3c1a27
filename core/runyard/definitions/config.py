"""Op and resource config: pydantic models, and run config validation against a job.

Run config has four top-level keys, all optional::

    ops:        {<op node name>: {config: {...}}}
    resources:  {<resource key>: {config: {...}}}
    execution:  {<executor name>: {...executor config}}
    tags:       {...}   # merged into the run's tags (no reserved runyard/ tag but runyard.tags.USER_TAGS)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ..errors import RunConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .job import JobDefinition

RUN_CONFIG_SOURCE = "run config"
RUN_CONFIG_KEYS = ("ops", "resources", "execution", "tags")


class Config(BaseModel):
    """Base class for op config: subclass it and annotate an op's ``config`` parameter with it.

    Unknown keys are rejected so a typo in run config is an error, not a silent default.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass
class ResolvedRunConfig:
    op_configs: dict[str, BaseModel | None] = field(default_factory=dict)
    resource_configs: dict[str, Any] = field(default_factory=dict)
    executor_name: str = "in_process"
    executor_config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RunConfigError(f"expected a mapping, got {type(value).__name__}",
                             source=RUN_CONFIG_SOURCE, path=path)
    return value


def _validate(model: type[BaseModel], data: Any, path: tuple) -> BaseModel:
    from ..config_models import validate_model

    # op and resource config models are the user's: they decide whether inf and NaN are values
    return validate_model(model, data, source=RUN_CONFIG_SOURCE, path=path, error_cls=RunConfigError,
                          allow_inf_nan=True)


def resolve_run_config(job: JobDefinition, run_config: dict[str, Any] | None) -> ResolvedRunConfig:
    """Validate run config against ``job``; raise :class:`RunConfigError` naming the key path."""
    raw = deep_merge(job.default_run_config, _mapping(run_config, "(top level)"))
    unknown = sorted(set(raw) - set(RUN_CONFIG_KEYS))
    if unknown:
        raise RunConfigError(f"unknown key (allowed: {', '.join(RUN_CONFIG_KEYS)})",
                             source=RUN_CONFIG_SOURCE, path=unknown[0])
    resolved = ResolvedRunConfig()

    ops_cfg = _mapping(raw.get("ops"), "ops")
    for node_name in ops_cfg:
        if node_name not in job.nodes:
            raise RunConfigError(f"job '{job.name}' has no op named '{node_name}' "
                                 f"(ops: {', '.join(sorted(job.nodes))})", source=RUN_CONFIG_SOURCE,
                                 path=f"ops.{node_name}")
    for node_name, node in job.nodes.items():
        entry = _mapping(ops_cfg.get(node_name), f"ops.{node_name}")
        extra = set(entry) - {"config"}
        if extra:
            raise RunConfigError("unknown key (allowed: config)", source=RUN_CONFIG_SOURCE,
                                 path=f"ops.{node_name}.{sorted(extra)[0]}")
        model = node.op.config_model
        if model is None:
            if entry.get("config"):
                raise RunConfigError(f"op '{node_name}' takes no config", source=RUN_CONFIG_SOURCE,
                                     path=f"ops.{node_name}.config")
            resolved.op_configs[node_name] = None
            continue
        resolved.op_configs[node_name] = _validate(model, entry.get("config"),
                                                   ("ops", node_name, "config"))

    res_cfg = _mapping(raw.get("resources"), "resources")
    for key in res_cfg:
        if key not in job.resource_defs:
            raise RunConfigError(f"job '{job.name}' has no resource '{key}' "
                                 f"(resources: {', '.join(sorted(job.resource_defs)) or 'none'})",
                                 source=RUN_CONFIG_SOURCE, path=f"resources.{key}")
    from .resources import ResourceDefinition

    for key, definition in job.resource_defs.items():
        entry = _mapping(res_cfg.get(key), f"resources.{key}")
        extra = set(entry) - {"config"}
        if extra:
            raise RunConfigError("unknown key (allowed: config)", source=RUN_CONFIG_SOURCE,
                                 path=f"resources.{key}.{sorted(extra)[0]}")
        if isinstance(definition, ResourceDefinition) and definition.config_model is not None:
            resolved.resource_configs[key] = _validate(definition.config_model, entry.get("config"),
                                                       ("resources", key, "config"))
        elif entry.get("config"):
            raise RunConfigError(f"resource '{key}' takes no config", source=RUN_CONFIG_SOURCE,
                                 path=f"resources.{key}.config")

    execution = _mapping(raw.get("execution"), "execution")
    if execution:
        if len(execution) != 1:
            raise RunConfigError("choose exactly one executor", source=RUN_CONFIG_SOURCE, path="execution")
        (name, cfg), = execution.items()
        resolved.executor_name = str(name)
        resolved.executor_config = _mapping(cfg, f"execution.{name}")
    else:
        resolved.executor_name = job.executor_name
        resolved.executor_config = dict(job.executor_config)
    resolved.tags = {str(k): str(v) for k, v in _mapping(raw.get("tags"), "tags").items()}
    from ..tags import reserved_tag_message, reserved_tags

    for tag in reserved_tags(resolved.tags)[:1]:  # set by runyard only (runyard.tags.USER_TAGS)
        raise RunConfigError(reserved_tag_message(tag), source=RUN_CONFIG_SOURCE, path=f"tags.{tag}")
    return resolved


def validate_executor(resolved: ResolvedRunConfig) -> Any:
    """Check the executor name and config against the installed executors; return its config."""
    from ..config_models import validate_model
    from ..errors import PluginError
    from ..plugins import get_registry

    try:
        cls = get_registry("executor").get(resolved.executor_name, class_selection=False)
    except PluginError as exc:
        raise RunConfigError(str(exc).removeprefix(": "), source=RUN_CONFIG_SOURCE,
                             path=f"execution.{resolved.executor_name}") from None
    return cls, validate_model(cls.config_model, resolved.executor_config, source=RUN_CONFIG_SOURCE,
                               path=("execution", resolved.executor_name), error_cls=RunConfigError)


def config_json_schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    return model.model_json_schema() if model is not None else None
