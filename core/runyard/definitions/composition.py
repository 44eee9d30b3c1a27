"""Building a graph by calling ops inside a ``@job`` body.

Each op call inside the body records a node and returns :class:`OutputHandle` objects; passing a
handle (or a list of handles, for fan-in) to another op's input records a dependency.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError

_current: contextvars.ContextVar[Composition | None] = contextvars.ContextVar("runyard_composition",
                                                                              default=None)


def current_composition() -> Composition | None:
    return _current.get()


@dataclass(frozen=True)
class OutputHandle:
    node: str
    output: str = "result"

    def __iter__(self):
        raise DefinitionError(
            f"the output of '{self.node}' is only known at run time; it cannot be iterated or "
            "unpacked inside a job body. Use outs= for several outputs.")

    def __bool__(self):
        raise DefinitionError(f"the output of '{self.node}' cannot be used in a condition inside a "
                              "job body; job bodies only wire ops together.")

    def map(self, fn):
        """Dynamic fan-out: run ``fn`` (an op, or a function calling ops) once per value of this
        DynamicOut; see runyard.definitions.dynamic."""
        from .dynamic import map_handle

        return map_handle(self, fn)

    def collect(self):
        """Fan a dynamic (or mapped) output back in: one list of every value."""
        from .dynamic import collect_handle

        return collect_handle(self)


@dataclass
class NodeSpec:
    name: str
    op: Any
    # input name -> a single OutputHandle, or a list of them (fan-in)
    deps: dict[str, OutputHandle | list[OutputHandle]] = field(default_factory=dict)
    #: hooks attached with ``op.with_hooks({...})`` (runyard.definitions.hooks)
    hooks: frozenset = frozenset()


class Composition:
    def __init__(self, job_name: str):
        self.job_name = job_name
        self.nodes: dict[str, NodeSpec] = {}
        # graphs called in the body, all levels, by dotted path (runyard.definitions.graphs)
        self.graphs: dict[str, Any] = {}
        self._uses: dict[str, int] = {}

    def __enter__(self) -> Composition:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _current.reset(self._token)

    def _node_name(self, op: Any, alias: str | None) -> str:
        if alias:
            if alias in self.nodes or alias in self.graphs:
                raise DefinitionError(f"job '{self.job_name}': two ops are named '{alias}'")
            if "." in alias:
                raise DefinitionError(f"job '{self.job_name}': node name '{alias}' must not contain '.' "
                                      "(it joins graph names: outer.inner.op)")
            return alias
        count = self._uses.get(op.name, 0) + 1
        self._uses[op.name] = count
        name = op.name if count == 1 else f"{op.name}_{count}"
        while name in self.nodes or name in self.graphs:
            count += 1
            self._uses[op.name] = count
            name = f"{op.name}_{count}"
        return name

    def add_invocation(self, op: Any, alias: str | None, args: tuple, kwargs: dict,
                       hooks: frozenset = frozenset()) -> Any:
        name = self._node_name(op, alias)
        input_names = list(op.ins)
        if len(args) > len(input_names):
            raise DefinitionError(f"job '{self.job_name}': op '{name}' takes {len(input_names)} "
                                  f"input(s) ({', '.join(input_names) or 'none'}) but got {len(args)}")
        given: dict[str, Any] = dict(zip(input_names, args, strict=False))
        for key, value in kwargs.items():
            if key not in op.ins:
                raise DefinitionError(f"job '{self.job_name}': op '{name}' has no input '{key}' "
                                      f"(inputs: {', '.join(input_names) or 'none'})")
            if key in given:
                raise DefinitionError(f"job '{self.job_name}': op '{name}' got input '{key}' twice")
            given[key] = value
        deps: dict[str, OutputHandle | list[OutputHandle]] = {}
        for key, value in given.items():
            if isinstance(value, OutputHandle):
                deps[key] = value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, OutputHandle) for v in value):
                deps[key] = list(value)
            else:
                raise DefinitionError(
                    f"job '{self.job_name}': input '{key}' of op '{name}' must be the output of another "
                    f"op (or a list of them), got {type(value).__name__}. Pass constants through config.")
        from .dynamic import check_invocation  # a DynamicOut only through .map() / .collect()

        check_invocation(self, name, deps)
        self.nodes[name] = NodeSpec(name=name, op=op, deps=deps, hooks=hooks)
        handles = tuple(OutputHandle(name, out_name) for out_name in op.outs)
        return handles[0] if len(handles) == 1 else handles
