"""Ops: the units of computation. ``@op`` turns a function into an :class:`OpDefinition`.

The function's parameters say what the op needs:

* a first parameter named ``context`` receives the :class:`runyard.OpContext`;
* a parameter named ``config`` annotated with a :class:`runyard.Config` subclass receives the op's
  validated config;
* every other parameter is an input, typed by its annotation; a default makes it optional;
* the return annotation types the single output ``result``; ``-> None`` makes an output that only
  orders steps. Several outputs: ``outs={"a": Out(int), "b": Out(str)}`` and return a tuple.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .types import inspect_empty

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

DEFAULT_OUTPUT = "result"


@dataclass(frozen=True)
class Out:
    """An output: its type (checked at run time) and whether it is stored by the IO manager."""

    type: Any = inspect_empty
    description: str | None = None
    io_manager_key: str = "io_manager"
    #: False: the op may leave it out (``yield Output(...)`` only on one branch); what is
    #: downstream of it is then skipped. See runyard.definitions.outputs.
    is_required: bool = True

    @property
    def is_nothing(self) -> bool:
        return self.type is None or self.type is type(None)

    @property
    def is_dynamic(self) -> bool:
        """A :class:`~runyard.definitions.outputs.DynamicOut`: any number of values, one per mapping key."""
        return False


@dataclass(frozen=True)
class In:
    """An op input: its type, description and default. (The docstring is not optional: without one,
    Python 3.11.0-3.11.3's dataclass builds one from the signature and fails on an ``inspect.empty``
    default, as Debian 12's Python 3.11.2 does.)"""

    type: Any = inspect_empty
    description: str | None = None
    default: Any = inspect_empty

    @property
    def has_default(self) -> bool:
        return self.default is not inspect_empty


@dataclass
class OpDefinition:
    name: str
    fn: Callable[..., Any]
    ins: dict[str, In]
    outs: dict[str, Out]
    config_model: type[BaseModel] | None = None
    required_resource_keys: frozenset[str] = frozenset()
    retry_policy: Any = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    takes_context: bool = False

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def alias(self, name: str) -> _AliasedOp:
        """Use this op under another node name in a job: ``extract.alias("extract_users")()``."""
        return _AliasedOp(self, name)

    def with_hooks(self, hook_defs: Any) -> _AliasedOp:
        """Use this op with hooks in a job body: ``load.with_hooks({notify})(rows)``
        (see runyard.definitions.hooks)."""
        from .hooks import check_hooks

        return _AliasedOp(self, None, check_hooks(hook_defs, f"op '{self.name}'.with_hooks"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .composition import current_composition

        composition = current_composition()
        if composition is not None:
            return composition.add_invocation(self, None, args, kwargs)
        # Outside a job body: a direct call, for unit tests (runyard.execution.direct, docs/testing.md)
        from ..execution.direct import invoke_op

        return invoke_op(self, args, kwargs)


@dataclass(frozen=True)
class _AliasedOp:
    """An op as a job body will use it: under another node name and/or with hooks."""

    op: OpDefinition
    name: str | None
    hooks: frozenset = frozenset()

    def alias(self, name: str) -> _AliasedOp:
        return _AliasedOp(self.op, name, self.hooks)

    def with_hooks(self, hook_defs: Any) -> _AliasedOp:
        from .hooks import check_hooks

        return _AliasedOp(self.op, self.name,
                          self.hooks | check_hooks(hook_defs, f"op '{self.name or self.op.name}'.with_hooks"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .composition import current_composition

        composition = current_composition()
        if composition is None:
            what = f"op alias '{self.name}'" if self.name else f"op '{self.op.name}' with hooks"
            raise DefinitionError(f"{what} can only be called inside a @job body")
        if self.hooks:
            return composition.add_invocation(self.op, self.name, args, kwargs, hooks=self.hooks)
        return composition.add_invocation(self.op, self.name, args, kwargs)


def _is_config_model(annotation: Any) -> bool:
    # pydantic is not imported here (it is most of what defining a job would cost): a class can only
    # subclass BaseModel if pydantic was imported already, e.g. by runyard.Config.
    pydantic = sys.modules.get("pydantic")
    return (pydantic is not None and isinstance(annotation, type)
            and issubclass(annotation, pydantic.BaseModel))


def op(fn: Callable[..., Any] | None = None, *, name: str | None = None, outs: dict[str, Out] | None = None,
       out: Out | None = None, required_resource_keys: set[str] | None = None, retry_policy: Any = None,
       description: str | None = None, tags: dict[str, str] | None = None) -> Any:
    """Declare an op. Usable as ``@op`` or ``@op(name=..., retry_policy=..., ...)``."""

    def decorate(func: Callable[..., Any]) -> OpDefinition:
        return _build_op(func, name=name, outs=outs, out=out,
                         required_resource_keys=required_resource_keys, retry_policy=retry_policy,
                         description=description, tags=tags)

    return decorate(fn) if fn is not None else decorate


def _build_op(func: Callable[..., Any], *, name, outs, out, required_resource_keys, retry_policy,
              description, tags) -> OpDefinition:
    op_name = name or func.__name__
    if not op_name.isidentifier():
        raise DefinitionError(f"op name '{op_name}' must be a valid identifier")
    try:
        hints = _type_hints(func)
    except Exception as exc:  # unresolvable forward references
        raise DefinitionError(f"op '{op_name}': cannot resolve type annotations: {exc}") from exc
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    takes_context = bool(params) and params[0].name == "context"
    if takes_context:
        params = params[1:]
    config_model = None
    ins: dict[str, In] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise DefinitionError(f"op '{op_name}': *args/**kwargs parameters are not supported")
        annotation = hints.get(p.name, inspect_empty)
        if p.name == "config":
            if not _is_config_model(annotation):
                raise DefinitionError(f"op '{op_name}': parameter 'config' must be annotated with a "
                                      "runyard.Config (pydantic) subclass")
            config_model = annotation
            continue
        ins[p.name] = In(type=annotation, default=p.default)
    if outs is not None and out is not None:
        raise DefinitionError(f"op '{op_name}': give either out= or outs=, not both")
    if outs is None:
        ret = hints.get("return", inspect_empty)
        outs = {DEFAULT_OUTPUT: out or Out(type=ret)}
    if not outs:
        raise DefinitionError(f"op '{op_name}': outs must not be empty")
    return OpDefinition(
        name=op_name, fn=func, ins=ins, outs=dict(outs), config_model=config_model,
        required_resource_keys=frozenset(required_resource_keys or ()), retry_policy=retry_policy,
        description=description or inspect.getdoc(func), tags=dict(tags or {}),
        takes_context=takes_context)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    import typing

    hints = typing.get_type_hints(func)
    # get_type_hints turns "-> None" into NoneType; keep an explicit marker we can test for.
    return hints
