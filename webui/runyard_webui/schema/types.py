"""GraphQL object types. Each wraps a storage record or a code location snapshot model
(:mod:`runyard.codeserver.snapshot`) as its root value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from runyard.tags import LOCATION_TAG

from .dagster_run import PipelineRun
from .plain import info_free


def web(info):
    return info.context["web"]


class Tag(graphene.ObjectType):
    key = graphene.String(required=True)
    value = graphene.String(required=True)


class TagInput(graphene.InputObjectType):
    key = graphene.String(required=True)
    value = graphene.String(required=True)


def tag_list(tags: dict[str, str]) -> list[Tag]:
    return [Tag(key=k, value=v) for k, v in sorted(tags.items())]


class Event(graphene.ObjectType):
    id = graphene.Int(required=True)
    run_id = graphene.String(required=True)
    event_type = graphene.String(required=True)
    timestamp = graphene.Float(required=True)
    step_key = graphene.String()
    level = graphene.String(required=True)
    message = graphene.String(required=True)
    data = GenericScalar(description="The event's payload (errors, outputs, log extras) as JSON.")

    @staticmethod
    @info_free
    def resolve_event_type(root, info):
        return str(root.event_type)

    @staticmethod
    @info_free
    def resolve_data(root, info):
        return json.loads(json.dumps(root.data or {}, default=repr))


class StepStats(graphene.ObjectType):
    step_key = graphene.String(required=True)
    status = graphene.String()
    attempts = graphene.Int()
    start_time = graphene.Float()
    end_time = graphene.Float()
    error = graphene.String()

    @staticmethod
    def resolve_status(root, info):
        return None if root.status is None else str(root.status)

    @staticmethod
    def resolve_error(root, info):
        err = getattr(root, "error", None)
        if err is None or isinstance(err, str):
            return err
        return err.get("message") if isinstance(err, dict) else str(err)


class RunFailure(graphene.ObjectType):
    """Why a run failed or was canceled, as its launcher or run monitoring stored it
    (:func:`runyard.operations.failure.run_failure`)."""

    reason = graphene.String(required=True, description="A short code: `image_not_found`, `oom_killed`, "
                             "`start_timeout`...")
    message = graphene.String(required=True)


# ---- the run page: the plan's steps, attempts, launched-by (docs/webui.md, "The run page") ---------

class StepAttempt(graphene.ObjectType):
    """Root: a :class:`runyard_webui.run_view.StepAttempt`."""

    start_time = graphene.Float(required=True)
    end_time = graphene.Float(description="Null while the attempt runs.")
    outcome = graphene.String(required=True, description="RUNNING, SUCCESS, FAILURE or RETRY (failed, "
                              "another attempt followed).")


class PlanStep(graphene.ObjectType):
    """A step of a run's plan, pending ones included. Root: a :class:`runyard_webui.run_view.PlanStep`."""

    step_key = graphene.String(required=True)
    status = graphene.String(required=True, description="STARTED, RETRY, SUCCESS, FAILURE, SKIPPED; PENDING "
                             "(no event yet, the run goes on) or NOT_RUN (no event, the run is over).")
    attempts = graphene.List(graphene.NonNull(StepAttempt), required=True)
    start_time = graphene.Float()
    end_time = graphene.Float()
    duration = graphene.Float(description="First attempt's start to last attempt's end; null until ended.")
    error = graphene.String()
    upstream = graphene.List(graphene.NonNull(graphene.String), required=True,
                             description="The steps of the plan this one reads from (from a plan stored "
                             "with the run; empty when the plan came from elsewhere).")


class LaunchedBy(graphene.ObjectType):
    """What created a run. Root: a :class:`runyard_webui.run_view.Launch`."""

    kind = graphene.String(required=True, description="schedule, sensor, user (the web UI's signed-in user or "
                           "anonymous), retry (the daemon's run retries) or unknown (the CLI, the Python API).")
    name = graphene.String(description="The schedule, sensor or user.")
    run_id = graphene.String(description="The run this one re-executes or retries.")


