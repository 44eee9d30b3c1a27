"""The ``k8s`` executor: each step attempt in a Kubernetes Job of its own, from the run's image, up to
``max_concurrent`` at a time, scheduled by the run worker (in a pod of the ``k8s`` launcher, or any
local process with a kubeconfig).

A step pod runs :mod:`.step` (``python -m runyard_launcher_k8s.step RUN_ID STEP_KEY ATTEMPT``), which
writes the step's events straight to storage and reports its outcome as the last line of its log.
The run worker creates the Jobs (a deterministic name per attempt: a retried creation adopts the Job
with ``409``) and learns that a step pod ended from one :class:`~.jobs.PodWatch` on the run's step
pods, not by polling. It reads the outcome from the pod's log, stores the log's last lines as an
event and deletes the Job. A pod that ended without an outcome fails its step with the typed reason
of :func:`.failures.pod_verdict` in ``data["reason"]`` (``oom_killed``, ``image_pull_error``...); a
pod that stays unscheduled past ``step_start_timeout_seconds`` fails its step with
``unschedulable``; a Job that cannot be created fails its step, never the worker.

An op's tags ``k8s/resources``, ``k8s/node_selector`` and ``k8s/tolerations`` (JSON) shape its pods.

Outputs pass between steps through storage both sides reach: a volume mounted at the same path in
every pod (``volumes``/``volume_mounts``: the instance home, for the default FilesystemIOManager), or
an IO manager of the job's own (S3, a database...).

On termination every step Job of the run is deleted (``Foreground``: SIGTERM to its pod,
``grace_period_seconds``, SIGKILL), the steps' failures recorded; at the end of every run, whatever
its outcome, no step Job of the run is left.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, TypeAdapter, ValidationError

from runyard.execution.step import StepOutcome
from runyard.execution.step_process import INTERRUPTED, parse_outcome
from runyard.executors.base import ExecuteContext, ExecutionResult, Executor, TagConcurrencyLimit
from runyard.executors.scheduling import StepScheduler
from runyard.launchers.base import LaunchError
from runyard.storage.records import Event, EventType, StepStatus
from runyard.tags import IMAGE_TAG

from . import failures, jobs, kube, manifests
from .failures import PodVerdict
from .settings import RUN_SETTINGS_ENV, JobSettings, Resources, check_labels, inherit, parse_tag_value

log = logging.getLogger("runyard.executor.k8s")

#: op tags that shape a step's pods (JSON values, as the ``k8s/<key>`` run tags of the launcher)
RESOURCES_TAG = "k8s/resources"
NODE_SELECTOR_TAG = "k8s/node_selector"
TOLERATIONS_TAG = "k8s/tolerations"
STEP_MODULE = "runyard_launcher_k8s.step"
#: the namespace of the pod this process runs in (set by :func:`.manifests.environment`)
NAMESPACE_ENV = "RUNYARD_K8S_NAMESPACE"
#: log lines read to find the outcome line (the last one the step process prints)
OUTCOME_LINES = 50
TICK_SECONDS = 1.0
#: ``data.kind`` of the event that gives the reason of a step the step process itself reported
#: interrupted (its pod was deleted from outside the run)
STEP_ENDED_KIND = "step_pod_ended"
#: how long the last write of a step process killed with its pod may take to reach storage
KILLED_WRITE_SECONDS = 1.0


class K8sExecutorConfig(JobSettings):
    max_concurrent: int = Field(8, ge=1, le=1024, description="Step Jobs running at once.")
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(
        default_factory=list, description="At most `limit` steps whose op has tag `key` (=`value`) at once.")
    step_start_timeout_seconds: float = Field(300.0, gt=0, le=86_400,
                                              description="A step whose pod has not started running this long "
                                                          "after its Job was created (unschedulable, no pod) "
                                                          "fails.")


@dataclass
class _StepJob:
    key: str
    attempt: int
    name: str  # the Job's
    submitted: bool = False  # its creation is in the pool's hands
    launched: bool = False  # the Job exists (created or adopted)
    launched_at: float = 0.0
    running: bool = False  # its pod's container started
    finishing: bool = False
    deleting: bool = False
    pod: dict[str, Any] | None = None  # the latest state of its pod
    pod_deleted: bool = False
    waiting: PodVerdict = field(default_factory=lambda: PodVerdict("pending"))
    #: set by the pool once the attempt is concluded: the events to store and its outcome
    result: tuple[list[Event], StepOutcome] | None = None
    settled: bool = False

    @property
    def pod_name(self) -> str | None:
        return (self.pod or {}).get("metadata", {}).get("name")


class K8sExecutor(Executor):
    config_model = K8sExecutorConfig
    runs_steps_out_of_process = True

    def execute(self, context: ExecuteContext) -> ExecutionResult:
        # in a run pod of the k8s launcher: its settings (namespace, Secrets, volumes...) are the step
        # Jobs' too, under what the run config's execution.k8s sets
        run = _Run(inherit(self.config, os.environ.get(RUN_SETTINGS_ENV)), context)
        try:
            return run.schedule()
        finally:
            run.close()


class _Run:
    """One run's scheduling: the main thread decides; a small pool creates Jobs and disposes of ended
    ones; the pod watch's thread reports changes. They talk to the main thread through a queue."""

    def __init__(self, config: K8sExecutorConfig, context: ExecuteContext):
        self.config = config
        self.context = context
        self.run_id = context.run.run_id
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.running: dict[str, _StepJob] = {}
        self.by_job: dict[str, _StepJob] = {}
        self.pods: dict[str, tuple[dict[str, Any], bool]] = {}  # job name -> its pod's latest (pod, deleted)
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=min(config.max_concurrent, 6) + 2,
                                       thread_name_prefix="runyard-k8s-step")
        # the run config's image, else the run pod's (inherited), else the location's, else the config's
        self.image = (config.image if "image" in config.model_fields_set else None) or context.run.tags.get(
            IMAGE_TAG) or config.image
        self.namespace: str | None = None
        self.instance_id: str | None = None
        self.env: list[dict[str, Any]] | None = None
        self.setup_error: LaunchError | None = None
        self.watch: jobs.PodWatch | None = None

    # ---- setup -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        """Once per run, before the first Job: the namespace, the instance ConfigMap, the pods'
        environment and the watch. A failure fails every step with its reason."""
        try:
            if not self.image:
                raise LaunchError("no image for the step pods: the run's code location names none (tag "
                                  f"{IMAGE_TAG}) and execution.k8s has no `image`", reason="no_image")
            self.namespace = self.config.namespace or os.environ.get(NAMESPACE_ENV) or kube.namespace_of(self.config)
            self.instance_id = self.context.instance.instance_id()
            self.watch = jobs.PodWatch(self.config, self.namespace, manifests.selector(self._run_labels()),
                                       self._pod_changed, name="runyard-k8s-step-watch").start()
            if self.config.instance_config_map:
                config_map = self.config.instance_config_map
                jobs.check_config_map(self.config, self.namespace, config_map)
            else:
                config_map = manifests.config_map_name(self.instance_id)
                jobs.ensure_config_map(self.config, self.namespace, manifests.config_map(
                    self.context.instance, config_map, self.namespace, self.instance_id))
            self.env = manifests.environment(self.context.instance, self.config, config_map_name=config_map,
                                             namespace=self.namespace)
        except LaunchError as exc:
            self.setup_error = exc
        except Exception as exc:  # noqa: BLE001 - whatever it is, the steps fail, not the worker
            self.setup_error = LaunchError(f"cannot prepare the step Jobs: {type(exc).__name__}: {exc}",
                                           reason="api_error")

    def _run_labels(self) -> dict[str, str]:
        return {manifests.INSTANCE_LABEL: self.instance_id or "", manifests.RUN_LABEL:
                manifests.label_value(self.run_id), manifests.KIND_LABEL: "step"}

    def _pod_changed(self, pod: dict[str, Any], deleted: bool) -> None:
        """From the watch's thread: hand the change to the main thread."""
        self.messages.put(("pod", (pod, deleted)))

    # ---- scheduling ------------------------------------------------------------------------------
    def schedule(self) -> ExecutionResult:
        context = self.context
        steps = StepScheduler(context, max_concurrent=self.config.max_concurrent,
                              tag_limits=self.config.tag_concurrency_limits)
        self._setup()
        running = self.running
        try:
            while steps.unfinished:
                if context.is_terminating():
                    steps.result.interrupted = True
                    break
                for key, attempt in steps.start_now():
                    failed = self._launch(key, attempt, steps.running[key])
                    if failed is not None:  # its downstream steps are skipped by the next start_now
                        steps.settle(key, failed)
                if not running:
                    steps.idle()
                    continue
                for proc, outcome in self._pump(steps.wait_seconds(TICK_SECONDS)):
                    running.pop(proc.key, None)
                    steps.settle(proc.key, outcome)
                self._check_start_timeouts()
        finally:
            if running:
                self._stop_all()
        return steps.result

    # ---- launching -------------------------------------------------------------------------------
    def _launch(self, key: str, attempt: int, tags: dict[str, str]) -> StepOutcome | None:
        """Hand the attempt's Job to the pool; a step that cannot have one fails now."""
        if self.setup_error is not None:
            exc = self.setup_error
            return self._failure(key, attempt, f"could not launch the step's Job: {exc}", exc.reason, exc.details)
        try:
            shape = op_pod_settings(key, tags)
        except LaunchError as exc:
            return self._failure(key, attempt, str(exc), exc.reason, exc.details)
        proc = _StepJob(key, attempt, manifests.step_job_name(self.run_id, key, attempt))
        self.running[key] = proc
        self.by_job[proc.name] = proc
        self.pool.submit(self._create, proc, shape)
        proc.submitted = True
        return None

    def step_manifest(self, proc: _StepJob, shape: dict[str, Any]) -> dict[str, Any]:
        assert self.namespace is not None and self.instance_id is not None and self.env is not None
        run = self.context.run
        config = self.config
        return manifests.job_manifest(
            name=proc.name, namespace=self.namespace, settings=config, image=str(self.image),
            command=["python", "-m", STEP_MODULE, run.run_id, proc.key, str(proc.attempt)], env=self.env,
            labels=manifests.labels_for(self.instance_id, run, "step", config.labels, proc.key, proc.attempt),
            annotations=manifests.annotations_for(run, config.annotations, proc.key),
            container=manifests.STEP_CONTAINER, resources=merged_resources(config, shape.get("resources")),
            node_selector=shape.get("node_selector"), tolerations=shape.get("tolerations"))

    def _create(self, proc: _StepJob, shape: dict[str, Any]) -> None:
        """In the pool: create (or adopt) the attempt's Job."""
        try:
            if self.stopping.is_set():
                raise LaunchError("the run is being terminated", reason="terminated")
            assert self.namespace is not None
            jobs.create_job(self.config, self.namespace, self.step_manifest(proc, shape))
        except LaunchError as exc:
            self.messages.put(("launch_failed", (proc, exc)))
            return
        except Exception as exc:  # noqa: BLE001 - whatever the API says, the step fails, not the worker
            self.messages.put(("launch_failed", (proc, LaunchError(
                f"could not create step Job {proc.name}: {type(exc).__name__}: {exc}", reason="api_error"))))
            return
        self.messages.put(("launched", proc))

    # ---- waiting ---------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> list[tuple[_StepJob, StepOutcome]]:
        """Wait up to ``timeout`` for news; return the attempts that finished."""
        finished: list[tuple[_StepJob, StepOutcome]] = []
        try:
            item = self.messages.get(timeout=timeout)
        except queue.Empty:
            return finished
        while True:
            finished.extend(self._handle(*item))
            try:
                item = self.messages.get_nowait()
            except queue.Empty:
                return finished

    def _handle(self, kind: str, payload: Any) -> list[tuple[_StepJob, StepOutcome]]:
        if kind == "launched":
            proc = payload
            proc.launched = True
            proc.launched_at = time.monotonic()
            if proc.name in self.pods:  # the watch saw its pod first
                self._look_at(proc, *self.pods[proc.name])
        elif kind == "launch_failed":
            proc, exc = payload
            self.by_job.pop(proc.name, None)
            if exc.reason == "terminated":  # never created: nothing to report but the outcome
                return [(proc, StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=str(exc)))]
            return [(proc, self._failure(proc.key, proc.attempt, f"could not launch the step's Job: {exc}",
                                         exc.reason, {**exc.details, "job": proc.name}))]
        elif kind == "pod":
            pod, deleted = payload
            job_name = job_of(pod)
            if job_name is None:
                return []
            self.pods[job_name] = (pod, deleted)
            proc = self.by_job.get(job_name)
            if proc is not None and proc.launched:
                self._look_at(proc, pod, deleted)
        elif kind == "job_gone":  # deleted on termination before a pod was seen
            proc = payload
            if not proc.finishing and proc.pod is None:
                self._finish(proc, PodVerdict("failed", "job_deleted", f"Job {proc.name} was deleted before its "
                                              "pod started"))
        elif kind == "finished":
            return self._settle(payload)
        elif kind == "events":
            for event in payload:
                self.context.events.emit_event(event)
        return []

    def _settle(self, proc: _StepJob) -> list[tuple[_StepJob, StepOutcome]]:
        """The attempt's conclusion, once: its events stored, its outcome returned."""
        if proc.settled or proc.result is None:
            return []
        proc.settled = True
        events, outcome = proc.result
        for event in events:
            self.context.events.emit_event(event)
        self.by_job.pop(proc.name, None)
        return [(proc, outcome)]

    def _look_at(self, proc: _StepJob, pod: dict[str, Any], deleted: bool) -> None:
        """A change of the attempt's pod: finish the attempt when its pod ended, died or can never
        start."""
        if proc.finishing:
            return
        if proc.pod_name and pod["metadata"]["name"] != proc.pod_name and not deleted:
            log.warning("Job %s has a second pod %s; following it", proc.name, pod["metadata"]["name"])
        proc.pod, proc.pod_deleted = pod, deleted
        verdict = failures.pod_verdict(pod)
        if verdict.state in ("running", "succeeded", "failed"):
            proc.running = True
        if verdict.state in ("succeeded", "failed") or verdict.fatal or deleted:
            self._finish(proc)
        else:
            proc.waiting = verdict

    def _check_start_timeouts(self) -> None:
        """Fail the attempts whose pod has not started running ``step_start_timeout_seconds`` after
        their Job was created: unscheduled, or never made."""
        limit = self.config.step_start_timeout_seconds
        now = time.monotonic()
        for proc in list(self.running.values()):
            if not proc.launched or proc.running or proc.finishing or now - proc.launched_at <= limit:
                continue
            waited = proc.waiting
            why = f"(step_start_timeout_seconds){': ' + waited.message if waited.message else ''}"
            if waited.reason == "unschedulable":
                verdict = PodVerdict("failed", "unschedulable", f"pod {proc.pod_name} was not scheduled within "
                                     f"{limit:g}s {why}", waited.k8s_reason)
            elif proc.pod_name:
                verdict = PodVerdict("failed", "start_timeout", f"pod {proc.pod_name} did not start running within "
                                     f"{limit:g}s {why}", waited.k8s_reason)
            else:
                verdict = PodVerdict("failed", "start_timeout", f"Job {proc.name} made no pod within {limit:g}s "
                                     "(step_start_timeout_seconds)")
            self._finish(proc, verdict)

    def _finish(self, proc: _StepJob, forced: PodVerdict | None = None) -> None:
        if proc.finishing:
            return
        proc.finishing = True
        self.pool.submit(self._dispose, proc, forced)

    # ---- ending one attempt ----------------------------------------------------------------------
    def _dispose(self, proc: _StepJob, forced: PodVerdict | None) -> None:
        """In the pool: read the outcome and hand it over (the scheduler goes on at once), then keep
        the pod's log as an event and delete the Job."""
        text = ""
        try:
            if proc.pod_name and self.namespace:
                text = jobs.pod_log_tail(self.config, self.namespace, proc.pod_name,
                                         max(self.config.log_tail_lines, OUTCOME_LINES))
            verdict, events, outcome = self._conclude(proc, text, forced)
        except Exception as exc:  # noqa: BLE001 - never leave the main thread waiting
            message = f"could not read the end of step Job {proc.name}: {type(exc).__name__}: {exc}"
            verdict = PodVerdict("failed", "api_error", message)
            events = [self._failure_event(proc.key, proc.attempt, message, "api_error", {"job": proc.name})]
            outcome = StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=message,
                                  data={"reason": "api_error"})
        proc.result = (events, outcome)
        self.messages.put(("finished", proc))
        try:
            lines = self.config.log_tail_lines
            if proc.pod_name and lines and (text or not proc.pod_deleted):
                shown = "\n".join(text.rstrip("\n").splitlines()[-lines:])
                self.messages.put(("events", [failures.output_event(self.run_id, proc.pod_name, shown, verdict,
                                                                    step_key=proc.key)]))
        finally:
            if not proc.deleting and self.namespace:
                proc.deleting = True
                try:
                    jobs.delete_job(self.config, self.namespace, proc.name, propagation="Background")
                except Exception as exc:  # noqa: BLE001 - the sweep at the end tries again
                    log.warning("could not delete step Job %s: %s", proc.name, exc)

    def _conclude(self, proc: _StepJob, text: str,
                  forced: PodVerdict | None) -> tuple[PodVerdict, list[Event], StepOutcome]:
        """The verdict on the pod, the events to store and the attempt's outcome."""
        verdict = forced or failures.pod_verdict(proc.pod)
        reported = parse_outcome(text, proc.key, proc.attempt) if forced is None else None
        being_deleted = proc.pod_deleted or bool(((proc.pod or {}).get("metadata") or {}).get("deletionTimestamp"))
        if reported is not None:
            if reported.error != INTERRUPTED or self.stopping.is_set() or not (being_deleted or proc.deleting):
                return verdict, [], reported
            # SIGTERM from outside (the pod or its Job deleted) interrupted the op, and the step process
            # still printed its outcome before it was killed: say why, as when it could not
            gone = self._gone_verdict(proc)
            details = {"job": proc.name, "pod": proc.pod_name, "exit_code": verdict.exit_code,
                       "k8s_reason": gone.k8s_reason, **gone.details}
            return gone, [self._interrupted_event(proc, gone.message, gone.reason or "exit_code", details)], reported
        if forced is None and not verdict.fatal and (
                verdict.state not in ("succeeded", "failed")
                or (being_deleted and verdict.reason in (None, "exit_code"))):
            verdict = self._gone_verdict(proc)  # deleted before it ended (or it ended because deleted)
        elif verdict.state == "succeeded":
            verdict = PodVerdict("failed", "exited", f"pod {proc.pod_name} exited with code 0", exit_code=0)
        message = f"{verdict.message}, before the step reported an outcome" if proc.running else verdict.message
        details = {"job": proc.name, "pod": proc.pod_name, "exit_code": verdict.exit_code,
                   "k8s_reason": verdict.k8s_reason, **verdict.details}
        reason = verdict.reason or "exit_code"
        if not self._failure_stored(proc, killed=proc.pod_deleted or proc.deleting):
            events = [self._failure_event(proc.key, proc.attempt, message, reason, details)]
        elif self.stopping.is_set():
            events = []  # the run is being terminated: the step's own "interrupted" says it all
        else:  # SIGTERM from outside (the pod deleted...) interrupted the op, which reported that
            events = [self._interrupted_event(proc, message, reason, details)]
        return verdict, events, StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=message,
                                            data={"reason": verdict.reason})

    def _interrupted_event(self, proc: _StepJob, message: str, reason: str, details: dict[str, Any]) -> Event:
        """Why an op the step process reported as interrupted was: its pod or Job went away."""
        return Event(run_id=self.run_id, event_type=EventType.ENGINE_EVENT, step_key=proc.key, level="ERROR",
                     message=f"Step '{proc.key}' was interrupted because {message[0].lower()}{message[1:]}",
                     data={**details, "kind": STEP_ENDED_KIND, "reason": reason, "attempt": proc.attempt + 1})

    def _gone_verdict(self, proc: _StepJob) -> PodVerdict:
        """The pod was deleted before it ended: by a deletion of its Job, or by itself."""
        assert self.namespace is not None
        job = jobs.read_job(self.config, self.namespace, proc.name)
        failed = failures.job_failure(job)
        if failed and failed[0] == "DeadlineExceeded":
            return failures.pod_verdict(None, job)
        if proc.deleting or job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
            return PodVerdict("failed", "job_deleted", f"Job {proc.name} was deleted while its step ran")
        return PodVerdict("failed", "pod_deleted", f"pod {proc.pod_name} was deleted while its step ran")

    def _failure_stored(self, proc: _StepJob, *, killed: bool) -> bool:
        """Whether the step process stored this attempt's failure itself (interrupted on termination,
        then killed before it could print its outcome). A ``killed`` pod's last write may still be
        on its way to the database when the pod is gone: it is given a moment to land."""
        if killed:
            time.sleep(KILLED_WRITE_SECONDS)
        self.context.events.flush()
        for event in self.context.instance.storage.get_events(self.run_id, event_types=[EventType.STEP_FAILURE],
                                                              step_key=proc.key):
            if event.data.get("attempt") == proc.attempt + 1:
                return True
        return False

    # ---- failures --------------------------------------------------------------------------------
    def _failure_event(self, key: str, attempt: int, message: str, reason: str, details: dict[str, Any]) -> Event:
        return Event(run_id=self.run_id, event_type=EventType.STEP_FAILURE,
                     message=f"Step '{key}' failed: {message}", step_key=key, level="ERROR",
                     data={**details, "error": message, "reason": reason, "attempt": attempt + 1})

    def _failure(self, key: str, attempt: int, message: str, reason: str, details: dict[str, Any]) -> StepOutcome:
        self.context.events.emit_event(self._failure_event(key, attempt, message, reason, details))
        return StepOutcome(key, StepStatus.FAILURE, attempt, error=message, data={"reason": reason})

    # ---- ending ----------------------------------------------------------------------------------
    def _delete(self, proc: _StepJob) -> None:
        """On termination: delete the attempt's Job and its pod (SIGTERM, grace, SIGKILL)."""
        assert self.namespace is not None
        try:
            jobs.delete_job(self.config, self.namespace, proc.name, grace_seconds=self.config.grace_period_seconds,
                            propagation="Foreground")
        except Exception as exc:  # noqa: BLE001 - the sweep in close() tries again
            log.warning("could not delete step Job %s: %s", proc.name, exc)
        self.messages.put(("job_gone", proc))

    def _stop_all(self) -> None:
        """Delete every step Job still running (in parallel), and wait for each attempt's end: its
        outcome (the step process interrupted), else its failure recorded here."""
        self.stopping.set()
        deadline = time.monotonic() + self.config.grace_period_seconds + 30
        while self.running and time.monotonic() < deadline:
            # what the main thread may have missed when SIGTERM interrupted it (the run worker
            # raises RunTerminated wherever it is): attempts never handed to the pool, conclusions
            # whose message it was taking off the queue
            for proc in list(self.running.values()):
                if not proc.submitted:
                    self.running.pop(proc.key)
                elif proc.result is not None:
                    for done, _ in self._settle(proc):
                        self.running.pop(done.key, None)
                    self.running.pop(proc.key, None)
                elif proc.launched and not proc.deleting and not proc.finishing:
                    proc.deleting = True
                    self.pool.submit(self._delete, proc)
            try:
                item = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            for proc, _ in self._handle(*item):
                self.running.pop(proc.key, None)

    def close(self) -> None:
        """Whatever happened: no step Job of this run stays in the cluster."""
        self.stopping.set()
        self.pool.shutdown(wait=True)
        while True:  # events of attempts disposed of after the loop ended
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "finished":
                self._settle(payload)
            elif kind == "events":
                for event in payload:
                    self.context.events.emit_event(event)
        if self.watch is not None:
            self.watch.stop()
        if self.namespace is None or self.instance_id is None:
            return
        try:
            self._sweep()
        except Exception as exc:  # noqa: BLE001 - reported, the run still ends
            self.context.events.emit(EventType.ENGINE_EVENT, f"Could not delete this run's step Jobs: {exc}",
                                     level="WARNING", data={"error": str(exc)})

    def _sweep(self) -> None:
        assert self.namespace is not None
        selector = manifests.selector(self._run_labels())
        left = [j["metadata"]["name"] for j in jobs.list_jobs(self.config, self.namespace, selector)
                if not (j.get("metadata") or {}).get("deletionTimestamp")]
        for name in left:
            jobs.delete_job(self.config, self.namespace, name, grace_seconds=self.config.grace_period_seconds,
                            propagation="Foreground")
        deadline = time.monotonic() + self.config.grace_period_seconds + 30
        while time.monotonic() < deadline:  # Foreground: gone once their pods are
            if not jobs.list_jobs(self.config, self.namespace, selector):
                return
            time.sleep(0.2)
        names = [j["metadata"]["name"] for j in jobs.list_jobs(self.config, self.namespace, selector)]
        if names:
            raise LaunchError(f"step Jobs {', '.join(names)} were still being deleted when the run ended",
                              reason="api_error")


