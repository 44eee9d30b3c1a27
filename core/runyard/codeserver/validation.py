"""Validating a run config (and an op selection) against a job, and building its execution plan:
``POST /v1/jobs/<job>/validate``. Config problems are an answer (``ok: false`` with one error per
key path: every problem, not the first), not an HTTP error."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, DefinitionError, RunConfigError
from .protocol import ConfigErrorData, ExecutionPlanData, PlanStep, ValidationResult


def config_errors(exc: ConfigError) -> list[ConfigErrorData]:
    """One entry per problem, each with its key path: :func:`runyard.definitions.config.resolve_run_config`
    collects every problem of a run config into one error (``problems``)."""
    if len(exc.problems) == 1 and exc.total == 1:
        (only,) = exc.problems
        return [ConfigErrorData(message=str(exc), reason=exc.message, path=exc.path, source=exc.source,
                                keys=None if only.keys is None else list(only.keys))]
    out = [ConfigErrorData(message=str(RunConfigError(p.message, source=exc.source, path=p.path)),
                           reason=p.message, path=p.path, source=exc.source,
                           keys=None if p.keys is None else list(p.keys)) for p in exc.problems]
    if exc.total > len(exc.problems):
        more = f"... and {exc.total - len(exc.problems):,} more problems"
        out.append(ConfigErrorData(message=more, reason=more, source=exc.source))
    return out


def validate_run(job: Any, run_config: dict[str, Any], ops: str | list[str] | None) -> ValidationResult:
    """``run_config`` and the op selection ``ops`` (None: every op) checked against ``job``: every
    problem of the run config, the executor's and the op selection's, all in one answer."""
    from ..definitions.config import resolve_run_config
    from ..definitions.selection import check_fresh_selection, parse_op_selection
    from ..execution.plan import ExecutionPlan

    try:
        job._check_resources(final=True)
    except DefinitionError as exc:
        return ValidationResult(ok=False, job_name=job.name, errors=[ConfigErrorData(message=str(exc))])
    errors: list[ConfigErrorData] = []
    try:
        resolved = resolve_run_config(job, run_config, check_executor=True)
    except RunConfigError as exc:
        errors.extend(config_errors(exc))
    try:
        step_keys = None if ops is None else parse_op_selection(job, ops)
        plan = ExecutionPlan.build(job, step_keys)
        if step_keys is not None:
            check_fresh_selection(job, step_keys)
    except RunConfigError as exc:
        errors.extend(config_errors(exc))
    except DefinitionError as exc:
        errors.append(ConfigErrorData(message=str(exc)))
    if errors:
        return ValidationResult(ok=False, job_name=job.name, errors=errors)
    steps = [PlanStep(key=s.key, op=s.node_name, upstream=sorted(s.upstream), priority=s.priority)
             for s in (plan.steps[k] for k in plan.order)]
    return ValidationResult(
        ok=True, job_name=job.name, tags={**job.tags, **resolved.tags}, executor=resolved.executor_name,
        step_keys_to_execute=step_keys,
        plan=ExecutionPlanData(job_name=job.name, order=list(plan.order), steps=steps))
