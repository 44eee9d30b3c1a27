#!/usr/bin/env python
"""memory: idle RSS of ``runyard daemon -f bench/workload.py`` and its children (issue 5).

A fresh SQLite home with the queued coordinator and nothing submitted; the daemon runs in its own
process group and starts one code server for bench/workload.py (and the process launcher's warm
zygote). After ``--idle`` seconds the VmRSS of the daemon and of each descendant is read from /proc
(benchlib's ``tree_rss_kib`` when the Dagster benchmarks are next to the repo); then the group is
stopped. Dagster's twin (``memory.py``) measures ``dagster-daemon run`` with its gRPC code server.

  python bench/memory.py [--idle 30] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from daemonproc import DaemonProc
from rybench import SHARED_BENCH, WORKLOAD_FILE, emit, log, make_home, stats

INSTANCE_YAML = "run_coordinator:\n  queued:\n    max_concurrent_runs: 4\n    dequeue_interval_seconds: 0.5\n"


def _tree_rss_fallback(pid: int) -> dict:
    def rss(p: int) -> int:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def kids(p: int) -> list[int]:
        out: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        out += [int(x) for x in f.read().split()]
                except OSError:
                    pass
        except OSError:
            pass
        return out

    def cmd(p: int) -> str:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return ""

    todo, seen = [pid], []
    while todo:
        for c in kids(todo.pop()):
            if c not in seen:
                seen.append(c)
                todo.append(c)
    per = {p: rss(p) for p in seen}
    own = rss(pid)
    return {"main_kib": own, "children": [{"pid": p, "rss_kib": r, "cmd": cmd(p)[:160]} for p, r in per.items()],
            "total_kib": own + sum(per.values())}


def tree_rss_kib(pid: int) -> dict:
    common = os.path.join(SHARED_BENCH, "common")
    if os.path.isfile(os.path.join(common, "benchlib.py")):
        if common not in sys.path:
            sys.path.insert(0, common)
        try:
            import benchlib
        except ImportError:
            pass
        else:
            return benchlib.tree_rss_kib(pid)
    return _tree_rss_fallback(pid)


def main() -> None:
    ap = argparse.ArgumentParser(description="idle RSS of the runyard daemon and its code server")
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    rows = []
    for r in range(args.repeats):
        home = make_home("memory", INSTANCE_YAML)
        daemon = DaemonProc(home, [WORKLOAD_FILE], os.path.join(home, "daemon.log"))
        try:
            daemon.wait_ready()
            time.sleep(max(0.0, args.idle - (time.perf_counter() - daemon.t_start)))
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early (rc={daemon.proc.returncode}); see {daemon.log_path}")
            m = tree_rss_kib(daemon.pid)
            m["idle_s"] = time.perf_counter() - daemon.t_start
            rows.append(m)
            log(f"repeat {r + 1} daemon: main {m['main_kib'] / 1024:.0f} MiB, total {m['total_kib'] / 1024:.0f} "
                f"MiB ({len(m['children'])} children: "
                + ", ".join(f"{c['rss_kib'] / 1024:.0f} MiB {c['cmd'][:70]}" for c in m["children"])
                + f") after {m['idle_s']:.0f}s")
        finally:
            daemon.stop()
            shutil.rmtree(home, ignore_errors=True)

    emit("memory", orchestrator="runyard", service="daemon", idle_s=args.idle,
         rss_main_mib=stats((x["main_kib"] / 1024 for x in rows), 1),
         rss_total_mib=stats((x["total_kib"] / 1024 for x in rows), 1),
         children=rows[-1]["children"])


if __name__ == "__main__":
    main()
