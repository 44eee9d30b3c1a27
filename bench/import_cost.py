#!/usr/bin/env python
"""import_cost: what importing runyard costs a fresh Python process.

Two statements are measured, each as a whole child process timed from outside (start to reap):

  import          python -c "import runyard"
  api             python -c "import runyard; runyard.op; runyard.job"  (what a definitions file
                  needs: ``runyard`` loads its API lazily, so this is the honest user-facing figure)

plus, for each: the time inside the child (perf_counter around the statement), the cumulative
``-X importtime`` figure of the top-level ``runyard`` import, modules loaded, and peak RSS; and the
wall time of ``python -c pass`` (interpreter start-up and exit) as a baseline. Runs are interleaved
(import, api, baseline, ...) so drift hits all of them alike; ``--warmup`` runs are not counted.

  python bench/import_cost.py [--repeats 10] [--warmup 2] [--python PY]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from rybench import emit, log, stats

STATEMENTS = {
    "import": "import runyard",
    "api": "import runyard; runyard.op; runyard.job",
}
_TIMED = ("import sys, time\nt0 = time.perf_counter()\n{stmt}\nt1 = time.perf_counter()\n"
          "sys.stderr.write('RYB %r %d\\n' % (t1 - t0, len(sys.modules)))\n")


def child(argv: list[str]) -> tuple[float, float, str]:
    """Run argv to completion; return (wall seconds, peak RSS MiB, stderr text)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024, err


def importtime_s(stderr: str, module: str = "runyard") -> float:
    """Seconds ``-X importtime`` accounts to the statement: the cumulative time of every top-level
    import from the ``module`` line on (the statement's lazy attribute loads come after it)."""
    total, seen = 0, False
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("  ") or not cumulative.strip().isdigit():
            continue  # a nested import (counted in its parent) or the header line
        seen = seen or name.strip() == module
        if seen:
            total += int(cumulative)
    if not seen:
        raise ValueError(f"no -X importtime line for {module}")
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description="cost of importing runyard in a fresh process")
    ap.add_argument("--python", default=sys.executable, help="interpreter to measure (default: this one)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    py = args.python

    for _ in range(args.warmup):  # compiles .pyc files, warms the page cache
        for stmt in STATEMENTS.values():
            child([py, "-c", stmt])

    figures: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "inproc": [], "importtime": [], "rss": [], "modules": []} for name in STATEMENTS}
    baseline: list[float] = []
    for i in range(args.repeats):
        for name, stmt in STATEMENTS.items():
            f = figures[name]
            wall, rss, _ = child([py, "-c", stmt])
            f["wall"].append(wall)
            f["rss"].append(rss)
            _, _, err = child([py, "-c", _TIMED.format(stmt=stmt)])
            _, seconds, modules = err.strip().splitlines()[-1].split()
            f["inproc"].append(float(seconds))
            f["modules"].append(int(modules))
            _, _, err = child([py, "-X", "importtime", "-c", stmt])
            f["importtime"].append(importtime_s(err))
        baseline.append(child([py, "-c", "pass"])[0])
        log(f"repeat {i + 1}: " + "  ".join(
            f"{name}: wall {figures[name]['wall'][-1]:.3f}s in-process {figures[name]['inproc'][-1]:.3f}s"
            for name in STATEMENTS) + f"  python -c pass {baseline[-1]:.3f}s")

    for name, stmt in STATEMENTS.items():
        f = figures[name]
        emit("import_cost", orchestrator="runyard", statement=name, code=stmt, python=py,
             wall_s=stats(f["wall"], 3), in_process_import_s=stats(f["inproc"], 4),
             importtime_cumulative_s=stats(f["importtime"], 4),
             python_baseline_wall_s=stats(baseline, 3),
             wall_minus_baseline_s=stats((w - b for w, b in zip(f["wall"], baseline, strict=True)), 3),
             max_rss_mib=stats(f["rss"], 1), modules_loaded=stats(f["modules"], 0))


if __name__ == "__main__":
    main()
