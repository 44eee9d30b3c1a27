"""What running a job from Python returns: :class:`JobExecutionResult`.

``job.execute_in_process(...)`` and ``runyard.execute_job(...)`` both return one. It wraps the
finished run (:class:`~runyard.storage.records.RunRecord`, ``.run``) and reads the rest on demand:
the run's events from storage, and op outputs either from memory (captured when the step ran in
this process) or through the output's IO manager (a step that ran in another process).

Attributes it does not define are the run's (``result.status``, ``result.tags``,
``result.step_keys_to_execute``...), so code written when ``execute_job`` returned the run record
keeps working.
"""

from __future__ import annotations

import contextvars
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import RunyardError
from ..storage.records import Event, EventType, RunRecord, RunStatus

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    from ..definitions.job import JobDefinition
    from ..instance.instance import Instance


class RunFailedError(RunyardError):
    """Raised by ``execute_in_process(raise_on_error=True)`` (and ``execute_job(raise_on_error=True)``)
    when the run did not succeed and no op exception can be re-raised: the failing step ran in another
    process (its error text is in the message), or the run failed outside any step (a resource that
    did not initialise, a termination). ``.result`` is the :class:`JobExecutionResult`."""

    def __init__(self, message: str, result: JobExecutionResult):
        super().__init__(message)
        self.result = result


# ---- what steps run in this process leave behind for the result ------------------------------------

@dataclass
class _Capture:
    #: (step key, output name) -> value (a dynamic output: {mapping key: value})
    outputs: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: step key -> the exception its final attempt raised, in the order steps failed
    errors: dict[str, BaseException] = field(default_factory=dict)
    #: False: outputs are read back through their IO managers (no values held in memory)
    keep_outputs: bool = True


_capture: contextvars.ContextVar[_Capture | None] = contextvars.ContextVar("runyard_output_capture",
                                                                          default=None)


@contextmanager
def capturing(outputs: bool = True) -> Iterator[_Capture]:
    """Within the block, steps that run in this thread (the ``in_process`` executor) keep their
    errors, and their outputs when ``outputs``, in the yielded capture. A forked child writes to its
    own copy: harmless."""
    capture = _Capture(keep_outputs=outputs)
    token = _capture.set(capture)
    try:
        yield capture
    finally:
        _capture.reset(token)


def capture_step_outputs(step_key: str, produced: dict[str, Any]) -> None:
    """Called by the step runner after a step succeeded (a no-op outside :func:`capturing`)."""
    capture = _capture.get()
    if capture is not None and capture.keep_outputs:
        for name, value in produced.items():
            capture.outputs[(step_key, name)] = value


def capture_step_error(step_key: str, exc: BaseException) -> None:
    """Called by the step runner after a step's final attempt failed (a no-op outside :func:`capturing`)."""
    capture = _capture.get()
    if capture is not None:
        capture.errors.setdefault(step_key, exc)


# ---- the result --------------------------------------------------------------------------------------

def _base_node(step_key: str) -> str:
    """``op[key]`` -> ``op``; any other key unchanged."""
    return step_key.split("[", 1)[0] if step_key.endswith("]") else step_key


def _mapping_key(step_key: str) -> str | None:
    return step_key[step_key.index("[") + 1:-1] if step_key.endswith("]") and "[" in step_key else None


