"""Graphs and jobs. A job is a graph of op nodes plus what it needs to run: resources, an executor
and default run config.

Build one with ``@job`` (call ops inside the body) or with :class:`GraphDefinition` directly
(explicit dependencies). Both validate at definition time: cycles, unconnected required inputs,
duplicate or unknown node names and missing resources fail with a message naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError
from .composition import Composition, NodeSpec, OutputHandle
from .graphs import GraphStructure
from .hooks import check_hooks, hook_resource_users
from .op import OpDefinition


@dataclass(frozen=True)
class DependencyOn:
    """An explicit dependency: the value of ``output`` of node ``node``."""

    node: str
    output: str = "result"


@dataclass
class Node:
    name: str
    op: OpDefinition
    # input name -> list of (upstream node, output); ``fan_in`` inputs receive a list of values
    inputs: dict[str, list[tuple[str, str]]]
    fan_in: frozenset[str] = frozenset()
    #: hooks attached to this node with ``op.with_hooks`` (a job's own hooks are in ``job.hook_defs``)
    hooks: frozenset = frozenset()
    #: inputs that receive ``.collect()``: every value of a dynamic or mapped output, as a list
    collect: frozenset[str] = frozenset()

    @property
    def upstream(self) -> set[str]:
        return {node for deps in self.inputs.values() for node, _ in deps}


class GraphDefinition:
    def __init__(self, name: str, nodes: list[NodeSpec] | None = None, *,
                 ops: list[OpDefinition] | None = None,
                 dependencies: dict[str, dict[str, Any]] | None = None, description: str | None = None,
                 structure: GraphStructure | None = None):
        if not name or not name.replace("-", "_").isidentifier():
            raise DefinitionError(f"'{name}' is not a valid job or graph name (use letters, digits, _)")
        self.name = name
        self.description = description
        #: the nested graphs, and this graph's own inputs and outputs (runyard.definitions.graphs)
        self.structure = structure or GraphStructure()
        specs = list(nodes or [])
        if ops is not None:
            specs.extend(self._specs_from_explicit(ops, dependencies or {}))
        elif dependencies:
            raise DefinitionError(f"graph '{name}': dependencies= needs ops=")
        self.nodes: dict[str, Node] = {}
        for spec in specs:
            if spec.name in self.nodes:
                raise DefinitionError(f"graph '{name}': two ops are named '{spec.name}'")
            self.nodes[spec.name] = self._node_from_spec(spec)
        if not self.nodes:
            raise DefinitionError(f"graph '{name}' has no ops")
        self._check_inputs()
        self.topological_order: list[str] = self._toposort()
        from .dynamic import mapped_nodes

        mapped_nodes(self)  # dynamic fan-out that cannot run fails here, naming the op

    # ---- building --------------------------------------------------------------------------------
    def _specs_from_explicit(self, ops: list[OpDefinition], deps: dict[str, dict[str, Any]]) -> list[NodeSpec]:
        by_name: dict[str, OpDefinition] = {}
        for op in ops:
            if not isinstance(op, OpDefinition):
                raise DefinitionError(f"graph '{self.name}': {op!r} is not an op (decorate it with @op)")
            if op.name in by_name and by_name[op.name] is not op:
                raise DefinitionError(f"graph '{self.name}': two different ops are named '{op.name}'")
            by_name[op.name] = op
        for node_name in deps:
            if node_name not in by_name:
                raise DefinitionError(f"graph '{self.name}': dependencies name unknown op '{node_name}'")
        specs = []
        for op_name, op in by_name.items():
            node_deps: dict[str, Any] = {}
            for input_name, dep in deps.get(op_name, {}).items():
                items = dep if isinstance(dep, list) else [dep]
                handles = []
                for d in items:
                    d = DependencyOn(d) if isinstance(d, str) else d
                    if not isinstance(d, DependencyOn):
                        raise DefinitionError(f"graph '{self.name}': dependency of {op_name}.{input_name} "
                                              "must be a DependencyOn or a node name")
                    handles.append(OutputHandle(d.node, d.output))
                node_deps[input_name] = handles if isinstance(dep, list) else handles[0]
            specs.append(NodeSpec(name=op_name, op=op, deps=node_deps))
        return specs

    def _node_from_spec(self, spec: NodeSpec) -> Node:
        inputs: dict[str, list[tuple[str, str]]] = {}
        fan_in = set()
        for input_name, dep in spec.deps.items():
            if input_name not in spec.op.ins:
                raise DefinitionError(f"graph '{self.name}': op '{spec.name}' has no input '{input_name}'")
            if isinstance(dep, list):
                fan_in.add(input_name)
                inputs[input_name] = [(h.node, h.output) for h in dep]
            else:
                inputs[input_name] = [(dep.node, dep.output)]
        collect = frozenset(k for k, dep in spec.deps.items() if getattr(dep, "collected", False))
        return Node(spec.name, spec.op, inputs, frozenset(fan_in), hooks=spec.hooks, collect=collect)

    def _check_inputs(self) -> None:
        for node in self.nodes.values():
            for input_name, spec in node.op.ins.items():
                if (input_name not in node.inputs and not spec.has_default
                        and not self.structure.fed_by_input(node.name, input_name)):
                    raise DefinitionError(
                        f"graph '{self.name}': input '{input_name}' of op '{node.name}' is not connected "
                        "to any upstream output and has no default value")
            for input_name, deps in node.inputs.items():
                for up_node, up_out in deps:
                    if up_node not in self.nodes:
                        raise DefinitionError(f"graph '{self.name}': op '{node.name}' input '{input_name}' "
                                              f"depends on unknown op '{up_node}'")
                    if up_out not in self.nodes[up_node].op.outs:
                        raise DefinitionError(f"graph '{self.name}': op '{up_node}' has no output "
                                              f"'{up_out}' (needed by {node.name}.{input_name})")

    def _toposort(self) -> list[str]:
        # Kahn's algorithm, keeping definition order among ready nodes so plans are stable.
        indegree = {name: len(node.upstream) for name, node in self.nodes.items()}
        downstream: dict[str, list[str]] = {name: [] for name in self.nodes}
        for name, node in self.nodes.items():
            for up in node.upstream:
                downstream[up].append(name)
        ready = [n for n in self.nodes if indegree[n] == 0]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for d in downstream[name]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    ready.append(d)
        if len(order) != len(self.nodes):
            raise DefinitionError(f"graph '{self.name}' has a cycle: {' -> '.join(self._find_cycle())}")
        return order

    def _find_cycle(self) -> list[str]:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(name: str) -> list[str] | None:
            state[name] = 1
            stack.append(name)
            for up in sorted(self.nodes[name].upstream):
                if state.get(up) == 1:
                    return stack[stack.index(up):] + [up]
                if up not in state and (cycle := visit(up)):
                    return cycle
            stack.pop()
            state[name] = 2
            return None

        for n in self.nodes:
            if n not in state and (cycle := visit(n)):
                return list(reversed(cycle))
        return []

    def downstream_of(self, name: str) -> set[str]:
        out: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for n, node in self.nodes.items():
                if current in node.upstream and n not in out:
                    out.add(n)
                    frontier.append(n)
        return out

    # ---- runyard.definitions.graph_view.JobGraph (what op selection and re-execution read) ---------
    def has_node(self, node: str) -> bool:
        return node in self.nodes

    def upstream_of(self, node: str) -> set[str]:
        return self.nodes[node].upstream

    def input_sources(self, node: str) -> dict[str, list[tuple[str, str]]]:
        return self.nodes[node].inputs

    def is_nothing_output(self, node: str, output: str) -> bool:
        return self.nodes[node].op.outs[output].is_nothing

    def graph_members(self, path: str) -> list[str]:
        """The nodes inside the nested graph at dotted ``path``, all levels, in plan order (empty when
        there is no such graph)."""
        if path not in self.structure.subgraphs:
            return []
        return [n for n in self.topological_order if n.startswith(path + ".")]

    # ---- calling a graph inside a @job or @graph body (runyard.definitions.graphs) -----------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .graphs import call_graph

        return call_graph(self, None, args, kwargs)

    def alias(self, name: str) -> Any:
        """Use this graph under another node name in a body: ``clean.alias("clean_users")(rows)``."""
        from .graphs import AliasedGraph

        return AliasedGraph(self, name)

    def execute_in_process(self, run_config: dict[str, Any] | None = None, *, instance: Any = None,
                           tags: dict[str, str] | None = None, op_selection: str | list[str] | None = None,
                           partition_key: str | None = None, raise_on_error: bool = True,
                           resources: dict[str, Any] | None = None) -> Any:
        """Run this job (a graph: as ``to_job()``) in this process, on an ephemeral instance unless
        ``instance`` is given; return a JobExecutionResult. See runyard.execution.in_process_run."""
        from ..execution.in_process_run import execute_in_process

        return execute_in_process(self, run_config=run_config, instance=instance, tags=tags,
                                  op_selection=op_selection, partition_key=partition_key,
                                  raise_on_error=raise_on_error, resources=resources)

    def to_job(self, name: str | None = None, **kwargs: Any) -> JobDefinition:
        from .graph_config import job_config
        from .graphs import check_job_structure

        job_name = name or self.name
        structure = check_job_structure(job_name, self.structure, self)
        kwargs["config"] = job_config(job_name, self.structure, kwargs.get("config"))
        return JobDefinition(job_name, list(self._specs()), description=self.description, structure=structure,
                             **kwargs)

    def _specs(self):
        for node in self.nodes.values():
            deps: dict[str, Any] = {}
            for input_name, items in node.inputs.items():
                handle_cls = OutputHandle
                if input_name in node.collect:
                    from .dynamic import CollectedHandle as handle_cls
                handles = [handle_cls(n, o) for n, o in items]
                deps[input_name] = handles if input_name in node.fan_in else handles[0]
            yield NodeSpec(node.name, node.op, deps, hooks=node.hooks)


@dataclass
class _JobOptions:
    resources: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    executor: Any = None


class JobDefinition(GraphDefinition):
    """A graph that can run: resources, default run config, tags and a default executor."""

    def __init__(self, name: str, nodes: list[NodeSpec] | None = None, *, ops=None, dependencies=None,
                 resources: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, executor: str | dict[str, Any] | None = None,
                 description: str | None = None, hooks: Any = None, structure: GraphStructure | None = None,
                 partitions_def: Any = None):
        super().__init__(name, nodes, ops=ops, dependencies=dependencies, description=description,
                         structure=structure)
        from .partitioned_config import PartitionedConfig, partitions_of_job

        #: the job's partitions (a ``PartitionsDefinition``; None: not partitioned) and, when its
        #: config is a ``PartitionedConfig``, that config (run config per partition)
        self.partitions_def, self.partitioned_config = partitions_of_job(name, partitions_def, config)
        if isinstance(config, PartitionedConfig):
            config = None
        #: hooks run for every op of the job (``@job(hooks={...})``), besides each node's own
        self.hook_defs = check_hooks(hooks, f"job '{name}'")
        self._own_resources = dict(resources or {})
        self.resource_defs: dict[str, Any] = dict(self._own_resources)
        self.default_run_config = dict(config or {})
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if isinstance(executor, dict):
            (self.executor_name, self.executor_config), = executor.items()
        else:
            self.executor_name, self.executor_config = executor or "in_process", {}
        self._check_resources(final=False)

    def with_resources(self, resources: dict[str, Any]) -> JobDefinition:
        """Bind Definitions-level resources; the job's own resources win on a clash."""
        self.resource_defs = {**resources, **self._own_resources}
        self._check_resources(final=True)
        return self

    def required_resource_keys(self) -> set[str]:
        """Resources the ops ask for, plus any non-default IO manager their outputs name."""
        keys = {key for node in self.nodes.values() for key in node.op.required_resource_keys}
        keys |= {out.io_manager_key for node in self.nodes.values() for out in node.op.outs.values()
                 if out.io_manager_key != "io_manager"}
        keys |= set(hook_resource_users(self))
        return keys

    def _check_resources(self, final: bool) -> None:
        if not final:
            return
        missing = sorted(self.required_resource_keys() - set(self.resource_defs))
        if missing:
            hook_users = hook_resource_users(self)
            users = {k: sorted(n.name for n in self.nodes.values() if k in n.op.required_resource_keys)
                     + [f"hook '{h}'" for h in hook_users.get(k, [])] for k in missing}
            detail = "; ".join(f"'{k}' (needed by {', '.join(v)})" for k, v in users.items())
            raise DefinitionError(f"job '{self.name}' is missing resource(s): {detail}")

    def run_request_for_partition(self, partition_key: str, current_time: Any = None
                                  ) -> tuple[dict[str, Any], dict[str, str]]:
        """``(run config, tags)`` of a run of ``partition_key``: the partitioned config's run config
        (else the job's default run config) and tags, plus ``runyard/partition``. Raises
        :class:`runyard.definitions.partitions.PartitionKeyError` naming the job and the key when the
        job has no partitions or no such partition at ``current_time`` (default: now)."""
        from .partitioned_config import run_request_for_partition

        return run_request_for_partition(self, partition_key, current_time)

    def __repr__(self) -> str:
        return f"<JobDefinition {self.name} ({len(self.nodes)} ops)>"


