"""How a run's or step's pod is doing, in runyard's words: the state of a pod and its Job read into a
:class:`PodVerdict` with a typed reason, and the last lines of a pod's log as an event.

Reasons (``data["reason"]`` of the run's or step's failure):

============================  =====================================================================
``image_pull_error``          the image cannot be pulled (``ErrImagePull``, ``ImagePullBackOff``,
                              ``ErrImageNeverPull``, ``InvalidImageName``); fails at once
``create_container_error``    the container cannot be made (``CreateContainerConfigError``: a
                              Secret or ConfigMap it needs is missing; ``CreateContainerError``...)
``unschedulable``             no node can take the pod; the scheduler's message is shown, and the run
                              fails with this reason when its start timeout is over
``oom_killed``                the container used more memory than its limit (``OOMKilled``)
``evicted``                   the node evicted the pod (``Evicted``, with the kubelet's message)
``deadline_exceeded``         the Job ran past ``activeDeadlineSeconds``
``exit_code``                 the container exited with a non-zero code
``pod_deleted``               the pod was deleted before its run or step finished
``job_deleted``               the Job was deleted before its run or step finished
============================  =====================================================================

The Kubernetes reason itself is kept in ``data["k8s_reason"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runyard.storage.records import Event, EventType

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance

OUTPUT_EVENT_KIND = "pod_output"
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                        "RegistryUnavailable"})
CREATE_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


@dataclass
class PodVerdict:
    """``state``: pending | running | succeeded | failed. A failed verdict (and a pending one that can
    never start by itself, ``fatal``) carries ``reason`` and ``message``; a pending one may carry the
    reason it waits (``unschedulable``)."""

    state: str
    reason: str | None = None
    message: str = ""
    k8s_reason: str | None = None
    exit_code: int | None = None
    fatal: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dead(self) -> bool:
        return self.state == "failed" or self.fatal


def _container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def job_failure(job: dict[str, Any] | None) -> tuple[str, str] | None:
    """The Job's own ``Failed`` condition as (k8s reason, message), if it has one."""
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return cond.get("reason") or "Failed", cond.get("message") or ""
    return None


def pod_verdict(pod: dict[str, Any] | None, job: dict[str, Any] | None = None) -> PodVerdict:
    """What ``pod`` (of ``job``) says about its worker. A missing pod of a Job that failed takes the
    Job's reason (``DeadlineExceeded`` deletes the pod)."""
    failed_job = job_failure(job)
    if failed_job and failed_job[0] == "DeadlineExceeded":
        name = (job or {}).get("metadata", {}).get("name", "?")
        deadline = (job or {}).get("spec", {}).get("activeDeadlineSeconds")
        return PodVerdict("failed", "deadline_exceeded", f"Job {name} ran past its activeDeadlineSeconds "
                          f"({deadline}s): {failed_job[1] or 'DeadlineExceeded'}", "DeadlineExceeded")
    if pod is None:
        if failed_job:
            return PodVerdict("failed", "exit_code", f"Job failed: {failed_job[0]} {failed_job[1]}".strip(),
                              failed_job[0])
        return PodVerdict("pending")
    name = pod.get("metadata", {}).get("name", "?")
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if status.get("reason") == "Evicted":
        return PodVerdict("failed", "evicted", f"pod {name} was evicted: {status.get('message') or 'Evicted'}",
                          "Evicted")
    if status.get("reason") == "DeadlineExceeded":
        return PodVerdict("failed", "deadline_exceeded", f"pod {name} ran past its deadline: "
                          f"{status.get('message') or 'DeadlineExceeded'}", "DeadlineExceeded")
    cs = _container_status(pod)
    state = cs.get("state") or {}
    terminated = state.get("terminated")
    if terminated:
        code = terminated.get("exitCode")
        why = terminated.get("reason") or ""
        if why == "OOMKilled":
            limit = _memory_limit(pod)
            return PodVerdict("failed", "oom_killed", f"pod {name} was killed for using more memory than its "
                              f"limit{f' ({limit})' if limit else ''}: OOMKilled, exit code {code}", "OOMKilled",
                              exit_code=code)
        if code == 0:
            return PodVerdict("succeeded", exit_code=0)
        extra = f": {terminated.get('message')}" if terminated.get("message") else ""
        return PodVerdict("failed", "exit_code", f"pod {name} exited with code {code} ({why or 'Error'}){extra}",
                          why or "Error", exit_code=code)
    waiting = state.get("waiting") or {}
    why = waiting.get("reason") or ""
    if why in IMAGE_PULL:
        image = cs.get("image") or _image(pod)
        return PodVerdict("pending", "image_pull_error", f"pod {name} cannot pull image {image!r} ({why}): "
                          f"{waiting.get('message') or why}", why, fatal=True, details={"image": image})
    if why in CREATE_ERRORS:
        return PodVerdict("pending", "create_container_error", f"pod {name} cannot create its container "
                          f"({why}): {waiting.get('message') or why}", why, fatal=True)
    if phase == "Failed":
        return PodVerdict("failed", "exit_code", f"pod {name} failed: {status.get('reason') or ''} "
                          f"{status.get('message') or ''}".strip(), status.get("reason") or "Failed")
    if phase == "Succeeded":
        return PodVerdict("succeeded", exit_code=0)
    if phase == "Running":
        return PodVerdict("running")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and \
                cond.get("reason") == "Unschedulable":
            return PodVerdict("pending", "unschedulable", f"pod {name} cannot be scheduled: "
                              f"{cond.get('message') or 'Unschedulable'}", "Unschedulable")
    return PodVerdict("pending")


