"""Backfills in GraphQL (docs/backfills.md): queries ``backfills`` and ``backfill``, mutations
``launchBackfill``, ``cancelBackfill`` and ``retryBackfill``. The work is in
:mod:`runyard_webui.backfills` (access) and :mod:`runyard.operations.backfills`."""

from __future__ import annotations

import functools

import graphene

from .types import Run, StatusCount, Tag, TagInput, tag_list, web


class BackfillProgress(graphene.ObjectType):
    """Root: a :class:`runyard.operations.backfills.BackfillProgress`."""

    total = graphene.Int(required=True, description="Partitions of the backfill.")
    submitted = graphene.Int(required=True, description="Partitions whose run was created.")
    finished = graphene.Int(required=True, description="Runs that finished (SUCCESS, FAILURE or CANCELED).")
    status_counts = graphene.List(graphene.NonNull(StatusCount), required=True,
                                  description="The backfill's runs per status (one grouped query).")

    resolve_total = staticmethod(lambda root, info: root.total)
    resolve_submitted = staticmethod(lambda root, info: root.submitted)
    resolve_finished = staticmethod(lambda root, info: root.finished)

    @staticmethod
    def resolve_status_counts(root, info):
        return [StatusCount(status=str(st), count=n) for st, n in sorted(root.runs.items(), key=lambda kv: kv[0].value)]


class BackfillPartition(graphene.ObjectType):
    """One partition of a backfill and the newest run the backfill made for it (null: not yet)."""

    key = graphene.String(required=True)
    status = graphene.String(required=True, description="Its run's status; PENDING before it has one.")
    run_id = graphene.String()
    run = graphene.Field(Run)


class Backfill(graphene.ObjectType):
    """Root: a :class:`runyard.storage.records.BackfillRecord`."""

    backfill_id = graphene.ID(required=True)
    location = graphene.String(required=True)
    job_name = graphene.String(required=True)
    status = graphene.String(required=True, description="REQUESTED, COMPLETED, CANCELING, CANCELED or FAILED")
    num_partitions = graphene.Int(required=True)
    submitted = graphene.Int(required=True, description="Partitions whose run was created (the daemon's cursor).")
    partition_keys = graphene.List(graphene.NonNull(graphene.String), required=True)
    tags = graphene.List(graphene.NonNull(Tag), required=True, description="Tags every run of it gets.")
    created_at = graphene.Float(required=True)
    updated_at = graphene.Float()
    error = graphene.String(description="Why it failed, or the passing problem the daemon retries.")
    retry_of = graphene.String(description="The backfill whose failed partitions this one runs again.")
    progress = graphene.Field(BackfillProgress, required=True)
    partitions = graphene.List(
        graphene.NonNull(BackfillPartition), required=True, limit=graphene.Int(default_value=1000),
        offset=graphene.Int(default_value=0),
        description="Partitions in launch order with their runs (`limit` at most 5000 from `offset`).")

    resolve_backfill_id = staticmethod(lambda root, info: root.backfill_id)
    resolve_location = staticmethod(lambda root, info: root.location)
    resolve_job_name = staticmethod(lambda root, info: root.job_name)
    resolve_status = staticmethod(lambda root, info: str(root.status))
    resolve_num_partitions = staticmethod(lambda root, info: root.num_partitions)
    resolve_submitted = staticmethod(lambda root, info: root.submitted)
    resolve_partition_keys = staticmethod(lambda root, info: root.partition_keys)
    resolve_tags = staticmethod(lambda root, info: tag_list(root.tags))
    resolve_created_at = staticmethod(lambda root, info: root.created_at)
    resolve_updated_at = staticmethod(lambda root, info: root.updated_at)
    resolve_error = staticmethod(lambda root, info: root.error)
    resolve_retry_of = staticmethod(lambda root, info: root.retry_of)

    @staticmethod
    def resolve_progress(root, info):
        from runyard.operations.backfills import backfill_progress

        return backfill_progress(web(info).storage, root)

    @staticmethod
    def resolve_partitions(root, info, limit=1000, offset=0):
        from runyard.operations.backfills import partition_runs

        rows = list(partition_runs(web(info).storage, root).items())
        start = max(0, offset)
        return [BackfillPartition(key=k, run_id=r.run_id if r else None, status=str(r.status) if r else "PENDING",
                                  run=r) for k, r in rows[start:start + max(0, min(limit, 5000))]]


