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

from ..config_models import MAX_PROBLEMS_SHOWN
from ..errors import ConfigError, ConfigProblem, RunConfigError
from ..instance.yaml_source import format_path

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


#: problems kept in one RunConfigError (a config with 100,000 unknown ops gets the first ones and a count)
MAX_PROBLEMS = 100


class _Problems:
    """The problems found while resolving a run config, each at its key path, counted past the cap."""

    def __init__(self) -> None:
        self.found: list[ConfigProblem] = []
        self.total = 0

    def add(self, message: str, *keys: str | int) -> None:
        self.total += 1
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(ConfigProblem(message=message, path=format_path(keys) or "(top level)", keys=keys))

    def extend(self, exc: ConfigError) -> None:
        self.total += exc.total - len(exc.problems)  # those the error left out, counted
        for problem in exc.problems:
            self.total += 1
            if len(self.found) < MAX_PROBLEMS:
                self.found.append(problem)

    def mapping(self, value: Any, *keys: str | int) -> dict[str, Any]:
        """``value`` as a mapping; anything else is a problem (and counts as empty)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(f"expected a mapping, got {type(value).__name__}", *keys)
            return {}
        return value

    def unknown_keys(self, entry: dict[str, Any], allowed: set[str], *keys: str | int) -> None:
        for key in sorted(set(entry) - allowed, key=str):
            self.add(f"unknown key (allowed: {', '.join(sorted(allowed))})", *keys, key)

    def validate(self, model: type[BaseModel], data: Any, *keys: str | int) -> BaseModel | None:
        from ..config_models import validate_model

        try:
            # op and resource config models are the user's: they decide whether inf and NaN are values
            return validate_model(model, data, source=RUN_CONFIG_SOURCE, path=keys, error_cls=RunConfigError,
                                  allow_inf_nan=True)
        except RunConfigError as exc:
            self.extend(exc)
            return None

    def error(self) -> RunConfigError:
        """One error carrying every problem: with one, the message names its key path as before
        (``run config: ops.load.config.path: required key is missing``); with several, one line each."""
        if self.total == 1:
            (only,) = self.found
            return RunConfigError(only.message, source=RUN_CONFIG_SOURCE, path=only.path, problems=self.found)
        shown = self.found[:MAX_PROBLEMS_SHOWN]
        head = "invalid config" if self.total <= len(shown) else \
            f"invalid config ({self.total:,} problems; the first {len(shown)})"
        more = [f"... and {self.total - len(shown):,} more"] if self.total > len(shown) else []
        return RunConfigError(head + ":\n  " + "\n  ".join([f"{p.path}: {p.message}" for p in shown] + more),
                              source=RUN_CONFIG_SOURCE, problems=self.found, total=self.total)


def resolve_run_config(job: JobDefinition, run_config: dict[str, Any] | None, *,
                       check_executor: bool = False) -> ResolvedRunConfig:
    """Validate run config against ``job``. Every problem is looked for — unknown keys, unknown ops
    and resources, each op's and resource's config (every field pydantic reports), the executor
    block, reserved tags — and one :class:`RunConfigError` carries them all (``problems``, each with
    its key path). With ``check_executor``, the executor's name and config are checked too
    (:func:`validate_executor`), their problems in the same error."""
    problems = _Problems()
    resolved = _resolve(job, run_config, problems)
    if check_executor and not any(p.path and p.path.startswith("execution") for p in problems.found):
        try:
            validate_executor(resolved)
        except RunConfigError as exc:
            problems.extend(exc)
    if problems.total:
        raise problems.error()
    return resolved


def _resolve(job: JobDefinition, run_config: dict[str, Any] | None, problems: _Problems) -> ResolvedRunConfig:
    from ..tags import reserved_tag_message, reserved_tags
    from .resources import ResourceDefinition

    raw = deep_merge(job.default_run_config, problems.mapping(run_config))
    for key in sorted(set(raw) - set(RUN_CONFIG_KEYS), key=str):
        problems.add(f"unknown key (allowed: {', '.join(RUN_CONFIG_KEYS)})", key)
    resolved = ResolvedRunConfig()

    # nested graphs: ops: {graph: {ops: {...}}} and config mapping (runyard.definitions.graph_config)
    from .graph_config import resolve_op_configs

    resolve_op_configs(job, problems.mapping(raw.get("ops"), "ops"), problems, resolved)

    res_cfg = problems.mapping(raw.get("resources"), "resources")
    for key in res_cfg:
        if key not in job.resource_defs:
            problems.add(f"job '{job.name}' has no resource '{key}' "
                         f"(resources: {', '.join(sorted(job.resource_defs)) or 'none'})", "resources", key)
    for key, definition in job.resource_defs.items():
        entry = problems.mapping(res_cfg.get(key), "resources", key)
        problems.unknown_keys(entry, {"config"}, "resources", key)
        if isinstance(definition, ResourceDefinition) and definition.config_model is not None:
            config = problems.validate(definition.config_model, entry.get("config"), "resources", key, "config")
            if config is not None:
                resolved.resource_configs[key] = config
        elif entry.get("config"):
            problems.add(f"resource '{key}' takes no config", "resources", key, "config")

    execution = problems.mapping(raw.get("execution"), "execution")
    if len(execution) > 1:
        problems.add(f"choose exactly one executor (got {', '.join(map(str, execution))})", "execution")
    elif execution:
        (name, cfg), = execution.items()
        resolved.executor_name = str(name)
        resolved.executor_config = problems.mapping(cfg, "execution", name)
    else:
        resolved.executor_name = job.executor_name
        resolved.executor_config = dict(job.executor_config)

    resolved.tags = {str(k): str(v) for k, v in problems.mapping(raw.get("tags"), "tags").items()}
    for tag in reserved_tags(resolved.tags):  # set by runyard only (runyard.tags.USER_TAGS)
        problems.add(reserved_tag_message(tag), "tags", tag)
    return resolved


def validate_executor(resolved: ResolvedRunConfig) -> Any:
    """Check the executor name and config against the installed executors; return its config."""
    from ..config_models import validate_model
    from ..errors import PluginError
    from ..plugins import get_registry

    try:
        cls = get_registry("executor").get(resolved.executor_name, class_selection=False)
    except PluginError as exc:
        message, keys = str(exc).removeprefix(": "), ("execution", resolved.executor_name)
        raise RunConfigError(message, source=RUN_CONFIG_SOURCE, path=format_path(keys),
                             problems=[ConfigProblem(message=message, path=format_path(keys), keys=keys)]) from None
    return cls, validate_model(cls.config_model, resolved.executor_config, source=RUN_CONFIG_SOURCE,
                               path=("execution", resolved.executor_name), error_cls=RunConfigError)


def config_json_schema(model: type[BaseModel] | None) -> dict[str, Any] | None:
    return model.model_json_schema() if model is not None else None
