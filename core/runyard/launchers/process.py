"""The ``process`` launcher: each run worker is a local process.

Warm mode (default) forks workers from a pre-imported zygote once a long-running service has
called :meth:`prepare`; otherwise (and with ``warm: false``) a worker is a fresh
``python -m runyard execute-run RUN_ID``. Either way the worker runs in its own session (so it
outlives the launcher and can be signalled as a group), gets the instance through its environment,
writes its output to ``<home>/logs/runs/<run_id>.log``, and is identified by pid plus start time.

Nothing a worker started outlives it: the worker kills its own descendants (it is a child
subreaper, see :mod:`runyard.execution.run_worker`), and when a worker dies without doing so
(SIGKILL), whoever notices — the zygote, the thread that waits for a cold worker, a health check,
terminate — kills what is left of the worker's session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from pydantic import BaseModel, ConfigDict, Field

from ..private_files import make_private_dirs, open_private
from ..storage.records import FINISHED_STATUSES
from . import procinfo
from .base import (
    DeleteRunFilesContext,
    HealthCheckContext,
    HealthCheckResult,
    LaunchRunContext,
    RunLauncher,
    TerminateRunContext,
    WorkerHealth,
)


class ProcessLauncherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warm: bool = Field(True, description="Fork workers from a pre-imported zygote once prepare() ran.")
    warm_idle_seconds: float = Field(120.0, gt=0, description="A zygote that launched nothing for this "
                                     "long exits (an idle service holds no zygote); the next launch "
                                     "starts a new one.")
    grace_period_seconds: float = Field(10.0, ge=0, description="SIGTERM to SIGKILL delay on terminate.")
    python: str | None = Field(None, description="Interpreter for cold workers; default: this one.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for workers.")


class ProcessRunLauncher(RunLauncher):
    config_model = ProcessLauncherConfig
    supports_health_check = True
    # Cold launches are independent Popen calls; warm ones talk to the zygote one request at a time
    # under its lock (a fork there takes about a millisecond), so threads may launch at once.
    supports_concurrent_launch = True

    def __init__(self, config: ProcessLauncherConfig | None = None):
        super().__init__(config)
        self._children: dict[int, subprocess.Popen] = {}
        self._zygote: subprocess.Popen | None = None
        self._zygote_lock = threading.Lock()
        self._warm = False  # set by prepare(): this process lives long enough to profit from a zygote

    # ---- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def log_path(home: str, run_id: str) -> str:
        return os.path.join(home, "logs", "runs", f"{run_id}.log")

    def delete_run_files(self, context: DeleteRunFilesContext) -> None:
        try:
            os.unlink(self.log_path(context.instance.home, context.run.run_id))
        except OSError:
            pass

    def _worker_env(self, context: LaunchRunContext) -> dict[str, str]:
        """A worker's whole environment: this process's, less the variables named only by parts of
        the instance file a worker does not use (the web UI's password...), plus ``env`` and the instance."""
        from ..instance.instance import RUN_WORKER_KEYS

        return context.instance.child_environ(RUN_WORKER_KEYS,
                                              extra={**self.config.env, **context.instance.worker_env()})

    def prepare(self, instance) -> None:
        # The zygote itself starts with the first launch and leaves after warm_idle_seconds without
        # one, so an idle daemon or web UI holds no extra process.
        self._warm = self.config.warm

    def _ensure_zygote(self, env: dict[str, str]) -> subprocess.Popen:
        with self._zygote_lock:
            if self._zygote is not None and self._zygote.poll() is None:
                return self._zygote
            proc = subprocess.Popen([sys.executable, "-m", "runyard.launchers.zygote",
                                     str(self.config.warm_idle_seconds)], env=env,  # forks keep its environment
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            ready = proc.stdout.readline()
            if not ready:
                raise RuntimeError("the run worker zygote exited during start-up")
            self._zygote = proc
            return proc

    def _launch_warm(self, run_id: str, env: dict[str, str], log_path: str) -> tuple[int, int | None]:
        request = json.dumps({"run_id": run_id, "env": env, "cwd": os.getcwd(), "log_path": log_path})
        for attempt in (1, 2):  # the zygote may have just left for idleness: start a new one once
            proc = self._ensure_zygote(env)
            with self._zygote_lock:
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(request + "\n")
                    proc.stdin.flush()
                    reply = json.loads(proc.stdout.readline())
                    return reply["pid"], reply.get("start")
                except (OSError, ValueError, KeyError):
                    proc.wait(timeout=5)
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def _launch_cold(self, run_id: str, env: dict[str, str], log_path: str) -> tuple[int, int | None]:
        python = self.config.python or sys.executable
        with os.fdopen(open_private(log_path), "ab") as log:
            proc = subprocess.Popen([python, "-m", "runyard", "execute-run", run_id],
                                    env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._children[proc.pid] = proc
        threading.Thread(target=self._wait_cold, args=(proc, log_path), name=f"runyard-worker-{proc.pid}",
                         daemon=True).start()
        return proc.pid, procinfo.start_ticks(proc.pid)

    def _wait_cold(self, proc: subprocess.Popen, log_path: str) -> None:
        """Reap a cold worker as soon as it exits, so a long-running service keeps no zombie per
        finished run; record its exit status next to its log (as the zygote does for warm ones);
        and if a signal killed it, kill what it left in its session."""
        code = proc.wait()
        try:
            with os.fdopen(open_private(log_path + ".exit", os.O_WRONLY | os.O_TRUNC), "w") as f:
                f.write(f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0
                        else f"exited with code {code}")
        except (OSError, ValueError):
            pass
        if code < 0:
            procinfo.kill_session(proc.pid)
        self._children.pop(proc.pid, None)

    # ---- interface -------------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run_id = context.run.run_id
        log_path = self.log_path(context.instance.home, run_id)
        make_private_dirs(os.path.dirname(log_path))
        env = self._worker_env(context)
        warm = self.config.warm and self._warm
        try:
            pid, start = (self._launch_warm if warm else self._launch_cold)(run_id, env, log_path)
        except (OSError, ValueError, KeyError, RuntimeError, subprocess.TimeoutExpired):
            if not warm:
                raise
            # the zygote cannot be started or answered garbage: fall back to a cold start. (A zygote
            # another thread just started may be dropped too: it leaves when its pipe closes.)
            self._zygote, warm = None, False
            pid, start = self._launch_cold(run_id, env, log_path)
        context.record_worker(pid=pid, pid_start=start, host=os.uname().nodename, log_path=log_path,
                              mode="warm" if warm else "cold")

    def _exit_reason(self, pid: int, log_path: str | None) -> str:
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            code = child.returncode
            return (f"process {pid} was killed by signal {-code} ({signal.Signals(-code).name})"
                    if code < 0 else f"process {pid} exited with code {code}")
        if log_path and os.path.exists(log_path + ".exit"):
            with open(log_path + ".exit") as f:
                return f"process {pid} {f.read().strip()}"
        return f"process {pid} is no longer running"

    def check_run_worker_health(self, context: HealthCheckContext) -> HealthCheckResult:
        info = context.run.launcher_info
        pid = info.get("pid")
        if not pid:
            return HealthCheckResult(WorkerHealth.UNKNOWN, "no worker pid recorded yet")
        if info.get("host") not in (None, os.uname().nodename):
            return HealthCheckResult(WorkerHealth.UNKNOWN, f"worker runs on host {info.get('host')}")
        child = self._children.get(pid)
        if child is not None:
            child.poll()  # reap our own child so it does not linger as a zombie
        if procinfo.is_alive(pid, info.get("pid_start")):
            return HealthCheckResult(WorkerHealth.RUNNING, f"process {pid} is running")
        procinfo.kill_session(pid, info.get("pid_start"))  # what the dead worker left behind
        return HealthCheckResult(WorkerHealth.DEAD, self._exit_reason(pid, info.get("log_path")))

    def terminate(self, context: TerminateRunContext) -> bool:
        info = context.run.launcher_info
        pid, start = info.get("pid"), info.get("pid_start")
        if not pid or info.get("host") not in (None, os.uname().nodename) or not procinfo.is_alive(pid, start):
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + self.config.grace_period_seconds
        storage = context.instance.storage
        while procinfo.is_alive(pid, start) and time.monotonic() < deadline:
            run = storage.get_run(context.run.run_id)
            if run is not None and run.status in FINISHED_STATUSES:
                # it wrote its final status and is exiting: a moment more, not the whole grace period
                deadline = min(deadline, time.monotonic() + 2.0)
            time.sleep(0.05)
        # SIGKILL what is left of its session: the worker itself if it ignored SIGTERM, and anything
        # it started that is still there (a SIGKILLed worker cannot clean up after itself), and,
        # while the worker still holds them as a subreaper, those of its descendants that left it
        alive = procinfo.is_alive(pid, start)
        below = procinfo.descendants(pid) if alive else []
        if alive:
            procinfo.kill_processes([(pid, start)] if start is not None else [])
        procinfo.kill_session(pid, start)
        procinfo.kill_processes(below)
        return True

    def dispose(self) -> None:
        if self._zygote is not None:
            try:
                self._zygote.stdin.close()
                self._zygote.wait(timeout=5)
            except Exception:  # noqa: BLE001
                self._zygote.kill()
            self._zygote = None
