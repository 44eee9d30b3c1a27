"""``python -m runyard``: the CLI. ``python -m runyard execute-run RUN_ID`` (what the process launcher
starts) skips click entirely: a cold run worker should spend its start-up running the run."""

import sys

# Anything but a plain ASCII run id (e.g. bytes that are not UTF-8) goes through click, which says why.
if (len(sys.argv) == 3 and sys.argv[1] == "execute-run" and not sys.argv[2].startswith("-")
        and sys.argv[2].isascii() and sys.argv[2].isprintable()):
    from runyard.execution.worker_main import exit_now, run_worker_main

    exit_now(run_worker_main(sys.argv[2]))

from runyard.cli.main import main  # noqa: E402

main()
