"""Op selection: pick a subset of a job's ops with a short string, Dagster-style.

A selection is a comma-separated list of clauses. Each clause names ops and may extend them up or
down the graph::

    load                exactly the op (node) named ``load``
    load_*              every op whose name matches the glob (fnmatch: ``*``, ``?``, ``[abc]``)
    *load               ``load`` and everything upstream of it (all levels)
    load*               ``load`` and everything downstream of it
    +load  ++load       ``load`` and one (two, ...) levels upstream
    load+  load++       ``load`` and one (two, ...) levels downstream
    *load+              combinations: every upstream op, ``load``, and one level downstream
    process[file_1]     one step of a mapped op (dynamic fan-out; a re-execution of a run that ran it)
    outer               every op of the nested graph ``outer`` (all levels); ``outer.load`` one op in it;
                        the operators apply to a graph too (``*outer``: its ops and everything upstream)

A ``*`` next to a name is an operator when the rest of the clause is an exact op name (``load*``).
Otherwise the clause is a glob pattern and every ``*`` belongs to it (``load_*``, ``*_daily``);
only ``+`` operators apply to a glob (``+load_*``: the matching ops and one level upstream).

The result is a list of node names in the job's topological (plan) order. An empty selection, an
unknown name or a glob that matches nothing raises :class:`runyard.errors.RunConfigError` listing
the job's ops.

Everything here reads the job through :class:`runyard.definitions.graph_view.JobGraph`, so the same
code serves a :class:`~runyard.definitions.job.JobDefinition` and a job snapshot from a code server.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import RunConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .graph_view import JobGraph

SOURCE = "op selection"
_GLOB_CHARS = re.compile(r"[*?\[]")
ALL_LEVELS = -1
#: a clause naming one mapped step exactly, ``op[mapping_key]`` (no operators)
_MAPPED_STEP = re.compile(r"^([A-Za-z_][\w.]*)\[([A-Za-z0-9_]+)\]$")


def _error(job: JobGraph, message: str) -> RunConfigError:
    return RunConfigError(f"{message}. Ops of job '{job.name}': {', '.join(job.topological_order)}",
                          source=SOURCE)


def _split_operators(clause: str, strip_star_up: bool, strip_star_down: bool) -> tuple[int, str, int]:
    """(upstream levels, core, downstream levels); ALL_LEVELS for ``*``, 0 for none."""
    up = down = 0
    core = clause
    if strip_star_up and core.startswith("*"):
        up, core = ALL_LEVELS, core[1:]
    else:
        stripped = core.lstrip("+")
        up, core = len(core) - len(stripped), stripped
    if strip_star_down and core.endswith("*"):
        down, core = ALL_LEVELS, core[:-1]
    else:
        stripped = core.rstrip("+")
        down, core = len(core) - len(stripped), stripped
    return up, core, down


def _walk(start: set[str], neighbours: dict[str, set[str]], levels: int) -> set[str]:
    """``start`` plus the nodes reachable within ``levels`` hops (ALL_LEVELS: unlimited)."""
    seen = set(start)
    frontier = set(start)
    depth = 0
    while frontier and (levels == ALL_LEVELS or depth < levels):
        frontier = {n for f in frontier for n in neighbours[f]} - seen
        seen |= frontier
        depth += 1
    return seen


def _clause_nodes(job: JobGraph, clause: str, whole: str) -> tuple[set[str], int, int]:
    where = f" (in '{whole}')" if clause != whole else ""
    inner = clause.strip("+")
    if not inner or "+" in inner or any(c.isspace() for c in clause):
        raise _error(job, f"'{clause}'{where} is not a valid clause (use NAME, a glob, *NAME, "
                          "NAME*, +NAME, NAME+ or a combination such as *NAME+)")
    # 1. operators stripped, the rest an exact op name: `*load+`, `load*`, `++load`
    up, core, down = _split_operators(clause, True, True)
    if job.has_node(core):
        return {core}, up, down
    members = job.graph_members(core)  # a nested graph: every op inside it
    if members:
        return set(members), up, down
    # 2. a glob: every `*` is part of the pattern; only `+` operators apply (`+load_*`, `load_*+`)
    up, pattern, down = _split_operators(clause, False, False)
    if _GLOB_CHARS.search(pattern):
        matched = {n for n in job.topological_order if fnmatch.fnmatchcase(n, pattern)}
        if matched:
            return matched, up, down
        if not core or _GLOB_CHARS.search(core):
            raise _error(job, f"'{pattern}'{where} matches no op")
        raise _error(job, f"no op is named '{core}' or matches '{pattern}'{where}")
    raise _error(job, f"no op named '{core}'{where}")


def parse_op_selection(job: JobGraph, selection: str | Iterable[str]) -> list[str]:
    """The node names ``selection`` picks from ``job``, in topological order.

    ``selection`` is a string of comma-separated clauses, or an iterable of clauses.
    """
    whole = selection if isinstance(selection, str) else ",".join(selection)
    clauses = [c.strip() for c in whole.split(",")]
    if not any(clauses):
        raise _error(job, "the op selection is empty")
    if not all(clauses):
        raise _error(job, f"'{whole}' has an empty clause")
    upstream = {name: set(job.upstream_of(name)) for name in job.topological_order}
    downstream: dict[str, set[str]] = {name: set() for name in job.topological_order}
    for name, ups in upstream.items():
        for u in ups:
            downstream[u].add(name)
    selected: set[str] = set()
    mapped_steps: list[str] = []  # ``op[key]``: one step of a mapped op (runyard.definitions.dynamic)
    for clause in clauses:
        match = _MAPPED_STEP.match(clause)
        if (match and job.has_node(match.group(1))
                and not any(fnmatch.fnmatchcase(n, clause) for n in job.topological_order)):
            if clause not in mapped_steps:
                mapped_steps.append(clause)
            continue
        nodes, up, down = _clause_nodes(job, clause, whole)
        selected |= _walk(nodes, upstream, up) | _walk(nodes, downstream, down)
    return [n for n in job.topological_order if n in selected] + mapped_steps


def missing_upstream_inputs(job: JobGraph, step_keys: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """Inputs of selected ops fed by an output of an op outside the selection, as
    ``(op, input, upstream op, upstream output)``. Nothing outputs (``-> None``), which only order
    steps, are not listed."""
    selected = set(step_keys)
    missing = []
    for name in job.topological_order:
        if name not in selected:
            continue
        for input_name, deps in job.input_sources(name).items():
            for up_node, up_out in deps:
                if up_node in selected or job.is_nothing_output(up_node, up_out):
                    continue
                missing.append((name, input_name, up_node, up_out))
    return missing


def check_fresh_selection(job: JobGraph, step_keys: Iterable[str]) -> None:
    """A new run (not a re-execution) cannot take inputs from steps it does not execute."""
    step_keys = list(step_keys)
    mapped = [k for k in step_keys if _MAPPED_STEP.match(k) and not job.has_node(k)]
    if mapped:
        raise RunConfigError(f"step(s) {', '.join(mapped)} of a mapped op can only be selected when re-executing "
                             "a run that mapped them (the values they read come from it)", source=SOURCE)
    missing = missing_upstream_inputs(job, step_keys)
    if not missing:
        return
    details = "; ".join(f"op '{op}' input '{inp}' needs output '{out}' of op '{up}'"
                        for op, inp, up, out in missing)
    ups = sorted({up for _, _, up, _ in missing}, key=job.topological_order.index)
    raise RunConfigError(
        f"the selected ops need values from ops outside the selection: {details}. Add "
        f"{', '.join(repr(u) for u in ups)} to the selection (e.g. '*{missing[0][0]}' selects an op with "
        "everything upstream), or re-execute an earlier run that produced those outputs "
        "(runyard run reexecute RUN_ID --ops ...)", source=SOURCE)
