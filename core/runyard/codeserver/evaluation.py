"""Evaluating schedules and sensors: calling the user's function in a thread with a time limit,
and turning whatever it returned (or yielded, or raised) into an :class:`EvaluationResult`.

A user function that raises, returns something runyard cannot use, or overruns the timeout is
not an error of the server: the result carries it (``error``), and the daemon records it on the tick.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .protocol import EvaluationResult, RunRequestData, SerializedError

log = logging.getLogger("runyard.codeserver")


class UserCodeInvalid(Exception):
    """The user's function returned something runyard cannot use (no traceback to show)."""


def _run_request(item: Any, default_job: str | None, base_tags: dict[str, str], what: str,
                 job_names: Mapping[str, Any] | set[str]) -> RunRequestData:
    from ..definitions.sensors import RunRequest

    if isinstance(item, dict):
        item = RunRequest(run_config=item)
    if not isinstance(item, RunRequest):
        raise UserCodeInvalid(f"{what} produced {type(item).__name__}; expected a RunRequest, a SkipReason "
                              "or a run config dict")
    job_name = item.job_name or default_job
    if not job_name:
        raise UserCodeInvalid(f"{what} has no job, so its RunRequest must name one (RunRequest(job_name=...))")
    if job_name not in job_names:
        raise UserCodeInvalid(f"{what} requested a run of unknown job '{job_name}' "
                              f"(jobs: {', '.join(sorted(job_names)) or 'none'})")
    try:
        run_config = json.loads(json.dumps(item.run_config or {}))
    except (TypeError, ValueError) as exc:
        raise UserCodeInvalid(f"{what} produced a run config that is not JSON-serializable: {exc}") from None
    if not isinstance(run_config, dict):
        raise UserCodeInvalid(f"{what} produced a run config that is not a mapping")
    tags = {**{str(k): str(v) for k, v in base_tags.items()},
            **{str(k): str(v) for k, v in (item.tags or {}).items()}}
    run_key = None if item.run_key is None else str(item.run_key)
    partition_key = getattr(item, "partition_key", None)
    if partition_key is not None:
        run_config, tags = _partition_request(job_names, job_name, str(partition_key), run_config, tags, what)
        partition_key = str(partition_key)
    return RunRequestData(job_name=job_name, run_config=run_config, tags=tags, run_key=run_key,
                          partition_key=partition_key)


