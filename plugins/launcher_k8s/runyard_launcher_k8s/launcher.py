"""The ``k8s`` run launcher: each run's worker in a ``batch/v1`` Job of its own.

A launch is one API call: create the Job ``runyard-run-<run id>`` (``backoffLimit: 0``, ``restartPolicy:
Never``, ``ttlSecondsAfterFinished``, ``activeDeadlineSeconds`` from the run's max runtime); a doubled
launch gets ``409 AlreadyExists`` and adopts the Job. The first launch of a process also makes sure the
instance ConfigMap exists (the operator's ``instance_config_map``, or ``runyard-instance-<id>``).

In the daemon that leads, run monitoring's first reconcile starts a **watch** on this instance's run
pods: a pod that fails (image pull error, a container it cannot create, OOMKilled, evicted, exit code)
or that is deleted has its run's health checked at once, so the run is FAILURE with the typed reason
within a second or two, with the last lines of the pod's log stored first. A pod no node can take
gets the scheduler's message as an event on its run, and fails with ``unschedulable`` when the start
timeout is over. On every pass the reconciler deletes the Jobs of finished or unknown runs (their
failed pods' logs stored first) and relaunches runs whose launch was interrupted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

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
from runyard.storage.records import FINISHED_STATUSES, IN_PROGRESS_STATUSES, RunFilter, RunStatus
from runyard.tags import CONTAINER_CONTEXT_TAG, IMAGE_TAG, MAX_RUNTIME_TAG

from . import failures, jobs, kube, manifests
from .settings import (
    OVERRIDABLE,
    RUN_SETTINGS_ENV,
    JobSettings,
    OverrideError,
    check_overrides,
    inheritable,
    merge,
    parse_tag_value,
)

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance
    from runyard.storage.records import RunRecord

log = logging.getLogger("runyard.launcher.k8s")

#: run tags ``k8s/<key>`` override settings, when ``run_overrides`` allows the key
OVERRIDE_TAG_PREFIX = "k8s/"
#: a Job whose run this process does not know yet is left alone this long (its run may be newer
#: than the pass's read of storage)
UNKNOWN_RUN_GRACE_SECONDS = 60.0
#: how long after its run finished a Job's pod is left to exit on its own before it is deleted
EXIT_WAIT_SECONDS = 10.0


class K8sLauncherConfig(JobSettings):
    location_overrides: list[str] = Field(
        default_factory=lambda: list(OVERRIDABLE),
        description="Settings a code location may set in its workspace entry's `container_context.k8s` "
                    "(default: all of " + ", ".join(OVERRIDABLE) + "; [] allows none).")
    run_overrides: list[str] = Field(default_factory=list,
                                     description="Settings a run may override with a `k8s/<key>` tag (JSON for "
                                                 "lists and mappings); the operator's choice, default none.")
    relaunch_after_seconds: float = Field(15.0, gt=0, le=3600,
                                          description="A STARTING run with no Job this long after its launch "
                                                      "(the launching process died mid-launch) is launched "
                                                      "again by run monitoring; the Job name makes that "
                                                      "idempotent.")
    watch: bool = Field(True, description="Watch the run pods from the leading daemon, so a failed pod fails "
                                          "its run within seconds (false: found by run monitoring's pass).")

    @field_validator("location_overrides", "run_overrides")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = sorted(set(value) - set(OVERRIDABLE))
        if bad:
            raise ValueError(f"{', '.join(bad)} cannot be overridden (choose from {', '.join(OVERRIDABLE)})")
        return value


class K8sRunLauncher(RunLauncher):
    config_model = K8sLauncherConfig
    supports_health_check = True
    supports_concurrent_launch = True

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._lock = threading.Lock()
        self._config_maps: set[tuple[str, str, int]] = set()  # (namespace, name, hash of data) made here
        self._watches: dict[str, jobs.PodWatch] = {}
        self._watch_instance: Instance | None = None
        self._checker: ThreadPoolExecutor | None = None
        self._checking: set[str] = set()
        self._told_pending: set[tuple[str, str]] = set()
        self._api_down: str | None = None

    # ---- what a run gets -------------------------------------------------------------------------
    def overrides_for(self, run: RunRecord) -> dict[str, Any]:
        """What the run's code location (``container_context.k8s``) and then the run itself (``k8s/*``
        tags) set, each checked against its allow-list; raises :class:`LaunchError`."""
        out: dict[str, Any] = {}
        try:
            context_text = run.tags.get(CONTAINER_CONTEXT_TAG)
            location = ((json.loads(context_text) or {}).get("k8s") or {}) if context_text else {}
            if location:
                out["location"] = check_overrides(location, self.config.location_overrides,
                                                  setting="location_overrides",
                                                  source="the code location's container_context.k8s")
            parsed = {}
            for key, value in run.tags.items():
                if key.startswith(OVERRIDE_TAG_PREFIX):
                    try:
                        parsed[key[len(OVERRIDE_TAG_PREFIX):]] = parse_tag_value(value)
                    except ValueError as exc:
                        raise OverrideError(f"tag {key}: {exc}", key) from None
            if parsed:
                out["run"] = check_overrides(parsed, self.config.run_overrides, setting="run_overrides",
                                             source=f"the run's tag {OVERRIDE_TAG_PREFIX}<key>")
        except OverrideError as exc:
            raise LaunchError(str(exc), reason="override_not_allowed" if "does not allow" in str(exc)
                              else "invalid_override", details={"key": exc.key}) from None
        except (json.JSONDecodeError, AttributeError):
            raise LaunchError(f"the run's {CONTAINER_CONTEXT_TAG} tag is not a JSON mapping",
                              reason="invalid_override") from None
        return out

    def settings_for(self, run: RunRecord) -> JobSettings:
        """The config with the location's and then the run's overrides combined in."""
        settings: JobSettings = self.config
        for layer in self.overrides_for(run).values():
            settings = merge(settings, layer)
        return settings

    def image_for(self, run: RunRecord) -> str:
        """A run's ``k8s/image`` tag, else its location's ``container_context.k8s.image``, else the
        location's image (``runyard/image``), else the config's."""
        layers = self.overrides_for(run)
        image = (layers.get("run", {}).get("image") or layers.get("location", {}).get("image")
                 or run.tags.get(IMAGE_TAG) or self.config.image)
        if not image:
            raise LaunchError("no image for this run: its code location names none (workspace entry `image:` or "
                              "the code server's --image) and run_launcher.k8s has no `image`", reason="no_image")
        return image

    def active_deadline(self, instance: Instance, run: RunRecord) -> int | None:
        """``activeDeadlineSeconds`` of a run's Job: the run's max runtime plus the start timeout, as
        Kubernetes counts from the Job's start (scheduling included) and runyard from the run's start."""
        value = run.tags.get(MAX_RUNTIME_TAG)
        try:
            max_runtime = float(value) if value is not None else None
        except ValueError:
            max_runtime = None
        if not max_runtime or max_runtime <= 0:
            return None
        start = instance.settings.run_monitoring.start_timeout_seconds
        return int(max_runtime + start + self.config.grace_period_seconds) + 1

    # ---- launch ----------------------------------------------------------------------------------
    def prepare(self, instance: Instance) -> None:
        """Import the Kubernetes client and read the kubeconfig before the first launch (the daemon
        and the web UI call this at start): otherwise the first launch pays ~0.5 s for it, with every
        concurrent launch waiting on the import. No API call; a kubeconfig that cannot be read is
        reported by the launches, as without this."""
        try:
            kube.batch(self.config)
        except LaunchError:
            pass

    def launch_run(self, context: LaunchRunContext) -> None:
        self._launch(context.instance, context.run, context.record_worker)

    def _launch(self, instance: Instance, run: RunRecord, record: Any) -> None:
        settings = self.settings_for(run)
        namespace = kube.namespace_of(settings)
        image = self.image_for(run)
        self._check_storage(instance, settings)
        config_map = self.ensure_instance_config(instance, settings, namespace)
        instance_id = _instance_id(instance)
        env = manifests.environment(instance, settings, config_map_name=config_map, namespace=namespace)
        given = [f"{e['name']}={e['value']}" for e in env if e["name"] in _env_var_names(settings) and "value" in e]
        env.append({"name": RUN_SETTINGS_ENV,
                    "value": inheritable(settings, namespace=namespace, image=image, env_vars=given)})
        manifest = manifests.job_manifest(
            name=manifests.run_job_name(run.run_id), namespace=namespace, settings=settings, image=image,
            command=["python", "-m", "runyard", "execute-run", run.run_id],
            env=env,
            labels=manifests.labels_for(instance_id, run, "run", settings.labels),
            annotations=manifests.annotations_for(run, settings.annotations),
            container=manifests.RUN_CONTAINER, active_deadline_seconds=self.active_deadline(instance, run))
        job, created = jobs.create_job(settings, namespace, manifest)
        meta = job.get("metadata") or {}
        if not created and (meta.get("labels") or {}).get(manifests.INSTANCE_LABEL) != instance_id:
            raise LaunchError(f"Job {namespace}/{meta.get('name')} exists and belongs to another runyard instance",
                              reason="name_conflict")
        record(job_name=meta.get("name"), namespace=namespace, job_uid=meta.get("uid"), image=image,
               cluster=kube.describe(settings), adopted=not created)

    def ensure_instance_config(self, instance: Instance, settings: JobSettings, namespace: str) -> str:
        """The ConfigMap the pods read the instance file from: the operator's ``instance_config_map``
        (checked once), else ``runyard-instance-<id>``, created or updated once per process and content."""
        if settings.instance_config_map:
            key = (namespace, settings.instance_config_map, 0)
            if key not in self._config_maps:
                jobs.check_config_map(settings, namespace, settings.instance_config_map)
                self._config_maps.add(key)
            return settings.instance_config_map
        name = manifests.config_map_name(_instance_id(instance))
        manifest = manifests.config_map(instance, name, namespace, _instance_id(instance))
        key = (namespace, name, hash(manifest["data"][manifests.CONFIG_KEY]))
        if key not in self._config_maps:
            with self._lock:
                if key not in self._config_maps:
                    jobs.ensure_config_map(settings, namespace, manifest)
                    self._config_maps.add(key)
        return name

    def _check_storage(self, instance: Instance, settings: JobSettings) -> None:
        storage = instance.storage
        engine = getattr(storage, "engine", None)
        if engine is None or engine.dialect.name != "sqlite":
            return
        home = settings.home or instance.home
        if not any(m.get("mountPath") == home for m in settings.volume_mounts):
            raise LaunchError(f"the instance's storage is SQLite ({engine.url.database}), which pods cannot reach: "
                              "use PostgreSQL or MySQL storage (or mount the instance home into the pods at "
                              f"{home} with volumes/volume_mounts, on a single node)", reason="storage_unreachable")

    # ---- finding a run's Job and pod --------------------------------------------------------------
    def _where(self, run: RunRecord) -> tuple[JobSettings, str, str]:
        info = run.launcher_info or {}
        try:
            settings = self.settings_for(run)
        except LaunchError:
            settings = self.config
        namespace = info.get("namespace") or kube.namespace_of(settings)
        return settings, namespace, info.get("job_name") or manifests.run_job_name(run.run_id)

    def _pod_of(self, settings: JobSettings, namespace: str, job_name: str) -> dict[str, Any] | None:
        watch = self._watches.get(namespace)
        if watch is not None and watch.synced.is_set() and watch.alive:
            pods = [p for p in watch.pods.values() if (p["metadata"].get("labels") or {}).get("job-name") == job_name]
        else:
            pods = jobs.list_pods(settings, namespace, f"job-name={job_name}")
        if not pods:
            return None
        return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    # ---- health ----------------------------------------------------------------------------------
    def check_run_worker_health(self, context: HealthCheckContext) -> HealthCheckResult:
        try:
            return self._health(context.instance, context.run)
        except LaunchError as exc:
            return HealthCheckResult(WorkerHealth.UNKNOWN, str(exc))

    def _health(self, instance: Instance, run: RunRecord) -> HealthCheckResult:
        settings, namespace, job_name = self._where(run)
        job = jobs.read_job(settings, namespace, job_name)
        if job is None:
            return self._no_job(instance, run, namespace, job_name)
        pod = self._pod_of(settings, namespace, job_name)
        verdict = failures.pod_verdict(pod, job)
        if verdict.dead:
            return self._dead(instance, run, settings, namespace, pod, verdict)
        if pod is not None and pod["metadata"].get("deletionTimestamp") and run.status != RunStatus.CANCELING:
            # deleted by someone else than runyard (whose terminate makes the run CANCELING first): the
            # worker gets SIGTERM now; the run ends with why, before the worker can call it a cancel
            return self._dead(instance, run, settings, namespace, pod, failures.deletion_verdict(pod, job))
        if pod is None and ((job.get("status") or {}).get("failed") or (job.get("metadata") or {})
                            .get("deletionTimestamp")):
            return HealthCheckResult(WorkerHealth.DEAD, f"the pod of Job {namespace}/{job_name} was deleted before "
                                     "the run finished", reason="pod_deleted", details={"job": job_name})
        if verdict.state == "succeeded":
            return HealthCheckResult(WorkerHealth.DEAD, f"pod of Job {namespace}/{job_name} exited (code 0) without "
                                     "finishing the run", reason="exited", details={"job": job_name})
        if verdict.reason == "unschedulable":
            self._tell_pending(instance, run, verdict)
            # alive as far as the launcher knows; the start timeout ends the wait with this reason
            return HealthCheckResult(WorkerHealth.UNKNOWN, verdict.message, reason="unschedulable",
                                     details={"pod": (pod or {}).get("metadata", {}).get("name"),
                                              "k8s_reason": "Unschedulable"})
        state = verdict.state if pod is not None else "waiting for its pod"
        return HealthCheckResult(WorkerHealth.RUNNING, f"Job {namespace}/{job_name}: {state}")

    def start_wait_reason(self, context: HealthCheckContext) -> tuple[str, str] | None:
        try:
            settings, namespace, job_name = self._where(context.run)
            pod = self._pod_of(settings, namespace, job_name)
        except LaunchError:
            return None
        verdict = failures.pod_verdict(pod)
        if verdict.reason and not verdict.dead:
            return verdict.reason, verdict.message
        return None

    def _dead(self, instance: Instance, run: RunRecord, settings: JobSettings, namespace: str,
              pod: dict[str, Any] | None, verdict: failures.PodVerdict) -> HealthCheckResult:
        events = []
        pod_name = (pod or {}).get("metadata", {}).get("name")
        if pod_name and not failures.output_stored(instance, run.run_id, pod_name):
            text = jobs.pod_log_tail(settings, namespace, pod_name, settings.log_tail_lines)
            events.append(failures.output_event(run.run_id, pod_name, text, verdict))
        return HealthCheckResult(WorkerHealth.DEAD, verdict.message, reason=verdict.reason,
                                 details={"pod": pod_name, "k8s_reason": verdict.k8s_reason,
                                          "exit_code": verdict.exit_code, **verdict.details}, events=events)

    def _no_job(self, instance: Instance, run: RunRecord, namespace: str, job_name: str) -> HealthCheckResult:
        """No Job: deleted under a running run, or never created (the launching process died
        mid-launch: after ``relaunch_after_seconds`` it is launched again)."""
        if run.status != RunStatus.STARTING or run.launcher_info.get("job_name"):
            return HealthCheckResult(WorkerHealth.DEAD, f"Job {namespace}/{job_name} was deleted before the run "
                                     "finished", reason="job_deleted", details={"job": job_name})
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

    def _tell_pending(self, instance: Instance, run: RunRecord, verdict: failures.PodVerdict) -> None:
        """Say once per run and process why its pod waits (the scheduler's message)."""
        key = (run.run_id, verdict.message)
        if key in self._told_pending:
            return
        self._told_pending.add(key)
        timeout = instance.settings.run_monitoring.start_timeout_seconds
        instance.report_engine_event(run.run_id, f"{verdict.message} The run waits for a node; it fails with "
                                     f"reason unschedulable if it has not started within {timeout:g}s "
                                     "(run_monitoring.start_timeout_seconds).", level="WARNING",
                                     data={"reason": "unschedulable", "k8s_reason": "Unschedulable"})

    # ---- terminate -------------------------------------------------------------------------------
    def terminate(self, context: TerminateRunContext) -> bool:
        run = context.run
        settings, namespace, job_name = self._where(run)
        pod = self._pod_of(settings, namespace, job_name)
        if pod is not None and failures.pod_verdict(pod).dead:
            # nothing to signal: store what it said before the Job goes
            self._store_output(context.instance, run, settings, namespace, pod)
        deleted = jobs.delete_job(settings, namespace, job_name, grace_seconds=settings.grace_period_seconds)
        if not deleted:
            return False
        # the pod gets SIGTERM, and the worker writes CANCELED; one killed at the end of the grace
        # period cannot, and the caller's health check (no Job) finishes the run
        instance = context.instance
        deadline = time.monotonic() + settings.grace_period_seconds + 2.0
        while time.monotonic() < deadline and instance.get_run(run.run_id).status not in FINISHED_STATUSES:
            time.sleep(0.1)
        return True

    def _store_output(self, instance: Instance, run: RunRecord, settings: JobSettings, namespace: str,
                      pod: dict[str, Any], *, failed_only: bool = True) -> None:
        verdict = failures.pod_verdict(pod)
        name = pod["metadata"]["name"]
        if failed_only and not verdict.dead:
            return
        if failures.output_stored(instance, run.run_id, name):
            return
        text = jobs.pod_log_tail(settings, namespace, name, settings.log_tail_lines)
        step_key = (pod["metadata"].get("annotations") or {}).get(manifests.STEP_ANNOTATION)
        instance.storage.store_event(failures.output_event(run.run_id, name, text, verdict, step_key=step_key))

    # ---- the watch -------------------------------------------------------------------------------
    def _ensure_watches(self, instance: Instance, namespaces: set[str]) -> None:
        if not self.config.watch:
            return
        with self._lock:
            self._watch_instance = instance
            if self._checker is None:
                self._checker = ThreadPoolExecutor(max_workers=4, thread_name_prefix="runyard-k8s-health")
            selector = manifests.selector({manifests.INSTANCE_LABEL: _instance_id(instance),
                                           manifests.KIND_LABEL: "run"})
            for namespace in namespaces:
                if namespace not in self._watches:
                    self._watches[namespace] = jobs.PodWatch(self.config, namespace, selector, self._pod_changed,
                                                             name=f"runyard-k8s-watch-{namespace}").start()

    def _pod_changed(self, pod: dict[str, Any], deleted: bool) -> None:
        """From a watch thread: a run pod that failed, can never start or was deleted has its run's
        health checked at once (on the checker pool, never in the watch thread)."""
        instance = self._watch_instance
        annotations = pod["metadata"].get("annotations") or {}
        run_id = annotations.get(manifests.PREFIX + "run-id")
        if instance is None or not run_id:
            return
        verdict = failures.pod_verdict(pod)
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        if not (deleted or terminating or verdict.dead or verdict.reason == "unschedulable"):
            return
        with self._lock:
            if run_id in self._checking or self._checker is None:
                return
            self._checking.add(run_id)
            self._checker.submit(self._check, instance, run_id)

    def _check(self, instance: Instance, run_id: str) -> None:
        try:
            run = instance.storage.get_run(run_id)
            if run is not None and run.status in IN_PROGRESS_STATUSES:
                verdict = instance.check_run_health(run_id)
                if verdict == "dead":
                    log.info("run %s: its pod failed; the run is finished", run_id)
        except Exception:  # noqa: BLE001 - run monitoring's pass tries again
            log.exception("checking run %s after its pod changed failed", run_id)
        finally:
            with self._lock:
                self._checking.discard(run_id)

    # ---- cleaning up -----------------------------------------------------------------------------
    def instance_jobs(self, instance: Instance, run_id: str | None = None, namespaces: set[str] | None = None
             ) -> list[dict[str, Any]]:
        """This instance's Jobs (of one run, with ``run_id``) in ``namespaces`` (default: the configured
        one), finished or not."""
        labels = {manifests.INSTANCE_LABEL: _instance_id(instance)}
        if run_id is not None:
            labels[manifests.RUN_LABEL] = manifests.label_value(run_id)
        found: list[dict[str, Any]] = []
        for namespace in sorted(namespaces or {kube.namespace_of(self.config)}):
            found += jobs.list_jobs(self.config, namespace, manifests.selector(labels))
        return found

    def reconcile(self, context: ReconcileContext) -> list[str]:
        instance = context.instance
        namespaces = {kube.namespace_of(self.config)} | {
            r.launcher_info["namespace"] for r in context.runs if (r.launcher_info or {}).get("namespace")}
        try:
            if context.extra.get("watch", True):
                self._ensure_watches(instance, namespaces)
            found = self.instance_jobs(instance, namespaces=namespaces)
        except LaunchError as exc:
            if str(exc) != self._api_down:  # said once, not on every pass
                log.warning("run monitoring cannot reconcile the run Jobs: %s", exc)
                self._api_down = str(exc)
            return []
        if self._api_down:
            log.warning("the Kubernetes API answers again; reconciling the run Jobs")
            self._api_down = None
        if not found:
            return []
        ids = sorted({(j["metadata"].get("annotations") or {}).get(manifests.PREFIX + "run-id", "") for j in found}
                     - {""})
        runs = {r.run_id: r for r in instance.storage.get_runs(RunFilter(run_ids=ids))} if ids else {}
        done: list[str] = []
        for job in found:
            meta = job["metadata"]
            if meta.get("deletionTimestamp"):
                continue  # being deleted
            run_id = (meta.get("annotations") or {}).get(manifests.PREFIX + "run-id", "")
            try:
                what = self._reconcile_job(instance, job, runs.get(run_id), context)
            except Exception as exc:  # noqa: BLE001 - one Job's trouble never stops the pass
                log.warning("reconciling Job %s failed: %s", meta.get("name"), exc)
                continue
            if what:
                done.append(what)
        return done

    def _reconcile_job(self, instance: Instance, job: dict[str, Any], run: RunRecord | None,
                       context: ReconcileContext) -> str | None:
        meta = job["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if run is not None and run.status not in FINISHED_STATUSES:
            if (meta.get("labels") or {}).get(manifests.KIND_LABEL) == "run" and failures.job_failure(job):
                verdict = instance.check_run_health(run.run_id)
                return f"run {run.run_id}: its Job {name} failed, the run is {verdict}" if verdict == "dead" else None
            return None
        if run is None and time.time() - _created(meta) < UNKNOWN_RUN_GRACE_SECONDS:
            return None  # a brand-new Job whose run this pass's read may predate
        status = job.get("status") or {}
        active = status.get("active") and not (status.get("succeeded") or status.get("failed"))
        if run is not None and active and time.time() - (run.end_time or run.updated_at or 0) < EXIT_WAIT_SECONDS:
            return None  # the worker is still exiting after writing the run's end: let it
        if run is not None:
            for pod in jobs.list_pods(self.config, namespace, f"job-name={name}"):
                self._store_output(instance, run, self.config, namespace, pod)
        jobs.delete_job(self.config, namespace, name, propagation="Background")
        context.record_removal("job")
        return f"deleted Job {namespace}/{name}" + (f" of run {run.run_id} ({run.status})" if run is not None
                                                     else " (its run is unknown)")

    def delete_run_files(self, context: DeleteRunFilesContext) -> None:
        try:
            found = self.instance_jobs(context.instance, context.run.run_id)
        except LaunchError:
            return
        for job in found:
            try:
                jobs.delete_job(self.config, job["metadata"]["namespace"], job["metadata"]["name"],
                                propagation="Background")
            except LaunchError:
                pass

    def dispose(self) -> None:
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
            checker, self._checker = self._checker, None
        for watch in watches:
            watch.stop()
        if checker is not None:
            checker.shutdown(wait=False, cancel_futures=True)


def _env_var_names(settings: JobSettings) -> set[str]:
    return {item.split("=", 1)[0] for item in settings.env_vars}


def _instance_id(instance: Instance) -> str:
    from runyard.errors import StorageError

    try:
        return instance.instance_id()
    except StorageError as exc:
        raise LaunchError(str(exc), reason="storage_error") from None


def _created(meta: dict[str, Any]) -> float:
    from datetime import datetime

    text = meta.get("creationTimestamp") or ""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
