"""The GraphQL types of Dagster's API that its Python client (``dagster-graphql``'s
``DagsterGraphQLClient``) and scripts written against Dagster name, served beside runyard's own
(docs/api.md). Names, fields and argument types follow Dagster's schema; the resolvers are in
:mod:`.dagster_compat`.

Where a Dagster operation has the name of a runyard one (``launchRun``, ``terminateRun``,
``terminateRuns``), one field serves both: its type is an *interface* carrying runyard's payload
fields (``ok``, ``message``, ``code``, ``run``, ``errors``, ``results``), so runyard's selections
keep working, and the answers are Dagster's object types, which implement it, so Dagster's
``... on LaunchRunSuccess`` fragments work too. The interfaces keep runyard's documented names
(``LaunchRunPayload``) or take Dagster's union names (``TerminateRunResult``...). A few Dagster
types therefore carry runyard's payload fields as well (``PythonError.ok``...): harmless extras.

A mutation refused by a read-only web UI is answered by the read-only middleware with a plain dict
(:class:`runyard_webui.security.ReadOnlyMiddleware`); each interface resolves that dict to the
Dagster type its client reads a message from: ``UnauthorizedError`` for a launch and for each run of
``terminateRuns`` (what Dagster's read-only web server answers), ``PythonError`` for
``terminateRun`` and ``shutdownRepositoryLocation`` and ``ReloadNotSupported`` for
``reloadRepositoryLocation`` (the client reads no message from an UnauthorizedError there).
"""

from __future__ import annotations

import graphene
from graphene.types.generic import GenericScalar

from .types import ConfigProblem, Job, Run, job_root

#: the name of the one repository of each runyard code location (Dagster's name for the repository
#: of a ``Definitions`` object); a selector may also name the location itself
REPOSITORY_NAME = "__repository__"


# ---- scalars, enums, inputs ----------------------------------------------------------------------
class RunConfigData(GenericScalar):
    """A run config: a JSON object (or YAML text, read by runyard's YAML loader)."""


class TerminateRunPolicy(graphene.Enum):
    SAFE_TERMINATE = "SAFE_TERMINATE"
    MARK_AS_CANCELED_IMMEDIATELY = "MARK_AS_CANCELED_IMMEDIATELY"


class RepositoryLocationLoadStatus(graphene.Enum):
    LOADING = "LOADING"
    LOADED = "LOADED"


class AssetKeyInput(graphene.InputObjectType):
    path = graphene.List(graphene.NonNull(graphene.String), required=True)


class AssetCheckHandleInput(graphene.InputObjectType):
    asset_key = graphene.InputField(AssetKeyInput, required=True)
    name = graphene.String(required=True)


class JobOrPipelineSelector(graphene.InputObjectType):
    """The job to launch: ``jobName`` (or ``pipelineName``) in repository ``repositoryName``
    (``__repository__`` or the location's name) of code location ``repositoryLocationName``."""

    pipeline_name = graphene.String()
    job_name = graphene.String()
    repository_name = graphene.String(required=True)
    repository_location_name = graphene.String(required=True)
    solid_selection = graphene.List(graphene.NonNull(graphene.String),
                                    description="Op selection clauses, as runyard's `ops` joined by commas.")
    asset_selection = graphene.List(graphene.NonNull(AssetKeyInput), description="Not supported (no assets).")
    asset_check_selection = graphene.List(graphene.NonNull(AssetCheckHandleInput),
                                          description="Not supported (no asset checks).")


class ExecutionTag(graphene.InputObjectType):
    key = graphene.String(required=True)
    value = graphene.String(required=True)


class ExecutionMetadata(graphene.InputObjectType):
    tags = graphene.List(graphene.NonNull(ExecutionTag))
    root_run_id = graphene.String(description="Not supported: re-execute with `reexecuteRun`.")
    parent_run_id = graphene.String(description="Not supported: re-execute with `reexecuteRun`.")


class ExecutionParams(graphene.InputObjectType):
    selector = graphene.InputField(JobOrPipelineSelector, required=True)
    run_config_data = graphene.InputField(RunConfigData)
    mode = graphene.String(description="`default` (or null): a runyard job has one mode.")
    execution_metadata = graphene.InputField(ExecutionMetadata)
    step_keys = graphene.List(graphene.NonNull(graphene.String),
                              description="Not supported: select ops with `selector.solidSelection`.")
    preset = graphene.String(description="Not supported: runyard has no presets.")


