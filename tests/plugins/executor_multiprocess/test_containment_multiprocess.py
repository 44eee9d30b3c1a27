"""Nothing a run starts outlives it, with the multiprocess executor: the containment suite of
:mod:`runyard.testing.containment` (a step process's children and grandchildren, and a daemon that
left its session, after step success, step failure, terminate, a worker ignoring SIGTERM and a
worker killed with SIGKILL; warm and cold launches).

Needs: runyard-executor-multiprocess installed (the tox env installs it), Linux /proc, real signals,
``sh`` and ``sleep``.
"""

from __future__ import annotations

import pytest

from runyard.testing.containment import ProcessContainmentSuite


class TestMultiprocessContainment(ProcessContainmentSuite):
    @pytest.fixture
    def executor_run_config(self):
        return {"multiprocess": {"max_concurrent": 2, "grace_period_seconds": 1}}
