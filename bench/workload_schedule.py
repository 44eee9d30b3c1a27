"""The schedule workload of bench/schedule_lag.py: bench/workload.py's ``trivial_job`` plus a schedule
that fires at every minute boundary (``* * * * *``). Kept apart so bench/workload.py (loaded by the
other benchmarks) stays unchanged."""

from __future__ import annotations

import os
import sys

from runyard import Definitions, ScheduleDefinition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workload import trivial_job  # noqa: E402

every_minute = ScheduleDefinition(name="every_minute", cron_schedule="* * * * *", job=trivial_job)

defs = Definitions(jobs=[trivial_job], schedules=[every_minute])
