"""The bookkeeping of an executor that runs several steps at once (``multiprocess``, ``docker``):
which steps may start now, which can never run (a failed upstream step, a tag limit of 0), when a
retry is due, and every step's outcome. The executor owns how a step runs and how it learns that one
ended; this class owns the order::

    steps = StepScheduler(context, max_concurrent=4, tag_limits=config.tag_concurrency_limits)
    while steps.unfinished:
        if context.is_terminating():
            steps.result.interrupted = True
            break
        for key, attempt in steps.start_now():      # upstream succeeded, room under the limits
            launch(key, attempt)                     # steps.settle(key, outcome) when it ends
        if not steps.running:
            steps.idle()                             # sleeps until a retry is due, or skips the rest
            continue
        wait_for_news(timeout=steps.wait_seconds(1.0))
    return steps.result
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..execution.dynamic import RunOutputs
from ..storage.records import StepStatus
from .base import ExecuteContext, ExecutionResult, TagConcurrencyLimit, next_attempt, skip_step, tag_limits_allow

if TYPE_CHECKING:  # pragma: no cover
    from ..execution.step import StepOutcome


class StepScheduler:
    def __init__(self, context: ExecuteContext, *, max_concurrent: int,
                 tag_limits: Iterable[TagConcurrencyLimit] = ()):
        self.context = context
        self.plan = context.plan
        self.max_concurrent = max_concurrent
        self.tag_limits = list(tag_limits)
        self.result = ExecutionResult()
        #: optional outputs and dynamic fan-out: skips for outputs not produced, mapped steps
        self.outputs = RunOutputs(context)  # (may add mapped steps to the plan at once)
        self.waiting = list(self.plan.order)
        self.retry_at: dict[str, tuple[float, int]] = {}  # step -> (when, attempt)
        self.running: dict[str, dict[str, str]] = {}  # step -> its op's tags
        self.done: dict[str, StepStatus] = {}  # step -> SUCCESS, FAILURE or SKIPPED
        self._order = {k: i for i, k in enumerate(self.plan.order)}
        self._cleared: set[str] = set()  # waiting steps whose inputs were all produced

    @property
    def unfinished(self) -> bool:
        return bool(self.waiting or self.running or self.retry_at)

    def _skip(self, key: str, because: str) -> None:
        skip_step(self.context, key, because)
        self.done[key] = StepStatus.SKIPPED
        self.result.skipped.append(key)

    def _failed(self, key: str) -> bool:
        """The step failed, or was skipped because its upstream failed (not: its input was not produced)."""
        status = self.done.get(key)
        return status == StepStatus.FAILURE or (status == StepStatus.SKIPPED
                                                and key not in self.outputs.not_produced)

    def _ok(self, key: str) -> bool:
        return self.done.get(key) == StepStatus.SUCCESS or key in self.outputs.not_produced

    def start_now(self) -> list[tuple[str, int]]:
        """Skip the steps whose upstream failed, and those an input of which was not produced;
        return the attempts to start now — upstream done or a retry is due, by priority then plan
        order, within ``max_concurrent`` and the tag limits — and count them as running."""
        changed = True
        while changed:  # a skip for an output not produced may skip what is downstream of it
            changed = False
            for key in list(self.waiting):
                upstream = self.plan.steps[key].upstream
                bad = [u for u in upstream if self._failed(u)]
                if bad:
                    self.waiting.remove(key)
                    self._skip(key, f"upstream step(s) {', '.join(sorted(bad))} did not succeed")
                    continue
                if key in self._cleared or not all(self._ok(u) for u in upstream):
                    continue
                reason = self.outputs.skip_reason(key)
                if reason is None:
                    self._cleared.add(key)
                    continue
                self.waiting.remove(key)
                skip_step(self.context, key, reason, not_produced=True)
                self.done[key] = StepStatus.SKIPPED
                self.result.not_produced.append(key)
                self.outputs.skip_not_produced(key)
                changed = True
        now = time.monotonic()
        ready = [(key, 0) for key in self.waiting if key in self._cleared]
        ready += [(key, attempt) for key, (at, attempt) in self.retry_at.items() if at <= now]
        ready.sort(key=lambda item: (-self.plan.steps[item[0]].priority, self._order[item[0]]))
        chosen: list[tuple[str, int]] = []
        for key, attempt in ready:
            if len(self.running) >= self.max_concurrent:
                break
            tags = self.context.job.nodes[self.plan.steps[key].node_name].op.tags
            if not tag_limits_allow(self.tag_limits, self.running.values(), tags):
                continue
            if attempt:
                del self.retry_at[key]
            else:
                self.waiting.remove(key)
            self.running[key] = dict(tags)
            chosen.append((key, attempt))
        if self.outputs.active and any(self.outputs.inputs.reads_storage(k) for k, _ in chosen):
            self.context.events.flush()  # what it reads from storage is there before it starts
        return chosen

    def settle(self, key: str, outcome: StepOutcome) -> None:
        """A running attempt ended: schedule its retry, or record its outcome."""
        self.running.pop(key, None)
        if outcome.status == StepStatus.RETRY:
            self.retry_at[key] = (time.monotonic() + outcome.retry_delay, next_attempt(self.context, key))
            return
        self.result.outcomes[key] = outcome
        self.done[key] = StepStatus.SUCCESS if outcome.status == StepStatus.SUCCESS else StepStatus.FAILURE
        if outcome.status == StepStatus.SUCCESS:
            added = self.outputs.step_succeeded(key, outcome)
            if added:  # a dynamic step: its mapped steps join the plan
                self.waiting.extend(added)
                self._order = {k: i for i, k in enumerate(self.plan.order)}

    def wait_seconds(self, longest: float) -> float:
        """How long to wait for news before the next retry is due (at most ``longest``)."""
        if not self.retry_at:
            return longest
        return max(0.0, min(longest, min(at for at, _ in self.retry_at.values()) - time.monotonic()))

    def idle(self) -> None:
        """Nothing runs: sleep until the next retry is due, or skip what is left (only steps whose
        tag limit is 0 can be left waiting with nothing running). Returns at once when a step just
        failed without running (its launch failed): :meth:`start_now` skips its downstream first."""
        if any(self._failed(u) for key in self.waiting for u in self.plan.steps[key].upstream):
            return
        if self.retry_at:
            time.sleep(self.wait_seconds(float("inf")))
        elif self.waiting:
            for key in self.waiting:
                self._skip(key, "its tag concurrency limit is 0")
            self.waiting.clear()
