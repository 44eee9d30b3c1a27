"""Validating a run config (and an op selection) against a job, and building its execution plan:
``POST /v1/jobs/<job>/validate``. Config problems are an answer (``ok: false`` with one error per
key path), not an HTTP error."""

from __future__ import annotations

from typing import Any

from ..errors import DefinitionError, RunConfigError
from .protocol import ConfigErrorData, ExecutionPlanData, PlanStep, ValidationResult


def config_errors(exc: RunConfigError) -> list[ConfigErrorData]:
    """One entry per bad key path: pydantic reports every problem of a config block at once, and
    :func:`runyard.config_models.validate_model` joins them into one message."""
    head = "invalid config:\n"
    if exc.path is None and exc.message.startswith(head):
        out = []
        for line in exc.message[len(head):].splitlines():
            path, sep, reason = line.strip().partition(": ")
            if not sep:
                break
            message = str(RunConfigError(reason, source=exc.source, path=path))
            out.append(ConfigErrorData(message=message, reason=reason, path=path, source=exc.source))
        else:
            return out
    return [ConfigErrorData(message=str(exc), reason=exc.message, path=exc.path, source=exc.source)]


def validate_run(job: Any, run_config: dict[str, Any], ops: str | list[str] | None) -> ValidationResult:
    """``run_config`` and the op selection ``ops`` (None: every op) checked against ``job``."""
    from ..definitions.config import resolve_run_config, validate_executor
    from ..definitions.selection import check_fresh_selection, parse_op_selection
    from ..execution.plan import ExecutionPlan

    try:
        job._check_resources(final=True)
        resolved = resolve_run_config(job, run_config)
        validate_executor(resolved)
        step_keys = None if ops is None else parse_op_selection(job, ops)
        plan = ExecutionPlan.build(job, step_keys)
        if step_keys is not None:
            check_fresh_selection(job, step_keys)
    except RunConfigError as exc:
        return ValidationResult(ok=False, job_name=job.name, errors=config_errors(exc))
    except DefinitionError as exc:
        return ValidationResult(ok=False, job_name=job.name, errors=[ConfigErrorData(message=str(exc))])
    steps = [PlanStep(key=s.key, op=s.node_name, upstream=sorted(s.upstream), priority=s.priority)
             for s in (plan.steps[k] for k in plan.order)]
    return ValidationResult(
        ok=True, job_name=job.name, tags={**job.tags, **resolved.tags}, executor=resolved.executor_name,
        step_keys_to_execute=step_keys,
        plan=ExecutionPlanData(job_name=job.name, order=list(plan.order), steps=steps))
