"""Optional outputs and dynamic fan-out at run time.

Two sides share what a step produced (``{output: None | [mapping keys]}``, the summary a step's
``StepOutcome.data["outputs"]`` and its ``STEP_OUTPUT`` events carry):

* :class:`OutputLookup`, in the process that runs a step (the run worker for ``in_process``, a
  forked child, a container or pod): which values a step's inputs read — the mapping keys a
  ``.collect()`` fans in, which sources of a fan-in were produced. It knows the steps it ran itself
  and reads the others' ``STEP_OUTPUT`` events from storage, so a step process needs nothing but
  its step key (the executor flushes events before starting a step that reads them).
* :class:`RunOutputs`, in the executor (``in_process`` and :class:`~runyard.executors.scheduling.
  StepScheduler`): records what each finished step produced, says which steps to skip because an
  input's source was not produced, and grows the plan when a dynamic step finishes: one step
  ``op[mapping_key]`` per value and mapped op, and the collecting steps wait for them. The added
  steps are stored with the run as an ``ENGINE_EVENT`` holding them under
  :data:`~runyard.execution.plan.PLAN_DATA_KEY` (:func:`~runyard.execution.plan.stored_plan` merges).

Rules: a step runs when every input has a value; an input whose source output was not produced
(an optional output left out, or its step skipped for that reason) has none and the step is
skipped — not failed. A fan-in input (a list of sources, or a ``.collect()``) runs with the values
that were produced, in wiring (resp. mapping-key production) order, and has none when no source
was produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..definitions.dynamic import mapped_nodes, mapped_step_key, split_step_key
from ..storage.records import EventType

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.job import JobDefinition, Node
    from ..executors.base import ExecuteContext
    from ..storage.base import RunStorage
    from .plan import ExecutionPlan
    from .step import StepOutcome

#: ``{output name: None (produced once) | [mapping keys, in production order]}``
Summary = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """One value an input reads: output ``output`` of step ``step`` (of run ``run_id``), one value
    of a DynamicOut when ``mapping_key`` is set."""

    step: str
    output: str
    run_id: str
    mapping_key: str | None = None


def summary_from_events(events: list[Any]) -> dict[str, Summary]:
    """``{step key: summary}`` from a run's ``STEP_OUTPUT`` events (a retried step's events of every
    attempt: its last attempt's are the ones that count, and a key is listed once)."""
    out: dict[str, Summary] = {}
    for event in events:
        data = event.data or {}
        name = data.get("output")
        if not event.step_key or not isinstance(name, str):
            continue
        step = out.setdefault(event.step_key, {})
        key = data.get("mapping_key")
        if key is None:
            step[name] = None
        else:
            keys = step.get(name)
            if not isinstance(keys, list):
                keys = step[name] = []
            if key not in keys:
                keys.append(key)
    return out


def needs_sources(job: JobDefinition, plan: ExecutionPlan) -> bool:
    """Whether some output of the job may be left out or has many values (else every input reads
    one value, produced: the fast path of a static job)."""
    return plan.dynamic or any(not out.is_required or out.is_dynamic
                               for node in job.nodes.values() for out in node.op.outs.values())


class OutputLookup:
    """What the steps a step reads from produced, in the process running it. ``storage`` may be
    None (no lookups possible: every source is then taken as produced, as before optional outputs)."""

    def __init__(self, storage: RunStorage | None, run_id: str):
        self.storage = storage
        self.run_id = run_id
        #: steps of this run whose summary this process knows (it ran them)
        self.known: dict[str, Summary] = {}
        self._runs: dict[str, dict[str, Summary]] = {}

    def record(self, step_key: str, summary: Summary) -> None:
        self.known[step_key] = summary

    def new_attempt(self) -> None:
        """Forget what was read of this run: steps may have finished since."""
        self._runs.pop(self.run_id, None)

    def summary(self, step_key: str, run_id: str) -> Summary | None:
        """What ``step_key`` produced in ``run_id`` (None: nothing known, it did not run there)."""
        if run_id == self.run_id and step_key in self.known:
            return self.known[step_key]
        if self.storage is None:
            return None
        if run_id not in self._runs:
            events = self.storage.get_events(run_id, event_types=[str(EventType.STEP_OUTPUT)])
            self._runs[run_id] = summary_from_events(events)
        return self._runs[run_id].get(step_key)

    def produced(self, source: Source) -> bool:
        summary = self.summary(source.step, source.run_id)
        if summary is None:
            return self.storage is None
        if source.output not in summary:
            return False
        keys = summary[source.output]
        return source.mapping_key is None or (isinstance(keys, list) and source.mapping_key in keys)

    def mapping_keys(self, step_key: str, output: str, run_id: str) -> list[str]:
        summary = self.summary(step_key, run_id) or {}
        keys = summary.get(output)
        return list(keys) if isinstance(keys, list) else []


