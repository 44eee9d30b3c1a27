"""``python -m runyard``: the CLI. ``python -m runyard execute-run RUN_ID`` (what the process launcher
starts) skips click entirely: a cold run worker should spend its start-up running the run."""

import sys

if len(sys.argv) == 3 and sys.argv[1] == "execute-run" and not sys.argv[2].startswith("-"):
    from runyard.execution.worker_main import run_worker_main

    sys.exit(run_worker_main(sys.argv[2]))

from runyard.cli.main import main  # noqa: E402

main()