class Run(graphene.ObjectType):
    class Meta:  # Dagster's clients read runs through its PipelineRun interface (docs/api.md)
        interfaces = (PipelineRun,)

    run_id = graphene.ID(required=True)
    job_name = graphene.String(required=True)
    status = graphene.String(required=True)
    run_config = GenericScalar(required=True)
    tags = graphene.List(graphene.NonNull(Tag), required=True)
    location = graphene.String(description="The code location the run was launched from, when known.")
    step_keys_to_execute = graphene.List(graphene.NonNull(graphene.String))
    parent_run_id = graphene.String()
    root_run_id = graphene.String()
    created_at = graphene.Float(required=True)
    start_time = graphene.Float()
    end_time = graphene.Float()
    duration = graphene.Float(description="Seconds from start to end (or to now while running).")
    can_terminate = graphene.Boolean(required=True)
    failure = graphene.Field(RunFailure, description="For a FAILURE or CANCELED run whose launcher or run "
                             "monitoring said why: the reason and message; else null.")
    steps = graphene.List(graphene.NonNull(StepStats), required=True)
    events = graphene.List(graphene.NonNull(Event), required=True, after_id=graphene.Int(),
                           limit=graphene.Int(default_value=1000))
    plan_steps = graphene.List(graphene.NonNull(PlanStep), required=True,
                               description="Every step of the run's plan in plan order, pending ones "
                               "included, with its attempts (from the plan the run worker stored with the "
                               "run; for a run without one, from the job's snapshot in the run's code "
                               "location, or the run's step selection).")
    plan_known = graphene.Boolean(required=True, description="False when the run stored no plan and the job's "
                                  "snapshot was unavailable: planSteps lists only the selected steps or those "
                                  "that started.")
    plan_source = graphene.String(required=True, description="Where planSteps came from: RUN (stored with the "
                                  "run), SNAPSHOT (the job as its location serves it now), SELECTION (the run's "
                                  "step selection) or EVENTS (only the steps that started).")
    children = graphene.List(graphene.NonNull(lambda: Run), required=True,
                             limit=graphene.Int(default_value=20),
                             description="Re-executions of this run (daemon retries included), newest first.")
    launched_by = graphene.Field(LaunchedBy, required=True)

    @staticmethod
    @info_free
    def resolve_run_id(root, info):
        return root.run_id

    @staticmethod
    @info_free
    def resolve_status(root, info):
        return str(root.status)

    @staticmethod
    def resolve_tags(root, info):
        return tag_list(root.tags)

    @staticmethod
    @info_free
    def resolve_location(root, info):
        return root.tags.get(LOCATION_TAG)

    @staticmethod
    @info_free
    def resolve_duration(root, info):
        return root.duration

    @staticmethod
    @info_free
    def resolve_can_terminate(root, info):
        from runyard.storage.records import UNFINISHED_STATUSES, RunStatus

        return root.status in UNFINISHED_STATUSES and root.status != RunStatus.CANCELING

    @staticmethod
    def resolve_failure(root, info):
        from runyard.operations.failure import run_failure

        return run_failure(web(info).storage, root)

    @staticmethod
    def resolve_steps(root, info):
        return web(info).storage.get_step_stats(root.run_id)

    @staticmethod
    def resolve_events(root, info, after_id=None, limit=1000):
        return web(info).storage.get_events(root.run_id, after_id=after_id, limit=max(1, min(limit, 5000)))

    @staticmethod
    def _plan(root, info):
        from ..run_view import run_plan

        cache = info.context.setdefault("run_plans", {})  # planSteps and planKnown: one read
        if root.run_id not in cache:
            cache[root.run_id] = run_plan(web(info), root)
        return cache[root.run_id]

    @staticmethod
    def resolve_plan_steps(root, info):
        return Run._plan(root, info).steps

    @staticmethod
    def resolve_plan_known(root, info):
        return Run._plan(root, info).known

    @staticmethod
    def resolve_plan_source(root, info):
        return str(Run._plan(root, info).source)

    @staticmethod
    def resolve_children(root, info, limit=20):
        from ..run_view import children

        return children(web(info), root.run_id, max(1, min(limit, 200)))

    @staticmethod
    def resolve_launched_by(root, info):
        from ..run_view import launched_by

        return launched_by(root)


class StatusCount(graphene.ObjectType):
    status = graphene.String(required=True)
    count = graphene.Int(required=True)