class InputSources:
    """Where each input of a step reads its values from (mapped and collected inputs resolved to
    step keys), and which of them may not have been produced. Shared by both sides."""

    def __init__(self, job: JobDefinition, plan: ExecutionPlan, run_id: str):
        self.job = job
        self.plan = plan
        self.run_id = run_id
        self.mapped = mapped_nodes(job)
        # nodes whose steps may be skipped for an input not produced (then they produce nothing)
        self._may_skip: set[str] = set()
        for name in job.topological_order:
            if name in self.mapped or any(not self.is_certain(up, out)
                                          for deps in job.nodes[name].inputs.values() for up, out in deps):
                self._may_skip.add(name)

    def is_certain(self, node: str, output: str) -> bool:
        """A step of ``node`` that ran certainly produced ``output``, and one always runs when no
        upstream step failed: a required, not dynamic output of an unmapped op none of whose inputs
        may go without a value."""
        out_def = self.job.nodes[node].op.outs[output]
        return (out_def.is_required and not out_def.is_dynamic and node not in self.mapped
                and node not in self._may_skip)

    def run_of(self, step_key: str, output: str) -> str:
        if step_key in self.plan.steps:
            return self.run_id
        return self.plan.external_outputs.get((step_key, output), self.run_id)

    def needs_lookup(self, step_key: str) -> bool:
        """Whether some input of the step may read an output that was not produced (or reads the
        mapping keys of a collect): only such steps consult produced outputs."""
        node_name, _ = split_step_key(step_key)
        node = self.job.nodes[node_name]
        for input_name, deps in node.inputs.items():
            if input_name in node.collect:
                return True
            for up, out in deps:
                if not self.is_certain(up, out):
                    return True
        return False

    def reads_storage(self, step_key: str) -> bool:
        """Whether the step, run by another process, reads what other steps produced from storage: a
        collect, or a fan-in over outputs that may be left out. An executor whose step processes
        send their events through it flushes them before starting such a step."""
        node = self.job.nodes[split_step_key(step_key)[0]]
        if node.collect:
            return True
        return any(not self.is_certain(up, out) for name in node.fan_in for up, out in node.inputs[name])

    def sources(self, step_key: str, node: Node, input_name: str,
                keys_of: Any = None) -> list[tuple[Source, bool]]:
        """``[(source, certain)]`` of one input in wiring order; ``certain``: produced whenever its
        step succeeded. ``keys_of(step, output, run_id)`` lists a dynamic output's mapping keys
        (needed for a ``.collect()`` only)."""
        _, mapping_key = split_step_key(step_key)
        out: list[tuple[Source, bool]] = []
        for up, output in node.inputs[input_name]:
            up_def = self.job.nodes[up].op.outs[output]
            if input_name in node.collect:
                if up_def.is_dynamic:  # a dynamic output collected directly
                    run_id = self.run_of(up, output)
                    for key in keys_of(up, output, run_id):
                        out.append((Source(up, output, run_id, key), False))
                else:  # the output of a mapped op: one step per key of its dynamic source
                    src_node, src_out = self.mapped[up]
                    for key in keys_of(src_node, src_out, self.run_of(src_node, src_out)):
                        step = mapped_step_key(up, key)
                        out.append((Source(step, output, self.run_of(step, output)), False))
                continue
            if up_def.is_dynamic:  # a mapped step's own value of the dynamic output
                out.append((Source(up, output, self.run_of(up, output), mapping_key), True))
            elif up in self.mapped:
                step = mapped_step_key(up, mapping_key or "")
                out.append((Source(step, output, self.run_of(step, output)), False))
            else:
                out.append((Source(up, output, self.run_of(up, output)), self.is_certain(up, output)))
        return out