class BackfillsPage(graphene.ObjectType):
    backfills = graphene.List(graphene.NonNull(Backfill), required=True)
    cursor = graphene.String(description="Pass as `cursor` for the next, older page; null on the last one.")


def backfills_field() -> graphene.Field:
    def resolve(root, info, limit=50, cursor=None, status=None, job_name=None):
        from ..backfills import MAX_PAGE, list_backfills

        size = max(1, min(limit, MAX_PAGE))
        found = list_backfills(web(info), status, size, cursor, job_name)
        return BackfillsPage(backfills=found, cursor=found[-1].backfill_id if len(found) == size else None)

    return graphene.Field(BackfillsPage, required=True, resolver=resolve,
                          limit=graphene.Int(default_value=50, description="At most 200."),
                          cursor=graphene.String(), job_name=graphene.String(),
                          status=graphene.List(graphene.NonNull(graphene.String), description="Any of these."),
                          description="Backfills, newest first (the ones of the code locations you see).")


def backfill_field() -> graphene.Field:
    def resolve(root, info, backfill_id):
        from ..backfills import visible_backfill

        return visible_backfill(web(info), backfill_id)

    return graphene.Field(Backfill, resolver=resolve, backfill_id=graphene.ID(required=True),
                          description="One backfill with its progress; null when unknown.")


BackfillPayload = type("BackfillPayload", (graphene.ObjectType,), {
    "ok": graphene.Boolean(required=True), "message": graphene.String(), "code": graphene.String(),
    "backfill": graphene.Field(Backfill),
    "__doc__": "``backfill`` when ok; else ``message`` and ``code`` (NOT_FOUND, INVALID, FORBIDDEN, ...)."})


def _answer(fn):
    @functools.wraps(fn)
    def mutate(root, info, **kwargs):
        from runyard.errors import RunyardError

        from ..context import WebError, error_code

        try:
            return BackfillPayload(ok=True, backfill=fn(web(info), **kwargs))
        except (WebError, RunyardError) as exc:
            return BackfillPayload(ok=False, message=exc.message if isinstance(exc, WebError) else str(exc),
                                   code=error_code(exc))
    return staticmethod(mutate)


def _launch(ctx, location, job_name, partition_keys=None, from_key=None, to_key=None, all_partitions=False,
            tags=None):
    from ..backfills import launch_backfill

    return launch_backfill(ctx, location, job_name, partition_keys=partition_keys, start=from_key, end=to_key,
                           all_partitions=bool(all_partitions), tags={t.key: t.value for t in tags or []})


def _cancel(ctx, backfill_id):
    from ..backfills import cancel_backfill

    return cancel_backfill(ctx, backfill_id)


def _retry(ctx, backfill_id, tags=None):
    from ..backfills import retry_backfill

    return retry_backfill(ctx, backfill_id, {t.key: t.value for t in tags or []})


LaunchBackfill = type("LaunchBackfill", (graphene.Mutation,), {
    "__doc__": "Store a backfill of a partitioned job: `partitionKeys`, a range (`fromKey`/`toKey`, inclusive) "
               "or `allPartitions`. The daemon creates its runs, queued.",
    "Arguments": type("Arguments", (), {
        "location": graphene.String(required=True), "job_name": graphene.String(required=True),
        "partition_keys": graphene.List(graphene.NonNull(graphene.String)),
        "from_key": graphene.String(), "to_key": graphene.String(), "all_partitions": graphene.Boolean(),
        "tags": graphene.List(graphene.NonNull(TagInput))}),
    "Output": BackfillPayload, "mutate": _answer(_launch)})
CancelBackfill = type("CancelBackfill", (graphene.Mutation,), {
    "__doc__": "Stop a backfill: no more runs are created and its queued runs are canceled (runs already "
               "launched go on).",
    "Arguments": type("Arguments", (), {"backfill_id": graphene.ID(required=True)}),
    "Output": BackfillPayload, "mutate": _answer(_cancel)})
RetryBackfill = type("RetryBackfill", (graphene.Mutation,), {
    "__doc__": "A new backfill of the partitions whose run failed or was canceled in this one.",
    "Arguments": type("Arguments", (), {"backfill_id": graphene.ID(required=True),
                                        "tags": graphene.List(graphene.NonNull(TagInput))}),
    "Output": BackfillPayload, "mutate": _answer(_retry)})