class RepositorySelector(graphene.InputObjectType):
    repository_name = graphene.String(required=True)
    repository_location_name = graphene.String(required=True)


# ---- Dagster's interfaces ------------------------------------------------------------------------
class Error(graphene.Interface):
    message = graphene.String(required=True)


class PipelineRunNotFoundError(graphene.Interface):
    class Meta:
        interfaces = (Error,)

    run_id = graphene.String(required=True)
    message = graphene.String(required=True)


class LaunchPipelineRunSuccess(graphene.Interface):
    run = graphene.Field(Run, required=True)


class PipelineRunConflict(graphene.Interface):
    message = graphene.String(required=True)


class PipelineConfigValidationInvalid(graphene.Interface):
    pipeline_name = graphene.String(required=True)
    errors = graphene.List(graphene.NonNull(ConfigProblem), required=True,
                           description="runyard's config problems: `path` is the dotted key path "
                                       "(ops.greet.config.times), `reason` the problem in words.")


class TerminatePipelineExecutionSuccess(graphene.Interface):
    run = graphene.Field(Run, required=True)


class TerminatePipelineExecutionFailure(graphene.Interface):
    run = graphene.Field(Run, required=True)
    message = graphene.String(required=True)


# ---- the interfaces of the fields runyard and Dagster share --------------------------------------
def _get(root, name: str):
    return root.get(name) if isinstance(root, dict) else getattr(root, name, None)


class _Payload(graphene.Interface):
    """runyard's payload fields: ``ok``; on refusal ``message`` and ``code`` (NOT_FOUND, INVALID,
    READ_ONLY, FORBIDDEN, UNAVAILABLE). The lists are empty unless set."""

    class Meta:
        abstract = True

    ok = graphene.Boolean(required=True)
    message = graphene.String()
    code = graphene.String()

    resolve_ok = staticmethod(lambda root, info: _get(root, "ok") is True)
    resolve_errors = staticmethod(lambda root, info: _get(root, "errors") or [])
    resolve_results = staticmethod(lambda root, info: _get(root, "results") or [])

    #: the object type answering the read-only middleware's dict (see the module docstring)
    read_only_answer = staticmethod(lambda: UnauthorizedError)

    @classmethod
    def resolve_type(cls, instance, info):
        return cls.read_only_answer() if isinstance(instance, dict) else type(instance)


def _payload_interface(name: str, doc: str, read_only_answer, **fields) -> type[graphene.Interface]:
    return type(name, (_Payload,), {"__doc__": doc, "read_only_answer": staticmethod(read_only_answer), **fields})


LaunchRunPayload = _payload_interface(
    "LaunchRunPayload",
    "What `launchRun`, `launchPipelineExecution` and `reexecuteRun` answer: Dagster's launch result types "
    "(LaunchRunSuccess, RunConfigValidationInvalid, PipelineNotFoundError, UnauthorizedError, PythonError, "
    "ConflictingExecutionParamsError, PresetNotFoundError...), each with runyard's payload fields.",
    lambda: UnauthorizedError, run=graphene.Field(Run),
    errors=graphene.List(graphene.NonNull(ConfigProblem), required=True,
                         description="Run config problems (nothing was stored)."))
TerminateRunResult = _payload_interface(
    "TerminateRunResult",
    "What `terminateRun` answers: TerminateRunSuccess, TerminateRunFailure, RunNotFoundError, "
    "UnauthorizedError or PythonError, each with runyard's payload fields.",
    lambda: PythonError, run=graphene.Field(Run))


def _bulk_result():
    # runyard's per-run result type (schema/mutations.py, which imports this module): resolved when
    # the schema is built
    from .mutations import BulkRunResult

    return BulkRunResult


class TerminateRunsResultOrError(_Payload):
    """What `terminateRuns` answers: TerminateRunsResult (per-run results in runyard's `results` and
    Dagster's `terminateRunResults`), or PythonError."""

    results = graphene.List(graphene.NonNull(_bulk_result), required=True,
                            description="One per run id, in order; empty when the whole request was refused.")

    read_only_answer = staticmethod(lambda: TerminateRunsResult)  # each run: UnauthorizedError


