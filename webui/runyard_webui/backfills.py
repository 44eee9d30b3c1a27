"""Backfills in the web UI (docs/backfills.md): what GraphQL (``backfills``, ``backfill``,
``launchBackfill``, ``cancelBackfill``, ``retryBackfill``) and the ``/backfills`` pages call, on top of
:mod:`runyard.operations.backfills`.

Access follows runs: a backfill belongs to its code location, so a principal limited to code
locations sees (and acts on) only the backfills of those; launching and retrying need the role that
launches runs (``launcher``), canceling the one that terminates them (``launcher``), each checked on
the backfill's code location. A backfill outside the principal's locations answers NOT_FOUND, as if
it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from runyard.auth import Action
from runyard.storage.records import BackfillRecord, BackfillStatus

from .context import INVALID, NOT_FOUND, WebError, _refusals

if TYPE_CHECKING:  # pragma: no cover
    from .context import WebContext

#: most backfills one page (GraphQL or HTML) lists
MAX_PAGE = 200


def _scope(ctx: WebContext) -> list[str] | None:
    locations = ctx.principal.locations
    return None if locations is None else sorted(locations)


def list_backfills(ctx: WebContext, statuses: Sequence[str] | None = None, limit: int = 50,
                   cursor: str | None = None, job_name: str | None = None) -> list[BackfillRecord]:
    """Newest first, the principal's code locations only."""
    try:
        wanted = [BackfillStatus(s.upper()) for s in statuses] if statuses else None
    except ValueError:
        raise WebError(f"unknown backfill status in {list(statuses or [])}: one of "
                       f"{', '.join(s.value for s in BackfillStatus)}", INVALID) from None
    return ctx.storage.get_backfills(statuses=wanted, limit=max(1, min(limit, MAX_PAGE)), cursor=cursor,
                                     job_name=job_name, locations=_scope(ctx))


def visible_backfill(ctx: WebContext, backfill_id: str) -> BackfillRecord | None:
    bf = ctx.storage.get_backfill(backfill_id)
    if bf is None or not ctx.principal.sees(bf.location):
        return None
    return bf


def get_backfill(ctx: WebContext, backfill_id: str) -> BackfillRecord:
    bf = visible_backfill(ctx, backfill_id)
    if bf is None:
        raise WebError(f"no backfill with id '{backfill_id}'", NOT_FOUND)
    return bf


def launch_backfill(ctx: WebContext, location: str, job_name: str, *, partition_keys: Sequence[str] | None = None,
                    start: str | None = None, end: str | None = None, all_partitions: bool = False,
                    tags: Mapping[str, str] | None = None) -> BackfillRecord:
    from runyard.operations import backfills as ops

    ctx.check(Action.LAUNCH_RUN, location, "launch backfills")
    with _refusals():
        loc, job = ctx.job(location, job_name)
        keys = ops.select_partition_keys(job, partitions=list(partition_keys) if partition_keys is not None else None,
                                         start=start, end=end, all_partitions=all_partitions)
        return ops.launch_backfill(ctx.instance, loc, job, keys, tags=tags, runyard_tags=ctx.launched_by_tags())


def cancel_backfill(ctx: WebContext, backfill_id: str) -> BackfillRecord:
    from runyard.operations.backfills import cancel_backfill as cancel

    bf = get_backfill(ctx, backfill_id)
    ctx.check(Action.TERMINATE_RUN, bf.location, "cancel backfills")
    with _refusals():
        return cancel(ctx.instance, backfill_id)


def retry_backfill(ctx: WebContext, backfill_id: str, tags: Mapping[str, str] | None = None) -> BackfillRecord:
    from runyard.operations.backfills import retry_backfill as retry

    bf = get_backfill(ctx, backfill_id)
    ctx.check(Action.LAUNCH_RUN, bf.location, "retry backfills")
    with _refusals():
        return retry(ctx.instance, ctx.locations(), backfill_id, tags=tags, runyard_tags=ctx.launched_by_tags())
