"""The root ``Mutation`` type. Every mutation answers a payload with ``ok``, and on refusal a
``message`` and a ``code`` (NOT_FOUND, INVALID, READ_ONLY, FORBIDDEN, UNAVAILABLE) rather than a
GraphQL error, so a client can show why without parsing error strings. Who may use which mutation,
and the audit entry each one writes: :mod:`runyard_webui.audit`."""

from __future__ import annotations

import functools

import graphene
from graphene.types.generic import GenericScalar

from . import dagster_compat
from .backfills import CancelBackfill, LaunchBackfill, RetryBackfill
from .dagster_types import (
    ExecutionParams,
    LaunchRunPayload,
    TerminateRunPolicy,
    TerminateRunResult,
    TerminateRunsResultOrError,
)
from .types import Instigator, Run, RunRequestPreview, TagInput, web


def _payload_fields():
    return {"ok": graphene.Boolean(required=True), "message": graphene.String(), "code": graphene.String()}


def _refusals(payload_cls):
    """Turn a WebError raised by the mutation into ``payload_cls(ok=False, message, code)``."""

    def wrap(fn):
        @functools.wraps(fn)
        def mutate(root, info, **kwargs):
            from runyard.errors import RunyardError

            from ..context import WebError, error_code

            extra = {f: [] for f in ("errors", "results") if f in payload_cls._meta.fields}
            try:
                return fn(root, info, **kwargs)
            except (WebError, RunyardError) as exc:  # e.g. terminating a run that already finished
                return payload_cls(ok=False, message=exc.message if isinstance(exc, WebError) else str(exc),
                                   code=error_code(exc), **extra)
        return mutate
    return wrap


# LaunchRunPayload (launchRun, reexecuteRun) is an interface shared with Dagster's API: its answers are
# Dagster's launch result types (schema/dagster_types.py, docs/api.md)
RunPayload = type("RunPayload", (graphene.ObjectType,), {**_payload_fields(), "run": graphene.Field(Run)})
InstigatorPayload = type("InstigatorPayload", (graphene.ObjectType,),
                         {**_payload_fields(), "instigator": graphene.Field(Instigator)})
ReloadPayload = type("ReloadPayload", (graphene.ObjectType,),
                     {**_payload_fields(), "status": graphene.String(), "snapshot_id": graphene.String()})


def _parse_run_config(run_config, run_config_yaml):
    """Run config from JSON (``runConfig``) or YAML text (``runConfigYaml``, what the launchpad sends).
    The YAML goes through runyard's one loader, as ``-c`` files do: same limits (alias expansion,
    depth, size), dates read as ISO strings."""
    from runyard.errors import ConfigError
    from runyard.instance.yaml_source import load_yaml_text

    from ..context import WebError

    if run_config is not None and run_config_yaml is not None:
        raise WebError("give runConfig or runConfigYaml, not both")
    if run_config_yaml is None:
        return run_config
    if not run_config_yaml.strip():
        return {}
    try:
        data = load_yaml_text(run_config_yaml, "runConfigYaml").data
    except ConfigError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        key = f" ({exc.path})" if exc.path else ""
        raise WebError(f"run config is not valid YAML{where}{key}: {exc.message.removeprefix('invalid YAML: ')}") \
            from None
    return {} if data is None else data


def _launch_payload(result, job_name: str):
    return dagster_compat.launch_answer(result, job_name)


class LaunchRun(graphene.Mutation):
    """Validate run config on the job's code location, store the run and submit it to the run
    coordinator (which launches or queues it). Takes runyard's arguments (``location`` and
    ``jobName`` required) or Dagster's ``executionParams`` alone (docs/api.md)."""

    class Arguments:
        location = graphene.String(description="Required with runyard's arguments.")
        job_name = graphene.String(description="Required with runyard's arguments.")
        run_config = GenericScalar()
        run_config_yaml = graphene.String()
        tags = graphene.List(graphene.NonNull(TagInput))
        ops = graphene.String(description="Op selection, as `runyard job launch --ops`.")
        partition_key = graphene.String(description="Launch this partition of a partitioned job: its run config "
                                        "(the run config given is merged over it), its tags and runyard/partition.")
        execution_params = graphene.Argument(ExecutionParams, description="Dagster's arguments, instead of "
                                             "all of the others.")

    Output = LaunchRunPayload

    @staticmethod
    @dagster_compat.refusals()
    def mutate(root, info, location=None, job_name=None, run_config=None, run_config_yaml=None, tags=None,
               ops=None, execution_params=None, partition_key=None):
        runyard_args = (location, job_name, run_config, run_config_yaml, tags, ops, partition_key)
        if execution_params is not None:
            if any(a is not None for a in runyard_args):
                raise dagster_compat.conflict("give executionParams alone, or runyard's arguments")
            return dagster_compat.launch_with_params(web(info), execution_params)
        if location is None or job_name is None:
            raise dagster_compat.conflict("give location and jobName (or Dagster's executionParams)")
        config = _parse_run_config(run_config, run_config_yaml)
        tag_map = {t.key: t.value for t in tags or []}
        result = web(info).launch_run(location, job_name, config, tag_map, ops, partition_key)
        return _launch_payload(result, job_name)