def _partition_request(jobs: Mapping[str, Any] | set[str], job_name: str, partition_key: str,
                       run_config: dict[str, Any], tags: dict[str, str], what: str
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """The partition's run config with the request's merged over it, and the partition's tags under
    the request's (``runyard/partition`` left to the daemon)."""
    from ..definitions.config import deep_merge
    from ..definitions.partitions import PartitionKeyError
    from ..errors import DefinitionError
    from ..tags import PARTITION_TAG, ReservedTagError

    job = jobs.get(job_name) if isinstance(jobs, Mapping) else None
    if job is None:
        raise UserCodeInvalid(f"{what} requested partition '{partition_key}' of job '{job_name}', which is not "
                              "in this code location")
    try:
        partition_config, partition_tags = job.run_request_for_partition(partition_key)
    except (PartitionKeyError, ReservedTagError, DefinitionError) as exc:
        raise UserCodeInvalid(f"{what} requested a run of a partition that cannot run: {exc}") from None
    partition_tags.pop(PARTITION_TAG, None)
    return deep_merge(partition_config, run_config), {**partition_tags, **tags}


def collect(value: Any, default_job: str | None, base_tags: dict[str, str], what: str,
            job_names: Mapping[str, Any] | set[str]) -> EvaluationResult:
    """Normalise what a schedule or sensor function returned (or yielded)."""
    from ..definitions.sensors import RunRequest, SkipReason

    if value is None:
        return EvaluationResult(skip_reason=None)
    if isinstance(value, (dict, RunRequest, SkipReason)):
        items: list[Any] = [value]
    elif hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        items = list(value)  # runs the user's generator: still inside the timed evaluation
    else:
        raise UserCodeInvalid(f"{what} returned {type(value).__name__}; expected a RunRequest, a SkipReason, "
                              "a run config dict, or a list/generator of them")
    skips = [i for i in items if isinstance(i, SkipReason)]
    requests = [i for i in items if not isinstance(i, SkipReason)]
    if skips and requests:
        raise UserCodeInvalid(f"{what} produced both run requests and a SkipReason")
    if skips:
        return EvaluationResult(skip_reason=skips[0].message or "")
    return EvaluationResult(run_requests=[_run_request(i, default_job, base_tags, what, job_names)
                                          for i in requests])


def evaluate_with_timeout(what: str, call: Callable[[], EvaluationResult], timeout: float) -> EvaluationResult:
    """Run ``call`` (the user's function and the normalisation of its result) in a thread, for at
    most ``timeout`` seconds. A function that overruns keeps its thread (Python cannot stop it) but
    the caller gets an error now."""
    from ..workspace.loader import _user_traceback

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller, SystemExit too
            box["exc"] = exc

    thread = threading.Thread(target=target, name=f"evaluate {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("%s did not finish within %ss", what, timeout)
        return EvaluationResult(error=SerializedError(
            message=f"{what} timed out: it did not finish within {timeout:g} seconds "
                    "(code server --evaluation-timeout)", kind="timeout"))
    exc = box.get("exc")
    if isinstance(exc, UserCodeInvalid):
        return EvaluationResult(error=SerializedError(message=str(exc), kind="invalid_result"))
    if exc is not None:
        return EvaluationResult(error=SerializedError(message=f"error in {what}: {type(exc).__name__}: {exc}",
                                                      traceback=_user_traceback(exc, None), kind="user_code_error"))
    return box["result"]


def evaluate_schedule(defs: Any, name: str, tick_time: float, timeout: float) -> EvaluationResult:
    """Schedule ``name`` of ``defs`` for the tick at ``tick_time`` (epoch seconds), in its time zone."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ..definitions.schedules import ScheduleEvaluationContext

    schedule = defs.schedules[name]
    what = f"schedule '{name}'"
    job_names = defs.jobs  # by name: a partition's request reads its job

    def call() -> EvaluationResult:
        if schedule.evaluation_fn is None:
            return collect(dict(schedule.run_config or {}), schedule.job_name, schedule.tags, what, job_names)
        scheduled_time = datetime.fromtimestamp(float(tick_time), ZoneInfo(schedule.execution_timezone))
        context = ScheduleEvaluationContext(scheduled_time=scheduled_time, schedule_name=name)
        return collect(schedule.evaluation_fn(context), schedule.job_name, schedule.tags, what, job_names)

    result = evaluate_with_timeout(what, call, timeout)
    if result.ok and not result.run_requests and result.skip_reason is None:
        result = result.model_copy(update={"skip_reason": "the schedule function requested no run"})
    return result


def evaluate_sensor(defs: Any, name: str, cursor: str | None, last_tick_time: float | None,
                    timeout: float) -> EvaluationResult:
    """Sensor ``name`` of ``defs``; the result's ``cursor`` is the one to store (a failed evaluation
    does not move it)."""
    from ..definitions.sensors import SensorEvaluationContext

    sensor = defs.sensors[name]
    what = f"sensor '{name}'"
    job_names = defs.jobs  # by name: a partition's request reads its job
    context = SensorEvaluationContext(sensor_name=name, cursor=cursor, last_tick_time=last_tick_time)

    def call() -> EvaluationResult:
        result = collect(sensor.evaluation_fn(context), sensor.job_name, {}, what, job_names)
        return result.model_copy(update={"cursor": None if context.cursor is None else str(context.cursor)})

    result = evaluate_with_timeout(what, call, timeout)
    if result.error:
        result = result.model_copy(update={"cursor": cursor})
    return result
