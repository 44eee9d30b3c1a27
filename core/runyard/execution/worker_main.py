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


def exit_now(code: int) -> None:
    """End a worker process whose run is finished and stored: run the atexit handlers (the user's
    included), flush stdio, and leave without the interpreter's module teardown, which takes 0.1-0.2 s
    with runyard, SQLAlchemy and a database driver loaded (a container or a launcher waits that long
    for nothing)."""
    import atexit
    import os

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