def deletion_verdict(pod: dict[str, Any], job: dict[str, Any] | None) -> PodVerdict:
    """Why a running pod is being deleted: its Job ran past its deadline, its Job is being deleted,
    or the pod itself was deleted (a node drain, ``kubectl delete pod``)."""
    name = pod["metadata"].get("name", "?")
    failed_job = job_failure(job)
    job_name = (job or {}).get("metadata", {}).get("name", "?")
    if failed_job and failed_job[0] == "DeadlineExceeded":
        deadline = (job or {}).get("spec", {}).get("activeDeadlineSeconds")
        return PodVerdict("failed", "deadline_exceeded", f"Job {job_name} ran past its activeDeadlineSeconds "
                          f"({deadline}s): {failed_job[1] or 'DeadlineExceeded'}", "DeadlineExceeded")
    if job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return PodVerdict("failed", "job_deleted", f"Job {job_name} was deleted before the run "
                          f"finished (its pod {name} is being stopped)", "Deleted")
    return PodVerdict("failed", "pod_deleted", f"pod {name} was deleted before the run finished", "Deleted")


def _image(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0].get("image", "?")


def _memory_limit(pod: dict[str, Any]) -> str | None:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")


def output_event(run_id: str, pod_name: str, text: str, verdict: PodVerdict, *,
                 step_key: str | None = None) -> Event:
    """The last lines of a pod's log, as the event stored before its Job can be deleted."""
    text = text.rstrip("\n")
    shown = len(text.splitlines()) if text else 0
    code = f"; exit code {verdict.exit_code}" if verdict.exit_code is not None else ""
    why = f", {verdict.k8s_reason}" if verdict.k8s_reason else ""
    header = f"Output of pod {pod_name} (last {shown} line{'s' if shown != 1 else ''}{code}{why}):"
    return Event(run_id=run_id, event_type=EventType.ENGINE_EVENT, step_key=step_key,
                 message=header + ("\n" + text if text else " (no output)"),
                 level="ERROR" if verdict.dead else "INFO",
                 data={"kind": OUTPUT_EVENT_KIND, "pod": pod_name, "exit_code": verdict.exit_code,
                       "k8s_reason": verdict.k8s_reason, "lines": shown})


def output_stored(instance: Instance, run_id: str, pod_name: str) -> bool:
    return any(e.data.get("kind") == OUTPUT_EVENT_KIND and e.data.get("pod") == pod_name
               for e in instance.storage.get_events(run_id, event_types=[EventType.ENGINE_EVENT]))
