"""The ``default`` coordinator: launch every submitted run immediately, in the submitter's process."""

from __future__ import annotations

from ..storage.records import RunRecord
from .base import RunCoordinator, SubmitRunContext


class DefaultRunCoordinator(RunCoordinator):
    def submit_run(self, context: SubmitRunContext) -> RunRecord:
        return context.instance.launch_run(context.run)
