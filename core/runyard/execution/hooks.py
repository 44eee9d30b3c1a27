"""Running a step's hooks where the step ran (see runyard.definitions.hooks for the contract).

:class:`~runyard.execution.step.StepRunner` calls :func:`run_step_hooks` after the step's final
attempt, in the same process, so every executor (``in_process``, ``multiprocess``, a docker or k8s
step process) runs them the same way. A hook's error is an event, never the step's outcome.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..definitions.hooks import HookContext, HookKind, node_hooks
from ..storage.records import EventType
from .context import StepLogger

if TYPE_CHECKING:  # pragma: no cover
    from .step import StepRunner


def run_step_hooks(runner: StepRunner, step_key: str, node: Any, kind: HookKind, *,
                   exception: BaseException | None = None,
                   outputs: dict[str, Any] | None = None) -> None:
    """Run the ``kind`` hooks of ``node`` for step ``step_key``, each once, ordered by name; write
    ``HOOK_COMPLETED`` or ``HOOK_ERRORED`` (with the traceback) for each. Never raises an
    ``Exception`` from a hook (a ``BaseException`` such as a termination goes through)."""
    hooks = [h for h in node_hooks(runner.job, node) if h.kind == kind]
    if not hooks:
        return
    from ..definitions.resources import ResourceSet
    from .step import user_traceback

    emit = runner.sink.emit
    resources = runner.resources if runner.resources is not None else ResourceSet()
    for hook in hooks:
        context = HookContext(
            run_id=runner.run.run_id, job_name=runner.job.name, step_key=step_key, op_name=node.op.name,
            hook_name=hook.name, op_config=runner.resolved.op_configs.get(node.name), resources=resources,
            log=StepLogger(runner.sink, step_key), op_exception=exception,
            op_output_values=dict(outputs or {}) if kind == "success" else {},
            required_resource_keys=hook.required_resource_keys)
        started = time.perf_counter()
        try:
            missing = sorted(k for k in hook.required_resource_keys if k not in resources)
            if missing:  # the step's resources failed to set up before the op ran
                raise RuntimeError(f"resource(s) {', '.join(missing)} of hook '{hook.name}' are not "
                                   "available: they were not initialised for this step")
            hook.fn(context)
        except Exception as exc:  # noqa: BLE001 - a hook never changes the step's outcome
            emit(EventType.HOOK_ERRORED, f"Hook '{hook.name}' ({kind} hook) of step '{step_key}' raised "
                 f"{type(exc).__name__}: {exc}", step_key=step_key, level="ERROR",
                 data={"hook": hook.name, "kind": kind, "error": f"{type(exc).__name__}: {exc}",
                       "error_class": type(exc).__name__, "traceback": user_traceback(exc)})
            continue
        duration = time.perf_counter() - started
        emit(EventType.HOOK_COMPLETED, f"Finished {kind} hook '{hook.name}' of step '{step_key}' in "
             f"{duration * 1000:.1f}ms.", step_key=step_key, level="DEBUG",
             data={"hook": hook.name, "kind": kind, "duration_ms": round(duration * 1000, 3)})
