"""The root ``Query`` type."""

from __future__ import annotations

import graphene

from .. import __version__
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
    runs = graphene.Field(RunsPage, required=True, description="Runs, newest first.",
                          statuses=graphene.List(graphene.NonNull(graphene.String)), job_name=graphene.String(),
                          tags=graphene.List(graphene.NonNull(TagInput)), limit=graphene.Int(default_value=50),
                          cursor=graphene.String())
    run = graphene.Field(Run, run_id=graphene.ID(required=True), description="One run; null when unknown.")
    run_events = graphene.Field(
        EventsPage, required=True, run_id=graphene.ID(required=True), after_id=graphene.Int(),
        limit=graphene.Int(default_value=1000), wait_seconds=graphene.Float(default_value=0),
        description="A run's events after `afterId`. With `waitSeconds`, waits (up to webui.long_poll_seconds) "
                    "for a new event when there is none yet and the run is not finished: a long poll.")
    step_logs = graphene.Field(
        StepLogs, required=True, run_id=graphene.ID(required=True), step_key=graphene.String(required=True),
        stream=graphene.String(default_value="stdout"), offset=graphene.Int(default_value=0),
        max_bytes=graphene.Int(default_value=256 * 1024),
        description="A step's captured stdout or stderr (its latest attempt), from `offset`.")
    locations = graphene.List(graphene.NonNull(Location), required=True)
    job = graphene.Field(Job, location=graphene.String(required=True), name=graphene.String(required=True))
    daemon_status = graphene.Field(DaemonStatus, required=True)
    schedules = graphene.List(graphene.NonNull(Instigator), required=True)
    sensors = graphene.List(graphene.NonNull(Instigator), required=True)

    @staticmethod
    def resolve_instance(root, info):
        ctx = web(info)
        inst = ctx.instance
        storage = inst.storage.describe()
        return Instance(home=inst.home, storage=storage.get("url") or inst.storage.name,
                        run_coordinator=inst.run_coordinator.name, run_launcher=inst.run_launcher.name,
                        read_only=ctx.settings.read_only, version=__version__)

    @staticmethod
    def resolve_runs(root, info, statuses=None, job_name=None, tags=None, limit=50, cursor=None):
        from runyard.storage.records import RunFilter, RunStatus

        from ..context import WebError

        try:
            wanted = [RunStatus(s.upper()) for s in statuses] if statuses else None
        except ValueError as exc:
            raise WebError(f"unknown run status in {statuses}; statuses: "
                           f"{', '.join(s.value for s in RunStatus)}") from exc
        filters = RunFilter(statuses=wanted, job_name=job_name or None,
                            tags={t.key: t.value for t in tags} if tags else None)
        limit = max(1, min(limit, 500))
        storage = web(info).storage
        runs = storage.get_runs(filters, limit=limit + 1, cursor=cursor)
        more = len(runs) > limit
        runs = runs[:limit]
        return RunsPage(runs=runs, count=storage.count_runs(filters),
                        cursor=runs[-1].run_id if more and runs else None)

    @staticmethod
    def resolve_run(root, info, run_id):
        return web(info).storage.get_run(run_id)

    @staticmethod
    def resolve_run_events(root, info, run_id, after_id=None, limit=1000, wait_seconds=0):
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
        return web(info).instigators("schedule")

    @staticmethod
    def resolve_sensors(root, info):
        return web(info).instigators("sensor")
