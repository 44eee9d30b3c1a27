"""Dagster's ``PipelineRun`` interface, implemented by runyard's ``Run`` type (docs/api.md).

Dagster clients read a run through ``... on PipelineRun { status }`` (``pipelineRunOrError``), and
GraphQL type names are unique: Dagster's ``Run`` is runyard's ``Run``. This interface gives it the
Dagster fields runyard's type lacks (``id``, ``pipelineName``, ``mode``, ``runConfigYaml``,
``creationTime``, ``updateTime``); the shared ones (``runId``, ``status``, ``jobName``,
``canTerminate``...) keep runyard's types. Runyard's status names are Dagster's (runyard has eight of
its ten: never ``MANAGED`` or ``SUSPENDED``), so ``status`` needs no mapping.

Kept apart from :mod:`.dagster_types` so :mod:`.types` can import it without a cycle.
"""

from __future__ import annotations

import graphene

#: every runyard job has this one mode (Dagster's name for the only mode of a job)
DEFAULT_MODE = "default"


class PipelineRun(graphene.Interface):
    """A run, as Dagster's clients read it. Root: a :class:`runyard.storage.records.RunRecord`."""

    id = graphene.ID(required=True, description="The run id (Dagster's `Run.id`).")
    run_id = graphene.ID(required=True)
    status = graphene.String(required=True, description="QUEUED, NOT_STARTED, STARTING, STARTED, SUCCESS, "
                             "FAILURE, CANCELING or CANCELED: Dagster's `RunStatus` names.")
    job_name = graphene.String(required=True)
    pipeline_name = graphene.String(required=True, description="The job's name (Dagster's older name).")
    mode = graphene.String(required=True, description="Always `default`.")
    run_config_yaml = graphene.String(required=True)
    step_keys_to_execute = graphene.List(graphene.NonNull(graphene.String))
    root_run_id = graphene.String()
    parent_run_id = graphene.String()
    can_terminate = graphene.Boolean(required=True)
    creation_time = graphene.Float(required=True, description="When the run was created (epoch seconds).")
    update_time = graphene.Float()

    resolve_id = staticmethod(lambda root, info: root.run_id)
    resolve_pipeline_name = staticmethod(lambda root, info: root.job_name)
    resolve_mode = staticmethod(lambda root, info: DEFAULT_MODE)
    resolve_creation_time = staticmethod(lambda root, info: root.created_at)
    resolve_update_time = staticmethod(lambda root, info: root.updated_at)

    @staticmethod
    def resolve_run_config_yaml(root, info):
        import yaml

        return yaml.safe_dump(root.run_config or {}, sort_keys=False, default_flow_style=False)