class RunsPage(graphene.ObjectType):
    """Root: a :class:`runyard_webui.runs_list.RunsPageRoot`. ``count`` and ``statusCounts`` are
    computed only when selected (each is a query over every matching run)."""

    runs = graphene.List(graphene.NonNull(Run), required=True)
    count = graphene.Int(required=True, description="Runs matching the filter, all pages together "
                         "(counted only when selected).")
    status_counts = graphene.List(
        graphene.NonNull(StatusCount), required=True,
        description="Runs per status matching every filter except `statuses` (the runs list's status "
                    "chips), statuses without runs left out; one grouped query, only when selected.")
    cursor = graphene.String(description="Pass as `cursor` for the next page; null on the last page.")

    @staticmethod
    def resolve_count(root, info):
        return root.count()

    @staticmethod
    def resolve_status_counts(root, info):
        return [StatusCount(status=str(st), count=n) for st, n in root.status_counts().items()]


class EventsPage(graphene.ObjectType):
    events = graphene.List(graphene.NonNull(Event), required=True)
    cursor = graphene.Int(description="The last event's id: pass as `afterId` to get only newer ones.")
    run_status = graphene.String(required=True)
    finished = graphene.Boolean(required=True)
    has_older = graphene.Boolean(description="With `beforeId`: whether events older than this page remain.")


class OpInput(graphene.ObjectType):
    """Root: an :class:`~runyard.codeserver.snapshot.InputSnapshot`."""

    name = graphene.String(required=True)
    type = graphene.String()
    upstream = graphene.List(graphene.NonNull(graphene.String), required=True)

    @staticmethod
    def resolve_upstream(root, info):
        return [f"{u.op}.{u.output}" for u in root.upstream]


class OpHook(graphene.ObjectType):
    """Root: a :class:`~runyard.codeserver.snapshot.HookSnapshot` (docs/hooks.md)."""

    name = graphene.String(required=True)
    kind = graphene.String(required=True, description="success or failure")
    required_resources = graphene.List(graphene.NonNull(graphene.String), required=True)
    description = graphene.String()


class Op(graphene.ObjectType):
    """Root: an :class:`~runyard.codeserver.snapshot.OpSnapshot`."""

    name = graphene.String(required=True)
    op = graphene.String(required=True)
    description = graphene.String()
    upstream = graphene.List(graphene.NonNull(graphene.String), required=True)
    inputs = graphene.List(graphene.NonNull(OpInput), required=True)
    outputs = graphene.List(graphene.NonNull(graphene.String), required=True)
    config_schema = GenericScalar()
    required_resources = graphene.List(graphene.NonNull(graphene.String), required=True)
    tags = graphene.List(graphene.NonNull(Tag), required=True)
    hooks = graphene.List(graphene.NonNull(OpHook), required=True,
                          description="The op's success and failure hooks (its own and its job's).")

    graph_path = graphene.String(required=True, description="The dotted path of the nested graph holding this "
                                 "op (`outer.inner`), empty at the job's top level.")

    @staticmethod
    def resolve_outputs(root, info):
        return [o.name for o in root.outputs]

    @staticmethod
    def resolve_tags(root, info):
        return tag_list({str(k): str(v) for k, v in root.tags.items()})

    resolve_graph_path = staticmethod(lambda root, info: root.graph_path)


class NestedGraphInput(graphene.ObjectType):
    """Root: a :class:`~runyard.codeserver.snapshot.GraphInputSnapshot`."""

    name = graphene.String(required=True)
    description = graphene.String()
    targets = graphene.List(graphene.NonNull(graphene.String), required=True,
                            description="The op inputs it feeds, as `op.input` (op by its dotted node name).")

    resolve_targets = staticmethod(lambda root, info: [f"{t.op}.{t.input}" for t in root.targets])


class NestedGraphOutput(graphene.ObjectType):
    """Root: a :class:`~runyard.codeserver.snapshot.GraphOutputSnapshot`."""

    name = graphene.String(required=True)
    description = graphene.String()
    source = graphene.String(description="The op output it returns, as `op.output`; null for a graph input "
                                         "passed through (`fromInput`).")
    from_input = graphene.String()

    resolve_source = staticmethod(lambda root, info: f"{root.source.op}.{root.source.output}" if root.source else None)