ReloadRepositoryLocationMutationResult = _payload_interface(
    "ReloadRepositoryLocationMutationResult",
    "What `reloadRepositoryLocation` answers: WorkspaceLocationEntry (its `locationOrLoadError` says whether "
    "the definitions load), RepositoryLocationNotFound, ReloadNotSupported, UnauthorizedError or PythonError.",
    lambda: ReloadNotSupported)
ShutdownRepositoryLocationMutationResult = _payload_interface(
    "ShutdownRepositoryLocationMutationResult",
    "What `shutdownRepositoryLocation` answers: ShutdownRepositoryLocationSuccess, "
    "RepositoryLocationNotFound, UnauthorizedError or PythonError.",
    lambda: PythonError)

_ALL_PAYLOADS = (LaunchRunPayload, TerminateRunResult, TerminateRunsResultOrError,
                 ReloadRepositoryLocationMutationResult, ShutdownRepositoryLocationMutationResult)


def _object(name: str, interfaces: tuple, doc: str, **fields) -> type[graphene.ObjectType]:
    meta = type("Meta", (), {"interfaces": interfaces})
    return type(name, (graphene.ObjectType,), {"Meta": meta, "__doc__": doc, **fields})


def _error(name: str, doc: str, interfaces: tuple = (), **fields) -> type[graphene.ObjectType]:
    """A Dagster error type: ``message`` (required), its own fields, runyard's payload fields."""
    return _object(name, (Error, *interfaces), doc, message=graphene.String(required=True), **fields)


# ---- errors ---------------------------------------------------------------------------------------
class PythonError(graphene.ObjectType):
    """An error Dagster raised in Python; runyard answers it for a refusal no other type names (a code
    location that is down, a reserved tag...) with runyard's `code`, and for a run stored whose launch
    failed (then `run` is that run, now FAILURE)."""

    class Meta:
        interfaces = (Error, *_ALL_PAYLOADS)

    message = graphene.String(required=True)
    class_name = graphene.String()
    stack = graphene.List(graphene.NonNull(graphene.String), required=True)
    cause = graphene.Field(lambda: PythonError)
    causes = graphene.List(graphene.NonNull(lambda: PythonError), required=True)
    error_chain = graphene.List(graphene.NonNull(lambda: ErrorChainLink), required=True)

    resolve_stack = staticmethod(lambda root, info: _get(root, "stack") or [])
    resolve_causes = staticmethod(lambda root, info: [])
    resolve_error_chain = staticmethod(lambda root, info: [])


class ErrorChainLink(graphene.ObjectType):
    class Meta:
        interfaces = (Error,)

    message = graphene.String(required=True)
    error = graphene.Field(PythonError, required=True)
    is_explicit_link = graphene.Boolean(required=True)


UnauthorizedError = _error("UnauthorizedError", "Refused: this web UI is read-only (`code` READ_ONLY), or the "
                           "role or code locations of who asked do not allow it (`code` FORBIDDEN).",
                           _ALL_PAYLOADS)
RunNotFoundError = _error("RunNotFoundError", "No run with this id (`code` NOT_FOUND).",
                          (PipelineRunNotFoundError, TerminateRunResult), run_id=graphene.String(required=True))
PipelineNotFoundError = _error(
    "PipelineNotFoundError", "No such job, repository or code location (`code` NOT_FOUND).", (LaunchRunPayload,),
    pipeline_name=graphene.String(required=True), repository_name=graphene.String(required=True),
    repository_location_name=graphene.String(required=True))
RunConflict = _error("RunConflict", "Never answered by runyard (each launch makes a new run id).",
                     (PipelineRunConflict, LaunchRunPayload))
PresetNotFoundError = _error("PresetNotFoundError", "A preset was asked for: runyard has none.",
                             (LaunchRunPayload,), preset=graphene.String(required=True))
ConflictingExecutionParamsError = _error(
    "ConflictingExecutionParamsError", "The arguments contradict each other or ask for something runyard "
    "does not do (step keys, assets, a mode other than `default`...): `message` says which.", (LaunchRunPayload,))
NoModeProvidedError = _error("NoModeProvidedError", "Never answered by runyard (every job has mode `default`).",
                             (LaunchRunPayload,), pipeline_name=graphene.String(required=True))