class RunOutputs:
    """The executor's side (see the module docstring). ``active`` is False for a job without
    optional or dynamic outputs: then nothing is recorded and nothing is ever skipped here."""

    def __init__(self, context: ExecuteContext):
        self.context = context
        job = context.job
        self.plan = context.plan
        self.inputs = InputSources(job, self.plan, context.run.run_id)
        self.mapped = self.inputs.mapped
        self.active = needs_sources(job, self.plan)
        self.lookup = OutputLookup(context.instance.storage if self.active else None, context.run.run_id)
        #: steps skipped because an input's source output was not produced
        self.not_produced: set[str] = set()
        self._expand_external()

    def _expand_external(self) -> None:
        """Mapped ops selected in a re-execution whose dynamic step it does not execute: their steps
        are known now, from the mapping keys that step produced in the parent chain."""
        sources = {self.mapped[name] for name in self.plan.selected_templates}
        for node_name, output in sorted(sources):
            if node_name in self.plan.steps:
                continue
            run_id = self.inputs.run_of(node_name, output)
            if run_id == self.context.run.run_id:
                continue  # not produced by any run of the chain: nothing to map
            keys = self.lookup.mapping_keys(node_name, output, run_id)
            expand_plan(self.context, node_name, {output: keys})

    def step_succeeded(self, key: str, outcome: StepOutcome) -> list[str]:
        """Record what the step produced; if it is a dynamic step, add its mapped steps to the plan
        and return their keys (in plan order)."""
        if not self.active:
            return []
        summary = (outcome.data or {}).get("outputs")
        if not isinstance(summary, dict):
            summary = {}
        self.lookup.record(key, summary)
        node = self.context.job.nodes[split_step_key(key)[0]]
        if not any(out.is_dynamic for out in node.op.outs.values()):
            return []
        return expand_plan(self.context, key, summary)

    def skip_not_produced(self, key: str) -> None:
        """The step is skipped for :meth:`skip_reason`: it produced nothing either."""
        self.not_produced.add(key)
        self.lookup.record(key, {})

    def _produced(self, source: Source, certain: bool) -> bool:
        if source.step in self.not_produced:
            return False
        return certain or self.lookup.produced(source)

    def skip_reason(self, key: str) -> str | None:
        """Why the step must be skipped although no upstream step failed: an input without a
        produced value (a fan-in or collect input: without any). None: run it."""
        if not self.active:
            return None
        node = self.context.job.nodes[split_step_key(key)[0]]
        if not (self.plan.steps[key].upstream & self.not_produced) and not self.inputs.needs_lookup(key):
            return None
        for input_name in node.inputs:
            sources = self.inputs.sources(key, node, input_name, self.lookup.mapping_keys)
            missing = [s for s, certain in sources if not self._produced(s, certain)]
            if input_name in node.fan_in or input_name in node.collect:
                if len(missing) < len(sources):
                    continue
                if not sources:
                    return f"input '{input_name}' has no value: nothing was mapped"
            elif not missing:
                continue
            what = ", ".join(f"{s.step}.{s.output}" + (f"[{s.mapping_key}]" if s.mapping_key else "")
                             for s in missing[:3]) + (", ..." if len(missing) > 3 else "")
            return f"input '{input_name}' has no value: {what} was not produced"
        return None


def expand_plan(context: ExecuteContext, key: str, summary: Summary) -> list[str]:
    """Add to ``context.plan`` the mapped steps of the dynamic step ``key`` that produced
    ``summary``; make the steps that collect them wait for them; store the addition with the run.
    Returns the added step keys."""
    from ..tags import PRIORITY_TAG
    from .plan import PLAN_DATA_KEY, Step

    job, plan = context.job, context.plan
    mapped = mapped_nodes(job)
    selected = plan.selected_templates
    added: dict[str, Step] = {}
    order: list[str] = []
    for node_name in job.topological_order:
        source = mapped.get(node_name)
        if source is None or source[0] != key or node_name not in selected:
            continue
        node = job.nodes[node_name]
        for mapping_key in summary.get(source[1]) or []:
            step_key = mapped_step_key(node_name, mapping_key)
            if step_key in plan.steps:  # named on its own in a re-execution
                continue
            upstream = set()
            for up in node.upstream:
                if up in mapped:
                    up_key = mapped_step_key(up, mapping_key)
                    if up_key in added or up_key in plan.steps:
                        upstream.add(up_key)
                elif up in plan.steps:
                    upstream.add(up)
            priority = int(node.op.tags.get(PRIORITY_TAG, 0) or 0)
            added[step_key] = Step(key=step_key, node_name=node_name, upstream=frozenset(upstream),
                                   priority=priority)
            order.append(step_key)
    if not added:
        return []
    by_node: dict[str, list[str]] = {}
    for step_key in order:
        by_node.setdefault(added[step_key].node_name, []).append(step_key)
    # the unmapped steps that collect a mapped op's output wait for its new steps
    waits: dict[str, list[str]] = {}
    for step_key in plan.order:
        node = job.nodes.get(split_step_key(step_key)[0])
        if node is None or split_step_key(step_key)[1] is not None:
            continue
        extra = [k for input_name in node.collect for up, _ in node.inputs[input_name]
                 for k in by_node.get(up, [])]
        if extra:
            step = plan.steps[step_key]
            step.upstream = step.upstream | frozenset(extra)
            waits[step_key] = extra
    plan.add_steps([added[k] for k in order])
    context.events.emit(EventType.ENGINE_EVENT, f"Step '{key}' mapped {len(order)} step(s) over its dynamic "
                        "output(s).", level="DEBUG",
                        data={PLAN_DATA_KEY: [{"key": k, "upstream": sorted(added[k].upstream)} for k in order],
                              "mapped_from": key, "upstream_added": waits})
    return order