class ReexecuteRun(graphene.Mutation):
    """Re-execute a finished run: ``mode: "all"`` (optionally with an op selection in ``ops``) or
    ``mode: "from_failure"`` (the steps that did not succeed and everything downstream). Steps not
    executed reuse the outputs stored by the parent chain."""

    class Arguments:
        run_id = graphene.ID(required=True)
        mode = graphene.String(default_value="all", description="all or from_failure")
        ops = graphene.String(description="Op selection (mode all only).")
        tags = graphene.List(graphene.NonNull(TagInput))

    Output = LaunchRunPayload

    @staticmethod
    @dagster_compat.refusals()
    def mutate(root, info, run_id, mode="all", ops=None, tags=None):
        ctx = web(info)
        result = ctx.reexecute_run(run_id, mode, ops, {t.key: t.value for t in tags or []})
        return _launch_payload(result, result.run.job_name if result.run else ctx.get_run(run_id).job_name)


def _mutation(name: str, doc: str, arguments: dict, output, act):
    """A mutation class whose ``mutate`` is ``act(web context, **arguments)`` returning the payload;
    refusals become ``output(ok=False, message, code)``."""

    @_refusals(output)
    def mutate(root, info, **kwargs):
        return act(web(info), **kwargs)

    return type(name, (graphene.Mutation,), {"Arguments": type("Arguments", (), arguments), "Output": output,
                                             "mutate": staticmethod(mutate), "__doc__": doc})


def _delete(ctx, run_id):
    ctx.delete_run(run_id)
    return RunPayload(ok=True)


# terminateRun and terminateRuns are shared with Dagster's API (docs/api.md): their run ids are
# String!, as Dagster's client sends them (a variable declared ID! is accepted too: schema/rules.py),
# and their answers are Dagster's types, carrying runyard's payload fields
def _policy() -> dict:
    return {"terminate_policy": graphene.Argument(TerminateRunPolicy, description="Dagster's; only "
                                                  "SAFE_TERMINATE (the default) is supported.")}


TerminateRun = type("TerminateRun", (graphene.Mutation,), {
    "__doc__": "Ask the run's launcher to stop it: CANCELING now, CANCELED when the worker has stopped.",
    "Arguments": type("Arguments", (), {"run_id": graphene.String(required=True), **_policy()}),
    "Output": TerminateRunResult,
    "mutate": staticmethod(lambda root, info, run_id, terminate_policy=None:
                           dagster_compat.terminate_answer(web(info), run_id, terminate_policy))})
DeleteRun = _mutation("DeleteRun", "Delete a finished run and its events.",
                      {"run_id": graphene.ID(required=True)}, RunPayload, _delete)


def _toggle(kind: str, running: bool):
    verb = "Start" if running else "Stop"
    return _mutation(
        f"{verb}{kind.capitalize()}", f"Turn a {kind} {'on' if running else 'off'} (stored; the daemon acts on it).",
        {"name": graphene.String(required=True)}, InstigatorPayload,
        lambda ctx, name: InstigatorPayload(ok=True, instigator=ctx.set_instigator_status(kind, name, running)))


class ReloadLocation(graphene.Mutation):
    """Ask a code location's server to re-import its definitions."""

    class Arguments:
        name = graphene.String(required=True)

    Output = ReloadPayload

    @staticmethod
    @_refusals(ReloadPayload)
    def mutate(root, info, name):
        result = web(info).reload_location(name)
        return ReloadPayload(ok=result["status"] == "ok", status=result["status"],
                             snapshot_id=result.get("snapshot_id"), message=result.get("error"))


# ---- automation: dry run -------------------------------------------------------------------------
class DryRunPayload(graphene.ObjectType):
    """What one evaluation of a schedule or sensor would do. Nothing was launched or stored: the
    tick, the runs and the sensor's cursor stay as they were."""

    ok = graphene.Boolean(required=True, description="The evaluation ran (it may still have raised: `error`).")
    message = graphene.String()
    code = graphene.String()
    kind = graphene.String()
    name = graphene.String()
    tick_time = graphene.Float(description="The schedule's next fire time it was evaluated for; now, for a sensor.")
    run_requests = graphene.List(graphene.NonNull(RunRequestPreview), required=True)
    skip_reason = graphene.String()
    error = graphene.String(description="The user's code raised (or returned something invalid): the message.")
    traceback = graphene.String()
    cursor_before = graphene.String(description="A sensor's stored cursor it was evaluated with.")
    cursor = graphene.String(description="The cursor the sensor would store (not stored).")


