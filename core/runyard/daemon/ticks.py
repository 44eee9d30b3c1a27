"""Tick bookkeeping shared by the schedule and sensor loops: turning a tick's run requests into runs
(through :mod:`runyard.operations.launch`, so a daemon-made run is validated, pointed and tagged
like any other, ``runyard/location`` included) and recording how the tick ended."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..storage.records import RunStatus, TickStatus
from ..tags import LOCATION_TAG, PARTITION_TAG, RUN_KEY_TAG, TICK_TAG

if TYPE_CHECKING:  # pragma: no cover
    from ..storage.records import Tick
    from ..workspace.workspace import CodeLocation
    from .daemon import Daemon

log = logging.getLogger("runyard.daemon")


def finish_tick(daemon: Daemon, tick: Tick, status: TickStatus, *, error: str | None = None,
                skip: str | None = None) -> Tick:
    tick.status, tick.error, tick.skip_reason = status, error, skip
    daemon.storage.update_tick(tick)
    if error:
        log.warning("tick of %s at %s failed: %s", tick.instigator, tick.tick_time, error)
    return tick


def evaluation_failed(daemon: Daemon, tick: Tick, error: Any) -> Tick:
    """Finish a tick whose evaluation raised in user code (the error as the server serialized it)."""
    text = error.message + (f"\n{error.traceback}" if getattr(error, "traceback", None) else "")
    return finish_tick(daemon, tick, TickStatus.FAILURE, error=text)


def create_runs(daemon: Daemon, loc: CodeLocation, tick: Tick, tag: str, name: str,
                requests: Sequence[tuple[Any, str | None]]) -> Tick:
    """Create and submit a run per ``(run request, run key)``, tagged with ``tag: name`` (the
    schedule or sensor), the tick and the run key; then finish the tick.

    A keyed run's id is recorded on the tick (``planned_runs``) and its key claimed for that id
    before the run is created, so a tick retried after its daemon died finds its runs by those ids
    and creates the ones it had not made yet; a key claimed by any other run makes no run. The
    daemon never looks runs up by their tags: a run whose tags claim to be this tick's (forged past
    the entry points, which refuse reserved tags) is not adopted."""
    from ..operations.launch import create_from_location, validate_on_location
    from ..tags import check_user_tags

    storage = daemon.storage
    errors: list[str] = []
    skipped: list[str] = []
    for req, run_key in requests:
        try:
            planned = tick.planned_runs.get(run_key) if run_key is not None else None
            run = storage.get_run(planned) if planned is not None else None
            if run is None:  # not created yet (first attempt, or the daemon died before creating it)
                check_user_tags(req.tags, f"run request of {name}")
                validation = validate_on_location(loc, req.job_name, req.run_config)
                if not validation.ok:
                    errors.append(f"run config for job '{req.job_name}' is invalid: "
                                  + "; ".join(str(getattr(e, "message", e)) for e in validation.errors))
                    continue
                tags = {**req.tags, tag: name, TICK_TAG: str(tick.id), LOCATION_TAG: loc.name}
                if getattr(req, "partition_key", None) is not None:  # checked by the code server
                    tags[PARTITION_TAG] = req.partition_key
                run_id = planned or uuid.uuid4().hex
                if run_key is not None:
                    tags[RUN_KEY_TAG] = run_key
                    if planned is None:
                        tick.planned_runs[run_key] = run_id
                        storage.update_tick(tick)  # the id is on the tick before the key is claimed
                    if not storage.claim_run_key(name, run_key, run_id):
                        del tick.planned_runs[run_key]
                        skipped.append(run_key)
                        continue
                run = create_from_location(daemon.instance, loc, validation, run_config=req.run_config,
                                           tags=tags, run_id=run_id)
            if run.run_id not in tick.run_ids:
                tick.run_ids.append(run.run_id)
            if run_key is not None and run_key not in tick.run_keys:
                tick.run_keys.append(run_key)
            storage.update_tick(tick)  # the run is on its tick before it can start
            if run.status == RunStatus.NOT_STARTED:
                daemon.instance.submit_run(run)
        except Exception as exc:  # noqa: BLE001 - one request's trouble is the tick's error, not the loop's
            log.exception("creating a run for %s failed", name)
            errors.append(f"{type(exc).__name__}: {exc}")
    if errors:
        return finish_tick(daemon, tick, TickStatus.FAILURE, error="\n".join(errors))
    if not tick.run_ids:
        return finish_tick(daemon, tick, TickStatus.SKIPPED, skip="run keys already used: " + ", ".join(skipped))
    return finish_tick(daemon, tick, TickStatus.SUCCESS)
