"""The root ``Query`` type."""

from __future__ import annotations

import graphene

from .. import __version__
from . import dagster_compat
from .auth import audit_log_field, viewer_field
from .backfills import backfill_field, backfills_field
from .launchpad import validate_run_config_field
from .types import (
    DaemonStatus,
    EventsPage,
    Instance,
    Instigator,
    Job,
    Location,
    Run,
    RunsPage,
    StepLogs,
    TagInput,
    job_root,
    web,
)


class Query(graphene.ObjectType):
    instance = graphene.Field(Instance, required=True)
    runs = graphene.Field(
        RunsPage, required=True, description="Runs, newest first, matching every filter given.",
        statuses=graphene.List(graphene.NonNull(graphene.String), description="Any of these statuses."),
        job_name=graphene.String(), tags=graphene.List(graphene.NonNull(TagInput), description="Every tag."),
        launched_by=graphene.String(description="schedule:<name>, sensor:<name>, user:<name>, manual (launched "
                                    "from the web UI by anyone), or schedule / sensor (any)."),
        created_after=graphene.Float(description="Created at or after (epoch seconds)."),
        created_before=graphene.Float(description="Created before (epoch seconds)."),
        limit=graphene.Int(default_value=50), cursor=graphene.String())
    run = graphene.Field(Run, run_id=graphene.ID(required=True), description="One run; null when unknown.")
    run_events = graphene.Field(
        EventsPage, required=True, run_id=graphene.ID(required=True), after_id=graphene.Int(),
        limit=graphene.Int(default_value=1000), wait_seconds=graphene.Float(default_value=0),
        before_id=graphene.Int(),
        description="A run's events after `afterId`. With `waitSeconds`, waits (up to webui.long_poll_seconds) "
                    "for a new event when there is none yet and the run is not finished: a long poll. With "
                    "`beforeId`, pages backwards instead: the last `limit` events older than that id, in "
                    "order, and `hasOlder` (no waiting).")
    step_logs = graphene.Field(
        StepLogs, required=True, run_id=graphene.ID(required=True), step_key=graphene.String(required=True),
        stream=graphene.String(default_value="stdout"), offset=graphene.Int(default_value=0),
        max_bytes=graphene.Int(default_value=256 * 1024),
        description="A step's captured stdout or stderr (its latest attempt), from `offset`.")
    locations = graphene.List(graphene.NonNull(Location), required=True)
    job = graphene.Field(Job, location=graphene.String(required=True), name=graphene.String(required=True))
    daemon_status = graphene.Field(DaemonStatus, required=True)
    schedules = graphene.List(graphene.NonNull(Instigator), required=True,
                              description="Every schedule; a failing location's from storage (`stale`).")
    sensors = graphene.List(graphene.NonNull(Instigator), required=True,
                            description="Every sensor; a failing location's from storage (`stale`).")
    validate_run_config = validate_run_config_field()  # the launchpad's (schema/launchpad.py)
    instigator = graphene.Field(Instigator, kind=graphene.String(required=True), name=graphene.String(required=True),
                                description="One schedule or sensor (`kind`: schedule or sensor); null when unknown.")
    # Dagster's repositoriesOrError, pipelineRunOrError, runOrError (schema/dagster_compat.py, docs/api.md)
    repositories_or_error = dagster_compat.repositories_or_error_field()
    pipeline_run_or_error = dagster_compat.run_or_error_field("Dagster's run lookup (its older name).")
    run_or_error = dagster_compat.run_or_error_field("Dagster's run lookup: a Run, or RunNotFoundError.")
    # who is asking, and the audit log (schema/auth.py, docs/auth.md)
    viewer = viewer_field()
    audit_log = audit_log_field()
    # backfills (schema/backfills.py, docs/backfills.md)
    backfills = backfills_field()
    backfill = backfill_field()

    @staticmethod
    def resolve_instance(root, info):
        ctx = web(info)
        inst = ctx.instance
        storage = inst.storage.describe()
        return Instance(home=inst.home, storage=storage.get("url") or inst.storage.name,
                        run_coordinator=inst.run_coordinator.name, run_launcher=inst.run_launcher.name,
                        read_only=ctx.settings.read_only, version=__version__)

    @staticmethod
    def resolve_runs(root, info, statuses=None, job_name=None, tags=None, launched_by=None, created_after=None,
                     created_before=None, limit=50, cursor=None):
        from ..runs_list import RunsQuery, runs_page

        query = RunsQuery.build(statuses=statuses, job=job_name,
                                tags=[(t.key, t.value) for t in tags] if tags else None,
                                launched_by=launched_by, created_after=created_after, created_before=created_before)
        return runs_page(web(info).storage, query, limit=max(1, min(limit, 500)), cursor=cursor)

    @staticmethod
    def resolve_run(root, info, run_id):
        return web(info).visible_run(run_id)

    @staticmethod
    def resolve_run_events(root, info, run_id, after_id=None, limit=1000, wait_seconds=0, before_id=None):
        if before_id is not None:
            events, older, run = web(info).older_run_events(run_id, before_id, limit, after_id)
            return EventsPage(events=events, cursor=events[-1].id if events else None, run_status=str(run.status),
                              finished=run.status.is_finished, has_older=older)
        page = web(info).run_events(run_id, after_id, limit, wait_seconds)
        return EventsPage(events=page.events, cursor=page.cursor, run_status=str(page.run.status),
                          finished=page.run.status.is_finished)

    @staticmethod
    def resolve_step_logs(root, info, run_id, step_key, stream="stdout", offset=0, max_bytes=256 * 1024):
        return StepLogs(**web(info).step_logs(run_id, step_key, stream, offset, max_bytes))

    @staticmethod
    def resolve_locations(root, info):
        return web(info).locations()

    @staticmethod
    def resolve_job(root, info, location, name):
        from ..context import WebError

        try:
            loc, job = web(info).job(location, name)
        except WebError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        return job_root(loc.name, job)

    @staticmethod
    def resolve_daemon_status(root, info):
        from runyard.daemon.status import daemon_status

        return daemon_status(web(info).storage)

    @staticmethod
    def resolve_schedules(root, info):
        return web(info).automation_rows("schedule")

    @staticmethod
    def resolve_sensors(root, info):
        return web(info).automation_rows("sensor")

    @staticmethod
    def resolve_instigator(root, info, kind, name):
        from ..context import WebError

        try:
            return web(info).automation_row(kind, name)
        except WebError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
