"""A fixed code location whose snapshot id is stored in tests/core/test_codeserver.py: a change to how
snapshots are built that changes ids (and so makes replicas of old and new runyard disagree) fails
that test. No Config models here, so the id does not depend on pydantic's JSON schema output."""

from runyard import Backoff, Definitions, Out, RetryPolicy, RunRequest, SkipReason, job, op, resource, schedule, sensor
from runyard.definitions.job import DependencyOn, JobDefinition
from runyard.definitions.schedules import ScheduleDefinition


@resource
def warehouse(context):
    """Where rows end up."""
    return "warehouse"


@op(retry_policy=RetryPolicy(max_retries=3, delay=0.5, backoff=Backoff.EXPONENTIAL), tags={"kind": "io"})
def extract() -> list[int]:
    """Read rows."""
    return [1, 2, 3]


@op(outs={"evens": Out(list, description="even rows"), "odds": Out(list)})
def split(rows: list[int]):
    return [r for r in rows if r % 2 == 0], [r for r in rows if r % 2]


@op(required_resource_keys={"warehouse"})
def store(context, evens: list, odds: list, scale: int = 1) -> None:
    pass


@op
def audit(parts: list) -> str:
    return str(parts)


@job(tags={"team": "data"}, description="Extract, split, store.", resources={"warehouse": warehouse},
     config={"ops": {}})
def etl():
    evens, odds = split(extract())
    store(evens, odds)
    audit([evens, odds])


@op
def ping() -> None:
    pass


@op
def after(start: None) -> int:
    return 1


explicit = JobDefinition("explicit", ops=[ping, after], dependencies={"after": {"start": DependencyOn("ping")}},
                         executor={"multiprocess": {"max_concurrent": 2}})


@schedule("0 6 * * *", job=etl, execution_timezone="Europe/Paris", tags={"origin": "schedule"},
          default_status="RUNNING")
def daily(context):
    """Every morning."""
    return RunRequest(run_key=context.scheduled_time.isoformat())


static = ScheduleDefinition(name="static", cron_schedule="30 2 * * 1", job="explicit",
                            run_config={"tags": {"static": "yes"}}, tags={"t": "1"})


@sensor(job=etl, minimum_interval_seconds=15)
def new_files(context):
    return SkipReason("nothing")


@sensor()
def no_job_sensor(context):
    yield RunRequest(run_key="x", job_name="explicit")


defs = Definitions(jobs=[etl, explicit], schedules=[daily, static], sensors=[new_files, no_job_sensor],
                   resources={"plain": {"a": 1}, "warehouse": warehouse})
