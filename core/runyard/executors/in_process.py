"""The ``in_process`` executor: every step in the run worker's own process, one after another in
plan order. Cheapest per step; use ``multiprocess`` for parallelism and isolation.

When the run worker owns its process (``context.contain_processes``), each step attempt ends with
:func:`~runyard.launchers.procinfo.kill_tree`: every process the step started from the worker's
main thread, where ops run, and every orphan its descendants handed to the subreaper worker, is
SIGKILLed with its descendants. That costs one read of a /proc file per step when the step started
nothing; a process an op starts from another thread is killed when the run ends."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel, ConfigDict

from ..execution.dynamic import RunOutputs
from ..launchers import procinfo
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
        # What the worker runs before the first step (a resource's server, say) lives until the run
        # ends; whatever a step starts from this thread (ops run here) or orphans is killed when the
        # step ends, on every way out. The run worker's own end kills the rest.
        keep = procinfo.child_snapshot() if context.contain_processes else None
        tid = threading.get_native_id()
        outputs = RunOutputs(context)
        order = context.plan.order  # grows while it runs: a dynamic step adds its mapped steps
        index = 0
        while index < len(order):
            key = order[index]
            index += 1
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
            reason = outputs.skip_reason(key)
            if reason:
                skip_step(context, key, reason, not_produced=True)
                result.not_produced.append(key)
                outputs.skip_not_produced(key)
                continue
            attempt = 0
            while True:
                try:
                    outcome = runner.run_attempt(key, attempt)
                finally:
                    if keep is not None:
                        procinfo.kill_tree(keep, thread=tid)
                if outcome.status != StepStatus.RETRY:
                    break
                if outcome.retry_delay:
                    time.sleep(outcome.retry_delay)
                attempt = next_attempt(context, key)
            result.outcomes[key] = outcome
            if outcome.status != StepStatus.SUCCESS:
                not_ok.add(key)
            else:
                outputs.step_succeeded(key, outcome)
        return result