@dataclass(frozen=True, kw_only=True)
class GraphInJob:
    """The root of a ``NestedGraph``: a :class:`~runyard.codeserver.snapshot.GraphSnapshot`'s fields and
    the ops inside it."""

    path: str
    name: str
    description: str | None
    inputs: list[Any]
    outputs: list[Any]
    config_mapped: bool
    config_schema: Any
    ops: list[str]


def graphs_in_job(job: Any) -> list[GraphInJob]:
    return [GraphInJob(path=g.path, name=g.name, description=g.description, inputs=g.inputs, outputs=g.outputs,
                       config_mapped=g.config_mapped, config_schema=g.config_schema, ops=job.graph_members(g.path))
            for g in job.graphs]


class NestedGraph(graphene.ObjectType):
    """Root: a :class:`GraphInJob`: a graph nested in a job (docs/graphs.md)."""

    path = graphene.String(required=True, description="Dotted path in the job (`outer.inner`); its ops' "
                           "step keys start with it.")
    name = graphene.String(required=True, description="The graph's own name.")
    description = graphene.String()
    inputs = graphene.List(graphene.NonNull(NestedGraphInput), required=True)
    outputs = graphene.List(graphene.NonNull(NestedGraphOutput), required=True)
    config_mapped = graphene.Boolean(required=True, description="Configured through a config mapping: "
                                     "`ops: {<path>: {config: ...}}` (schema `configSchema`).")
    config_schema = GenericScalar()
    ops = graphene.List(graphene.NonNull(graphene.String), required=True,
                        description="Every op inside it (all levels), in plan order.")


@dataclass(frozen=True, kw_only=True)
class JobInLocation:
    """The root of a ``Job``: a job snapshot and the name of the location that serves it."""

    location: str
    job: Any  # runyard.codeserver.snapshot.JobSnapshot


def job_root(location: str, job: Any) -> JobInLocation:
    return JobInLocation(location=location, job=job)


def _definition(root: dict[str, Any], field: str) -> Any:
    """A field of an instigator's snapshot; None where the kind has no such field (a schedule has
    no minimum interval, a sensor no cron string)."""
    return getattr(root["definition"], field, None)


# ---- the job page: op selection and step durations (docs/webui.md, "The job page") ---------------

class OpSelection(graphene.ObjectType):
    """An op selection evaluated by the core's parser (:mod:`runyard.definitions.selection`), the one
    ``launchRun(ops:)`` and ``runyard job launch --ops`` use, so the graph highlights exactly what a
    launch would run."""

    selection = graphene.String(required=True)
    ops = graphene.List(graphene.NonNull(graphene.String),
                        description="The selected ops in plan order; null when the selection is invalid.")
    error = graphene.String(description="Why the selection is invalid (it names the clause), else null.")
    launch_problem = graphene.String(description="Why a new run of exactly these ops cannot start (an "
                                     "input fed by an op outside the selection), else null.")


def evaluate_op_selection(job: Any, selection: str) -> OpSelection:
    """``selection`` against ``job`` (a job snapshot); a bad selection is an answer, not an error."""
    from runyard.definitions.selection import check_fresh_selection, parse_op_selection
    from runyard.errors import RunConfigError

    try:
        ops = parse_op_selection(job, selection)
    except RunConfigError as exc:
        return OpSelection(selection=selection, ops=None, error=exc.message)
    try:
        check_fresh_selection(job, ops)
    except RunConfigError as exc:
        return OpSelection(selection=selection, ops=ops, launch_problem=exc.message)
    return OpSelection(selection=selection, ops=ops)


class StepDurations(graphene.ObjectType):
    """Root: a :class:`runyard.operations.step_durations.StepDurations`."""

    step_key = graphene.String(required=True)
    runs = graphene.Int(required=True, description="Runs (of those read) that ended this step.")
    p50 = graphene.Float(required=True, description="Median duration in seconds, retries included.")
    latest = graphene.Float(required=True, description="Duration in the newest of those runs.")
    latest_run_id = graphene.String(required=True)
    latest_status = graphene.String(required=True, description="SUCCESS or FAILURE")

    resolve_latest_status = staticmethod(lambda root, info: str(root.latest_status))


