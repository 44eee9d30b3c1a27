"""Run config of jobs with nested graphs: Dagster's nested ``ops`` form and config mapping.

A graph's section of the run config mirrors the job's::

    ops:
      outer:                      # a graph
        ops:
          inner_op: {config: {...}}
          inner_graph: {ops: {...}}
      mapped:                     # a graph with config=ConfigMapping(...)
        config: {...}             # validated against the mapping's schema, then mapped

Each op's config ends up in ``ResolvedRunConfig.op_configs[<dotted step key>]``. Every problem is
reported at its key path (``ops.outer.ops.inner_op.config.n``), all of them in one error, as for
flat jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .graphs import ConfigMapping, SubgraphInfo, join, parent_path

if TYPE_CHECKING:  # pragma: no cover
    from .config import ResolvedRunConfig, _Problems
    from .job import GraphDefinition


def graph_levels(job: GraphDefinition) -> dict[str, tuple[list[str], list[str]]]:
    """``{graph path: (op names, graph names)}`` directly inside each level, names local to it
    (``""`` is the job's top level)."""
    levels: dict[str, tuple[list[str], list[str]]] = {"": ([], [])}
    for path in job.structure.subgraphs:
        levels.setdefault(path, ([], []))
    for path in job.structure.subgraphs:
        levels[parent_path(path)][1].append(path.rpartition(".")[2])
    for node in job.nodes:
        levels.setdefault(parent_path(node), ([], []))[0].append(node.rpartition(".")[2])
    return levels


def resolve_op_configs(job: GraphDefinition, ops_cfg: dict[str, Any], problems: _Problems,
                       resolved: ResolvedRunConfig) -> None:
    """Validate ``ops`` of a run config against ``job``, nested graphs included."""
    _level(job, graph_levels(job), "", ops_cfg, ("ops",), problems, resolved)


def _level(job: GraphDefinition, levels: dict[str, tuple[list[str], list[str]]], path: str,
           cfg: dict[str, Any], keys: tuple[str | int, ...], problems: _Problems,
           resolved: ResolvedRunConfig) -> None:
    ops, graphs = levels.get(path, ([], []))
    local = set(ops) | set(graphs)
    for key in cfg:
        if key in local:
            continue
        if not path and not graphs:
            problems.add(f"job '{job.name}' has no op named '{key}' (ops: {', '.join(sorted(job.nodes))})",
                         *keys, key)
        elif isinstance(key, str) and join(path, key) in job.nodes and "." in key:
            head = key.split(".")[0]
            problems.add(f"'{key}' is inside graph '{join(path, head)}': nest it as "
                         f"{head}: {{ops: {{...}}}}", *keys, key)
        else:
            where = f"job '{job.name}'" if not path else f"graph '{path}'"
            listing = ", ".join(sorted(ops)) or "none"
            if graphs:
                listing += f"; graphs: {', '.join(sorted(graphs))}"
            problems.add(f"{where} has no op or graph named '{key}' (ops: {listing})", *keys, key)
    for name in ops:
        node_name = join(path, name)
        entry = problems.mapping(cfg.get(name), *keys, name)
        problems.unknown_keys(entry, {"config"}, *keys, name)
        model = job.nodes[node_name].op.config_model
        if model is None:
            if entry.get("config"):
                problems.add(f"op '{node_name}' takes no config", *keys, name, "config")
            resolved.op_configs[node_name] = None
            continue
        resolved.op_configs[node_name] = problems.validate(model, entry.get("config"), *keys, name, "config")
    for name in graphs:
        graph_path = join(path, name)
        info = job.structure.subgraphs[graph_path]
        entry = problems.mapping(cfg.get(name), *keys, name)
        if isinstance(info.config, ConfigMapping):
            problems.unknown_keys(entry, {"config"}, *keys, name)
            _mapped(job, levels, info, entry.get("config"), keys + (name, "config"), problems, resolved)
            continue
        problems.unknown_keys(entry, {"ops"}, *keys, name)
        inner = problems.mapping(entry.get("ops"), *keys, name, "ops")
        if isinstance(info.config, dict):
            from .config import deep_merge

            inner = deep_merge(info.config.get("ops") or {}, inner)
        _level(job, levels, graph_path, inner, keys + (name, "ops"), problems, resolved)


def _mapped(job: GraphDefinition, levels: dict[str, tuple[list[str], list[str]]], info: SubgraphInfo,
            given: Any, keys: tuple[str | int, ...], problems: _Problems, resolved: ResolvedRunConfig) -> None:
    from .config import _Problems

    mapping = info.config
    assert isinstance(mapping, ConfigMapping)
    if mapping.config_schema is not None:
        value = problems.validate(mapping.config_schema, given, *keys)
        if value is None:
            return
    else:
        value = problems.mapping(given, *keys)
    try:
        mapped = mapping.config_fn(value)
    except Exception as exc:  # the user's function
        problems.add(f"the config mapping of graph '{info.path}' raised {type(exc).__name__}: {exc}", *keys)
        return
    if isinstance(mapped, dict) and set(mapped) == {"ops"}:
        mapped = mapped["ops"]
    if not isinstance(mapped, dict):
        problems.add(f"the config mapping of graph '{info.path}' must return a mapping of its ops' config, "
                     f"got {type(mapped).__name__}", *keys)
        return
    inner = _Problems()
    _level(job, levels, info.path, mapped, (), inner, resolved)
    for problem in inner.found:
        problems.add(f"the config mapping of graph '{info.path}' gave invalid config: {problem.path}: "
                     f"{problem.message}", *keys)


def job_config(job_name: str, structure: Any, config: Any) -> Any:
    """The default run config of a job made from a graph: ``to_job(config=...)``, else the graph's own
    ``config`` dict (its ``{"ops": {...}}``)."""
    from ..errors import DefinitionError

    if isinstance(config, ConfigMapping) or (config is None and isinstance(structure.config, ConfigMapping)):
        raise DefinitionError(f"job '{job_name}': a config mapping applies to a graph inside a job; call the graph "
                              "inside a @job body (ops: {graph: {config: ...}}) instead of making it the job")
    if config is None and isinstance(structure.config, dict):
        return dict(structure.config)
    return config


def node_config_keys(node: str) -> tuple[str, ...]:
    """Where node (or graph) ``node``'s entry sits in run config: ``("ops", "outer", "ops", "add")``
    for ``outer.add``."""
    keys: list[str] = []
    for part in node.split("."):
        keys += ["ops", part]
    return tuple(keys)
