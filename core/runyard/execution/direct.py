"""Unit-testing ops and hooks without running a job (docs/testing.md).

* :func:`build_op_context` makes the ``context`` an op receives, with its resources set up (an
  ``@resource`` is initialised, a plain object passed as it is); use it as a context manager to
  tear them down.
* Calling an op outside a job body (``my_op(context, x=1)``, ``my_op(1)``) goes through
  :func:`invoke_op`: the arguments are bound to the op's inputs (and checked against their types),
  ``config=`` (a Config instance or a dict) or the context's ``op_config`` is validated, a context is
  built when the op takes one and none is passed, and what the body produced becomes the op's
  outputs exactly as in a run (:func:`runyard.execution.outputs.op_result_values`).
* :func:`build_hook_context` makes the context a hook function receives.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .context import OpContext, StepLogger

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.hooks import HookContext
    from ..definitions.op import OpDefinition


class InvalidInvocationError(DefinitionError):
    """An op called directly with arguments that do not fit it (Dagster's
    ``DagsterInvalidInvocationError``); the message names the op and the argument."""


_MISSING = object()


def _init_resources(resources: dict[str, Any] | None, resources_config: dict[str, Any] | None,
                    run_id: str, home: str) -> Any:
    from pydantic import ValidationError

    from ..definitions.resources import ResourceDefinition, ResourceSet

    if resources is not None and not isinstance(resources, dict):
        raise InvalidInvocationError(f"resources must be a dict of resource key -> resource, got {resources!r}")
    unknown = sorted(set(resources_config or {}) - set(resources or {}))
    if unknown:
        raise InvalidInvocationError(f"resources_config names resource(s) not given in resources: {', '.join(unknown)}")
    resource_set = ResourceSet()
    for key, definition in (resources or {}).items():
        config = (resources_config or {}).get(key)
        if isinstance(definition, ResourceDefinition) and definition.config_model is not None:
            try:
                config = config if isinstance(config, definition.config_model) else \
                    definition.config_model.model_validate(config or {})
            except ValidationError as exc:
                resource_set.teardown()
                raise InvalidInvocationError(f"resource '{key}': invalid config: {exc}") from None
        try:
            resource_set.init(key, definition, config, StepLogger(None, None), run_id, home)
        except Exception:
            resource_set.teardown()
            raise
    return resource_set


class DirectOpContext(OpContext):
    """An :class:`~runyard.execution.context.OpContext` made by :func:`build_op_context`. As a context
    manager its resources are torn down (generator resources run the code after their ``yield``) when
    the block ends; without one, call :meth:`teardown` (or let it be)."""

    def __enter__(self) -> DirectOpContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.teardown()

    def teardown(self) -> None:
        """Tear the resources down (once); the first teardown error is raised."""
        errors = self.resources.teardown()
        if errors:
            key, error = errors[0]
            raise RuntimeError(f"teardown of resource '{key}' failed: {type(error).__name__}: {error}") from error


def build_op_context(resources: dict[str, Any] | None = None, op_config: Any = None, *,
                     resources_config: dict[str, Any] | None = None, partition_key: str | None = None,
                     run_tags: dict[str, str] | None = None, run_id: str | None = None,
                     run_config: dict[str, Any] | None = None, retry_number: int = 0,
                     step_key: str | None = None, op_name: str | None = None,
                     partitions_def: Any = None) -> DirectOpContext:
    """The ``context`` to pass to an op called directly.

    ``resources``: resource key -> an ``@resource`` (set up now, its config from ``resources_config``)
    or any object (used as it is). ``op_config``: a Config instance or a dict, validated against the
    op's Config class when the op is called. ``partition_key``: sets the run tag
    ``runyard/partition`` (``context.partition_key``; with ``partitions_def``, a time-window
    definition, ``context.partition_time_window`` too). ``home`` is a temp directory made for the
    context (removed with it). ``step_key``/``op_name`` default to the called op's name."""
    from ..tags import PARTITION_TAG

    run_id = run_id or uuid.uuid4().hex
    tags = {str(k): str(v) for k, v in (run_tags or {}).items()}
    if partition_key is not None:
        tags[PARTITION_TAG] = str(partition_key)
    home = tempfile.mkdtemp(prefix="runyard-op-context-")
    try:
        resource_set = _init_resources(resources, resources_config, run_id, home)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    context = DirectOpContext(run_id=run_id, step_key=step_key or "", op_name=op_name or "", op_config=op_config,
                              resources=resource_set, log=StepLogger(None, step_key), retry_number=retry_number,
                              run_tags=tags, home=home, run_config=dict(run_config or {}),
                              partitions_def=partitions_def)
    weakref.finalize(context, shutil.rmtree, home, ignore_errors=True)
    return context