def build_dynamic_steps(job: JobDefinition, step_keys: list[str],
                        mapped: dict[str, tuple[str, str]]) -> tuple[dict[str, Any], frozenset[str]]:
    """The steps of a plan of a job with dynamic outputs (``ExecutionPlan.build``): unmapped
    selected nodes; mapped step keys named explicitly (``op[key]``, a re-execution); and the
    selected mapped nodes, returned apart: their steps are added when their dynamic step finishes.
    An unmapped step that collects a mapped op's output waits for that op's dynamic step."""
    from ..definitions.outputs import is_valid_mapping_key
    from ..errors import RunConfigError
    from ..tags import PRIORITY_TAG
    from .plan import Step

    selected = set(step_keys)
    explicit: dict[str, list[str]] = {}
    unknown = []
    for key in step_keys:
        node_name, mapping_key = split_step_key(key)
        if mapping_key is None:
            if key not in job.nodes:
                unknown.append(key)
        elif node_name not in mapped or not is_valid_mapping_key(mapping_key):
            unknown.append(key)
        else:
            explicit.setdefault(node_name, []).append(key)
    if unknown:
        raise RunConfigError(f"job '{job.name}' has no step(s) {', '.join(sorted(unknown))}",
                             source="step selection")
    steps: dict[str, Step] = {}
    for name in job.topological_order:
        node = job.nodes[name]
        priority = int(node.op.tags.get(PRIORITY_TAG, 0) or 0)
        if name in mapped:
            for key in explicit.get(name, []):
                mapping_key = split_step_key(key)[1]
                upstream = set()
                for up in node.upstream:
                    up_key = mapped_step_key(up, mapping_key or "") if up in mapped else up
                    if up_key in steps:
                        upstream.add(up_key)
                steps[key] = Step(key=key, node_name=name, upstream=frozenset(upstream), priority=priority)
            continue
        if name not in selected:
            continue
        upstream = set()
        for up in node.upstream:
            if up in mapped:
                if mapped[up][0] in steps:
                    upstream.add(mapped[up][0])
                upstream |= {k for k in explicit.get(up, []) if k in steps}
            elif up in steps:
                upstream.add(up)
        steps[name] = Step(key=name, node_name=name, upstream=frozenset(upstream), priority=priority)
    return steps, frozenset(n for n in mapped if n in selected)


# ---- re-execution ------------------------------------------------------------------------------------------
def dynamic_run_plan(storage: RunStorage, run_id: str) -> tuple[Any, ...] | None:
    """The stored plan of run ``run_id`` with its mapped steps, or None when the run's plan did not
    grow at run time (no dynamic outputs: re-execution plans from the job as before)."""
    from .plan import PLAN_DATA_KEY, PLAN_DYNAMIC_KEY, PLAN_EVENT_SEARCH, merge_added_steps, plan_from_data

    for event in storage.get_events(run_id, event_types=[str(EventType.ENGINE_EVENT)], limit=PLAN_EVENT_SEARCH):
        data = event.data if isinstance(event.data, dict) else {}
        if PLAN_DATA_KEY not in data:
            continue
        plan = plan_from_data(data)
        if plan is None or not data.get(PLAN_DYNAMIC_KEY):
            return None
        later = storage.get_events(run_id, after_id=event.id, event_types=[str(EventType.ENGINE_EVENT)])
        return merge_added_steps(plan, [e.data for e in later])
    return None


def not_produced_in(storage: RunStorage, run_id: str) -> set[str]:
    """Steps of the run skipped because an input was not produced (they did what they should)."""
    return {e.step_key for e in storage.get_events(run_id, event_types=[str(EventType.STEP_SKIPPED)])
            if e.step_key and (e.data or {}).get("not_produced")}


