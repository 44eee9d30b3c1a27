"""Delete a run with its events and, optionally, the files runyard wrote for it.

Each component deletes its own files, so this module knows no paths: the run launcher
(:meth:`RunLauncher.delete_run_files <runyard.launchers.base.RunLauncher.delete_run_files>`, e.g.
the ``process`` launcher's worker log), the compute log manager
(:meth:`ComputeLogManager.delete_run_files <runyard.execution.compute_logs.ComputeLogManager.delete_run_files>`,
the captured step output) and the default IO manager
(:meth:`FilesystemIOManager.delete_default_run_outputs
<runyard.definitions.io_manager.FilesystemIOManager.delete_default_run_outputs>`, the outputs under
``<home>/storage``). Data that ops or other IO managers wrote elsewhere is left alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..storage.records import FINISHED_STATUSES, IN_PROGRESS_STATUSES
from .errors import OperationError

if TYPE_CHECKING:  # pragma: no cover
    from ..instance.instance import Instance
    from ..storage.records import RunRecord

log = logging.getLogger("runyard.operations")

def delete_run(instance: Instance, run_id: str, *, files: bool = True, finished_only: bool = False) -> RunRecord:
    """Delete a run that is not in progress, with its events; with ``files``, also its files (see
    the module). ``finished_only`` also refuses runs that are queued or not started. Returns the
    deleted run."""
    from ..errors import InvalidTransitionError

    run = instance.get_run(run_id)
    if finished_only and run.status not in FINISHED_STATUSES:
        raise OperationError(f"run {run_id} is {run.status}: terminate it before deleting it")
    if run.status in IN_PROGRESS_STATUSES:
        raise InvalidTransitionError(f"Run {run_id} is {run.status}; terminate it before deleting it.")
    instance.storage.delete_run(run_id)
    if files:
        delete_run_files(instance, run)
    return run


def delete_run_files(instance: Instance, run: RunRecord) -> None:
    """Have each component delete the files it wrote for ``run`` (already deleted from storage).
    Best effort: a component that cannot is logged, the others still run."""
    from ..definitions.io_manager import FilesystemIOManager
    from ..launchers.base import DeleteRunFilesContext

    steps = [("the default IO manager", lambda: FilesystemIOManager.delete_default_run_outputs(instance.home,
                                                                                                run.run_id))]
    if instance.compute_log_manager is not None:
        steps.append(("the compute log manager", lambda: instance.compute_log_manager.delete_run_files(run.run_id)))
    steps.append(("the run launcher", lambda: instance.run_launcher.delete_run_files(
        DeleteRunFilesContext(instance=instance, run=run))))
    for who, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - files are best effort; the run is already deleted
            log.warning("deleting the files of run %s: %s failed: %s", run.run_id, who, exc)
