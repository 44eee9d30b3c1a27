"""The ``multiprocess`` executor: each step attempt runs in its own child process, up to
``max_concurrent`` at a time, while the run worker schedules steps and writes their events.

Step processes start warm. With ``start_method: forkserver`` (the default) a fork server is started
once per run worker with the user's definitions already imported (see :mod:`.preload`); each step
is then a ``fork()`` of that server — a millisecond or two — instead of a new interpreter that
imports everything again. Events travel back over a pipe and are written in batches by the run
worker's sink, so step processes never contend for the database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runyard.execution.step import StepOutcome
from runyard.executors.base import ExecuteContext, ExecutionResult, Executor, skip_step
from runyard.launchers.procinfo import describe_exit
from runyard.storage.records import EventType

from .preload import POINTER_ENV


class TagConcurrencyLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    value: str | None = Field(None, description="Omit to count every step that has the key.")
    limit: int = Field(ge=0)


class MultiprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(None, ge=1, description="Default: the number of CPUs.")
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
    start_method: Literal["forkserver", "spawn"] = "forkserver"
    grace_period_seconds: float = Field(5.0, ge=0, description="SIGTERM to SIGKILL delay on terminate.")


@dataclass
class _Running:
    key: str
    attempt: int
    process: Any
    conn: Any
    started: float
    outcome: StepOutcome | None = None
    tags: dict[str, str] = field(default_factory=dict)


class MultiprocessExecutor(Executor):
    config_model = MultiprocessConfig
    runs_steps_out_of_process = True

    def execute(self, context: ExecuteContext) -> ExecutionResult:
        pointer = context.run.code_pointer
        if not (pointer.python_file or pointer.module):
            from runyard.errors import RunyardError

            raise RunyardError("the multiprocess executor needs a job loaded from a file or module "
                               "(run it with -f/-m, not from an object defined in memory)")
        mp = self._context(pointer.to_dict())
        limit = self.config.max_concurrent or os.cpu_count() or 1
        plan, job = context.plan, context.job
        result = ExecutionResult()
        payload_base = {
            "run": {**context.run.to_dict(), "status": context.run.status,
                    "code_pointer": pointer.to_dict()},
            "home": context.instance.home,
            "external_outputs": [[list(k), v] for k, v in plan.external_outputs.items()],
        }
        payload_base["run"].pop("duration", None)
        order = {k: i for i, k in enumerate(plan.order)}
        waiting = list(plan.order)
        retry_at: dict[str, tuple[float, int]] = {}
        running: dict[str, _Running] = {}
        done: dict[str, str] = {}  # step -> SUCCESS | FAILURE | SKIPPED

        def step_tags(key: str) -> dict[str, str]:
            return job.nodes[key].op.tags

        def tag_room(tags: dict[str, str]) -> bool:
            for rule in self.config.tag_concurrency_limits:
                if rule.key not in tags or (rule.value is not None and tags[rule.key] != rule.value):
                    continue
                in_use = sum(1 for r in running.values() if rule.key in r.tags and
                             (rule.value is None or r.tags[rule.key] == rule.value))
                if in_use >= rule.limit:
                    return False
            return True

        try:
            while waiting or running or retry_at:
                if context.is_terminating():
                    result.interrupted = True
                    break
                # skip steps whose upstream did not succeed
                for key in list(waiting):
                    bad = [u for u in plan.steps[key].upstream if done.get(u) in ("FAILURE", "SKIPPED")]
                    if bad:
                        waiting.remove(key)
                        skip_step(context, key, f"upstream step(s) {', '.join(sorted(bad))} did not succeed")
                        done[key] = "SKIPPED"
                        result.skipped.append(key)
                now = time.monotonic()
                ready = [(key, 0) for key in waiting
                         if all(done.get(u) == "SUCCESS" for u in plan.steps[key].upstream)]
                ready += [(key, attempt) for key, (at, attempt) in retry_at.items() if at <= now]
                ready.sort(key=lambda item: (-plan.steps[item[0]].priority, order[item[0]]))
                for key, attempt in ready:
                    if len(running) >= limit:
                        break
                    tags = step_tags(key)
                    if not tag_room(tags):
                        continue
                    if attempt:
                        retry_at.pop(key)
                    else:
                        waiting.remove(key)
                    running[key] = self._start(mp, payload_base, key, attempt, tags)
                if not running:
                    if retry_at:
                        time.sleep(max(0.0, min(at for at, _ in retry_at.values()) - time.monotonic()))
                    elif waiting:  # blocked by tag limits of 0: nothing can ever run
                        for key in waiting:
                            skip_step(context, key, "its tag concurrency limit is 0")
                            done[key] = "SKIPPED"
                            result.skipped.append(key)
                        waiting.clear()
                    continue
                timeout = 0.5
                if retry_at:
                    timeout = max(0.0, min(timeout, min(at for at, _ in retry_at.values()) - time.monotonic()))
                by_handle: dict[Any, _Running] = {}
                for r in running.values():
                    by_handle[r.conn] = r
                    by_handle[r.process.sentinel] = r
                for handle in wait(list(by_handle), timeout):
                    r = by_handle[handle]
                    if handle is r.conn:
                        self._drain(context, r)
                    elif r.key in running:
                        self._drain(context, r)
                        outcome = self._reap(context, r)
                        del running[r.key]
                        if outcome.status == "RETRY":
                            retry_at[r.key] = (time.monotonic() + outcome.retry_delay, r.attempt + 1)
                            continue
                        result.outcomes[r.key] = outcome
                        done[r.key] = "SUCCESS" if outcome.status == "SUCCESS" else "FAILURE"
        finally:
            if running:
                self._stop_all(context, list(running.values()))
        if retry_at and result.interrupted:
            for key in retry_at:
                result.outcomes.setdefault(key, StepOutcome(key, "FAILURE", 0, error="interrupted"))
        return result

    # ---- processes -------------------------------------------------------------------------------
    def _context(self, pointer: dict[str, Any]) -> Any:
        if self.config.start_method == "forkserver":
            os.environ[POINTER_ENV] = json.dumps(pointer)
            mp = multiprocessing.get_context("forkserver")
            mp.set_forkserver_preload(["runyard_executor_multiprocess.preload"])
            return mp
        return multiprocessing.get_context("spawn")

    def _start(self, mp: Any, base: dict[str, Any], key: str, attempt: int, tags: dict[str, str]) -> _Running:
        from .child import run_step_process

        parent_conn, child_conn = mp.Pipe(duplex=False)
        process = mp.Process(target=run_step_process, args=(child_conn, {**base, "step_key": key,
                                                                          "attempt": attempt}),
                             name=f"runyard-step-{key}", daemon=False)
        process.start()
        child_conn.close()
        return _Running(key, attempt, process, parent_conn, time.monotonic(), tags=tags)

    @staticmethod
    def _drain(context: ExecuteContext, r: _Running) -> None:
        try:
            while r.conn.poll():
                kind, item = r.conn.recv()
                if kind == "event":
                    context.events.emit_event(item)
                else:
                    r.outcome = item
        except (EOFError, OSError):
            pass

    def _reap(self, context: ExecuteContext, r: _Running) -> StepOutcome:
        r.process.join()
        r.conn.close()
        if r.outcome is not None:
            return r.outcome
        code = r.process.exitcode
        status = (-code if code < 0 else code << 8) if code is not None else 0
        reason = describe_exit(status) if code is not None else "vanished"
        message = f"step process (pid {r.process.pid}) {reason} before reporting an outcome"
        context.events.emit(EventType.STEP_FAILURE, f"Step '{r.key}' failed: {message}", step_key=r.key,
                            level="ERROR", data={"error": message, "attempt": r.attempt + 1,
                                                 "exit_code": code})
        return StepOutcome(r.key, "FAILURE", r.attempt, error=message)

    def _stop_all(self, context: ExecuteContext, items: list[_Running]) -> None:
        """SIGTERM every step process, SIGKILL those still alive after the grace period."""
        for r in items:
            if r.process.is_alive():
                r.process.terminate()
        deadline = time.monotonic() + self.config.grace_period_seconds
        for r in items:
            r.process.join(max(0.0, deadline - time.monotonic()))
        for r in items:
            if r.process.is_alive():
                r.process.kill()
                r.process.join(5)
            self._drain(context, r)
            r.conn.close()
