"""Core's own components, registered through the same hooks as any third-party plugin.

Only names of classes live here: each class's module is imported the first time an instance selects it.
"""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def runyard_register_run_coordinator(registry):
    registry.add("default", "runyard.coordinators.default:DefaultRunCoordinator")
    registry.add("queued", "runyard.coordinators.queued:QueuedRunCoordinator")


@hookimpl
def runyard_register_run_launcher(registry):
    registry.add("process", "runyard.launchers.process:ProcessRunLauncher")


@hookimpl
def runyard_register_executor(registry):
    registry.add("in_process", "runyard.executors.in_process:InProcessExecutor")