class JobExecutionResult:
    """The outcome of one run executed from Python (see the module docstring)."""

    def __init__(self, run: RunRecord, instance: Instance, job: JobDefinition, *,
                 capture: _Capture | None = None):
        self.run = run
        self.instance = instance
        self.job_def = job
        self._capture = capture or _Capture()
        self._events: list[Event] | None = None

    # ---- the run -------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def dagster_run(self) -> RunRecord:
        """Dagster's name for :attr:`run`."""
        return self.run

    @property
    def success(self) -> bool:
        return self.run.status == RunStatus.SUCCESS

    def __getattr__(self, name: str) -> Any:
        # only called for names this class does not have: the run record's fields
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return getattr(self.__dict__["run"], name)
        except (AttributeError, KeyError):
            raise AttributeError(f"'JobExecutionResult' has no attribute {name!r} (nor has its run)") from None

    def __repr__(self) -> str:
        return f"<JobExecutionResult {self.job_def.name} run={self.run.run_id} {self.run.status}>"

    # ---- events --------------------------------------------------------------------------------
    @property
    def all_events(self) -> list[Event]:
        """Every event of the run, in order (read from storage once: the run is finished)."""
        if self._events is None:
            self._events = self.instance.storage.get_events(self.run.run_id)
        return self._events

    def events_for_node(self, node: str) -> list[Event]:
        """The events of the step ``node``, or of all its mapped steps ``node[key]``."""
        return [e for e in self.all_events if e.step_key and (e.step_key == node or _base_node(e.step_key) == node)]

    def _of_type(self, kind: EventType) -> list[Event]:
        return [e for e in self.all_events if str(e.event_type) == str(kind)]

    def get_step_success_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_SUCCESS)

    def get_step_failure_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_FAILURE)

    def get_step_skipped_events(self) -> list[Event]:
        return self._of_type(EventType.STEP_SKIPPED)

    # ---- outputs -------------------------------------------------------------------------------
    def output_for_node(self, node: str, output_name: str = "result") -> Any:
        """The value op node ``node`` produced for ``output_name``. A dynamic output, or the output of
        a mapped node (steps ``node[key]``), is a dict ``{mapping key: value}``.

        Values come from memory when the step ran in this process, else they are loaded through the
        output's IO manager. Raises :class:`~runyard.errors.RunyardError` naming the node and output
        when the job has no such node or output, or when the run did not produce it."""
        from ..definitions.op import DEFAULT_OUTPUT

        output_name = output_name or DEFAULT_OUTPUT
        if node not in self.job_def.nodes:
            raise RunyardError(f"job '{self.job_def.name}' has no op node '{node}' "
                               f"(nodes: {', '.join(self.job_def.nodes)})")
        outs = self.job_def.nodes[node].op.outs
        if output_name not in outs:
            raise RunyardError(f"op node '{node}' has no output '{output_name}' (outputs: {', '.join(outs)})")
        produced = [e for e in self.events_for_node(node)
                    if str(e.event_type) == str(EventType.STEP_OUTPUT) and (e.data or {}).get("output") == output_name]
        mapped = any(e.step_key != node for e in produced)
        dynamic = bool(getattr(outs[output_name], "is_dynamic", False))
        if not produced:
            if outs[output_name].is_nothing and any(
                    str(e.event_type) == str(EventType.STEP_SUCCESS) for e in self.events_for_node(node)):
                return None
            raise RunyardError(f"run {self.run_id}: op node '{node}' did not produce output '{output_name}' "
                               f"(the run is {self.run.status})")
        if not mapped and not dynamic:
            return self._value(node, output_name, None)
        values: dict[str, Any] = {}
        for e in produced:
            key = (e.data or {}).get("mapping_key") or _mapping_key(e.step_key or "")
            values[key] = self._value(e.step_key or node, output_name, (e.data or {}).get("mapping_key"))
        return values

    def output_value(self, output_name: str = "result") -> Any:
        """The output of the job's only op node (a job of several ops: use :meth:`output_for_node`)."""
        if len(self.job_def.nodes) != 1:
            raise RunyardError(f"job '{self.job_def.name}' has {len(self.job_def.nodes)} op nodes; "
                               "output_value() reads the output of a single-op job: use "
                               "output_for_node(node, output_name)")
        return self.output_for_node(next(iter(self.job_def.nodes)), output_name)

    def _value(self, step_key: str, output_name: str, mapping_key: str | None) -> Any:
        captured = self._capture.outputs
        if (step_key, output_name) in captured:
            value = captured[(step_key, output_name)]
            return value[mapping_key] if mapping_key is not None else value
        return self._load(step_key, output_name, mapping_key)

    def _load(self, step_key: str, output_name: str, mapping_key: str | None) -> Any:
        """Load through the output's IO manager, set up (and torn down) for this one read."""
        import dataclasses

        from ..definitions.config import resolve_run_config
        from ..definitions.io_manager import FilesystemIOManager, InputContext, IOManager
        from ..definitions.resources import ResourceSet

        out = self.job_def.nodes[_base_node(step_key)].op.outs[output_name]
        key = out.io_manager_key
        definition = self.job_def.resource_defs.get(key)
        if definition is None and key == "io_manager":
            definition = FilesystemIOManager()
        resolved = resolve_run_config(self.job_def, self.run.run_config)
        resources = ResourceSet()
        try:
            resources.init(key, definition, resolved.resource_configs.get(key), None, self.run_id,
                           self.instance.home)
            manager = resources.get(key)
            if not isinstance(manager, IOManager):
                raise RunyardError(f"resource '{key}' is not an IOManager (got {type(manager).__name__})")
            fields = {f.name for f in dataclasses.fields(InputContext)}
            extra = {"upstream_mapping_key": mapping_key} if "upstream_mapping_key" in fields else {}
            ctx = InputContext(run_id=self.run_id, step_key=step_key, input_name=output_name,
                               home=self.instance.home, upstream_run_id=self.run_id, upstream_step_key=step_key,
                               upstream_output_name=output_name, **extra)
            return manager.load_input(ctx)
        finally:
            resources.teardown()

    # ---- raise_on_error -------------------------------------------------------------------------
    def raise_first_error(self) -> None:
        """If the run did not succeed: re-raise the exception the op of the first failed step raised
        when that step ran in this process, else raise :class:`RunFailedError` (also for a step that
        runyard failed itself: an input that could not be loaded, an output of the wrong type)."""
        if self.success:
            return
        failures = self.get_step_failure_events()
        if failures:
            exc = self._capture.errors.get(failures[0].step_key or "")
            if exc is not None:
                raise exc
            first = failures[0]
            raise RunFailedError(f"run {self.run_id} of job '{self.job_def.name}' failed: step "
                                 f"'{first.step_key}' failed: {(first.data or {}).get('error') or first.message}",
                                 self)
        ended = [e for e in self.all_events if str(e.event_type) in (str(EventType.RUN_FAILURE),
                                                                      str(EventType.RUN_CANCELED))]
        why = ended[-1].message if ended else f"the run is {self.run.status}"
        raise RunFailedError(f"run {self.run_id} of job '{self.job_def.name}' did not succeed: {why}", self)


def remove_ephemeral(instance: Instance, home: str) -> None:
    """Close an ephemeral instance and delete its home (a result's finalizer, also run at exit)."""
    try:
        instance.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)
