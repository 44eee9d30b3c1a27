"""Hooks: code that runs after a step, on its success or its failure (``@success_hook``,
``@failure_hook``).

Attach a hook to one op's node in a job body with ``my_op.with_hooks({my_hook})(...)`` or to every
op of a job with ``@job(hooks={my_hook})``; a hook attached both ways runs once for the step.

Contract (docs/hooks.md):

* a hook runs in the process that ran the step (the run worker, a ``multiprocess`` child, a docker
  or k8s step process), right after the step's final attempt: a success hook after the step
  succeeded, a failure hook once the step failed for good (never on an attempt that is retried);
  a skipped step runs no hook;
* it gets a :class:`HookContext` with the step's resources (the hook's ``required_resource_keys``
  are set up with the step's: a job that lacks one fails at definition time, naming hook and key);
* each hook run writes ``HOOK_COMPLETED``, or ``HOOK_ERRORED`` with the traceback when the hook
  raised; a hook never changes the step's outcome or the run's status.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import DefinitionError

HookKind = Literal["success", "failure"]


@dataclass(frozen=True, eq=False)
class HookDefinition:
    """A hook: ``fn(context: HookContext)`` run after a step succeeded (``kind="success"``) or
    failed (``kind="failure"``). Compared and hashed by identity, so a set of hooks holds each once."""

    name: str
    fn: Callable[[HookContext], Any]
    kind: HookKind
    required_resource_keys: frozenset[str] = frozenset()
    description: str | None = None

    def __call__(self, context: HookContext) -> Any:
        """Call the hook's function directly (handy in unit tests, with :func:`build_hook_context`)."""
        return self.fn(context)

    def __repr__(self) -> str:
        return f"<HookDefinition {self.name} ({self.kind})>"


@dataclass(frozen=True, kw_only=True)
class HookContext:
    """What a hook function receives (frozen).

    ``op_exception``: failure hooks: the exception object the op raised (the hook runs in the
    process that ran the step, so it is always at hand); None for success hooks.
    ``op_output_values``: success hooks: the outputs the step produced, ``{output name: value}``
    (a dynamic output: ``{output name: {mapping key: value}}``); empty for failure hooks."""

    run_id: str
    job_name: str
    step_key: str
    op_name: str
    hook_name: str
    op_config: Any = None
    resources: Any = None
    log: Any = None
    op_exception: BaseException | None = None
    op_output_values: dict[str, Any] = field(default_factory=dict)
    required_resource_keys: frozenset[str] = frozenset()


def _make_hook(kind: HookKind, fn: Callable[..., Any] | None, name: str | None,
               required_resource_keys: Iterable[str] | None) -> Any:
    decorator = f"@{kind}_hook"
    if fn is not None and not callable(fn):
        raise DefinitionError(f"{decorator} decorates a function of one argument (the hook context); "
                              f"got {fn!r}")
    if isinstance(required_resource_keys, str):
        raise DefinitionError(f"{decorator}(required_resource_keys=...) takes a set of resource keys, "
                              f"not the string '{required_resource_keys}'")

    def decorate(func: Callable[..., Any]) -> HookDefinition:
        hook_name = name or getattr(func, "__name__", None)
        if not hook_name or not hook_name.isidentifier():
            raise DefinitionError(f"{decorator}: hook name '{hook_name}' must be a valid identifier")
        params = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
        if len(params) != 1:
            raise DefinitionError(f"{decorator} '{hook_name}': the function must take exactly one "
                                  f"argument (the hook context), it takes {len(params)}")
        return HookDefinition(name=hook_name, fn=func, kind=kind,
                              required_resource_keys=frozenset(required_resource_keys or ()),
                              description=inspect.getdoc(func))

    return decorate(fn) if fn is not None else decorate


def success_hook(fn: Callable[..., Any] | None = None, *, name: str | None = None,
                 required_resource_keys: Iterable[str] | None = None) -> Any:
    """Declare a hook run after a step succeeded. ``@success_hook`` or
    ``@success_hook(name=..., required_resource_keys={...})``."""
    return _make_hook("success", fn, name, required_resource_keys)


def failure_hook(fn: Callable[..., Any] | None = None, *, name: str | None = None,
                 required_resource_keys: Iterable[str] | None = None) -> Any:
    """Declare a hook run after a step failed for good (its retries exhausted). ``@failure_hook`` or
    ``@failure_hook(name=..., required_resource_keys={...})``."""
    return _make_hook("failure", fn, name, required_resource_keys)


def check_hooks(hooks: Any, where: str) -> frozenset[HookDefinition]:
    """``hooks`` (a set, list or tuple of :class:`HookDefinition`) as a frozenset, or a
    DefinitionError naming ``where`` and the bad item. Two different hooks may not share a name."""
    if hooks is None:
        return frozenset()
    if isinstance(hooks, HookDefinition) or not isinstance(hooks, (set, frozenset, list, tuple)):
        raise DefinitionError(f"{where}: hooks must be a set of hooks ({{my_hook}}), got {hooks!r}")
    by_name: dict[str, HookDefinition] = {}
    for hook in hooks:
        if not isinstance(hook, HookDefinition):
            raise DefinitionError(f"{where}: {hook!r} is not a hook (decorate it with @success_hook or "
                                  "@failure_hook)")
        if by_name.get(hook.name, hook) is not hook:
            raise DefinitionError(f"{where}: two different hooks are named '{hook.name}'")
        by_name[hook.name] = hook
    return frozenset(by_name.values())


def node_hooks(job: Any, node: Any) -> list[HookDefinition]:
    """The hooks of ``node`` in ``job`` (its own plus the job's), each once, ordered by name."""
    own, shared = getattr(node, "hooks", ()), getattr(job, "hook_defs", ())
    if not own and not shared:  # the common case, once per step: keep it cheap
        return []
    return sorted(set(own) | set(shared), key=lambda h: (h.name, h.kind))


def hook_resource_users(job: Any) -> dict[str, list[str]]:
    """resource key -> the hooks of ``job`` that need it (for 'missing resource' errors)."""
    users: dict[str, set[str]] = {}
    for node in job.nodes.values():
        for hook in node_hooks(job, node):
            for key in hook.required_resource_keys:
                users.setdefault(key, set()).add(hook.name)
    return {key: sorted(names) for key, names in users.items()}
