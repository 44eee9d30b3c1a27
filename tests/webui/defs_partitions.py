"""Partitioned jobs for the web UI's partition tests (test_partitions_webui.py, test_partitions_browser.py)."""

from runyard import (
    Config,
    DailyPartitionsDefinition,
    Definitions,
    job,
    op,
    static_partitioned_config,
)


class RegionConfig(Config):
    region: str


@op
def load_region(context, config: RegionConfig) -> str:
    context.log.info(f"loading {config.region} for partition {context.partition_key}")
    if config.region == "mars":
        raise RuntimeError("no data from mars")
    return config.region


@static_partitioned_config(["eu", "us", "asia", "mars"], tags_for_partition_fn=lambda key: {"region": key})
def region_config(partition_key: str):
    return {"ops": {"load_region": {"config": {"region": partition_key}}}}


@job(config=region_config)
def regions():
    load_region()


@op
def daily_op(context) -> str:
    window = context.partition_time_window
    context.log.info(f"window {window.start.isoformat()} .. {window.end.isoformat()}")
    return context.partition_key


@job(partitions_def=DailyPartitionsDefinition("2024-01-01", end_date="2024-01-11"))
def days():
    daily_op()


@op
def plain_op() -> int:
    return 1


@job
def plain():
    plain_op()


defs = Definitions(jobs=[regions, days, plain])
