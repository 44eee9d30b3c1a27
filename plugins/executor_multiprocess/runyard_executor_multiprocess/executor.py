"""The ``multiprocess`` executor: each step attempt runs in its own child process, up to
``max_concurrent`` at a time, while the run worker schedules steps and writes their events.

Step processes start warm: they are forked from a fork server that is itself a fork of the run
worker (see :mod:`.forkserver`), so they begin with the user's code imported and the job, plan and
run config already in memory. Events come back over one pipe per step and are written in batches
by the run worker's sink, so step processes never contend for the database.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runyard.execution.step import StepOutcome
from runyard.executors.base import (
    ExecuteContext,
    ExecutionResult,
    Executor,
    TagConcurrencyLimit,
)
from runyard.executors.scheduling import StepScheduler
from runyard.launchers.procinfo import describe_exit
from runyard.storage.records import EventType, StepStatus

from .child import run_step_attempt
from .forkserver import ForkServer, receive


class MultiprocessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(None, ge=1, description="Default: the number of CPUs.")
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
    grace_period_seconds: float = Field(5.0, ge=0, description="SIGTERM to SIGKILL delay on terminate.")


@dataclass
class _StepProcess:
    key: str
    attempt: int
    conn: Connection
    tags: dict[str, str]
    pid: int | None = None
    wait_status: int | None = None
    outcome: StepOutcome | None = None
    eof: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.eof and (self.outcome is not None or self.wait_status is not None)


class MultiprocessExecutor(Executor):
    config_model = MultiprocessConfig
    runs_steps_out_of_process = True

    def execute(self, context: ExecuteContext) -> ExecutionResult:
        runner = context.step_runner
        runner_args = {"run": context.run, "job": context.job, "plan": context.plan,
                       "resolved": context.resolved, "home": context.instance.home,
                       "compute_logs": runner.compute_logs, "storage": context.instance.storage}
        server = ForkServer(lambda conn, key, attempt: run_step_attempt(conn, key, attempt, runner_args))
        # per step key, in fork order: forks whose pid the server has not told us yet. An attempt can
        # finish (and be retried) before its "started" message is read, so one key may have several.
        self._starting: dict[str, list[_StepProcess]] = {}
        with context.events.paused():  # fork while single-threaded
            server.start()
        del runner
        try:
            return self._schedule(context, server)
        finally:
            server.stop()

    # ---- scheduling ------------------------------------------------------------------------------
    def _schedule(self, context: ExecuteContext, server: ForkServer) -> ExecutionResult:
        steps = StepScheduler(context, max_concurrent=self.config.max_concurrent or os.cpu_count() or 1,
                              tag_limits=self.config.tag_concurrency_limits)
        running: dict[str, _StepProcess] = {}
        by_pid: dict[int, _StepProcess] = {}
        try:
            while steps.unfinished:
                if context.is_terminating():
                    steps.result.interrupted = True
                    break
                for key, attempt in steps.start_now():
                    running[key] = self._fork(server, key, attempt, steps.running[key])
                if not running:
                    steps.idle()
                    continue
                self._pump(context, server, running, by_pid, steps.wait_seconds(1.0))
                for proc in [p for p in running.values() if p.finished]:
                    del running[proc.key]
                    steps.settle(proc.key, self._outcome(context, proc))
        finally:
            if running:
                self._stop_all(context, server, running, by_pid)
        return steps.result

    # ---- processes -------------------------------------------------------------------------------
    def _fork(self, server: ForkServer, key: str, attempt: int, tags: dict[str, str]) -> _StepProcess:
        read_fd, write_fd = os.pipe()
        try:
            server.fork_step(key, attempt, write_fd)
        finally:
            os.close(write_fd)  # the child holds the only write end: EOF means it is gone
        proc = _StepProcess(key, attempt, Connection(read_fd, writable=False), tags)
        self._starting.setdefault(key, []).append(proc)  # until the server tells us its pid
        return proc

    def _pump(self, context: ExecuteContext, server: ForkServer, running: dict[str, _StepProcess],
              by_pid: dict[int, _StepProcess], timeout: float) -> None:
        """Wait for anything to happen, then take in every message that is ready."""
        handles: list[Any] = [server.sock] + [p.conn for p in running.values() if not p.eof]
        for handle in wait(handles, timeout):
            if handle is server.sock:
                self._server_messages(server, self._starting, by_pid)
                continue
            proc = next(p for p in running.values() if p.conn is handle)
            self._drain(context, proc)
        # a finished step whose EOF came before its exit notice: wait briefly for the notice
        if any(p.eof and p.outcome is None and p.wait_status is None for p in running.values()):
            if wait([server.sock], 1.0):
                self._server_messages(server, self._starting, by_pid)

    @staticmethod
    def _server_messages(server: ForkServer, starting: dict[str, list[_StepProcess]],
                         by_pid: dict[int, _StepProcess]) -> None:
        assert server.sock is not None
        server.sock.setblocking(False)
        try:
            while True:
                try:
                    received = receive(server.sock)
                except BlockingIOError:
                    return
                if received is None:
                    raise RuntimeError("the step fork server exited unexpectedly")
                message, _ = received
                if message[0] == "started":
                    _, key, pid = message
                    # the server answers in request order; the attempt may have finished already,
                    # and the pid still matters
                    proc = starting[key].pop(0)
                    if not starting[key]:
                        del starting[key]
                    proc.pid = pid
                    by_pid[pid] = proc
                elif message[0] == "exited":
                    _, pid, status = message
                    proc = by_pid.pop(pid, None)
                    if proc is not None:
                        proc.wait_status = status
        finally:
            if server.sock is not None:
                server.sock.setblocking(True)

    @staticmethod
    def _drain(context: ExecuteContext, proc: _StepProcess) -> None:
        try:
            while proc.conn.poll():
                kind, item = proc.conn.recv()
                if kind == "event":
                    context.events.emit_event(item)
                else:
                    proc.outcome = item
        except (EOFError, OSError):
            proc.eof = True
            proc.conn.close()

    @staticmethod
    def _outcome(context: ExecuteContext, proc: _StepProcess) -> StepOutcome:
        if proc.outcome is not None:
            return proc.outcome
        reason = describe_exit(proc.wait_status) if proc.wait_status is not None else "vanished"
        message = f"step process (pid {proc.pid}) {reason} before reporting an outcome"
        context.events.emit(EventType.STEP_FAILURE, f"Step '{proc.key}' failed: {message}", step_key=proc.key,
                            level="ERROR", data={"error": message, "attempt": proc.attempt + 1,
                                                 "pid": proc.pid, "wait_status": proc.wait_status})
        return StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=message)

    def _stop_all(self, context: ExecuteContext, server: ForkServer, running: dict[str, _StepProcess],
                  by_pid: dict[int, _StepProcess]) -> None:
        """SIGTERM every step process, SIGKILL those still alive after the grace period."""
        self._signal(running, signal.SIGTERM)
        deadline = time.monotonic() + self.config.grace_period_seconds
        while any(not p.finished for p in running.values()) and time.monotonic() < deadline:
            self._pump(context, server, running, by_pid, 0.1)
        if any(not p.finished for p in running.values()):
            self._signal({k: p for k, p in running.items() if not p.finished}, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while any(not p.finished for p in running.values()) and time.monotonic() < deadline:
                self._pump(context, server, running, by_pid, 0.1)
        for proc in running.values():
            if not proc.eof:
                proc.conn.close()
            if proc.outcome is None:  # killed before it could report: say so in the event log
                self._outcome(context, proc)

    @staticmethod
    def _signal(running: dict[str, _StepProcess], sig: int) -> None:
        for proc in running.values():
            if proc.pid is not None and proc.wait_status is None:
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass
