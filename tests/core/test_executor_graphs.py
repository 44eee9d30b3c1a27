"""A nested step run by a step process of its own, by its dotted key (the nested-graph executor
checks, :mod:`runyard.testing.executor_graphs`, run in every executor's conformance suite).

Needs: runyard-executor-multiprocess installed, real subprocesses (multiprocess step processes).
"""

from __future__ import annotations

from runyard.testing import SuiteHome


def test_the_step_process_runs_nested_steps_by_their_dotted_keys(tmp_path):
    """What the docker and k8s executors run in a container per step: ``python -m
    runyard.execution.step_process RUN_ID outer.inner.add 0``, inputs through storage."""
    import subprocess
    import sys

    from runyard.execution.step_process import parse_outcome
    from runyard.storage.records import StepStatus
    from runyard.testing.executor_graphs import NESTED, RUN_CONFIG, STEPS

    home = SuiteHome(tmp_path, {})
    try:
        run, _ = home.create_run(home.write_defs(NESTED), "nested_graphs", RUN_CONFIG)
        for key in STEPS:
            proc = subprocess.run([sys.executable, "-m", "runyard.execution.step_process", run.run_id, key, "0"],
                                  env=home.worker_env(), capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            assert parse_outcome(proc.stdout, key, 0).status == StepStatus.SUCCESS, proc.stdout + proc.stderr
        assert home.out_lines("gather") == ["32,2,106"]
    finally:
        home.close()