def job(fn: Callable[[], Any] | None = None, *, name: str | None = None,
        resources: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None, executor: str | dict[str, Any] | None = None,
        description: str | None = None, hooks: Any = None, partitions_def: Any = None) -> Any:
    """Declare a job by calling ops inside the decorated function's body. ``hooks``: a set of
    success/failure hooks run for every op (runyard.definitions.hooks). ``partitions_def``: the job's
    partitions; ``config`` may be a ``PartitionedConfig`` (run config per partition, whose partitions
    the job then has) (runyard.definitions.partitions)."""

    def decorate(body: Callable[[], Any]) -> JobDefinition:
        job_name = name or body.__name__
        with Composition(job_name) as comp:
            body()
        import inspect

        return JobDefinition(job_name, list(comp.nodes.values()), resources=resources, config=config,
                             tags=tags, executor=executor, description=description or inspect.getdoc(body),
                             hooks=hooks, structure=GraphStructure(subgraphs=dict(comp.graphs)),
                             partitions_def=partitions_def)

    return decorate(fn) if fn is not None else decorate


def graph(fn: Callable[..., Any] | None = None, *, name: str | None = None,
          description: str | None = None, ins: dict[str, Any] | None = None, out: Any = None,
          config: Any = None) -> Any:
    """Declare a reusable graph; turn it into jobs with ``.to_job(resources=..., config=...)`` or call
    it inside a ``@job``/``@graph`` body. The function's parameters are the graph's inputs and it
    returns its output handle(s): one, a dict ``{name: handle}``, or None (docs/graphs.md).
    ``ins``/``out``: :class:`~runyard.definitions.graphs.GraphIn`/``GraphOut`` descriptions;
    ``config``: a :class:`~runyard.definitions.graphs.ConfigMapping` or default config of its ops."""
    from .graphs import build_graph

    def decorate(body: Callable[..., Any]) -> GraphDefinition:
        return build_graph(body, name=name, description=description, ins=ins, out=out, config=config)

    return decorate(fn) if fn is not None else decorate