class DryRunInstigator(graphene.Mutation):
    """Evaluate a schedule (for its next fire time) or a sensor (with its stored cursor) now, on its
    code server, without launching or storing anything: the run requests (job, run key, config,
    tags), the skip reason or the error it answers. A mutation since it runs the user's code: refused
    in a read-only web UI."""

    class Arguments:
        kind = graphene.String(required=True, description="schedule or sensor")
        name = graphene.String(required=True)

    Output = DryRunPayload

    @staticmethod
    def mutate(root, info, kind, name):
        from ..context import WebError

        try:
            found = web(info).dry_run(kind, name)
        except WebError as exc:
            return DryRunPayload(ok=False, message=exc.message, code=exc.code, kind=kind, name=name, run_requests=[])
        result = found["result"]
        return DryRunPayload(ok=True, kind=kind, name=name, tick_time=found["tick_time"],
                             run_requests=result.run_requests, skip_reason=result.skip_reason,
                             error=result.error.message if result.error else None,
                             traceback=result.error.traceback if result.error else None,
                             cursor_before=found["cursor_before"], cursor=result.cursor)


# ---- bulk actions of the runs list (docs/webui.md, "The runs list") --------------------------------

class BulkRunResult(graphene.ObjectType):
    """What a bulk action did to one run. Root: a :class:`runyard_webui.context.BulkResult`."""

    run_id = graphene.ID(required=True)
    ok = graphene.Boolean(required=True)
    message = graphene.String(description="Why not, when not ok (e.g. a run that has not finished cannot "
                              "be deleted).")
    code = graphene.String()
    run = graphene.Field(Run, description="terminateRuns: the run now; reexecuteRuns: the new run.")


BulkRunsPayload = type("BulkRunsPayload", (graphene.ObjectType,), {
    **_payload_fields(),
    "results": graphene.List(graphene.NonNull(BulkRunResult), required=True,
                             description="One per run id, in order; empty when the whole request was refused."),
    "__doc__": "``ok`` when every run was done; ``message``/``code`` when the whole request was refused "
               "(read-only, no or too many runs).",
})


def _bulk(name: str, doc: str, act, **extra_args):
    def run(ctx, run_ids, **kwargs):
        from ..context import WebError

        try:
            results = act(ctx, list(run_ids), **kwargs)
        except WebError as exc:  # the whole request refused: no per-run results
            return BulkRunsPayload(ok=False, message=exc.message, code=exc.code, results=[])
        return BulkRunsPayload(ok=all(r.ok for r in results), results=results,
                               message=None if all(r.ok for r in results) else
                               f"{sum(not r.ok for r in results)} of {len(results)} run(s) refused")

    arguments = {"run_ids": graphene.List(graphene.NonNull(graphene.ID), required=True), **extra_args}
    return _mutation(name, doc, arguments, BulkRunsPayload, run)


TerminateRuns = type("TerminateRuns", (graphene.Mutation,), {
    "__doc__": "terminateRun for each run: per-run results (a finished run is refused, the others go on).",
    "Arguments": type("Arguments", (), {
        "run_ids": graphene.List(graphene.NonNull(graphene.String), required=True), **_policy()}),
    "Output": TerminateRunsResultOrError,
    "mutate": staticmethod(lambda root, info, run_ids, terminate_policy=None:
                           dagster_compat.terminate_many(web(info), run_ids, terminate_policy))})
DeleteRuns = _bulk("DeleteRuns", "deleteRun for each run: per-run results (a run that has not finished is "
                   "refused, the others are deleted).", lambda ctx, ids: ctx.delete_runs(ids))
ReexecuteRuns = _bulk("ReexecuteRuns", "reexecuteRun for each run with the same `mode` (all or "
                      "from_failure): per-run results with each new run.",
                      lambda ctx, ids, mode="all": ctx.reexecute_runs(ids, mode),
                      mode=graphene.String(default_value="all", description="all or from_failure"))


class Mutation(graphene.ObjectType):
    launch_run = LaunchRun.Field()
    reexecute_run = ReexecuteRun.Field()
    terminate_run = TerminateRun.Field()
    delete_run = DeleteRun.Field()
    start_schedule = _toggle("schedule", True).Field()
    stop_schedule = _toggle("schedule", False).Field()
    start_sensor = _toggle("sensor", True).Field()
    stop_sensor = _toggle("sensor", False).Field()
    reload_location = ReloadLocation.Field()
    terminate_runs = TerminateRuns.Field()
    delete_runs = DeleteRuns.Field()
    reexecute_runs = ReexecuteRuns.Field()
    dry_run_instigator = DryRunInstigator.Field()
    launch_backfill = LaunchBackfill.Field()
    cancel_backfill = CancelBackfill.Field()
    retry_backfill = RetryBackfill.Field()
    # ---- Dagster's (schema/dagster_compat.py, docs/api.md) ----
    launch_pipeline_execution = dagster_compat.LaunchPipelineExecution.Field()
    reload_repository_location = dagster_compat.ReloadRepositoryLocation.Field()
    shutdown_repository_location = dagster_compat.ShutdownRepositoryLocation.Field()
