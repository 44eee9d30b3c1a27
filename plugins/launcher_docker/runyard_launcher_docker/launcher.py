"""The ``docker`` run launcher: each run's worker in its own container.

The container is named after the run (``runyard-run-<run_id>``), so a retried or doubled launch
finds it instead of starting a second one, and carries labels saying which instance, run, job and
location it belongs to. Run monitoring (in the daemon) asks it about the worker through the engine
and, on each pass, reconciles: a container whose run finished, or whose run is unknown, has the last
lines of its output stored as an event and is removed; a run whose container died is finished with
the reason (OOMKilled, exit code, removed...).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from runyard.launchers.base import (
    DeleteRunFilesContext,
    HealthCheckContext,
    HealthCheckResult,
    LaunchError,
    LaunchRunContext,
    ReconcileContext,
    RunLauncher,
    TerminateRunContext,
    WorkerHealth,
)
from runyard.storage.records import FINISHED_STATUSES, RunFilter, RunStatus
from runyard.tags import IMAGE_TAG

from . import engine, exits
from .settings import ContainerSettings

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunRecord

log = logging.getLogger("runyard.launcher.docker")

#: the run tags that may override launcher settings, when ``run_overrides`` allows the key
OVERRIDE_TAG_PREFIX = "docker/"
OVERRIDABLE = ("image", "mem_limit", "cpus", "network")
#: how long after its run finished a still-running container is left to exit on its own before
#: run monitoring stops and removes it
EXIT_WAIT_SECONDS = 10.0


class DockerLauncherConfig(ContainerSettings):
    run_overrides: list[str] = Field(default_factory=list,
                                     description="Settings a run may override with a `docker/<key>` tag: any of "
                                                 "image, mem_limit, cpus, network (the operator's choice; default "
                                                 "none).")
    auto_remove: str = Field("always", pattern="^(always|on_success|never)$",
                             description="When run monitoring removes a finished run's container (its output "
                                         "is stored first): always; on_success (a failed run's container is "
                                         "kept for `docker inspect`); never. Kept containers go with the run "
                                         "when it is deleted.")
    relaunch_after_seconds: float = Field(15.0, gt=0, le=3600,
                                          description="A STARTING run with no started container this long "
                                                      "after its launch (the launching process died mid-launch) "
                                                      "is launched again by run monitoring; the container name "
                                                      "makes that idempotent.")

    @model_validator(mode="after")
    def _consistent(self) -> DockerLauncherConfig:
        bad = sorted(set(self.run_overrides) - set(OVERRIDABLE))
        if bad:
            raise ValueError(f"run_overrides: {', '.join(bad)} cannot be overridden (choose from "
                             f"{', '.join(OVERRIDABLE)})")
        return self


class DockerRunLauncher(RunLauncher):
    config_model = DockerLauncherConfig
    supports_health_check = True
    # A launch keeps nothing on the launcher: the engine client (engine.client_for) is made once per
    # address under a lock and its HTTP connection pool is thread-safe, and the container name makes
    # a doubled launch of one run find the first container.
    supports_concurrent_launch = True
    _engine_down: str | None = None  # what reconcile last said about an engine that does not answer

    # ---- what a run gets -------------------------------------------------------------------------
    def _overrides(self, run: RunRecord) -> dict[str, Any]:
        from pydantic import TypeAdapter, ValidationError

        found = {k[len(OVERRIDE_TAG_PREFIX):]: v for k, v in run.tags.items() if k.startswith(OVERRIDE_TAG_PREFIX)}
        out: dict[str, Any] = {}
        for key, value in found.items():
            if key not in OVERRIDABLE or key not in self.config.run_overrides:
                allowed = ", ".join(self.config.run_overrides) or "none"
                raise LaunchError(f"tag {OVERRIDE_TAG_PREFIX}{key} asks to override {key}, which "
                                  f"run_launcher.docker.run_overrides does not allow (allowed: {allowed})",
                                  reason="override_not_allowed", details={"tag": OVERRIDE_TAG_PREFIX + key})
            field = DockerLauncherConfig.model_fields[key]
            try:
                out[key] = TypeAdapter(field.annotation).validate_python(value)
                if key == "cpus" and not 0 < float(out[key]) <= 1024:
                    raise ValueError("cpus must be in (0, 1024]")
            except (ValidationError, ValueError) as exc:
                raise LaunchError(f"tag {OVERRIDE_TAG_PREFIX}{key}={value!r} is not a valid {key}: "
                                  f"{str(exc).splitlines()[-1].strip()}", reason="invalid_override") from None
        return out

    def image_for(self, run: RunRecord, overrides: dict[str, Any]) -> str:
        image = overrides.get("image") or run.tags.get(IMAGE_TAG) or self.config.image
        if not image:
            raise LaunchError("no image for this run: its code location names none (workspace entry `image:` or "
                              "the code server's --image) and run_launcher.docker has no `image`",
                              reason="no_image")
        return image

    # ---- launch ----------------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        self._launch(context.instance, context.run, record=context.record_worker)

    def _launch(self, instance: Instance, run: RunRecord, record: Any) -> None:
        client = engine.client_for(self.config)
        overrides = self._overrides(run)
        image = self.image_for(run, overrides)
        name = engine.run_container_name(run.run_id)
        engine.ensure_image(client, image, self.config.image_pull)
        labels = engine.base_labels(instance, run, "run", self.config.labels)
        kwargs = engine.create_kwargs(instance, self.config, image=image, name=name,
                                      command=["python", "-m", "runyard", "execute-run", run.run_id], labels=labels,
                                      overrides=overrides)
        extra = [] if overrides.get("network") else list(self.config.networks[1:])
        container, created = engine.create_container(client, kwargs, extra)
        if created or exits.state_of(container).status == "created":
            engine.start_container(container)
        record(container_id=container.id, container_name=name, image=image,
               docker_host=engine.describe_address(engine.engine_address(self.config)))

    # ---- health ----------------------------------------------------------------------------------
    def _find(self, run: RunRecord) -> Any | None:
        import docker

        client = engine.client_for(self.config)
        ident = run.launcher_info.get("container_id") or engine.run_container_name(run.run_id)
        try:
            return client.containers.get(ident)
        except docker.errors.NotFound:
            return None

    def check_run_worker_health(self, context: HealthCheckContext) -> HealthCheckResult:
        try:
            return self._health(context.instance, context.run)
        except LaunchError as exc:
            return HealthCheckResult(WorkerHealth.UNKNOWN, str(exc))

    def _health(self, instance: Instance, run: RunRecord) -> HealthCheckResult:
        container = self._find(run)
        state = exits.state_of(container)
        name = engine.run_container_name(run.run_id)
        if state.alive:
            return HealthCheckResult(WorkerHealth.RUNNING, f"container {name} is {state.status}")
        if state.status == "created" and not state.error or (state.status == "missing" and not run.launcher_info):
            return self._unstarted(instance, run, container)
        reason, message = exits.death_reason(name, state, self._mem_limit(run))
        events = []
        if container is not None and not exits.output_stored(instance, run.run_id, container.id):
            events.append(exits.output_event(run.run_id, container, state, self.config.log_tail_lines, failed=True))
        return HealthCheckResult(WorkerHealth.DEAD, message, reason=reason,
                                 details={"container": name, "exit_code": state.exit_code,
                                          "oom_killed": state.oom_killed}, events=events)

    def _mem_limit(self, run: RunRecord) -> Any:
        try:
            return self._overrides(run).get("mem_limit", self.config.mem_limit)
        except LaunchError:
            return self.config.mem_limit

    def _unstarted(self, instance: Instance, run: RunRecord, container: Any | None) -> HealthCheckResult:
        """A STARTING run whose container was never started (or never created): the process that
        launched it died mid-launch. After ``relaunch_after_seconds`` launch it again."""
        if run.status != RunStatus.STARTING:
            if container is None:
                return HealthCheckResult(WorkerHealth.DEAD, f"container {engine.run_container_name(run.run_id)} "
                                         "was removed before the run finished", reason="container_removed")
            return HealthCheckResult(WorkerHealth.UNKNOWN, "the container was created but not started")
        since = time.time() - (run.updated_at or run.created_at)
        if since < self.config.relaunch_after_seconds:
            return HealthCheckResult(WorkerHealth.UNKNOWN, "the run is being launched")

        def record(**info: Any) -> None:
            instance.storage.update_run(run.run_id, launcher_info=info)

        try:
            self._launch(instance, run, record)
        except LaunchError as exc:
            return HealthCheckResult(WorkerHealth.DEAD, f"launching again after an interrupted launch failed: {exc}",
                                     reason=exc.reason, details=exc.details)
        instance.report_engine_event(run.run_id, f"The launch of this run was interrupted {since:.0f}s ago (the "
                                     "launching process stopped); run monitoring launched it again.",
                                     level="WARNING", data={"reason": "relaunched"})
        return HealthCheckResult(WorkerHealth.RUNNING, "launched again after an interrupted launch")

    # ---- terminate -------------------------------------------------------------------------------
    def terminate(self, context: TerminateRunContext) -> bool:
        run = context.run
        container = self._find(run)
        if container is None or not exits.state_of(container).alive:
            return False
        engine.stop_container(container, self.config.grace_period_seconds)
        instance = context.instance
        # the worker writes CANCELED as it exits; a worker killed at the end of the grace period
        # cannot: the health check finds it dead and finishes the run
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and instance.get_run(run.run_id).status not in FINISHED_STATUSES:
            time.sleep(0.05)
        if instance.get_run(run.run_id).status not in FINISHED_STATUSES:
            instance.check_run_health(run.run_id)
        self._dispose(instance, instance.get_run(run.run_id), container)
        return True

    # ---- cleaning up -----------------------------------------------------------------------------
    def _dispose(self, instance: Instance, run: RunRecord | None, container: Any) -> str | None:
        """Store the output of a finished run's container (once), then remove it per ``auto_remove``.
        Returns what was done, or None."""
        try:
            container.reload()
        except Exception:  # noqa: BLE001 - gone already
            return None
        state = exits.state_of(container)
        if state.alive:
            engine.stop_container(container, self.config.grace_period_seconds)
            container.reload()
            state = exits.state_of(container)
        policy = self.config.auto_remove
        if run is not None:
            failed = run.status != RunStatus.SUCCESS
            step_key = container.labels.get(engine.STEP_LABEL)
            if not exits.output_stored(instance, run.run_id, container.id):
                instance.storage.store_event(exits.output_event(run.run_id, container, state,
                                                                 self.config.log_tail_lines, step_key=step_key,
                                                                 failed=failed and state.exit_code != 0))
            if policy == "never" or (policy == "on_success" and failed):
                return None
        engine.remove_quietly(container)
        return f"removed container {container.name}" + (f" of run {run.run_id} ({run.status})" if run is not None
                                                          else " (its run is unknown)")

    def containers(self, instance: Instance, run_id: str | None = None) -> list[Any]:
        """This instance's containers on the engine (of one run, with ``run_id``), running or not."""
        client = engine.client_for(self.config)
        filters = [f"{engine.INSTANCE_LABEL}={engine.instance_id(instance)}"]
        if run_id is not None:
            filters.append(f"{engine.RUN_LABEL}={run_id}")
        # ignore_removed: a container another process removes between the listing and its inspection
        # (a terminate's cleanup) is simply gone, not an error that fails the whole pass
        return client.containers.list(all=True, filters={"label": filters}, ignore_removed=True)

    def reconcile(self, context: ReconcileContext) -> list[str]:
        instance = context.instance
        try:
            containers = self.containers(instance)
        except LaunchError as exc:
            # an engine that is down is said once, not with a traceback on every monitoring pass
            if str(exc) != self._engine_down:
                log.warning("run monitoring cannot reconcile the run containers: %s", exc)
                self._engine_down = str(exc)
            return []
        if self._engine_down:
            log.warning("the Docker engine answers again; reconciling the run containers")
            self._engine_down = None
        if not containers:
            return []
        ids = sorted({c.labels.get(engine.RUN_LABEL, "") for c in containers} - {""})
        runs = {r.run_id: r for r in instance.storage.get_runs(RunFilter(run_ids=ids))} if ids else {}
        done: list[str] = []
        for container in containers:
            run_id = container.labels.get(engine.RUN_LABEL, "")
            run = runs.get(run_id)
            try:
                if run is None or run.status in FINISHED_STATUSES:
                    if run is None and time.time() - _created(container) < 60:
                        continue  # a brand-new container whose run this pass's read may predate
                    if (run is not None and exits.state_of(container).alive
                            and time.time() - (run.end_time or run.updated_at or 0) < EXIT_WAIT_SECONDS):
                        continue  # the worker is still exiting after writing the run's end (~1 s): let it,
                        # so the stored exit code is its own and not the SIGTERM of an early stop
                    what = self._dispose(instance, run, container)
                    if what:
                        context.record_removal("container")
                elif (container.labels.get(engine.KIND_LABEL) == "run"
                      and not exits.state_of(container).alive and exits.state_of(container).ended):
                    verdict = instance.check_run_health(run_id)  # finishes the run with the reason
                    what = f"run {run_id}: its container ended, the run is {verdict}" if verdict == "dead" else None
                else:
                    what = None
            except Exception as exc:  # noqa: BLE001 - one container's trouble never stops the pass
                log.warning("reconciling container %s failed: %s", container.name, exc)
                continue
            if what:
                done.append(what)
        return done

    def delete_run_files(self, context: DeleteRunFilesContext) -> None:
        try:
            containers = self.containers(context.instance, context.run.run_id)
        except LaunchError:
            return
        for container in containers:
            engine.remove_quietly(container)

    def dispose(self) -> None:
        pass


def _created(container: Any) -> float:
    from datetime import datetime

    text = container.attrs.get("Created") or ""
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0
