"""Core's own components, registered through the same hooks as any third-party plugin.

Only class references live here; each class's module is imported when its registry is built.
"""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def runyard_register_run_coordinator(registry):
    from .coordinators.default import DefaultRunCoordinator
    from .coordinators.queued import QueuedRunCoordinator

    registry.add("default", DefaultRunCoordinator)
    registry.add("queued", QueuedRunCoordinator)


@hookimpl
def runyard_register_run_launcher(registry):
    from .launchers.process import ProcessRunLauncher

    registry.add("process", ProcessRunLauncher)


@hookimpl
def runyard_register_executor(registry):
    from .executors.in_process import InProcessExecutor

    registry.add("in_process", InProcessExecutor)
