"""Executor checks for partitions: a mixin of :class:`runyard.testing.executor.ExecutorConformanceSuite`.

A run of a partition carries its key in the ``runyard/partition`` tag and its run config from the
job's partitioned config (docs/partitions.md). These checks prove that under the executor, in every
step's own process (container, pod):

* ops see ``context.partition_key`` and ``context.has_partition_key``, the partition's op config
  and the tags its partitioned config adds;
* a time-window job's ops see ``context.partition_time_window`` (start and end in its time zone);
* in a run that is not for a partition, ``has_partition_key`` is false and ``partition_key`` raises
  an error that says so (the step fails with it).

Steps talk to the test only through files under ``OUT_DIR`` (``record``).
"""

from __future__ import annotations

from typing import Any

from ..storage.records import RunStatus

PARTITIONED = """
from runyard import DailyPartitionsDefinition, StaticPartitionsDefinition, static_partitioned_config


class CityConfig(Config):
    city: str


@op
def fetch(context, config: CityConfig) -> str:
    record("fetch", f"{context.partition_key} {context.has_partition_key} {config.city} "
                    f"{context.run_tags.get('country')} {os.getpid()}")
    return config.city


@op
def publish(context, city: str) -> None:
    record("publish", f"{context.partition_key} {city} {os.getpid()}")


@static_partitioned_config(["paris", "lyon"], tags_for_partition_fn=lambda key: {"country": "fr"})
def city_config(partition_key):
    return {"ops": {"fetch": {"config": {"city": partition_key.upper()}}}}


@job(config=city_config)
def cities():
    publish(fetch())


@op
def window(context) -> None:
    w = context.partition_time_window
    record("window", f"{context.partition_key} {w.start.isoformat()} {w.end.isoformat()}")


@job(partitions_def=DailyPartitionsDefinition("2024-03-01", timezone="Europe/Paris"))
def daily():
    window()


@op
def unpartitioned(context) -> None:
    record("has_key", context.has_partition_key)
    context.partition_key


@job(partitions_def=StaticPartitionsDefinition(["a"]))
def maybe():
    unpartitioned()
"""


class PartitionChecks:
    """Mixed into the executor conformance suite: uses its ``executor_home`` and
    ``executor_run_config`` fixtures."""

    @staticmethod
    def _run_partition(home: Any, job_name: str, partition_key: str | None, run_config: dict[str, Any]) -> Any:
        """Create the run of ``partition_key`` (None: a run for no partition) as ``runyard job
        launch --partition`` does, and execute it."""
        from ..definitions.config import deep_merge
        from ..execution.api import prepare_run
        from ..execution.run_worker import execute_run
        from ..tags import PARTITION_TAG

        path = home.write_defs(PARTITIONED, "partitions_defs.py")
        pointer, job = home.load_job(path, job_name)
        config: dict[str, Any] = {}
        tags: dict[str, str] = {}
        runyard_tags: dict[str, str] = {}
        if partition_key is not None:
            config, tags = job.run_request_for_partition(partition_key)
            runyard_tags[PARTITION_TAG] = tags.pop(PARTITION_TAG)
        run = prepare_run(home.instance, job, code_pointer=pointer,
                          run_config=deep_merge(config, {"execution": run_config}), tags=tags,
                          runyard_tags=runyard_tags)
        return execute_run(home.instance, run.run_id, job=job)

    def test_ops_see_the_partition_key_and_its_config(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_partition(home, "cities", "lyon", executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert run.tags["runyard/partition"] == "lyon" and run.tags["country"] == "fr"
        (fetched,) = home.out_lines("fetch")
        assert fetched.rsplit(" ", 1)[0] == "lyon True LYON fr", home.describe(run.run_id)
        (published,) = home.out_lines("publish")
        assert published.rsplit(" ", 1)[0] == "lyon LYON", home.describe(run.run_id)

    def test_ops_see_the_partition_time_window(self, executor_home, executor_run_config):
        home = executor_home
        # the day clocks go forward in Paris: a 23-hour window
        run = self._run_partition(home, "daily", "2024-03-31", executor_run_config)
        assert run.status == RunStatus.SUCCESS, home.describe(run.run_id)
        assert home.out_lines("window") == ["2024-03-31 2024-03-31T00:00:00+01:00 2024-04-01T00:00:00+02:00"]

    def test_a_run_for_no_partition_says_so(self, executor_home, executor_run_config):
        home = executor_home
        run = self._run_partition(home, "maybe", None, executor_run_config)
        assert run.status == RunStatus.FAILURE, home.describe(run.run_id)
        assert home.out_lines("has_key") == ["False"]
        (failure,) = home.events(run.run_id, "STEP_FAILURE", "unpartitioned")
        assert "is not for a partition" in failure.data["error"], home.describe(run.run_id)