def _step_durations(root: JobInLocation, info, runs: int) -> list[Any]:
    from runyard.operations.step_durations import step_durations

    return step_durations(web(info).storage, root.job.name, runs)


class Job(graphene.ObjectType):
    """Root: a :class:`JobInLocation`."""

    name = graphene.String(required=True)
    location = graphene.String(required=True)
    description = graphene.String()
    ops = graphene.List(graphene.NonNull(Op), required=True)
    tags = graphene.List(graphene.NonNull(Tag), required=True)
    executor = graphene.String()
    default_run_config = GenericScalar()
    required_resources = graphene.List(graphene.NonNull(graphene.String), required=True)
    graphs = graphene.List(graphene.NonNull(NestedGraph), required=True,
                           description="The graphs nested in the job, parents first (docs/graphs.md).")
    op_selection = graphene.Field(OpSelection, required=True, selection=graphene.String(required=True),
                                  description="Evaluate an op selection (`*op`, `op+`, `a,b`...) against this job.")
    step_durations = graphene.List(graphene.NonNull(StepDurations), required=True,
                                   runs=graphene.Int(default_value=20),
                                   description="Each step's median and latest duration over the job's `runs` "
                                               "newest runs (at most 200), read in one storage query.")

    resolve_name = staticmethod(lambda root, info: root.job.name)
    resolve_location = staticmethod(lambda root, info: root.location)
    resolve_description = staticmethod(lambda root, info: root.job.description)
    resolve_ops = staticmethod(lambda root, info: root.job.ops)
    resolve_graphs = staticmethod(lambda root, info: graphs_in_job(root.job))
    resolve_default_run_config = staticmethod(lambda root, info: root.job.default_run_config)
    resolve_required_resources = staticmethod(lambda root, info: root.job.required_resources)
    resolve_tags = staticmethod(lambda root, info: tag_list(root.job.tags))
    resolve_executor = staticmethod(lambda root, info: root.job.executor.name)
    resolve_op_selection = staticmethod(lambda root, info, selection: evaluate_op_selection(root.job, selection))
    resolve_step_durations = staticmethod(lambda root, info, runs=20: _step_durations(root, info, runs))
    # partitions (schema/partitions.py, docs/partitions.md)
    partitions = graphene.Field(lambda: _partition_types().JobPartitions,
                                description="The job's partitions with their status; null when it is not partitioned.")
    partition_run = graphene.Field(lambda: _partition_types().PartitionRun, required=True,
                                   partition_key=graphene.String(required=True),
                                   description="The run config and tags a run of this partition gets (runs the job's "
                                               "partitioned config on its code location; nothing is stored).")
    resolve_partitions = staticmethod(lambda root, info: _partition_types().resolve_partitions(root, info))
    resolve_partition_run = staticmethod(lambda root, info, partition_key:
                                         _partition_types().resolve_partition_run(root, info, partition_key))


def _partition_types():
    from . import partitions

    return partitions


class Tick(graphene.ObjectType):
    id = graphene.Int()
    tick_time = graphene.Float(required=True)
    status = graphene.String(required=True)
    run_ids = graphene.List(graphene.NonNull(graphene.String), required=True)
    run_keys = graphene.List(graphene.NonNull(graphene.String), required=True)
    skip_reason = graphene.String()
    error = graphene.String(description="Why the evaluation failed, with the user's traceback.")
    cursor = graphene.String()
    runs = graphene.List(graphene.NonNull(Run), required=True,
                         description="The runs this tick launched that are still stored.")

    @staticmethod
    def resolve_runs(root, info):
        storage = web(info).storage
        return [run for run_id in root.run_ids if (run := storage.get_run(run_id)) is not None]