def dynamic_steps_to_retry(instance: Any, graph: Any, parent: Any, plan: tuple[Any, ...],
                           succeeded: set[str]) -> list[str]:
    """``--from-failure`` of a run whose plan grew: the steps of its stored plan (mapped steps
    included) that did not succeed — not those skipped because an input was not produced — and
    what is downstream of them; a dynamic step that did not succeed brings its mapped ops (their
    steps are added again when it runs)."""
    skipped_fine = not_produced_in(instance.storage, parent.run_id)
    below: dict[str, set[str]] = {step.key: set() for step in plan}
    for step in plan:
        for up in step.upstream:
            below.setdefault(up, set()).add(step.key)
    selected = {step.key for step in plan if step.key not in succeeded and step.key not in skipped_fine}
    frontier = list(selected)
    while frontier:
        for child in below.get(frontier.pop(), ()):
            if child not in selected:
                selected.add(child)
                frontier.append(child)
    keys = [step.key for step in plan if step.key in selected]
    extra: set[str] = set()
    for key in keys:
        if split_step_key(key)[1] is None and graph.has_node(key):
            extra |= {name for name in graph.downstream_of(key) if _is_mapped_node(graph, name)}
    keys += [name for name in graph.topological_order if name in extra and name not in selected]
    return keys


def _is_mapped_node(graph: Any, name: str) -> bool:
    """Whether node ``name`` is mapped, on a job definition or (no user code) a job snapshot."""
    if hasattr(graph, "resource_defs"):
        return name in mapped_nodes(graph)
    return any(getattr(i, "mapped", False) for i in graph.node(name).inputs)


def dynamic_external_outputs(instance: Any, graph: Any, step_keys: list[str], parent_run_id: str,
                             lookup: Any) -> dict[tuple[str, str], str]:
    """``{(step, output): run id}`` for a re-execution of a run whose plan grew: every value a step
    it executes reads from a step it does not execute (a mapped step's value of its dynamic output,
    the mapped steps a ``.collect()`` fans in, the dynamic step whose mapping keys it reads), found
    up the parent chain. A mapped step that succeeded nowhere is simply not collected; an unmapped
    step that the parent chain planned and that neither succeeded nor was skipped for an output not
    produced is an error (:class:`RunConfigError` naming it). ``graph`` may be a job snapshot (no
    user code: the web UI validating a re-execution): then only that error is checked."""
    from ..errors import RunConfigError

    selected = set(step_keys)
    planned: set[str] = set()
    fine: set[str] = set()
    for run_id in lookup.chain():
        planned.update(step.key for step in dynamic_run_plan(instance.storage, run_id) or ())
        fine |= not_produced_in(instance.storage, run_id)
    found: dict[tuple[str, str], str] = {}
    unavailable: list[str] = []

    def need(step: str, output: str, reader: str) -> None:
        if step in selected or (step, output) in found:
            return
        run_id = lookup.run_with_success(step)
        if run_id is not None:
            found[(step, output)] = run_id
        elif split_step_key(step)[1] is None and step in planned and step not in fine:
            unavailable.append(f"op '{reader}' needs output '{output}' of step '{step}'")

    mapped = mapped_nodes(graph) if hasattr(graph, "nodes") and hasattr(graph, "resource_defs") else None
    for key in step_keys:
        node_name, mapping_key = split_step_key(key)
        if not graph.has_node(node_name):
            continue
        for input_name, deps in graph.input_sources(node_name).items():
            collect = mapped is not None and input_name in graph.nodes[node_name].collect
            for up, out in deps:
                if mapped is None:  # a snapshot: unmapped upstream steps only
                    if up in planned:
                        need(up, out, node_name)
                    continue
                up_dynamic = graph.nodes[up].op.outs[out].is_dynamic
                if collect:
                    source = (up, out) if up_dynamic else mapped[up]
                    need(*source, node_name)
                    run_id = found.get(source) or (lookup.run_with_success(source[0]) if source[0] not in selected
                                                   else None)
                    if not up_dynamic and run_id is not None:
                        keys = OutputLookup(instance.storage, run_id).mapping_keys(source[0], source[1], run_id)
                        for k in keys:
                            need(mapped_step_key(up, k), out, node_name)
                elif up in mapped and not up_dynamic:
                    need(mapped_step_key(up, mapping_key or ""), out, node_name)
                elif not graph.is_nothing_output(up, out) or not graph.nodes[up].op.outs[out].is_required:
                    need(up, out, node_name)
    if unavailable:
        raise RunConfigError(f"{'; '.join(unavailable)}, but it did not succeed in run {parent_run_id} or its "
                             "ancestors. Include it in the op selection", source="op selection")
    return found
