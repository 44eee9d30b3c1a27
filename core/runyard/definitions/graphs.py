"""Nested graphs: ``@graph`` with inputs and outputs, used inside ``@job`` and other ``@graph`` bodies.

A graph is flattened where it is called: its ops become nodes of the calling body named
``<graph node>.<inner node>`` (``outer.inner.op`` two levels down), so a job's ``nodes`` stay flat
and a node name is still the step key every executor, plan and storage works on. What flattening
loses is kept beside the nodes in a :class:`GraphStructure`: which graphs the job holds (by dotted
path), their descriptions, inputs, outputs and config. Run config, op selection and the web UI read
the tree from there.

Inside a graph body each parameter of the graph function is a :class:`GraphInputHandle`; passing it
to an op records that the op's input is fed by the graph input. When the graph is called, every such
handle is replaced by what the caller passed (an output handle, or a list of them for fan-in).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .composition import NodeSpec, OutputHandle, current_composition

if TYPE_CHECKING:  # pragma: no cover
    from .composition import Composition
    from .job import GraphDefinition

#: joins a graph's node name and the names inside it: ``outer.inner.op``
SEP = "."


def parent_path(node: str) -> str:
    """The dotted path of the graph holding ``node`` (``""`` at the top of a job)."""
    return node.rpartition(SEP)[0]


def join(prefix: str, name: str) -> str:
    return f"{prefix}{SEP}{name}" if prefix and name else prefix or name


# ---- the user's API --------------------------------------------------------------------------------

@dataclass(frozen=True)
class GraphIn:
    """Describes a graph input (``@graph(ins={"x": GraphIn(description=...)})``)."""

    description: str | None = None


@dataclass(frozen=True)
class GraphOut:
    """Describes a graph output (``@graph(out={"a": GraphOut(), "b": GraphOut()})``)."""

    description: str | None = None


@dataclass(frozen=True)
class ConfigMapping:
    """Configure a graph's ops from one config of the graph's own.

    ``config_schema`` is a :class:`runyard.Config` subclass (``config_fn`` receives the validated
    model) or None (``config_fn`` receives the raw mapping). ``config_fn`` returns the config of the
    graph's nodes, ``{op: {config: ...}, inner_graph: {ops: ...}}``, optionally wrapped in
    ``{"ops": ...}`` as Dagster's jobs write it.
    """

    config_fn: Callable[[Any], Any]
    config_schema: Any = None
    description: str | None = None

    def __post_init__(self) -> None:
        from .op import _is_config_model

        if not callable(self.config_fn):
            raise DefinitionError("ConfigMapping: config_fn must be callable")
        if self.config_schema is not None and not _is_config_model(self.config_schema):
            raise DefinitionError("ConfigMapping: config_schema must be a runyard.Config (pydantic) subclass "
                                  f"or None, got {self.config_schema!r}")


def config_mapping(fn: Callable[[Any], Any] | None = None, *, config_schema: Any = None,
                   description: str | None = None) -> Any:
    """``@config_mapping`` turns a function into a :class:`ConfigMapping`; without ``config_schema``
    the annotation of its parameter (a :class:`runyard.Config` subclass) is the schema."""

    def decorate(func: Callable[[Any], Any]) -> ConfigMapping:
        schema = config_schema
        if schema is None:
            from .op import _is_config_model, _type_hints

            params = list(inspect.signature(func).parameters)
            hint = _type_hints(func).get(params[0]) if params else None
            schema = hint if _is_config_model(hint) else None
        return ConfigMapping(func, schema, description or inspect.getdoc(func))

    return decorate(fn) if fn is not None else decorate


# ---- what a graph body records ----------------------------------------------------------------------

@dataclass(frozen=True)
class GraphInputHandle(OutputHandle):
    """Graph input ``node`` inside the graph's own body; replaced by the caller's handle(s)."""

    output: str = ""

    def __repr__(self) -> str:
        return f"GraphInputHandle({self.node!r})"


@dataclass(frozen=True)
class GraphInputDef:
    name: str
    description: str | None = None
    # the op inputs it feeds: (node, input), node names relative to the graph
    targets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GraphOutputDef:
    name: str
    description: str | None = None
    # the op output it returns, or the graph input it passes through (a GraphInputHandle)
    source: OutputHandle | None = None


@dataclass(frozen=True)
class SubgraphInfo:
    """One graph called inside a job or graph, at ``path`` (dotted, relative to the container)."""

    path: str
    graph_name: str
    description: str | None = None
    inputs: tuple[GraphInputDef, ...] = ()
    outputs: tuple[GraphOutputDef, ...] = ()
    config: ConfigMapping | dict[str, Any] | None = None

    def prefixed(self, prefix: str) -> SubgraphInfo:
        def handle(h: OutputHandle | None) -> OutputHandle | None:
            if h is None or isinstance(h, GraphInputHandle):
                return h
            return dataclasses.replace(h, node=join(prefix, h.node))

        return dataclasses.replace(
            self, path=join(prefix, self.path),
            inputs=tuple(dataclasses.replace(i, targets=tuple((join(prefix, n), inp) for n, inp in i.targets))
                         for i in self.inputs),
            outputs=tuple(dataclasses.replace(o, source=handle(o.source)) for o in self.outputs))


@dataclass
class GraphStructure:
    """What flattening a graph keeps beside its flat nodes."""

    inputs: dict[str, GraphInputDef] = field(default_factory=dict)
    outputs: dict[str, GraphOutputDef] = field(default_factory=dict)
    # every graph nested inside, all levels, by dotted path
    subgraphs: dict[str, SubgraphInfo] = field(default_factory=dict)
    config: ConfigMapping | dict[str, Any] | None = None
    # the body's node specs as recorded, graph-input handles included (what calling the graph copies)
    specs: list[NodeSpec] = field(default_factory=list)

    def fed_by_input(self, node: str, input_name: str) -> bool:
        return any((node, input_name) in i.targets for i in self.inputs.values())


def strip_input_handles(spec: NodeSpec) -> NodeSpec:
    """``spec`` without the dependencies on graph inputs (the graph's own nodes only see op edges)."""
    deps: dict[str, Any] = {}
    for name, dep in spec.deps.items():
        if isinstance(dep, list):
            kept = [h for h in dep if not isinstance(h, GraphInputHandle)]
            if kept:
                deps[name] = kept
        elif not isinstance(dep, GraphInputHandle):
            deps[name] = dep
    return dataclasses.replace(spec, deps=deps) if deps != spec.deps else spec


def _input_targets(specs: list[NodeSpec]) -> dict[str, list[tuple[str, str]]]:
    targets: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        for input_name, dep in spec.deps.items():
            for h in dep if isinstance(dep, list) else [dep]:
                if isinstance(h, GraphInputHandle):
                    targets.setdefault(h.node, []).append((spec.name, input_name))
    return targets


# ---- @graph -----------------------------------------------------------------------------------------

def build_graph(body: Callable[..., Any], *, name: str | None, description: str | None,
                ins: Mapping[str, GraphIn] | None, out: GraphOut | Mapping[str, GraphOut] | None,
                config: ConfigMapping | dict[str, Any] | None) -> GraphDefinition:
    """Run a graph body under a composition and build its :class:`GraphDefinition`."""
    from .composition import Composition
    from .job import GraphDefinition

    graph_name = name or body.__name__
    params = []
    for p in inspect.signature(body).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise DefinitionError(f"graph '{graph_name}': *args/**kwargs parameters are not supported")
        if p.name in ("context", "config"):
            raise DefinitionError(f"graph '{graph_name}': a graph body takes no '{p.name}' (its parameters are "
                                  "its inputs; configure a graph with config=ConfigMapping(...))")
        params.append(p.name)
    for key in ins or {}:
        if key not in params:
            raise DefinitionError(f"graph '{graph_name}': ins names '{key}', which is not a parameter of "
                                  f"the graph function (parameters: {', '.join(params) or 'none'})")
    if config is not None and not isinstance(config, (ConfigMapping, dict)):
        raise DefinitionError(f"graph '{graph_name}': config= must be a ConfigMapping or a dict of the graph's "
                              f"run config ({{'ops': {{...}}}}), got {type(config).__name__}")
    with Composition(graph_name) as comp:
        returned = body(*(GraphInputHandle(p) for p in params))
    outputs = _graph_outputs(graph_name, returned, out)
    targets = _input_targets(list(comp.nodes.values()))
    inputs = {p: GraphInputDef(p, (ins or {}).get(p, GraphIn()).description, tuple(targets.get(p, ())))
              for p in params}
    structure = GraphStructure(inputs=inputs, outputs=outputs, subgraphs=dict(comp.graphs),
                               config=config, specs=list(comp.nodes.values()))
    return GraphDefinition(graph_name, [strip_input_handles(s) for s in comp.nodes.values()],
                           description=description or inspect.getdoc(body), structure=structure)


def _graph_outputs(graph_name: str, returned: Any, out: GraphOut | Mapping[str, GraphOut] | None
                   ) -> dict[str, GraphOutputDef]:
    declared: dict[str, GraphOut] | None
    if out is None:
        declared = None
    elif isinstance(out, GraphOut):
        declared = {"result": out}
    else:
        declared = dict(out)
    where = f"graph '{graph_name}'"
    if returned is None:
        if declared:
            raise DefinitionError(f"{where} declares output(s) {', '.join(declared)} but its body returns None")
        return {}
    if isinstance(returned, OutputHandle):
        names = list(declared or {"result": GraphOut()})
        if len(names) != 1:
            raise DefinitionError(f"{where} declares outputs {', '.join(names)} but returns one handle: return "
                                  "a dict {output name: handle}")
        values = {names[0]: returned}
    elif isinstance(returned, dict):
        values = dict(returned)
    elif isinstance(returned, tuple) and declared is not None:
        if len(returned) != len(declared):
            raise DefinitionError(f"{where} declares {len(declared)} outputs ({', '.join(declared)}) but "
                                  f"returns {len(returned)} handles")
        values = dict(zip(declared, returned, strict=True))
    elif isinstance(returned, tuple):
        raise DefinitionError(f"{where} returns a tuple: return a dict {{output name: handle}} to name several "
                              "outputs (or declare them in order with out={...})")
    else:
        raise DefinitionError(f"{where} must return an op's output handle, a dict of them or None, "
                              f"got {type(returned).__name__}")
    if declared is not None and set(values) != set(declared):
        raise DefinitionError(f"{where} declares outputs {', '.join(declared)} but returns "
                              f"{', '.join(map(str, values)) or 'none'}")
    result = {}
    for key, handle in values.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise DefinitionError(f"{where}: output name {key!r} must be a valid identifier")
        if not isinstance(handle, OutputHandle):
            raise DefinitionError(f"{where}: output '{key}' must be an op's output handle (or a graph input), "
                                  f"got {type(handle).__name__}")
        result[key] = GraphOutputDef(key, (declared or {}).get(key, GraphOut()).description, handle)
    return result


# ---- calling a graph inside a body ------------------------------------------------------------------

class GraphOutputs(tuple):
    """The handles of a graph's several outputs: unpack them in declaration order or read them by name
    (``res.total``, ``res["total"]``)."""

    _names: tuple[str, ...]
    _graph: str

    def __new__(cls, graph: str, values: dict[str, Any]) -> GraphOutputs:
        obj = super().__new__(cls, values.values())
        obj._names = tuple(values)
        obj._graph = graph
        return obj

    def _unknown(self, name: str) -> DefinitionError:
        return DefinitionError(f"graph '{self._graph}' has no output '{name}' (outputs: {', '.join(self._names)})")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy/pickle probing dunders: not an output
            raise AttributeError(name)
        if name in self._names:
            return self[self._names.index(name)]
        raise self._unknown(name)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._names:
                raise self._unknown(key)
            key = self._names.index(key)
        return super().__getitem__(key)


def call_graph(graph: GraphDefinition, alias: str | None, args: tuple, kwargs: dict) -> Any:
    """``graph(...)`` or ``graph.alias(name)(...)`` inside a body: flatten it into the body."""
    comp = current_composition()
    label = alias or graph.name
    if comp is None:
        raise DefinitionError(f"graph '{label}' can only be called inside a @job or @graph body (to run it, "
                              "turn it into a job with .to_job())")
    from .job import JobDefinition

    if isinstance(graph, JobDefinition):
        raise DefinitionError(f"'{comp.job_name}': job '{graph.name}' cannot be called inside a body; call the "
                              "@graph it was made from instead")
    name = comp._node_name(graph, alias)
    input_names = list(graph.structure.inputs)
    where = f"'{comp.job_name}': graph '{name}'"
    if len(args) > len(input_names):
        raise DefinitionError(f"{where} takes {len(input_names)} input(s) ({', '.join(input_names) or 'none'}) "
                              f"but got {len(args)}")
    given: dict[str, Any] = dict(zip(input_names, args, strict=False))
    for key, value in kwargs.items():
        if key not in graph.structure.inputs:
            raise DefinitionError(f"{where} has no input '{key}' (inputs: {', '.join(input_names) or 'none'})")
        if key in given:
            raise DefinitionError(f"{where} got input '{key}' twice")
        given[key] = value
    for key, value in given.items():
        ok = isinstance(value, OutputHandle) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, OutputHandle) for v in value))
        if not ok:
            raise DefinitionError(f"{where}: input '{key}' must be the output of an op or graph (or a list of "
                                  f"them), got {type(value).__name__}. Pass constants through config.")
        if isinstance(value, tuple):
            given[key] = list(value)
    return inline_graph(comp, graph, name, given)