def build_hook_context(resources: dict[str, Any] | None = None, *, op: Any = None, run_id: str | None = None,
                       job_name: str = "", step_key: str | None = None, op_config: Any = None,
                       op_exception: BaseException | None = None,
                       op_output_values: dict[str, Any] | None = None, hook_name: str = "") -> HookContext:
    """The ``context`` to pass to a hook function called directly (``my_hook(build_hook_context(...))``).
    ``resources`` as in :func:`build_op_context` (set up now; a generator resource is not torn down:
    pass plain objects where that matters). ``op``: the OpDefinition (or its name) the hook is about."""
    from ..definitions.hooks import HookContext

    run_id = run_id or uuid.uuid4().hex
    op_name = op if isinstance(op, str) or op is None else op.name
    return HookContext(run_id=run_id, job_name=job_name, step_key=step_key or op_name or "", op_name=op_name or "",
                       hook_name=hook_name, op_config=op_config,
                       resources=_init_resources(resources, None, run_id, ""), log=StepLogger(None, step_key),
                       op_exception=op_exception, op_output_values=dict(op_output_values or {}))


def _validated_config(op: OpDefinition, value: Any) -> Any:
    from pydantic import BaseModel, ValidationError

    model = op.config_model
    assert model is not None
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        raise InvalidInvocationError(f"op '{op.name}' takes config {model.__name__}, got a {type(value).__name__}")
    if value is not None and not isinstance(value, dict):
        raise InvalidInvocationError(f"op '{op.name}': config must be a {model.__name__} or a dict, got "
                                     f"{type(value).__name__}")
    try:
        return model.model_validate(value or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        hint = "" if value else " (pass config=... or build_op_context(op_config=...))"
        raise InvalidInvocationError(f"op '{op.name}': invalid config {model.__name__}: {problems}{hint}") from None


def _parameter_order(op: OpDefinition) -> list[str]:
    """The op function's parameters after ``context``, in order: its inputs and ``config``."""
    import inspect

    names = list(inspect.signature(op.fn).parameters)
    return names[1:] if op.takes_context else names


def _bind_inputs(op: OpDefinition, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{input or 'config': value}`` from the call's arguments: positional ones in the function's
    parameter order (so ``extract(ctx, ExtractConfig(days=1))`` works), except that a positional
    argument takes the ``config`` slot only when it is an instance of the op's config class (so
    ``extract(ctx, "north")`` binds ``"north"`` to the input after ``config``); inputs type-checked."""
    from ..definitions.types import describe_type, type_matches

    order = _parameter_order(op)
    listed = ", ".join(op.ins) or "none"
    if len(args) > len(order):
        raise InvalidInvocationError(f"op '{op.name}' takes {len(order)} argument(s) ({', '.join(order) or 'none'}) "
                                     f"but was called with {len(args)} positional argument(s)")
    given: dict[str, Any] = {}
    slots = iter(order)
    for value in args:
        slot = next(slots, None)
        if slot == "config" and not isinstance(value, op.config_model):
            slot = next(slots, None)  # not a config object: it is the next input's value
        if slot is None:
            raise InvalidInvocationError(f"op '{op.name}' takes the inputs {listed} but was called with "
                                         f"{len(args)} positional argument(s)")
        given[slot] = value
    for key, value in kwargs.items():
        if key == "context":
            raise InvalidInvocationError(f"op '{op.name}': context= must be an OpContext (build_op_context()), "
                                         f"got {type(value).__name__}")
        if key not in op.ins and not (key == "config" and op.config_model is not None):
            raise InvalidInvocationError(f"op '{op.name}' has no input '{key}' (inputs: {listed})")
        if key in given:
            what = "config" if key == "config" else f"input '{key}'"
            raise InvalidInvocationError(f"op '{op.name}' got {what} twice")
        given[key] = value
    for name, spec in op.ins.items():
        if name not in given:
            if not spec.has_default:
                raise InvalidInvocationError(f"op '{op.name}' is missing input '{name}' (inputs: {listed})")
            given[name] = spec.default
        elif not type_matches(given[name], spec.type):
            raise InvalidInvocationError(f"input '{name}' of op '{op.name}' expected {describe_type(spec.type)}, "
                                         f"got {type(given[name]).__name__}")
    return given


def _outputs_value(op: OpDefinition, result: Any) -> Any:
    """What a direct call returns: the single output's value (a dynamic output: ``{mapping key:
    value}``), or for several outputs a tuple in declaration order (None for an optional output that
    was not produced)."""
    from .outputs import op_result_values

    values: dict[str, Any] = {}
    for produced in op_result_values(op, result):
        if produced.mapping_key is None:
            values[produced.output_name] = produced.value
        else:
            values.setdefault(produced.output_name, {})[produced.mapping_key] = produced.value
    for name, out in op.outs.items():
        if getattr(out, "is_dynamic", False):
            values.setdefault(name, {})
    if len(op.outs) == 1:
        return values.get(next(iter(op.outs)))
    return tuple(values.get(name) for name in op.outs)


def invoke_op(op: OpDefinition, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``op`` directly, outside a job (see the module docstring)."""
    rest = list(args)
    kwargs = dict(kwargs)
    context: OpContext | None = None
    if rest and isinstance(rest[0], OpContext):
        context = rest.pop(0)
    elif isinstance(kwargs.get("context"), OpContext):
        context = kwargs.pop("context")
    if context is not None and not op.takes_context:
        raise InvalidInvocationError(f"op '{op.name}' has no 'context' parameter, but a context was passed")
    own_context = None
    if op.takes_context and context is None:
        if op.required_resource_keys:
            raise InvalidInvocationError(
                f"op '{op.name}' requires resource(s) {', '.join(sorted(op.required_resource_keys))}: call it "
                "with a context that has them, my_op(build_op_context(resources={...}), ...)")
        context = own_context = build_op_context()
    if op.config_model is None and "config" in kwargs:
        raise InvalidInvocationError(f"op '{op.name}' takes no config (it has no 'config' parameter)")
    inputs = _bind_inputs(op, rest, kwargs)
    config = inputs.pop("config", _MISSING)
    try:
        call_args: tuple[Any, ...] = ()
        if context is not None:
            missing = sorted(k for k in op.required_resource_keys if k not in context.resources)
            if missing:
                raise InvalidInvocationError(f"op '{op.name}' requires resource(s) {', '.join(missing)} that its "
                                             "context does not have: build_op_context(resources={...})")
            context = copy.copy(context)
            context.op_name = context.op_name or op.name
            context.step_key = context.step_key or op.name
            call_args = (context,)
        if op.config_model is not None:
            source = config if config is not _MISSING else (context.op_config if context is not None else None)
            inputs["config"] = _validated_config(op, source)
            if context is not None:
                context.op_config = inputs["config"]
        return _outputs_value(op, op.fn(*call_args, **inputs))
    finally:
        if own_context is not None:
            own_context.teardown()
