"""Entry of a run worker process: open the instance from the environment and execute one run."""

from __future__ import annotations

import sys


def run_worker_main(run_id: str) -> int:
    """Exit code 0 if the run succeeded, 1 if it finished otherwise, 2 if it could not run at all,
    3 if storage stayed unavailable past ``run_worker.outage_tolerance_seconds``."""
    from ..errors import RunyardError, StorageOutageError
    from ..instance.instance import Instance
    from ..storage.records import RunStatus
    from .run_worker import execute_run

    try:
        instance = Instance.open()
        run = execute_run(instance, run_id, contain_processes=True)  # this process is the run's
    except RunyardError as exc:
        print(f"runyard execute-run: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, StorageOutageError) else 2
    finally:
        sys.stdout.flush()
    print(f"run {run_id} finished: {run.status}")
    return 0 if run.status == RunStatus.SUCCESS else 1