def inline_graph(comp: Composition, graph: GraphDefinition, prefix: str, given: dict[str, Any]) -> Any:
    """Copy ``graph``'s nodes into ``comp`` under ``prefix`` (``prefix.node``), its graph inputs
    replaced by ``given`` (input name -> handle or list of handles), and record the graph in
    ``comp.graphs``. Returns the handles of its outputs: one handle for a single output, a
    :class:`GraphOutputs` for several, None for none.

    The building block for calling a graph, also for mapping one over a dynamic output (which
    passes the mapped handle as ``given`` and a prefix of its own).
    """
    structure = graph.structure
    where = f"'{comp.job_name}': graph '{prefix}'"
    for input_def in structure.inputs.values():
        if input_def.name in given:
            continue
        needed = [f"{n}.{i}" for n, i in input_def.targets
                  if not _input_has_default(graph, structure, n, i)]
        if needed:
            raise DefinitionError(f"{where}: input '{input_def.name}' is not connected (it feeds "
                                  f"{', '.join(needed)}, which have no default value)")

    def substitute(h: OutputHandle) -> OutputHandle | list[OutputHandle] | None:
        if isinstance(h, GraphInputHandle):
            return given.get(h.node)
        return dataclasses.replace(h, node=join(prefix, h.node))

    for spec in structure.specs:
        deps: dict[str, Any] = {}
        for input_name, dep in spec.deps.items():
            if isinstance(dep, list):
                items: list[OutputHandle] = []
                for h in dep:
                    value = substitute(h)
                    items.extend(value if isinstance(value, list) else [value] if value is not None else [])
                if items:
                    deps[input_name] = items
            else:
                value = substitute(dep)
                if value is not None:
                    deps[input_name] = value
        name = join(prefix, spec.name)
        comp.nodes[name] = dataclasses.replace(spec, name=name, deps=deps)

    graphs = comp.graphs
    graphs[prefix] = SubgraphInfo(path="", graph_name=graph.name, description=graph.description,
                                  inputs=tuple(structure.inputs.values()),
                                  outputs=tuple(structure.outputs.values()),
                                  config=structure.config).prefixed(prefix)
    for sub in structure.subgraphs.values():
        graphs[join(prefix, sub.path)] = sub.prefixed(prefix)

    outputs = {name: substitute(o.source) for name, o in structure.outputs.items()}
    if not outputs:
        return None
    if list(outputs) == ["result"]:
        return outputs["result"]
    return GraphOutputs(prefix, outputs)


