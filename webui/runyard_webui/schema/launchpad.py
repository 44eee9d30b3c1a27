"""The launchpad's GraphQL query ``validateRunConfig``: a run config checked by the job's code location
without launching (the launchpad asks it as you type), every problem with its key path and the line
and column of its key in the YAML (:mod:`runyard_webui.validation`)."""

from __future__ import annotations

import graphene
from graphene.types.generic import GenericScalar

from .types import TagInput, web


class RunConfigProblem(graphene.ObjectType):
    message = graphene.String(required=True, description="The whole message, as the CLI prints it.")
    reason = graphene.String(description="The message without its key path.")
    path = graphene.String(description="Key path in the run config, e.g. ops.load.config.path; for a "
                                       "refused tag, the tag.")
    source = graphene.String(description="run config, op selection, yaml (the text does not parse) or tags.")
    line = graphene.Int(description="1-based line of the key (or of the syntax error) in runConfigYaml.")
    column = graphene.Int(description="1-based column of the key (or of the syntax error) on that line.")


class RunConfigValidation(graphene.ObjectType):
    """``valid`` when the job's code location accepts the run config, op selection and tags; else
    every problem in ``errors``. ``code`` and ``message`` say why nothing could be checked (unknown
    location or job: NOT_FOUND; its server is down: UNAVAILABLE); ``errors`` is then empty."""

    valid = graphene.Boolean(required=True)
    errors = graphene.List(graphene.NonNull(RunConfigProblem), required=True)
    step_keys = graphene.List(graphene.NonNull(graphene.String),
                              description="When valid: the steps the op selection runs (null: every step).")
    code = graphene.String()
    message = graphene.String()


def _resolve(root, info, location, job_name, run_config_yaml=None, run_config=None, ops=None, tags=None):
    from ..context import WebError

    if run_config is not None and run_config_yaml is not None:
        return RunConfigValidation(valid=False, errors=[], code="INVALID",
                                   message="give runConfig or runConfigYaml, not both")
    try:
        check = web(info).validate_run_config(location, job_name, run_config_yaml, ops.strip() if ops else None,
                                              {t.key: t.value for t in tags or []}, run_config)
    except WebError as exc:
        return RunConfigValidation(valid=False, errors=[], code=exc.code, message=exc.message)
    return RunConfigValidation(valid=check.valid, step_keys=None if check.step_keys is None else list(check.step_keys),
                               errors=[RunConfigProblem(**vars(p)) for p in check.problems])


def validate_run_config_field() -> graphene.Field:
    return graphene.Field(
        RunConfigValidation, required=True, resolver=_resolve,
        location=graphene.String(required=True), job_name=graphene.String(required=True),
        run_config_yaml=graphene.String(description="The run config as YAML text (what the launchpad sends)."),
        run_config=GenericScalar(description="Or the run config as JSON."),
        ops=graphene.String(description="Op selection, as `launchRun`'s `ops`."),
        tags=graphene.List(graphene.NonNull(TagInput), description="Tags to check (reserved ones are refused)."),
        description="Check a run config, op selection and tags against a job on its code location without "
                    "launching: every problem, each with its key path and its line and column in "
                    "`runConfigYaml`. Nothing is stored (allowed on a read-only web UI).")
