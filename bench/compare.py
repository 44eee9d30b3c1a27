#!/usr/bin/env python
"""compare: runyard and Dagster 1.13 on the same workloads, in the same invocation, one after another.

For each benchmark this runs runyard's script (bench/*.py) and then the matching Dagster script from
``<repo>/../shared/bench-dagster/dagster`` (called, never copied) with the Dagster virtualenv's
python, strictly sequentially (the bench machine has 2 cores: never in parallel), collects the
``RESULT {json}`` lines of both, and prints one table: figure, runyard, dagster, ratio, goal, met?

  python bench/compare.py                 # full run, about 5 minutes
  python bench/compare.py --quick         # fewer repeats, about 1.5 minutes
  python bench/compare.py --skip-dagster  # runyard's figures only
  python bench/compare.py --only import,latency
  python bench/compare.py --only pg       # PostgreSQL storage: needs a server (see pg_event_throughput.py)
  python bench/compare.py --only daemon   # issue 5: queue throughput, schedule lag, idle RSS (~3 minutes)

The Dagster python is, in order: ``--dagster-python``, ``$DAGSTER_PY``, ``$DAGSTER_VENV/bin/python``,
``~/.cache/runyard-bench/dagster-venv/bin/python``, ``/opt/dagster-venv/bin/python``. Create one with
``bash bench/setup_dagster.sh``. Raw RESULT records, each script's log and the table are kept in
``--out`` (default ``bench/results/<UTC time>/``). Goals are reported, never enforced: the exit code
only says whether every script ran.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rybench import BENCH_DIR, REPO_DIR, SHARED_BENCH, tmp_root

BENCHMARKS = ("import", "latency", "fanout", "events", "pg", "mp", "daemon")
DAGSTER_VERSION = "1.13.27"


@dataclass
class Step:
    benchmark: str
    side: str  # runyard | dagster
    script: str
    args: list[str]


def plan(quick: bool) -> list[Step]:
    """What runs, in order: for each benchmark runyard's script, then Dagster's."""
    q = quick
    return [
        Step("import", "runyard", "import_cost.py",
             ["--repeats", "3" if q else "10", "--warmup", "1" if q else "2"]),
        Step("import", "dagster", "import_cost.py",
             ["--repeats", "3" if q else "10", "--warmup", "1" if q else "2"]),
        Step("latency", "runyard", "run_latency.py",
             ["--modes", "inproc,launched-warm,launched-cold", "--repeats", "3" if q else "5",
              "--warmup", "1"]),
        Step("latency", "dagster", "run_latency.py",
             ["--modes", "launched", "--repeats", "2" if q else "5", "--warmup", "1"]),
        Step("fanout", "runyard", "fanout.py", ["--repeats", "2" if q else "5", "--warmup", "1"]),
        Step("fanout", "dagster", "fanout.py",
             ["--executors", "in_process", "--repeats", "1" if q else "3", "--warmup", "1"]),
        Step("events", "runyard", "event_throughput.py",
             ["--apis", "store_event,sink,store_events", "-k", "20000", "--repeats", "1" if q else "3",
              "--max-seconds", "60"]),
        Step("events", "dagster", "event_throughput.py",
             ["--storages", "sqlite", "--apis", "store_event", "-k", "20000",
              "--max-seconds", "20" if q else "60", "--repeats", "1" if q else "3"]),
        # issue 3: the multiprocess executor, max_concurrent 2 (Dagster: forkserver start method)
        Step("mp", "runyard", "run_latency.py",
             ["--modes", "launched-warm-mp,launched-cold-mp", "--repeats", "3" if q else "5", "--warmup", "1"]),
        Step("mp", "dagster", "run_latency.py",
             ["--modes", "launched-mp", "--repeats", "2" if q else "3", "--warmup", "1"]),
        Step("mp", "runyard", "fanout.py",
             ["--executors", "multiprocess", "--max-concurrent", "2", "--repeats", "2" if q else "3",
              "--warmup", "1"]),
        Step("mp", "dagster", "fanout.py",
             ["--executors", "multiprocess-fs", "--max-concurrent", "2", "--repeats", "1", "--warmup", "0"]),
        # issue 5: the daemon - run queue throughput, schedule lag, idle memory
        Step("daemon", "runyard", "queue_throughput.py", ["--runs", "100", "--repeats", "1" if q else "3"]),
        Step("daemon", "dagster", "queue_throughput.py", ["--runs", "12", "--repeats", "1"]),
        Step("daemon", "runyard", "schedule_lag.py", ["--ticks", "1" if q else "2"]),
        Step("daemon", "runyard", "memory.py", ["--idle", "10" if q else "30", "--repeats", "1"]),
        Step("daemon", "dagster", "memory.py", ["--idle", "30", "--repeats", "1"]),
        Step("pg", "runyard", "pg_event_throughput.py",
             ["-k", "20000", "--repeats", "1" if q else "3", "--max-seconds", "60"]),
        Step("pg", "dagster", "event_throughput.py",
             ["--storages", "postgres", "--apis", "store_event", "-k", "20000",
              "--max-seconds", "20" if q else "60", "--repeats", "1" if q else "3"]),
    ]


# ------------------------------------------------------------------------------------------------ #
# finding and running things
# ------------------------------------------------------------------------------------------------ #
def find_dagster_python(explicit: str | None) -> tuple[str | None, str]:
    """(python, note): the first candidate that imports dagster, else (None, why not)."""
    candidates = [explicit] if explicit else [
        os.environ.get("DAGSTER_PY"),
        os.path.join(os.environ["DAGSTER_VENV"], "bin", "python") if os.environ.get("DAGSTER_VENV") else None,
        os.path.expanduser("~/.cache/runyard-bench/dagster-venv/bin/python"),
        "/opt/dagster-venv/bin/python",
    ]
    tried = []
    for py in filter(None, candidates):
        if not os.path.exists(py):
            tried.append(f"{py} (missing)")
            continue
        proc = subprocess.run([py, "-c", "import dagster; print(dagster.__version__)"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            version = proc.stdout.strip()
            note = "" if version == DAGSTER_VERSION else f" (expected {DAGSTER_VERSION})"
            return py, f"dagster {version}{note}"
        tried.append(f"{py} (cannot import dagster)")
    return None, "no Dagster virtualenv found; tried: " + ", ".join(tried or ["nothing"])


def run_step(step: Step, python: str, out_dir: str, env: dict[str, str]) -> list[dict]:
    if step.side == "runyard":
        script, cwd = os.path.join(BENCH_DIR, step.script), REPO_DIR
    else:
        script, cwd = os.path.join(SHARED_BENCH, "dagster", step.script), os.path.join(SHARED_BENCH, "dagster")
    argv = [python, script, *step.args]
    name = f"{step.side}-{step.benchmark}-{os.path.splitext(step.script)[0]}"  # one log per script
    print(f"== {time.strftime('%H:%M:%S')} {step.side:7s} {step.script} {' '.join(step.args)}", flush=True)
    start = time.perf_counter()
    with open(os.path.join(out_dir, name + ".err"), "w") as err:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    with open(os.path.join(out_dir, name + ".out"), "w") as f:
        f.write(proc.stdout)
    records = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
               if line.startswith("RESULT ")]
    for rec in records:
        rec.setdefault("orchestrator", step.side)
        rec["side"] = step.side
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode}, see {name}.err)"
    print(f"   {status} in {time.perf_counter() - start:.1f}s, {len(records)} result(s)", flush=True)
    if proc.returncode != 0:
        with open(os.path.join(out_dir, name + ".err")) as f:
            tail = f.read().splitlines()[-15:]
        print("\n".join("   | " + line for line in tail), flush=True)
        raise StepFailed(name)
    return records


class StepFailed(Exception):
    pass


# ------------------------------------------------------------------------------------------------ #
# the table
# ------------------------------------------------------------------------------------------------ #
def pick(records: list[dict], side: str, benchmark: str, **match) -> dict | None:
    for rec in records:
        if rec.get("side") == side and rec.get("benchmark") == benchmark and all(
                rec.get(k) == v for k, v in match.items()):
            return rec
    return None


def median(rec: dict | None, key: str) -> float | None:
    if rec is None or not isinstance(rec.get(key), dict):
        return None
    return rec[key].get("median")


@dataclass
class Row:
    figure: str
    runyard: float | None
    dagster: float | None
    unit: str  # "s", "ms", "ev/s", "runs/s", "MiB", "conn"
    goal: str | None  # "<=0.2" (runyard/dagster, lower is better) or ">=40" (higher is better)
    note: str = ""

    def ratio(self) -> float | None:
        if self.runyard is None or not self.dagster:
            return None
        return self.runyard / self.dagster

    def cells(self, dagster_measured: bool) -> list[str]:
        r = self.ratio()
        if r is None:
            ratio = "—"
        elif self.unit in ("ev/s", "runs/s"):
            ratio = f"{r:,.1f}x"
        else:
            ratio = f"{r:.3f} (1/{1 / r:,.1f})" if r > 0 else "0"
        goal, met = "—", "—"
        if self.goal:
            op, target = self.goal[:2], float(self.goal[2:])
            goal = (f"≤ 1/{1 / target:g}" if op == "<=" else f"≥ {target:g}x")
            if r is not None:
                met = "yes" if (r <= target if op == "<=" else r >= target) else "NO"
        if self.dagster is not None:
            dag = fmt(self.dagster, self.unit)
        else:
            dag = "not measured" if not dagster_measured else "—"
        return [self.figure + (f" ({self.note})" if self.note else ""), fmt(self.runyard, self.unit),
                dag, ratio, goal, met]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ev/s":
        return f"{value:,.0f} ev/s"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "conn":
        return f"{value:.0f}"
    if unit == "runs/s":
        return f"{value:,.1f} runs/s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.4f} s" if value < 1 else f"{value:.3f} s"


def rows(records: list[dict]) -> list[Row]:
    r, d = "runyard", "dagster"
    imp, api = (pick(records, r, "import_cost", statement=s) for s in ("import", "api"))
    dimp = pick(records, d, "import_cost")
    lat = {m: pick(records, r, "run_latency", mode=m) for m in ("inproc", "launched-warm", "launched-cold")}
    dlat = pick(records, d, "run_latency", mode="launched")
    fan, dfan = pick(records, r, "fanout", executor="in_process"), pick(records, d, "fanout", executor="in_process")
    mpfan = pick(records, r, "fanout", executor="multiprocess")
    dmpfan = pick(records, d, "fanout", executor="multiprocess-fs")
    mplat = {m: pick(records, r, "run_latency", mode=m) for m in ("launched-warm-mp", "launched-cold-mp")}
    dmplat = pick(records, d, "run_latency", mode="launched-mp")
    ev = {a: pick(records, r, "event_throughput", storage="sqlite", api=a)
          for a in ("store_event", "sink", "store_events")}
    dev = pick(records, d, "event_throughput", storage="sqlite", api="store_event")
    pg = {a: pick(records, r, "event_throughput", storage="postgres", api=a)
          for a in ("store_event", "sink", "store_events")}
    dpg = pick(records, d, "event_throughput", storage="postgres", api="store_event")
    claims, conns = pick(records, r, "queue_claims"), pick(records, r, "pg_connections")
    qt, dqt = pick(records, r, "queue_throughput"), pick(records, d, "queue_throughput")
    lag = pick(records, r, "schedule_lag")
    mem, dmem = pick(records, r, "memory", service="daemon"), pick(records, d, "memory", service="daemon")
    runyard_runs = qt["runs"] if qt else 100
    dag_rate = median(dqt, "finished_per_s")
    dag_scaled = runyard_runs / dag_rate if dag_rate else None
    zygote_mib = None
    if mem and mem.get("children"):
        zygote_mib = sum(c["rss_kib"] for c in mem["children"] if "zygote" in c.get("cmd", "")) / 1024
    out = [
        Row("`import runyard` vs `import dagster`, whole process", median(imp, "wall_s"),
            median(dimp, "wall_s"), "s", "<=0.2"),
        Row("`import runyard; runyard.op; runyard.job` vs `import dagster`", median(api, "wall_s"),
            median(dimp, "wall_s"), "s", "<=0.2"),
        Row("import, in the process (no interpreter start-up): api vs dagster",
            median(api, "in_process_import_s"), median(dimp, "in_process_import_s"), "s", None),
        Row("trivial run launched, submit -> SUCCESS stored: warm worker vs Dagster launched",
            median(lat["launched-warm"], "storage_s"), median(dlat, "storage_s"), "s", "<=0.2"),
        Row("trivial run launched, submit -> SUCCESS stored: cold worker vs Dagster launched",
            median(lat["launched-cold"], "storage_s"), median(dlat, "storage_s"), "s", "<=0.2"),
        Row("trivial run in process (execute_job)", median(lat["inproc"], "storage_s"), None, "s", None,
            "Dagster's inproc mode not run here"),
        Row("200 ops + 1 fan-in, in process, wall", median(fan, "wall_s"), median(dfan, "wall_s"), "s",
            "<=0.2"),
        Row("200 ops + 1 fan-in, per step", median(fan, "per_step_ms"), median(dfan, "per_step_ms"), "ms",
            None),
        Row("200 ops + 1 fan-in, multiprocess max_concurrent 2 (Dagster: forkserver), wall",
            median(mpfan, "wall_s"), median(dmpfan, "wall_s"), "s", "<=0.0333333333"),
        Row("200 ops + 1 fan-in, multiprocess, per step", median(mpfan, "per_step_ms"),
            median(dmpfan, "per_step_ms"), "ms", None),
        Row("trivial run launched with the multiprocess executor: warm worker",
            median(mplat["launched-warm-mp"], "storage_s"), median(dmplat, "storage_s"), "s", "<=0.125"),
        Row("trivial run launched with the multiprocess executor: cold worker",
            median(mplat["launched-cold-mp"], "storage_s"), median(dmplat, "storage_s"), "s", "<=0.125"),
        Row("SQLite event writes, one store_event call each", median(ev["store_event"], "events_per_s"),
            median(dev, "events_per_s"), "ev/s", ">=40"),
        Row("SQLite event writes, batched as runs write them (EventSink) vs Dagster store_event",
            median(ev["sink"], "events_per_s"), median(dev, "events_per_s"), "ev/s", ">=40"),
        Row("SQLite event writes, store_events batches of 500 vs Dagster store_event",
            median(ev["store_events"], "events_per_s"), median(dev, "events_per_s"), "ev/s", None),
        Row("Postgres event writes, one store_event call (one durable commit) each",
            median(pg["store_event"], "events_per_s"), median(dpg, "events_per_s"), "ev/s", ">=50"),
        Row("Postgres event writes, batched as runs write them (EventSink) vs Dagster store_event",
            median(pg["sink"], "events_per_s"), median(dpg, "events_per_s"), "ev/s", ">=50"),
        Row("Postgres event writes, store_events batches of 500 vs Dagster store_event",
            median(pg["store_events"], "events_per_s"), median(dpg, "events_per_s"), "ev/s", None),
        Row(f"Postgres: {claims['runs'] if claims else 100} queued runs claimed by "
            f"{claims['claimers'] if claims else 4} competing processes, total",
            median(claims, "total_s"), None, "s", None, "FOR UPDATE SKIP LOCKED; each claimed once"),
        Row("Postgres: peak sessions of a web UI + a daemon + 4 run workers (pg_stat_activity)",
            conns["peak_connections"] if conns else None, None, "conn", None,
            f"configured maximum {conns['configured_max']} (6 x (pool 2 + overflow 1 + listener)); "
            f"by process: {conns['peak_by_application']}; {conns['graphql_requests']} GraphQL requests"
            if conns else ""),
    ]
    out += [
        Row(f"{runyard_runs} queued trivial runs, max_concurrent_runs 4, enqueue -> all finished "
            "(Dagster: its finished_per_s scaled to the same number of runs)",
            median(qt, "all_finished_s"), dag_scaled, "s", "<=0.1",
            "runyard's clock includes enqueueing; Dagster's starts after it"),
        Row(f"  Dagster raw: {dqt['runs'] if dqt else 12} queued runs, daemon start -> all finished",
            None, median(dqt, "all_finished_s"), "s", None),
        Row("  queued runs: enqueue rate (prepare_run + submit_run)", median(qt, "enqueue_per_s"),
            median(dqt, "enqueue_per_s"), "runs/s", None),
        Row("  queued runs: finished per second", median(qt, "finished_per_s"), dag_rate, "runs/s", None),
        Row("schedule `* * * * *`: run created_at - cron time (max of the ticks)",
            lag["lag_max_s"] if lag else None, None, "s", None,
            f"goal < 1 s absolute: {'met' if lag and lag['lag_max_s'] < 1 else 'NOT met'}; "
            "Dagster's scheduler wakes at minute boundaries" if lag else ""),
        Row("idle RSS, daemon + code server + launcher zygote (Dagster: dagster-daemon + gRPC code server)",
            median(mem, "rss_total_mib"), median(dmem, "rss_total_mib"), "MiB", "<=0.5",
            f"runyard after {mem['idle_s']:g} s idle, Dagster after {dmem['idle_s'] if dmem else 30:g} s"
            if mem else ""),
        Row("  idle RSS without the zygote (daemon + code server)",
            median(mem, "rss_total_mib") - zygote_mib if zygote_mib is not None else None,
            median(dmem, "rss_total_mib"), "MiB", None),
        Row("  idle RSS, daemon process alone", median(mem, "rss_main_mib"), median(dmem, "rss_main_mib"),
            "MiB", None),
    ]
    return [row for row in out if row.runyard is not None or row.dagster is not None]


def table(rows_: list[Row], dagster_measured: bool) -> str:
    header = ["figure", "runyard", "dagster", "ratio (runyard/dagster)", "goal", "met?"]
    body = [row.cells(dagster_measured) for row in rows_]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def machine_line(python: str, dagster_note: str | None) -> str:
    import platform

    from runyard import __version__

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    parts = [datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), f"{os.cpu_count()} cores",
             f"load average {load}", f"Python {platform.python_version()} ({python})",
             f"runyard {__version__}"]
    if dagster_note:
        parts.append(dagster_note)
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------------ #
def main() -> int:
    ap = argparse.ArgumentParser(description="runyard vs Dagster, same workloads, same run")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (about 1.5 minutes)")
    ap.add_argument("--skip-dagster", action="store_true", help="measure runyard only")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma list of {', '.join(BENCHMARKS)}")
    ap.add_argument("--python", default=sys.executable, help="python with runyard installed")
    ap.add_argument("--dagster-python", help="python of a virtualenv with dagster installed")
    ap.add_argument("--out", help="where logs and results go (default bench/results/<UTC time>)")
    args = ap.parse_args()
    only = [b for b in args.only.split(",") if b]
    for b in only:
        if b not in BENCHMARKS:
            ap.error(f"unknown benchmark {b!r} (choose from {', '.join(BENCHMARKS)})")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.abspath(args.out or os.path.join(BENCH_DIR, "results", stamp))
    os.makedirs(out_dir, exist_ok=True)

    dagster_py, dagster_note, why_not = None, None, None
    if args.skip_dagster:
        why_not = "skipped (--skip-dagster)"
    elif not os.path.isdir(os.path.join(SHARED_BENCH, "dagster")):
        why_not = f"the Dagster benchmark scripts are not at {SHARED_BENCH}"
    else:
        dagster_py, note = find_dagster_python(args.dagster_python)
        if dagster_py is None:
            why_not = (f"{note}. Create one with `bash bench/setup_dagster.sh` (DAGSTER_VENV=DIR to choose "
                       "where), or pass --dagster-python")
        else:
            dagster_note = f"{note} ({dagster_py})"
    if why_not:
        print(f"NOTE: Dagster not measured: {why_not}.", flush=True)

    env = dict(os.environ)
    env["BENCH_RESULTS"] = os.path.join(out_dir, "results.jsonl")
    dagster_tmp = os.path.join(tmp_root(), f"dagbench-{stamp}")
    dagster_env = {**env, "PYTHONPATH": os.pathsep.join(
        [os.path.join(SHARED_BENCH, "dagster"), os.path.join(SHARED_BENCH, "common")]),
        "BENCH_TMP": dagster_tmp}
    print(f"machine: {machine_line(args.python, dagster_note)}\nlogs and results: {out_dir}", flush=True)
    busy = os.getloadavg()[0]
    if busy > 1.0:
        print(f"NOTE: the machine is busy (load average {busy:.2f}): other processes share the cores, so "
              "figures will be noisy. Both sides run interleaved, which keeps the ratios fairer than the "
              "absolute times.", flush=True)

    records: list[dict] = []
    failed: list[str] = []
    for step in plan(args.quick):
        if step.benchmark not in only or (step.side == "dagster" and dagster_py is None):
            continue
        try:
            if step.side == "runyard":
                records += run_step(step, args.python, out_dir, env)
            else:
                records += run_step(step, dagster_py, out_dir, dagster_env)
        except StepFailed as exc:
            failed.append(str(exc))
    if os.path.isdir(dagster_tmp):
        time.sleep(2)  # a code server that is shutting down may still write into its home
        shutil.rmtree(dagster_tmp, ignore_errors=True)

    text = table(rows(records), dagster_py is not None)
    header = f"runyard vs Dagster ({'quick' if args.quick else 'full'} run): " + machine_line(
        args.python, dagster_note)
    footer = []
    if why_not:
        footer.append(f"Dagster not measured: {why_not}.")
    footer.append("Times are medians; ratio = runyard / dagster (times: lower is better, goal ≤ 1/5; "
                  "event writes: higher is better, goal ≥ 40x on SQLite, ≥ 50x on Postgres; daemon: queue time ≤ 1/10, "
                  "idle RSS ≤ 1/2, schedule lag < 1 s absolute). "
                  "Not a test: nothing fails on a figure.")
    if failed:
        footer.append("FAILED steps (no figures): " + ", ".join(failed))
    report = "\n\n".join([header, text, "\n".join(footer)])
    print("\n" + report, flush=True)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(report + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
