"""runyard: a plugin-first data orchestrator.

``import runyard`` is cheap on purpose: the names below are loaded on first use, so a process that
only needs the CLI or storage never pays for the definitions API, and vice versa.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    # definitions: the user's API
    "op": "runyard.definitions.op",
    "OpDefinition": "runyard.definitions.op",
    "Out": "runyard.definitions.op",
    "In": "runyard.definitions.op",
    "job": "runyard.definitions.job",
    "graph": "runyard.definitions.job",
    "JobDefinition": "runyard.definitions.job",
    "GraphDefinition": "runyard.definitions.job",
    "DependencyOn": "runyard.definitions.job",
    "Config": "runyard.definitions.config",
    "resource": "runyard.definitions.resources",
    "ResourceDefinition": "runyard.definitions.resources",
    "RetryPolicy": "runyard.definitions.retry",
    "Backoff": "runyard.definitions.retry",
    "Jitter": "runyard.definitions.retry",
    "RetryRequested": "runyard.definitions.retry",
    "Failure": "runyard.definitions.retry",
    "IOManager": "runyard.definitions.io_manager",
    "FilesystemIOManager": "runyard.definitions.io_manager",
    "InputContext": "runyard.definitions.io_manager",
    "OutputContext": "runyard.definitions.io_manager",
    "ScheduleDefinition": "runyard.definitions.schedules",
    "schedule": "runyard.definitions.schedules",
    "SensorDefinition": "runyard.definitions.sensors",
    "sensor": "runyard.definitions.sensors",
    "RunRequest": "runyard.definitions.sensors",
    "SkipReason": "runyard.definitions.sensors",
    "Definitions": "runyard.definitions.definitions",
    "OpContext": "runyard.execution.context",
    # nested graphs (docs/graphs.md)
    "GraphIn": "runyard.definitions.graphs",
    "GraphOut": "runyard.definitions.graphs",
    "ConfigMapping": "runyard.definitions.graphs",
    "config_mapping": "runyard.definitions.graphs",
    # dynamic and optional outputs (docs/dynamic-outputs.md)
    "Output": "runyard.definitions.outputs",
    "DynamicOut": "runyard.definitions.outputs",
    "DynamicOutput": "runyard.definitions.outputs",
    # hooks (docs/hooks.md)
    "success_hook": "runyard.definitions.hooks",
    "failure_hook": "runyard.definitions.hooks",
    "HookDefinition": "runyard.definitions.hooks",
    "HookContext": "runyard.definitions.hooks",
    # testing helpers (docs/testing.md)
    "build_op_context": "runyard.execution.direct",
    "build_hook_context": "runyard.execution.direct",
    "JobExecutionResult": "runyard.execution.result",
    "RunFailedError": "runyard.execution.result",
    # partitions (docs/partitions.md)
    "PartitionsDefinition": "runyard.definitions.partitions",
    "StaticPartitionsDefinition": "runyard.definitions.partitions",
    "TimeWindowPartitionsDefinition": "runyard.definitions.partitions",
    "HourlyPartitionsDefinition": "runyard.definitions.partitions",
    "DailyPartitionsDefinition": "runyard.definitions.partitions",
    "WeeklyPartitionsDefinition": "runyard.definitions.partitions",
    "MonthlyPartitionsDefinition": "runyard.definitions.partitions",
    "TimeWindow": "runyard.definitions.partitions",
    "PartitionKeyError": "runyard.definitions.partitions",
    "PartitionedConfig": "runyard.definitions.partitioned_config",
    "static_partitioned_config": "runyard.definitions.partitioned_config",
    "hourly_partitioned_config": "runyard.definitions.partitioned_config",
    "daily_partitioned_config": "runyard.definitions.partitioned_config",
    "weekly_partitioned_config": "runyard.definitions.partitioned_config",
    "monthly_partitioned_config": "runyard.definitions.partitioned_config",
    "build_schedule_from_partitioned_job": "runyard.definitions.partitioned_schedules",
    # backfills (docs/backfills.md)
    # running things from Python
    "Instance": "runyard.instance.instance",
    "execute_job": "runyard.execution.api",
    "RunStatus": "runyard.storage.records",
    "RunyardError": "runyard.errors",
    # writing plugins: the marker lives beside the specs it implements
    "hookimpl": "runyard.hookspecs",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