def _input_has_default(graph: GraphDefinition, structure: GraphStructure, node: str, input_name: str) -> bool:
    spec = next(s for s in structure.specs if s.name == node)
    return spec.op.ins[input_name].has_default


@dataclass(frozen=True)
class AliasedGraph:
    graph: GraphDefinition
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_graph(self.graph, self.name, args, kwargs)


# ---- checks when a graph becomes a job -------------------------------------------------------------

def check_job_structure(job_name: str, structure: GraphStructure, graph: GraphDefinition) -> GraphStructure:
    """A job takes no inputs: every graph input of the graph it is made from must be unneeded."""
    for input_def in structure.inputs.values():
        needed = [f"{n}.{i}" for n, i in input_def.targets if not _input_has_default(graph, structure, n, i)]
        if needed:
            raise DefinitionError(f"job '{job_name}': input '{input_def.name}' of graph '{graph.name}' is not "
                                  f"connected (it feeds {', '.join(needed)}); a job takes no inputs, so call "
                                  "the graph inside a @job body that passes it an op's output")
    return GraphStructure(subgraphs=dict(structure.subgraphs))


# ---- snapshots ------------------------------------------------------------------------------------

def graphs_snapshot(structure: GraphStructure) -> list[dict[str, Any]]:
    """The JSON of :class:`runyard.codeserver.snapshot.GraphSnapshot` for every nested graph, parents
    first."""
    from .config import config_json_schema

    out = []
    for path in sorted(structure.subgraphs, key=lambda p: (p.count(SEP), p)):
        info = structure.subgraphs[path]
        mapping = info.config if isinstance(info.config, ConfigMapping) else None
        outputs = []
        for o in info.outputs:
            passed = isinstance(o.source, GraphInputHandle)
            outputs.append({"name": o.name, "description": o.description,
                            "source": None if passed or o.source is None else
                            {"op": o.source.node, "output": o.source.output},
                            "from_input": o.source.node if passed else None})
        out.append({"path": path, "name": info.graph_name, "description": info.description,
                    "inputs": [{"name": i.name, "description": i.description,
                                "targets": [{"op": n, "input": inp} for n, inp in i.targets]} for i in info.inputs],
                    "outputs": outputs, "config_mapped": mapping is not None,
                    "config_schema": config_json_schema(mapping.config_schema) if mapping else None})
    return out
