"""Re-execution: where a run that executes only some steps finds the outputs of the others.

A re-execution (``runyard run reexecute``) is a new run linked to its parent (``parent_run_id``)
and to the first run of the chain (``root_run_id``). Steps it does not execute are not recomputed:
their stored outputs are read from the nearest run up the parent chain in which the step succeeded
(that run may itself have been a re-execution that reused the value from its own parent, so the
walk goes on until a ``STEP_SUCCESS`` is found).

The run worker turns this into ``ExecutionPlan.external_outputs`` ({(step, output): run id}), which
the step runner hands to the IO manager as ``InputContext.upstream_run_id``.

Planning reads the job through :class:`runyard.definitions.graph_view.JobGraph`: the run worker
passes the :class:`~runyard.definitions.job.JobDefinition`, processes that do not import user code
(the web UI, the daemon) pass the job's snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..definitions.selection import missing_upstream_inputs
from ..errors import RunConfigError
from ..storage.records import EventType

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.graph_view import JobGraph
    from ..instance.instance import Instance
    from ..storage.records import RunRecord


class LineageLookup:
    """Finds, for a step, the nearest run of a parent chain in which it succeeded (cached)."""

    def __init__(self, instance: Instance, parent_run_id: str | None):
        self.instance = instance
        self.parent_run_id = parent_run_id
        self._chain: list[str] | None = None
        self._succeeded: dict[str, set[str]] = {}

    def chain(self) -> list[str]:
        """Run ids from the parent up to the root (stops at a run that no longer exists)."""
        if self._chain is None:
            chain: list[str] = []
            run_id = self.parent_run_id
            while run_id and run_id not in chain:
                run = self.instance.storage.get_run(run_id)
                if run is None:
                    break
                chain.append(run_id)
                run_id = run.parent_run_id
            self._chain = chain
        return self._chain

    def succeeded_in(self, run_id: str) -> set[str]:
        if run_id not in self._succeeded:
            events = self.instance.storage.get_events(run_id, event_types=[str(EventType.STEP_SUCCESS)])
            self._succeeded[run_id] = {e.step_key for e in events if e.step_key}
        return self._succeeded[run_id]

    def run_with_success(self, step_key: str) -> str | None:
        for run_id in self.chain():
            if step_key in self.succeeded_in(run_id):
                return run_id
        return None


def resolve_external_outputs(instance: Instance, job: JobGraph, step_keys: list[str] | None,
                             parent_run_id: str | None) -> dict[tuple[str, str], str]:
    """``{(step, output): run id}`` for every output that a step in ``step_keys`` reads from a step
    outside them, found up the chain that starts at ``parent_run_id``.

    Raises :class:`RunConfigError` naming the op, the input and the upstream op when an output is
    not available anywhere in the chain (or there is no parent at all).
    """
    if step_keys is None:
        return {}
    if parent_run_id is not None:
        from .dynamic import dynamic_external_outputs, dynamic_run_plan

        if dynamic_run_plan(instance.storage, parent_run_id) is not None:  # mapped steps: runyard.execution.dynamic
            return dynamic_external_outputs(instance, job, step_keys, parent_run_id,
                                            LineageLookup(instance, parent_run_id))
    needed = missing_upstream_inputs(job, step_keys)
    if not needed:
        return {}
    lookup = LineageLookup(instance, parent_run_id)
    found: dict[tuple[str, str], str] = {}
    unavailable = []
    for op_name, input_name, up_node, up_out in needed:
        run_id = lookup.run_with_success(up_node)
        if run_id is None:
            unavailable.append((op_name, input_name, up_node, up_out))
        else:
            found[(up_node, up_out)] = run_id
    if unavailable:
        details = "; ".join(f"op '{op}' input '{inp}' needs output '{out}' of op '{up}'"
                            for op, inp, up, out in unavailable)
        ups = sorted({up for _, _, up, _ in unavailable}, key=job.topological_order.index)
        where = (f"run {parent_run_id} or its ancestors" if parent_run_id
                 else "no parent run (this is not a re-execution)")
        raise RunConfigError(
            f"{details}, but {', '.join(repr(u) for u in ups)} did not succeed in {where}. Include "
            f"{'it' if len(ups) == 1 else 'them'} in the op selection", source="op selection")
    return found


def external_outputs_for_run(instance: Instance, run: RunRecord,
                             job: JobGraph) -> dict[tuple[str, str], str]:
    """What the run worker passes to ``ExecutionPlan.build``: {} for a run of every step or a fresh
    run; for a re-execution, where each output of a step it does not execute is stored."""
    if run.step_keys_to_execute is None or run.parent_run_id is None:
        return {}
    return resolve_external_outputs(instance, job, run.step_keys_to_execute, run.parent_run_id)


def steps_to_retry(instance: Instance, job: JobGraph, parent: RunRecord) -> list[str]:
    """For ``--from-failure``: the steps of the parent's plan that did not succeed in it (failed,
    skipped, never started) plus the steps of that plan downstream of them, in plan order."""
    from .dynamic import dynamic_run_plan, dynamic_steps_to_retry, not_produced_in

    succeeded = LineageLookup(instance, None).succeeded_in(parent.run_id)
    grown = dynamic_run_plan(instance.storage, parent.run_id)
    if grown is not None:  # its plan grew at run time: retry the mapped steps that failed
        return dynamic_steps_to_retry(instance, job, parent, grown, succeeded)
    plan_steps = [k for k in job.topological_order
                  if parent.step_keys_to_execute is None or k in parent.step_keys_to_execute]
    # a step skipped because an input was not produced (an optional output left out) did what it should
    not_ok = {k for k in plan_steps if k not in succeeded} - not_produced_in(instance.storage, parent.run_id)
    selected = set(not_ok)
    for key in not_ok:
        selected |= job.downstream_of(key)
    return [k for k in plan_steps if k in selected]
