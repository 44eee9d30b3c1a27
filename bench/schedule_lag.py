#!/usr/bin/env python
"""schedule_lag: cron time -> run created, for a schedule that fires every minute (issue 5).

A fresh SQLite home (queued coordinator, max_concurrent_runs 4); ``runyard schedule start
every_minute -f bench/workload_schedule.py`` turns the schedule (``* * * * *``, ``trivial_job``) on,
then ``python -m runyard daemon -f bench/workload_schedule.py`` runs as a subprocess in its own
process group. The script waits for the next ``--ticks`` minute boundaries (at most ~70 s each) and
reads from storage, per tick, the created run's ``created_at`` minus the tick's cron time
(``tick_time``): ``lag_s``. It also waits for those runs to finish, then stops the daemon's group.

Dagster's daemon, for comparison, checks schedules at minute boundaries (no twin script here).

  python bench/schedule_lag.py [--ticks 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from daemonproc import DaemonProc
from rybench import BENCH_DIR, emit, log, make_home, stats

SCHEDULE = "every_minute"
WORKLOAD = os.path.join(BENCH_DIR, "workload_schedule.py")
INSTANCE_YAML = "run_coordinator:\n  queued:\n    max_concurrent_runs: 4\n    dequeue_interval_seconds: 0.5\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="schedule tick lag")
    ap.add_argument("--ticks", type=int, default=2)
    ap.add_argument("--keep-home", action="store_true")
    args = ap.parse_args()

    from runyard.instance.instance import Instance
    from runyard.storage.records import RunStatus

    home = make_home("schedule_lag", INSTANCE_YAML)
    env = {**os.environ, "RUNYARD_HOME": home}
    subprocess.run([sys.executable, "-m", "runyard", "schedule", "start", SCHEDULE, "-f", WORKLOAD],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    instance = Instance.open(home)
    daemon = DaemonProc(home, [WORKLOAD], os.path.join(home, "daemon.log"))
    lags: list[float] = []
    try:
        log(f"daemon ready in {daemon.wait_ready():.2f}s; waiting for {args.ticks} minute boundaries "
            f"(now :{time.gmtime().tm_sec:02d})")
        storage = instance.storage
        seen: set[float] = set()
        deadline = time.time() + 70 * args.ticks + 5
        while len(lags) < args.ticks:
            if time.time() > deadline:
                raise TimeoutError(f"only {len(lags)} tick(s) with a run; see {daemon.log_path}")
            for tick in storage.get_ticks(SCHEDULE, limit=20):
                if tick.tick_time in seen or not tick.run_ids:
                    continue
                run = storage.get_run(tick.run_ids[0])
                seen.add(tick.tick_time)
                lag = run.created_at - tick.tick_time
                lags.append(lag)
                log(f"tick {time.strftime('%H:%M:%S', time.gmtime(tick.tick_time))} ({tick.status}): run "
                    f"{run.run_id[:8]} created {lag:.3f}s after the cron time")
            time.sleep(0.1)
        t = time.time()
        while time.time() - t < 30:  # let the runs finish before the daemon stops
            runs = [storage.get_run(rid) for tk in storage.get_ticks(SCHEDULE, limit=20) for rid in tk.run_ids]
            if all(r.status in (RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED) for r in runs):
                break
            time.sleep(0.1)
    finally:
        daemon.stop()
        instance.dispose()
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    emit("schedule_lag", orchestrator="runyard", schedule="* * * * *", ticks=len(lags),
         lag_s=stats(lags, 4), lag_max_s=round(max(lags), 4))


if __name__ == "__main__":
    main()