RepositoryNotFoundError = _error("RepositoryNotFoundError", "No such repository in that code location.",
                                 repository_name=graphene.String(required=True),
                                 repository_location_name=graphene.String(required=True))
RepositoryLocationNotFound = _error(
    "RepositoryLocationNotFound", "No code location of that name (`code` NOT_FOUND).",
    (ReloadRepositoryLocationMutationResult, ShutdownRepositoryLocationMutationResult))
ReloadNotSupported = _error("ReloadNotSupported", "Answered by a read-only web UI, or to whom may not reload "
                            "the location (`code` READ_ONLY or FORBIDDEN; every location reloads otherwise).",
                            (ReloadRepositoryLocationMutationResult,))

# Dagster's launch errors without a message; runyard never answers them (no step keys, no outputs to
# select) but Dagster's client names them in its fragments
InvalidStepError = _object("InvalidStepError", (LaunchRunPayload,), "Never answered by runyard.",
                           invalid_step_key=graphene.String(required=True))
InvalidOutputError = _object("InvalidOutputError", (LaunchRunPayload,), "Never answered by runyard.",
                             step_key=graphene.String(required=True),
                             invalid_output_name=graphene.String(required=True))


# ---- repositories, locations, jobs ---------------------------------------------------------------
class PipelineTag(graphene.ObjectType):
    key = graphene.String(required=True)
    value = graphene.String(required=True)


class Pipeline(graphene.ObjectType):
    """A job, as Dagster lists it in a repository. Root: a :class:`~.types.JobInLocation`."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    description = graphene.String()
    is_job = graphene.Boolean(required=True)
    is_asset_job = graphene.Boolean(required=True)
    tags = graphene.List(graphene.NonNull(PipelineTag), required=True)

    resolve_id = staticmethod(lambda root, info: f"{root.location}:{REPOSITORY_NAME}:{root.job.name}")
    resolve_name = staticmethod(lambda root, info: root.job.name)
    resolve_description = staticmethod(lambda root, info: root.job.description)
    resolve_is_job = staticmethod(lambda root, info: True)
    resolve_is_asset_job = staticmethod(lambda root, info: False)
    resolve_tags = staticmethod(lambda root, info: [PipelineTag(key=str(k), value=str(v))
                                                    for k, v in sorted(root.job.tags.items())])


def _jobs(loc) -> list:
    snapshot = loc.snapshot
    if snapshot is None:
        return []
    return [job_root(loc.name, snapshot.jobs_by_name[n]) for n in snapshot.job_names]


class Repository(graphene.ObjectType):
    """The one repository of a runyard code location, named ``__repository__``. Root: a
    :class:`runyard.workspace.workspace.CodeLocation` that has a snapshot."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    location = graphene.Field(lambda: RepositoryLocation, required=True)
    pipelines = graphene.List(graphene.NonNull(Pipeline), required=True)
    jobs = graphene.List(graphene.NonNull(Job), required=True, description="runyard's `Job` type.")

    resolve_id = staticmethod(lambda root, info: f"{root.name}:{REPOSITORY_NAME}")
    resolve_name = staticmethod(lambda root, info: REPOSITORY_NAME)
    resolve_location = staticmethod(lambda root, info: root)
    resolve_pipelines = staticmethod(lambda root, info: _jobs(root))
    resolve_jobs = staticmethod(lambda root, info: _jobs(root))


class RepositoryLocation(graphene.ObjectType):
    """A loaded code location. Root: a :class:`runyard.workspace.workspace.CodeLocation`."""

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    is_reload_supported = graphene.Boolean(required=True)
    environment_path = graphene.String()
    repositories = graphene.List(graphene.NonNull(Repository), required=True)

    resolve_id = staticmethod(lambda root, info: root.name)
    resolve_is_reload_supported = staticmethod(lambda root, info: True)
    resolve_environment_path = staticmethod(lambda root, info: None)
    resolve_repositories = staticmethod(lambda root, info: [root] if root.snapshot is not None else [])


class RepositoryConnection(graphene.ObjectType):
    nodes = graphene.List(graphene.NonNull(Repository), required=True)


