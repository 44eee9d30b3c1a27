"""Small helpers shared by runyard's benchmark scripts.

When the Dagster side of the benchmarks is checked out next to this repository
(``<repo>/../shared/bench-dagster``) its orchestrator-agnostic ``benchlib`` is used, so both sides
compute statistics and print ``RESULT {json}`` lines the same way. Without it the fallbacks below
do the same job: ``stats`` -> ``{n, min, median, p95, max, mean}``, ``emit`` -> one ``RESULT``
line on stdout (and appended to ``$BENCH_RESULTS`` when set), ``log`` -> a ``[HH:MM:SS]`` line on
stderr.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
SHARED_BENCH = os.path.normpath(os.path.join(REPO_DIR, "..", "shared", "bench-dagster"))
WORKLOAD_FILE = os.path.join(BENCH_DIR, "workload.py")


def _own_stats(values: Iterable[float], ndigits: int = 4) -> dict:
    data = sorted(float(v) for v in values)
    if not data:
        return {"n": 0}
    rank = max(1, math.ceil(0.95 * len(data)))  # nearest-rank 95th percentile

    def r(x: float) -> float:
        return round(x, ndigits)

    return {"n": len(data), "min": r(data[0]), "median": r(statistics.median(data)),
            "p95": r(data[rank - 1]), "max": r(data[-1]), "mean": r(statistics.fmean(data))}


def _own_emit(benchmark: str, **figures) -> dict:
    record = {"benchmark": benchmark, **figures, "machine": machine()}
    line = json.dumps(record, default=str)
    print("RESULT " + line, flush=True)
    target = os.environ.get("BENCH_RESULTS")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")
    return record


def _own_log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def machine() -> dict:
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "loadavg": os.getloadavg()}


def _helpers():
    """benchlib's stats/emit/log when the shared Dagster benchmarks are next to the repo, else ours."""
    if os.path.isfile(os.path.join(SHARED_BENCH, "common", "benchlib.py")):
        sys.path.insert(0, os.path.join(SHARED_BENCH, "common"))
        try:
            import benchlib
        except ImportError:  # pragma: no cover - a broken checkout: keep the fallbacks
            pass
        else:
            return benchlib.stats, benchlib.emit, benchlib.log, True
    return _own_stats, _own_emit, _own_log, False


stats, emit, log, USING_BENCHLIB = _helpers()


def compile_bytecode() -> None:
    """Byte-compile this checkout's runyard packages (core, the web UI, every plugin) where their
    ``__pycache__`` is missing or stale, as pip does when it installs a wheel.

    The development install is editable, so Python compiles its modules itself on first import and
    keeps the result only if it may write ``__pycache__``: with ``PYTHONDONTWRITEBYTECODE`` set (it
    is, on the machines these figures come from) every process would compile runyard from source
    again, about 0.1 s per start-up that an installed runyard never pays. Dagster's side runs from
    its own virtualenv, which pip compiled at install. User code (``bench/workload*.py``) is left
    alone on both sides."""
    import compileall
    import glob

    packages = [os.path.join(REPO_DIR, "core", "runyard"), os.path.join(REPO_DIR, "webui", "runyard_webui"),
                *sorted(glob.glob(os.path.join(REPO_DIR, "plugins", "*", "runyard_*")))]
    for package in packages:
        if not compileall.compile_dir(package, quiet=1):
            log(f"compiling {package} failed: its modules will be compiled on each import")


compile_bytecode()  # on import: every benchmark measures runyard as an installed copy would run


def tmp_root() -> str:
    root = os.environ.get("RUNYARD_BENCH_TMP") or os.path.join("/tmp", "runyard-bench")
    os.makedirs(root, exist_ok=True)
    return root


def make_home(prefix: str, instance_yaml: str = "") -> str:
    """A fresh instance home with ``runyard.yaml`` holding ``instance_yaml``."""
    import tempfile

    home = tempfile.mkdtemp(prefix=prefix + "-", dir=tmp_root())
    with open(os.path.join(home, "runyard.yaml"), "w") as f:
        f.write(instance_yaml)
    return home