# ---- op tags ---------------------------------------------------------------------------------------------
def job_of(pod: dict[str, Any]) -> str | None:
    """The name of the Job that owns ``pod``."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Job":
            return ref.get("name")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")


_TAG_TYPES: dict[str, tuple[str, Any]] = {
    RESOURCES_TAG: ("resources", TypeAdapter(Resources)),
    NODE_SELECTOR_TAG: ("node_selector", TypeAdapter(dict[str, str])),
    TOLERATIONS_TAG: ("tolerations", TypeAdapter(list[dict[str, Any]])),
}


def op_pod_settings(step_key: str, tags: dict[str, str]) -> dict[str, Any]:
    """What an op's ``k8s/*`` tags ask of its pods: ``resources`` (a mapping of ``requests`` and
    ``limits``), ``node_selector``, ``tolerations``; a :class:`LaunchError` (``invalid_op_tag``) names
    the tag that is not valid."""
    out: dict[str, Any] = {}
    for tag, (name, adapter) in _TAG_TYPES.items():
        if tag not in tags:
            continue
        value = tags[tag]
        try:
            parsed = adapter.validate_python(parse_tag_value(value) if isinstance(value, str) else value)
            if name == "resources":
                parsed = parsed.model_dump()
            elif name == "node_selector":
                check_labels(parsed)
            else:
                for i, item in enumerate(parsed):
                    if not item:
                        raise ValueError(f"toleration {i} is empty")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LaunchError(f"op tag {tag}={value!r} of step '{step_key}' is not valid: {first['msg']}"
                              f"{f' (at {where})' if where else ''}", reason="invalid_op_tag",
                              details={"tag": tag}) from None
        except ValueError as exc:
            raise LaunchError(f"op tag {tag}={value!r} of step '{step_key}' is not valid: {exc}",
                              reason="invalid_op_tag", details={"tag": tag}) from None
        out[name] = parsed
    return out


def merged_resources(config: JobSettings, op: dict[str, Any] | None) -> dict[str, Any] | None:
    """The config's resources with an op's ``k8s/resources`` over them, per ``requests``/``limits``."""
    if op is None:
        return None
    base = config.resources.model_dump() if config.resources else {"requests": {}, "limits": {}}
    return {"requests": {**base.get("requests", {}), **(op.get("requests") or {})},
            "limits": {**base.get("limits", {}), **(op.get("limits") or {})}}
