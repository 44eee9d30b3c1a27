"""Dagster's GraphQL operations on runyard (docs/api.md): what ``dagster-graphql``'s
``DagsterGraphQLClient`` sends — ``repositoriesOrError``, ``launchPipelineExecution``,
``pipelineRunOrError``, ``terminateRun``, ``terminateRuns``, ``reloadRepositoryLocation``,
``shutdownRepositoryLocation`` — and ``launchRun(executionParams:)`` / ``runOrError`` for scripts.

Everything is done by the web UI's own operations (:class:`runyard_webui.context.WebContext`:
``launch_run``, ``terminate_run(s)``, ``reload_location``); this module only translates Dagster's
arguments to them and their outcomes (and refusals) to Dagster's answer types
(:mod:`.dagster_types`). Naming: a code location is one repository, ``__repository__``; a job is a
Dagster job (or pipeline) of the same name; run statuses already have Dagster's names.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import graphene

from ..context import FORBIDDEN, INVALID, NOT_FOUND, READ_ONLY, UNAVAILABLE
from .dagster_run import DEFAULT_MODE
from .dagster_types import (
    REPOSITORY_NAME,
    ConflictingExecutionParamsError,
    ExecutionParams,
    LaunchRunPayload,
    LaunchRunSuccess,
    PipelineNotFoundError,
    PresetNotFoundError,
    PythonError,
    ReloadNotSupported,
    ReloadRepositoryLocationMutationResult,
    RepositoriesOrError,
    RepositoryConnection,
    RepositoryLocationNotFound,
    RepositoryNotFoundError,
    RepositorySelector,
    RunConfigValidationInvalid,
    RunNotFoundError,
    RunOrError,
    ShutdownRepositoryLocationMutationResult,
    ShutdownRepositoryLocationSuccess,
    TerminateRunFailure,
    TerminateRunPolicy,
    TerminateRunsResult,
    TerminateRunSuccess,
    UnauthorizedError,
    WorkspaceLocationEntry,
)
from .types import web

_IMMEDIATE = "MARK_AS_CANCELED_IMMEDIATELY"


class Refused(Exception):
    """Raised with the Dagster answer a request gets instead of being done."""

    def __init__(self, answer: Any):
        super().__init__(getattr(answer, "message", None))
        self.answer = answer


def refusal(exc: Exception, not_found=None, unauthorized=None) -> Any:
    """A refusal of the web UI's operations as Dagster's type: READ_ONLY and FORBIDDEN (the role or
    code locations of the principal) -> ``unauthorized`` (the error type whose message the client
    reads for that operation: the payload interface's ``read_only_answer``; UnauthorizedError by
    default), NOT_FOUND -> ``not_found(message)`` when given, anything else -> PythonError
    (runyard's ``code`` says which)."""
    from ..context import WebError, error_code

    message = exc.message if isinstance(exc, WebError) else str(exc)
    code = error_code(exc)
    if code in (READ_ONLY, FORBIDDEN):
        return (unauthorized or UnauthorizedError)(ok=False, message=message, code=code)
    if code == NOT_FOUND and not_found is not None:
        return not_found(message)
    return PythonError(ok=False, message=message, code=code, class_name=type(exc).__name__)


def refusals(not_found=None, unauthorized=None):
    """Decorate a resolver: :class:`Refused` gives its answer, the web UI's refusals their
    :func:`refusal`."""

    def wrap(fn):
        @functools.wraps(fn)
        def resolve(*args, **kwargs):
            from runyard.errors import RunyardError

            from ..context import WebError

            try:
                return fn(*args, **kwargs)
            except Refused as exc:
                return exc.answer
            except (WebError, RunyardError) as exc:
                return refusal(exc, not_found, unauthorized)
        return resolve
    return wrap


# ---- launching ------------------------------------------------------------------------------------
def launch_answer(result, job_name: str) -> Any:
    """A :class:`runyard.operations.launch.LaunchResult` as Dagster's launch answer."""
    if result.errors:
        return RunConfigValidationInvalid(ok=False, code=INVALID, message="run config is invalid",
                                          errors=list(result.errors), pipeline_name=job_name)
    if result.message is not None:  # stored, then the coordinator or launcher failed: the run is FAILURE
        return PythonError(ok=False, message=result.message, run=result.run, class_name="LaunchError")
    return LaunchRunSuccess(ok=True, run=result.run)


def conflict(message: str) -> Refused:
    """A ConflictingExecutionParamsError answer, to raise."""
    return Refused(ConflictingExecutionParamsError(ok=False, code=INVALID, message=message))


def _not_found(selector, job: str):
    def answer(message: str) -> Any:
        return PipelineNotFoundError(ok=False, code=NOT_FOUND, message=message, pipeline_name=job,
                                     repository_name=selector.repository_name,
                                     repository_location_name=selector.repository_location_name)
    return answer


def _run_config(data: Any) -> Any:
    """``runConfigData``: an object as it is, text as YAML (through runyard's one YAML loader)."""
    if isinstance(data, str):
        from .mutations import _parse_run_config

        return _parse_run_config(None, data)
    return {} if data is None else data


def launch_with_params(ctx, params) -> Any:
    """Launch what Dagster's ``ExecutionParams`` select, through the web UI's ``launch_run``."""
    from runyard.errors import RunyardError

    from ..context import WebError

    if params is None:
        raise conflict("give executionParams (Dagster's arguments), or location and jobName (runyard's)")
    selector = params.selector
    names = {n for n in (selector.job_name, selector.pipeline_name) if n}
    if len(names) != 1:
        raise conflict("selector: give jobName (or pipelineName)" if not names else
                        f"selector: jobName and pipelineName differ ({', '.join(sorted(names))})")
    job = names.pop()
    location = selector.repository_location_name
    not_found = _not_found(selector, job)
    if selector.repository_name not in (REPOSITORY_NAME, location):
        raise Refused(not_found(f"no repository named '{selector.repository_name}' in code location "
                                f"'{location}': each runyard code location is one repository, named "
                                f"'{REPOSITORY_NAME}'"))
    if params.preset:
        raise Refused(PresetNotFoundError(ok=False, code=INVALID, preset=params.preset,
                                          message=f"preset '{params.preset}' not found: runyard jobs have no "
                                                  "presets (give runConfigData)"))
    if params.mode not in (None, DEFAULT_MODE):
        raise conflict(f"mode '{params.mode}': a runyard job has one mode, '{DEFAULT_MODE}'")
    if params.step_keys:
        raise conflict("stepKeys is not supported: select ops with selector.solidSelection")
    if selector.asset_selection or selector.asset_check_selection:
        raise conflict("assetSelection and assetCheckSelection are not supported: runyard has no assets")
    metadata = params.execution_metadata
    if metadata is not None and (metadata.root_run_id or metadata.parent_run_id):
        raise conflict("executionMetadata.rootRunId/parentRunId are not supported: re-execute a run with "
                        "runyard's reexecuteRun")
    tags = {t.key: t.value for t in (metadata.tags if metadata is not None and metadata.tags else [])}
    # Dagster's clients name a run's partition with the tag dagster/partition: runyard's partitionKey
    partition_key = tags.pop("dagster/partition", None)
    ops = ",".join(selector.solid_selection) if selector.solid_selection else None
    try:
        result = ctx.launch_run(location, job, _run_config(params.run_config_data), tags, ops, partition_key)
    except (WebError, RunyardError) as exc:  # an unknown job or location is Dagster's PipelineNotFoundError
        raise Refused(refusal(exc, not_found)) from exc
    return launch_answer(result, job)


class LaunchPipelineExecution(graphene.Mutation):
    """Dagster's launch (what ``DagsterGraphQLClient.submit_job_execution`` sends): the same as
    ``launchRun(executionParams:)``."""

    class Arguments:
        execution_params = graphene.Argument(ExecutionParams, description="Required (nullable only so "
                                             "that a missing one is answered, not a GraphQL error).")

    Output = LaunchRunPayload

    @staticmethod
    @refusals()
    def mutate(root, info, execution_params=None):
        return launch_with_params(web(info), execution_params)


# ---- terminating ----------------------------------------------------------------------------------
def _immediate(policy) -> bool:
    return getattr(policy, "value", policy) == _IMMEDIATE


def terminate_answer(ctx, run_id: str, policy=None) -> Any:
    """Terminate one run through the web UI's ``terminate_run``: Dagster's answer for it."""
    from runyard.errors import RunyardError

    from ..context import WebError, error_code

    if _immediate(policy):
        run = ctx.visible_run(run_id)
        if run is None:
            return RunNotFoundError(ok=False, code=NOT_FOUND, run_id=run_id, message=f"no run with id '{run_id}'")
        return TerminateRunFailure(ok=False, code=INVALID, run=run, message=(
            "terminatePolicy MARK_AS_CANCELED_IMMEDIATELY is not supported: runyard stops a run through its "
            "launcher (SAFE_TERMINATE), and the run is CANCELED once its worker has stopped"))
    try:
        ok, run = ctx.terminate_run(run_id)
    except (WebError, RunyardError) as exc:  # unknown run, already finished, read-only...
        message, code = (exc.message if isinstance(exc, WebError) else str(exc)), error_code(exc)
        if code == NOT_FOUND:
            return RunNotFoundError(ok=False, code=code, run_id=run_id, message=message)
        run = ctx.storage.get_run(run_id) if code not in (READ_ONLY, FORBIDDEN) else None
        if run is None:
            return refusal(exc, unauthorized=PythonError)  # the client reads no UnauthorizedError here
        return TerminateRunFailure(ok=False, code=code, run=run, message=message)
    if ok:
        return TerminateRunSuccess(ok=True, run=run)
    return TerminateRunFailure(ok=False, run=run, message=f"run {run_id} is {run.status}: nothing to stop")


def _bulk_result(run_id: str, answer: Any):
    """A per-run answer as runyard's ``BulkRunResult`` (the ``results`` of ``terminateRuns``)."""
    from ..context import BulkResult

    ok = getattr(answer, "ok", False) is True
    return BulkResult(run_id, ok, None if ok else answer.message, getattr(answer, "code", None),
                      getattr(answer, "run", None))


def _answer_of(ctx, result) -> Any:
    """A :class:`runyard_webui.context.BulkResult` of ``terminate_runs`` as Dagster's answer."""
    if result.ok:
        return TerminateRunSuccess(ok=True, run=result.run)
    if result.code == NOT_FOUND:
        return RunNotFoundError(ok=False, code=result.code, run_id=result.run_id, message=result.message)
    if result.code in (READ_ONLY, FORBIDDEN):
        return UnauthorizedError(ok=False, code=result.code, message=result.message)
    run = result.run or ctx.storage.get_run(result.run_id)
    if run is None:
        return PythonError(ok=False, code=result.code, message=result.message)
    return TerminateRunFailure(ok=False, code=result.code, run=run, message=result.message)


def terminate_many(ctx, run_ids: list[str], policy=None) -> TerminateRunsResult:
    """Terminate runs through the web UI's ``terminate_runs`` (its read-only guard and size limit):
    runyard's per-run ``results`` and Dagster's ``terminateRunResults``."""
    from ..context import WebError

    ids = list(run_ids)
    try:
        if _immediate(policy):  # refused for each run (terminate_answer says why)
            unique = list(dict.fromkeys(ids))
            answers = [terminate_answer(ctx, run_id, policy) for run_id in unique]
            results = [_bulk_result(run_id, a) for run_id, a in zip(unique, answers, strict=True)]
        else:
            results = ctx.terminate_runs(ids)
            answers = [_answer_of(ctx, r) for r in results]
    except WebError as exc:  # the whole request refused: each run is answered with the reason
        answer = refusal(exc)
        return TerminateRunsResult(ok=False, message=exc.message, code=exc.code, results=[],
                                   terminate_run_results=[answer for _ in dict.fromkeys(ids)])
    ok = all(r.ok for r in results)
    return TerminateRunsResult(ok=ok, results=results, terminate_run_results=answers,
                               message=None if ok else f"{sum(not r.ok for r in results)} of {len(results)} "
                                                       "run(s) refused")


# ---- code locations -------------------------------------------------------------------------------
def _location_not_found(message: str) -> Any:
    return RepositoryLocationNotFound(ok=False, code=NOT_FOUND, message=message)


def _location(ctx, name: str):
    return next(loc for loc in ctx.workspace.locations() if loc.name == name)


class ReloadRepositoryLocation(graphene.Mutation):
    """Reload a code location (the web UI's ``reloadLocation``): its server re-imports the
    definitions and the reload is announced to the other processes."""

    class Arguments:
        repository_location_name = graphene.String(required=True)

    Output = ReloadRepositoryLocationMutationResult

    @staticmethod
    @refusals(_location_not_found, ReloadNotSupported)  # the client reads no UnauthorizedError here
    def mutate(root, info, repository_location_name):
        ctx = web(info)
        result = ctx.reload_location(repository_location_name)
        ok = result["status"] == "ok"
        loaded = _location(ctx, repository_location_name) if ok else PythonError(
            ok=False, message=result.get("error") or f"code location '{repository_location_name}' is "
                                                     f"{result['status']}",
            stack=(result.get("traceback") or "").splitlines(keepends=True))
        return WorkspaceLocationEntry(ok=ok, message=None if ok else loaded.message, name=repository_location_name,
                                      location_or_load_error=loaded, load_status="LOADED",
                                      updated_timestamp=time.time())


class ShutdownRepositoryLocation(graphene.Mutation):
    """Dagster shuts the location's server down so that its deployment restarts it with the new code;
    runyard's code servers re-import in place, so this reloads the location (as
    ``reloadRepositoryLocation``) and answers success once its server answered."""

    class Arguments:
        repository_location_name = graphene.String(required=True)

    Output = ShutdownRepositoryLocationMutationResult

    @staticmethod
    @refusals(_location_not_found, PythonError)  # the client reads no UnauthorizedError here
    def mutate(root, info, repository_location_name):
        from runyard.auth import Action

        result = web(info).reload_location(repository_location_name, Action.SHUTDOWN_LOCATION)
        if result["status"] == "unavailable":
            return PythonError(ok=False, code=UNAVAILABLE, message=result.get("error") or "unavailable")
        return ShutdownRepositoryLocationSuccess(ok=True, repository_location_name=repository_location_name)


# ---- queries --------------------------------------------------------------------------------------
def _repositories(root, info, repository_selector=None):
    locations = [loc for loc in web(info).locations() if loc.snapshot is not None]
    if repository_selector is not None:
        name, repo = repository_selector.repository_location_name, repository_selector.repository_name
        locations = [loc for loc in locations if loc.name == name and repo in (REPOSITORY_NAME, name)]
        if not locations:
            return RepositoryNotFoundError(
                message=f"no repository '{repo}' in a loaded code location '{name}'", repository_name=repo,
                repository_location_name=name)
    return RepositoryConnection(nodes=locations)


def _run_or_error(root, info, run_id):
    run = web(info).visible_run(run_id)
    if run is None:
        return RunNotFoundError(ok=False, code=NOT_FOUND, run_id=run_id, message=f"no run with id '{run_id}'")
    return run


def repositories_or_error_field() -> graphene.Field:
    return graphene.Field(
        RepositoriesOrError, required=True, resolver=_repositories, repository_selector=RepositorySelector(),
        description="Dagster's repositories: one per loaded code location, named `__repository__`.")


def run_or_error_field(description: str) -> graphene.Field:
    return graphene.Field(RunOrError, required=True, resolver=_run_or_error, run_id=graphene.ID(required=True),
                          description=description)


__all__ = ["LaunchPipelineExecution", "Refused", "ReloadRepositoryLocation", "ShutdownRepositoryLocation",
           "TerminateRunPolicy", "conflict", "launch_answer", "launch_with_params", "refusal", "refusals",
           "repositories_or_error_field", "run_or_error_field",
           "terminate_answer", "terminate_many"]