class RepositoriesOrError(graphene.Union):
    class Meta:
        types = (RepositoryConnection, RepositoryNotFoundError, PythonError)


class RepositoryLocationOrLoadError(graphene.Union):
    """Root: a CodeLocation (loaded) or a PythonError (its import error)."""

    class Meta:
        types = (RepositoryLocation, PythonError)

    @classmethod
    def resolve_type(cls, instance, info):
        return PythonError if isinstance(instance, PythonError) else RepositoryLocation


class RunOrError(graphene.Union):
    """Root: a RunRecord, or a RunNotFoundError."""

    class Meta:
        types = (Run, RunNotFoundError, PythonError)

    @classmethod
    def resolve_type(cls, instance, info):
        return type(instance) if isinstance(instance, graphene.ObjectType) else Run


class WorkspaceLocationEntry(graphene.ObjectType):
    """A code location after a reload: ``locationOrLoadError`` is the loaded location, or a
    PythonError with the import error and its traceback (``stack``)."""

    class Meta:
        interfaces = (ReloadRepositoryLocationMutationResult,)

    id = graphene.ID(required=True)
    name = graphene.String(required=True)
    location_or_load_error = graphene.Field(RepositoryLocationOrLoadError)
    load_status = graphene.Field(RepositoryLocationLoadStatus, required=True)
    updated_timestamp = graphene.Float(required=True)

    resolve_id = staticmethod(lambda root, info: root.name)


class ShutdownRepositoryLocationSuccess(graphene.ObjectType):
    class Meta:
        interfaces = (ShutdownRepositoryLocationMutationResult,)

    repository_location_name = graphene.String(required=True)


# ---- launch and terminate answers ----------------------------------------------------------------
LaunchRunSuccess = _object("LaunchRunSuccess", (LaunchPipelineRunSuccess, LaunchRunPayload),
                           "The run was stored and handed to the run coordinator.",
                           run=graphene.Field(Run, required=True))
RunConfigValidationInvalid = _object(
    "RunConfigValidationInvalid", (PipelineConfigValidationInvalid, LaunchRunPayload),
    "The job's code location refused the run config or op selection: every problem in `errors` "
    "(nothing was stored).", pipeline_name=graphene.String(required=True))
InvalidSubsetError = _error("InvalidSubsetError", "Never answered by runyard (an op selection's problems "
                            "are in RunConfigValidationInvalid's errors).", (LaunchRunPayload,),
                            pipeline=graphene.Field(Pipeline, required=True))
TerminateRunSuccess = _object("TerminateRunSuccess", (TerminatePipelineExecutionSuccess, TerminateRunResult),
                              "The run's launcher was asked to stop it: CANCELING now, CANCELED when its "
                              "worker has stopped.", run=graphene.Field(Run, required=True))
TerminateRunFailure = _object("TerminateRunFailure", (TerminatePipelineExecutionFailure, TerminateRunResult),
                              "Nothing to stop (the run already finished, or is being canceled).",
                              run=graphene.Field(Run, required=True), message=graphene.String(required=True))


def _terminate_run_results(root, info):
    if isinstance(root, dict):  # the read-only middleware's answer: refused as a whole
        return [UnauthorizedError(message=root["message"], ok=False, code=root["code"])]
    return root.terminate_run_results


class TerminateRunsResult(graphene.ObjectType):
    """Per-run results: runyard's ``results`` and Dagster's ``terminateRunResults``, in order."""

    class Meta:
        interfaces = (TerminateRunsResultOrError,)

    terminate_run_results = graphene.List(graphene.NonNull(TerminateRunResult), required=True,
                                          resolver=_terminate_run_results)


#: types reached only through an interface: build_schema lists them so the schema holds them
TYPES = [PythonError, ErrorChainLink, UnauthorizedError, RunNotFoundError, PipelineNotFoundError, RunConflict,
         PresetNotFoundError, ConflictingExecutionParamsError, NoModeProvidedError, RepositoryNotFoundError,
         RepositoryLocationNotFound, ReloadNotSupported, InvalidStepError, InvalidOutputError, InvalidSubsetError,
         LaunchRunSuccess, RunConfigValidationInvalid, TerminateRunSuccess, TerminateRunFailure,
         TerminateRunsResult, WorkspaceLocationEntry, ShutdownRepositoryLocationSuccess]
