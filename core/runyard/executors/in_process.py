"""The ``in_process`` executor: every step in the run worker's own process, one after another in
plan order. Cheapest per step; use ``multiprocess`` for parallelism and isolation."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from ..storage.records import StepStatus
from .base import ExecuteContext, ExecutionResult, Executor, next_attempt, skip_step


class InProcessConfig(BaseModel):
    """No settings yet; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class InProcessExecutor(Executor):
    config_model = InProcessConfig

    def execute(self, context: ExecuteContext) -> ExecutionResult:
        result = ExecutionResult()
        not_ok: set[str] = set()
        runner = context.step_runner
        for key in context.plan.order:
            if context.is_terminating():
                result.interrupted = True
                break
            step = context.plan.steps[key]
            blocked = step.upstream & not_ok
            if blocked:
                skip_step(context, key, f"upstream step(s) {', '.join(sorted(blocked))} did not succeed")
                result.skipped.append(key)
                not_ok.add(key)
                continue
            attempt = 0
            while True:
                outcome = runner.run_attempt(key, attempt)
                if outcome.status != StepStatus.RETRY:
                    break
                if outcome.retry_delay:
                    time.sleep(outcome.retry_delay)
                attempt = next_attempt(context, key)
            result.outcomes[key] = outcome
            if outcome.status != StepStatus.SUCCESS:
                not_ok.add(key)
        return result