class Instigator(graphene.ObjectType):
    """A schedule or a sensor, with its on/off state from storage. Root: a dict with ``name``,
    ``kind``, ``location``, ``status``, ``next_tick`` and ``definition`` (a
    :class:`~runyard.codeserver.snapshot.ScheduleSnapshot` or ``SensorSnapshot``)."""

    name = graphene.String(required=True)
    kind = graphene.String(required=True, description="schedule or sensor")
    location = graphene.String(description="Its code location; null when only storage knows it (`stale`) "
                                           "and nothing says which failing location defines it.")
    job_name = graphene.String()
    status = graphene.String(required=True, description="RUNNING or STOPPED")
    description = graphene.String()
    cron_schedule = graphene.String()
    execution_timezone = graphene.String()
    next_tick = graphene.Float()
    minimum_interval_seconds = graphene.Float()
    ticks = graphene.List(graphene.NonNull(Tick), required=True, limit=graphene.Int(default_value=10))
    tick_page = graphene.Field(lambda: TickPage, required=True, limit=graphene.Int(default_value=20),
                               before=graphene.Int(), after=graphene.Int(),
                               description="Ticks newest first, paged by tick id: `before` a page's `older` "
                                           "cursor for older ticks, `after` its `newer` cursor for newer ones.")
    next_ticks = graphene.List(graphene.NonNull(graphene.Float), required=True,
                               limit=graphene.Int(default_value=5),
                               description="A schedule's next fire times (epoch seconds), computed in its "
                                           "`executionTimezone`; empty for a sensor.")
    stale = graphene.Boolean(required=True, description="Listed from its stored state: the code location that "
                                                        "defines it fails to load (see `locationError`).")
    location_status = graphene.String(description="ok, error, unavailable or starting")
    location_error = graphene.String(description="Why its code location does not load, when it does not.")
    location_traceback = graphene.String()

    resolve_stale = staticmethod(lambda root, info: bool(root.get("stale")))
    resolve_location_status = staticmethod(lambda root, info: root.get("location_status"))
    resolve_location_error = staticmethod(
        lambda root, info: root["location_error"].message if root.get("location_error") else None)
    resolve_location_traceback = staticmethod(
        lambda root, info: root["location_error"].traceback if root.get("location_error") else None)

    @staticmethod
    def resolve_tick_page(root, info, limit=20, before=None, after=None):
        return web(info).tick_page(root["name"], limit, before, after)

    @staticmethod
    def resolve_next_ticks(root, info, limit=5):
        return web(info).next_ticks(root, limit)

    resolve_job_name = staticmethod(lambda root, info: _definition(root, "job_name"))
    resolve_description = staticmethod(lambda root, info: _definition(root, "description"))
    resolve_cron_schedule = staticmethod(lambda root, info: _definition(root, "cron_schedule"))
    resolve_execution_timezone = staticmethod(lambda root, info: _definition(root, "execution_timezone"))
    resolve_minimum_interval_seconds = staticmethod(lambda root, info: _definition(root, "minimum_interval_seconds"))
    resolve_next_tick = staticmethod(lambda root, info: root.get("next_tick"))

    @staticmethod
    def resolve_ticks(root, info, limit=10):
        return web(info).ticks(root["name"], limit)


class TickPage(graphene.ObjectType):
    """A page of an instigator's ticks. Root: :meth:`WebContext.tick_page`'s dict."""

    ticks = graphene.List(graphene.NonNull(Tick), required=True)
    older = graphene.Int(description="Pass as `before` for the older page; null on the oldest.")
    newer = graphene.Int(description="Pass as `after` for the newer page; null on the newest.")

    resolve_ticks = staticmethod(lambda root, info: root["ticks"])
    resolve_older = staticmethod(lambda root, info: root["older"])
    resolve_newer = staticmethod(lambda root, info: root["newer"])


class RunRequestPreview(graphene.ObjectType):
    """A run a dry run says the schedule or sensor would launch. Root: a ``RunRequestData``."""

    job_name = graphene.String(required=True)
    run_key = graphene.String()
    run_config = GenericScalar(required=True)
    tags = graphene.List(graphene.NonNull(Tag), required=True)
    partition_key = graphene.String(description="The partition the run would be for (docs/partitions.md).")

    resolve_tags = staticmethod(lambda root, info: tag_list({str(k): str(v) for k, v in root.tags.items()}))


