"""Tick bookkeeping shared by the schedule and sensor loops: turning a tick's run requests into runs
(through :mod:`runyard.operations.launch`, so a daemon-made run is validated, pointed and tagged
like any other, ``runyard/location`` included) and recording how the tick ended."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..storage.records import RunFilter, RunStatus, TickStatus
from ..tags import LOCATION_TAG, RUN_KEY_TAG, TICK_TAG

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
    schedule or sensor), the tick and the run key; then finish the tick. A run key already claimed
    makes no second run; a tick retried after its daemon died finds the runs it made already."""
    from ..operations.launch import create_from_location, validate_on_location

    storage = daemon.storage
    errors: list[str] = []
    skipped: list[str] = []
    for req, run_key in requests:
        try:
            existing = None
            if run_key is not None:
                found = storage.get_runs(RunFilter(tags={tag: name, RUN_KEY_TAG: run_key, TICK_TAG: str(tick.id)}),
                                         limit=1)
                existing = found[0] if found else None
            if existing is not None:  # this tick, retried: its run exists already
                run = existing
                storage.claim_run_key(name, run_key, run.run_id)
            else:
                validation = validate_on_location(loc, req.job_name, req.run_config)
                if not validation.ok:
                    errors.append(f"run config for job '{req.job_name}' is invalid: "
                                  + "; ".join(str(getattr(e, "message", e)) for e in validation.errors))
                    continue
                tags = {**req.tags, tag: name, TICK_TAG: str(tick.id), LOCATION_TAG: loc.name}
                run_id = uuid.uuid4().hex
                if run_key is not None:
                    tags[RUN_KEY_TAG] = run_key
                    if not storage.claim_run_key(name, run_key, run_id):
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
