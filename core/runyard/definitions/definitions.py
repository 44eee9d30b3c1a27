"""The Definitions object: everything a code location offers."""

from __future__ import annotations

from typing import Any

from ..errors import DefinitionError, JobNotFoundError
from .job import JobDefinition
from .schedules import ScheduleDefinition
from .sensors import SensorDefinition


class Definitions:
    def __init__(self, jobs: list[JobDefinition] | None = None,
                 schedules: list[ScheduleDefinition] | None = None,
                 sensors: list[SensorDefinition] | None = None,
                 resources: dict[str, Any] | None = None):
        self.resources = dict(resources or {})
        self.jobs: dict[str, JobDefinition] = {}
        for j in jobs or []:
            self._add_job(j)
        self.schedules = self._unique("schedule", schedules or [])
        self.sensors = self._unique("sensor", sensors or [])
        for instigator in [*self.schedules.values(), *self.sensors.values()]:
            target = instigator.job
            if target is None:
                continue
            if isinstance(target, JobDefinition) and target.name not in self.jobs:
                self._add_job(target)
            if instigator.job_name not in self.jobs:
                raise DefinitionError(f"{type(instigator).__name__.replace('Definition', '').lower()} "
                                      f"'{instigator.name}' targets unknown job '{instigator.job_name}'")
        for j in self.jobs.values():
            j.with_resources(self.resources)

    def _add_job(self, j: JobDefinition) -> None:
        if not isinstance(j, JobDefinition):
            raise DefinitionError(f"Definitions(jobs=...) got {j!r}, which is not a job")
        existing = self.jobs.get(j.name)
        if existing is not None and existing is not j:
            raise DefinitionError(f"two different jobs are named '{j.name}'")
        self.jobs[j.name] = j

    @staticmethod
    def _unique(kind: str, items: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in items:
            if item.name in out:
                raise DefinitionError(f"two {kind}s are named '{item.name}'")
            out[item.name] = item
        return out

    def get_job(self, name: str) -> JobDefinition:
        try:
            return self.jobs[name]
        except KeyError:
            raise JobNotFoundError(name, list(self.jobs)) from None

    @property
    def job_names(self) -> list[str]:
        return sorted(self.jobs)