class Location(graphene.ObjectType):
    name = graphene.String(required=True)
    status = graphene.String(required=True, description="ok, error, unavailable or starting")
    error = graphene.String()
    traceback = graphene.String()
    origin = graphene.String(required=True)
    snapshot_id = graphene.String()
    jobs = graphene.List(graphene.NonNull(Job), required=True)

    image = graphene.String(description="The container image its runs use (workspace entry's `image`, else "
                                        "the one its code server reports); null when neither says.")
    resolve_image = staticmethod(lambda root, info: _location_image(root))
    resolve_origin = staticmethod(lambda root, info: root.origin.describe())
    resolve_error = staticmethod(lambda root, info: root.error.message if root.error else None)
    resolve_traceback = staticmethod(lambda root, info: root.error.traceback if root.error else None)

    @staticmethod
    def resolve_jobs(root, info):
        if root.snapshot is None:
            return []
        jobs = root.snapshot.jobs_by_name
        return [job_root(root.name, jobs[n]) for n in root.snapshot.job_names]


def _location_image(loc) -> str | None:
    from runyard.operations.launch import location_image

    return location_image(loc)


class DaemonLease(graphene.ObjectType):
    holder = graphene.String(required=True)
    token = graphene.Int(required=True)
    expires_in_seconds = graphene.Float(required=True, description="Negative when it has expired.")


class DaemonLoop(graphene.ObjectType):
    name = graphene.String(required=True)
    last_heartbeat = graphene.Float(required=True)
    age_seconds = graphene.Float(required=True)
    stale = graphene.Boolean(required=True, description="Silent for more than 3 of its periods.")
    last_error = graphene.String()
    error_time = graphene.Float()


class Daemon(graphene.ObjectType):
    daemon_id = graphene.String(required=True)
    state = graphene.String(required=True, description="leader, standby, stale, dead or stopped: from the "
                                                       "age of its newest heartbeat (docs/daemon.md)")
    age_seconds = graphene.Float(required=True, description="Age of its newest heartbeat.")
    heartbeat_interval_seconds = graphene.Float(required=True)
    leader = graphene.Boolean(required=True, description="Holds the unexpired lease (a dead leader does "
                                                         "until the lease expires).")
    stopped = graphene.Boolean(required=True)
    loops = graphene.List(graphene.NonNull(DaemonLoop), required=True)

    @staticmethod
    def resolve_loops(root, info):
        return [DaemonLoop(name=name, **loop) for name, loop in sorted(root["loops"].items())]

    resolve_daemon_id = staticmethod(lambda root, info: root["daemon_id"])
    resolve_state = staticmethod(lambda root, info: root["state"])
    resolve_age_seconds = staticmethod(lambda root, info: root["age_seconds"])
    resolve_heartbeat_interval_seconds = staticmethod(lambda root, info: root["heartbeat_interval_seconds"])
    resolve_leader = staticmethod(lambda root, info: bool(root.get("leader")))
    resolve_stopped = staticmethod(lambda root, info: bool(root.get("stopped")))


class DaemonStatus(graphene.ObjectType):
    """Who holds the daemon lease and each daemon's loops, as ``runyard daemon status`` shows them."""

    lease = graphene.Field(DaemonLease)
    daemons = graphene.List(graphene.NonNull(Daemon), required=True)

    resolve_lease = staticmethod(lambda root, info: DaemonLease(**root["lease"]) if root["lease"] else None)
    resolve_daemons = staticmethod(lambda root, info: root["daemons"])


class StepLogs(graphene.ObjectType):
    """A chunk of a step's captured output. Ask again with ``offset: nextOffset`` until ``finished``."""

    available = graphene.Boolean(required=True)
    data = graphene.String(required=True)
    next_offset = graphene.Int(required=True)
    finished = graphene.Boolean(required=True, description="The step ended and everything was read.")
    message = graphene.String(description="Why nothing is available, when it is not.")


class ConfigProblem(graphene.ObjectType):
    message = graphene.String(required=True)
    path = graphene.String(description="Key path in the run config, e.g. ops.extract.config.days")
    reason = graphene.String()


class Instance(graphene.ObjectType):
    home = graphene.String(required=True)
    storage = graphene.String(required=True)
    run_coordinator = graphene.String(required=True)
    run_launcher = graphene.String(required=True)
    read_only = graphene.Boolean(required=True)
    version = graphene.String(required=True)
