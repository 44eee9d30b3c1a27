"""Dynamic fan-out in a job body: ``handle.map(fn)`` and ``handle.collect()``, and what a graph's
nodes become because of them.

``dynamic_op().map(process)`` records ``process`` once, as a *mapped node*: at run time it becomes
one step per mapping key the dynamic output produced, keyed ``process[mapping_key]``. An op that
takes the output of a mapped node (``.map(lambda x: b(a(x)))``, or ``.map(a).map(b)``) is mapped
over the same keys: ``b[k]`` reads ``a[k]``. ``.collect()`` fans the values back in: the op that
takes it runs once and receives a list, in the order the dynamic op produced the mapping keys.

Nodes stay flat (node name == step key of an unmapped node); a mapped node's steps are added to a
run's plan when its dynamic op finishes (:mod:`runyard.execution.dynamic`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .composition import OutputHandle, current_composition

if TYPE_CHECKING:  # pragma: no cover
    from .composition import Composition
    from .job import GraphDefinition


class MappedHandle(OutputHandle):
    """The value of one mapping key of a dynamic output: what ``.map(fn)`` passes to ``fn``."""

    mapped = True


class CollectedHandle(OutputHandle):
    """Every value of a dynamic (or mapped) output, as one list: what ``.collect()`` returns."""

    collected = True


# ---- step keys -------------------------------------------------------------------------------------
def mapped_step_key(node: str, mapping_key: str) -> str:
    return f"{node}[{mapping_key}]"


def split_step_key(step_key: str) -> tuple[str, str | None]:
    """``("process", "file_1")`` for ``"process[file_1]"``; ``(step_key, None)`` for an unmapped step."""
    if step_key.endswith("]"):
        at = step_key.find("[")
        if at > 0:
            return step_key[:at], step_key[at + 1:-1]
    return step_key, None


def node_of_step(step_key: str) -> str:
    return split_step_key(step_key)[0]


# ---- job bodies ------------------------------------------------------------------------------------
def _composition(handle: OutputHandle, what: str) -> Composition:
    composition = current_composition()
    if composition is None:
        raise DefinitionError(f"{what} of the output of '{handle.node}' can only be used inside a @job "
                              "or @graph body")
    return composition


def _source_kind(composition: Composition, handle: OutputHandle) -> str:
    """``"dynamic"`` (a DynamicOut), ``"mapped"`` (an output of a mapped node) or ``"static"``."""
    spec = composition.nodes.get(handle.node)
    if spec is None:
        return "static"
    out_def = spec.op.outs.get(handle.output)
    if out_def is not None and out_def.is_dynamic:
        return "dynamic"
    if _spec_is_mapped(composition, spec):
        return "mapped"
    return "static"


def _spec_is_mapped(composition: Composition, spec: Any) -> bool:
    for dep in spec.deps.values():
        if isinstance(dep, list) or getattr(dep, "collected", False):
            continue
        if getattr(dep, "mapped", False):
            return True
        up = composition.nodes.get(dep.node)
        if up is not None and _spec_is_mapped(composition, up):
            return True
    return False


def map_handle(handle: OutputHandle, fn: Callable[..., Any]) -> Any:
    """``handle.map(fn)``: call ``fn`` (an op, or a function calling ops) on the per-key value."""
    composition = _composition(handle, ".map()")
    if not callable(fn):
        raise DefinitionError(f".map() on the output of '{handle.node}' needs an op or a function, "
                              f"got {type(fn).__name__}")
    kind = _source_kind(composition, handle)
    if kind == "static":
        raise DefinitionError(f"job '{composition.job_name}': output '{handle.output}' of '{handle.node}' is "
                              "not dynamic: .map() needs a DynamicOut output (or the output of a mapped op)")
    arg = MappedHandle(handle.node, handle.output) if kind == "dynamic" else OutputHandle(handle.node,
                                                                                         handle.output)
    return fn(arg)


def collect_handle(handle: OutputHandle) -> CollectedHandle:
    """``handle.collect()``: every value of a dynamic or mapped output, fanned in as one list."""
    composition = _composition(handle, ".collect()")
    if _source_kind(composition, handle) == "static":
        raise DefinitionError(f"job '{composition.job_name}': output '{handle.output}' of '{handle.node}' is "
                              "not dynamic: .collect() needs a DynamicOut output or the output of a mapped op")
    return CollectedHandle(handle.node, handle.output)


def check_invocation(composition: Composition, node: str, deps: dict[str, Any]) -> None:
    """An op call in a job body: a dynamic output is only passed through ``.map()`` or ``.collect()``,
    a collected output on its own (not inside a fan-in list)."""
    for input_name, dep in deps.items():
        for item in dep if isinstance(dep, list) else [dep]:
            if isinstance(dep, list) and getattr(item, "collected", False):
                raise DefinitionError(f"job '{composition.job_name}': input '{input_name}' of op '{node}' mixes "
                                      ".collect() into a fan-in list; pass the collected output on its own")
            if getattr(item, "mapped", False) or getattr(item, "collected", False):
                continue
            spec = composition.nodes.get(item.node)
            out_def = spec.op.outs.get(item.output) if spec is not None else None
            if out_def is not None and out_def.is_dynamic:
                raise DefinitionError(
                    f"job '{composition.job_name}': input '{input_name}' of op '{node}' takes the DynamicOut "
                    f"'{item.output}' of '{item.node}' directly; use .map(op) to run '{node}' once per value "
                    "or .collect() to receive them all as a list")


# ---- graphs ----------------------------------------------------------------------------------------
def mapped_nodes(graph: GraphDefinition) -> dict[str, tuple[str, str]]:
    """``{mapped node: (dynamic node, dynamic output)}``: the nodes that run once per mapping key, and
    the output whose keys they run for (cached on the graph). Raises :class:`DefinitionError` for
    what runyard cannot run: a node mapped over two dynamic outputs, a dynamic output inside a mapped
    node (nested fan-out), a collect of a static output, a mapped output in a fan-in list."""
    cached = graph.__dict__.get("_mapped_nodes")
    if cached is not None:
        return cached
    mapped: dict[str, tuple[str, str]] = {}
    for name in graph.topological_order:
        node = graph.nodes[name]
        sources: set[tuple[str, str]] = set()
        for input_name, deps in node.inputs.items():
            collect = input_name in getattr(node, "collect", ())
            for up, out in deps:
                up_dynamic = graph.nodes[up].op.outs[out].is_dynamic
                source = (up, out) if up_dynamic else mapped.get(up)
                if collect:
                    if source is None:
                        raise DefinitionError(f"graph '{graph.name}': input '{input_name}' of op '{name}' collects "
                                              f"output '{out}' of '{up}', which is not dynamic")
                    continue
                if source is None:
                    continue
                if input_name in node.fan_in:
                    raise DefinitionError(f"graph '{graph.name}': input '{input_name}' of op '{name}' fans in "
                                          f"the mapped output '{out}' of '{up}'; use .collect() instead")
                if up_dynamic and up in mapped:
                    raise DefinitionError(f"graph '{graph.name}': op '{up}' is mapped and has a DynamicOut; "
                                          "nested dynamic fan-out is not supported (collect first)")
                sources.add(source)
        if len(sources) > 1:
            names = ", ".join(f"{n}.{o}" for n, o in sorted(sources))
            raise DefinitionError(f"graph '{graph.name}': op '{name}' is mapped over several dynamic outputs "
                                  f"({names}); a mapped op follows one")
        if sources:
            mapped[name] = sources.pop()
    for name in mapped:
        if any(out.is_dynamic for out in graph.nodes[name].op.outs.values()):
            raise DefinitionError(f"graph '{graph.name}': op '{name}' is mapped and has a DynamicOut; nested "
                                  "dynamic fan-out is not supported (collect first)")
    graph.__dict__["_mapped_nodes"] = mapped
    return mapped


def has_dynamic(graph: GraphDefinition) -> bool:
    """Whether any op of the graph has a DynamicOut (its runs' plans grow at run time)."""
    return any(out.is_dynamic for node in graph.nodes.values() for out in node.op.outs.values())
