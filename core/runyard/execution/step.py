"""Running one attempt of one step: load inputs, call the op, check and store outputs, report.

Executors decide *where* and *when* a step runs (this process, a child process, a container); the
:class:`StepRunner` is what actually runs it there, so every executor reports the same events.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..definitions.dynamic import node_of_step
from ..definitions.hooks import node_hooks
from ..definitions.io_manager import FilesystemIOManager, InputContext, IOManager, OutputContext
from ..definitions.resources import ResourceSet
from ..definitions.retry import Failure, RetryPolicy, RetryRequested
from ..definitions.types import describe_type, type_matches
from ..storage.records import EventType, StepStatus
from .context import OpContext, StepLogger
from .dynamic import InputSources, OutputLookup, Source, needs_sources
from .hooks import run_step_hooks
from .outputs import StepOutputError, op_result_values, produced_summary
from .result import capture_step_error, capture_step_outputs

if TYPE_CHECKING:  # pragma: no cover
    from ..definitions.config import ResolvedRunConfig
    from ..definitions.job import JobDefinition
    from ..storage.records import RunRecord
    from .compute_logs import ComputeLogManager, StepLogFiles
    from .events import EventEmitter
    from .plan import ExecutionPlan

IO_MANAGER_KEY = "io_manager"


class RunTerminated(BaseException):
    """Raised in the run worker's main thread when it receives SIGTERM while user code runs."""


@dataclass
class StepOutcome:
    step_key: str
    status: StepStatus  # SUCCESS, FAILURE or RETRY
    attempt: int
    retry_delay: float = 0.0
    max_retries: int = 0
    error: str | None = None
    duration: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


class ResourceInitError(Exception):
    def __init__(self, message: str, tb: str):
        self.traceback = tb
        super().__init__(message)


class _StepError(Exception):
    """A framework-detected step problem (bad input/output type, IO failure) with a clear message."""


def user_traceback(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}runyard{os.sep}execution{os.sep}" not in f.filename]
    return "".join(traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc))


class StepRunner:
    def __init__(self, *, run: RunRecord, job: JobDefinition, plan: ExecutionPlan,
                 resolved: ResolvedRunConfig, sink: EventEmitter, home: str,
                 compute_logs: ComputeLogManager | None = None, storage: Any = None):
        self.run = run
        self.job = job
        self.plan = plan
        self.resolved = resolved
        self.sink = sink
        self.home = home
        self.resources: ResourceSet | None = None
        self.current_step: str | None = None  # the step whose op code runs right now, if any
        #: captures each attempt's stdout/stderr (None: not captured)
        self.compute_logs = compute_logs
        self._capturing = False
        #: the outputs the current attempt produced: ``{output: value}``, a dynamic output
        #: ``{output: {mapping key: value}}`` (what success hooks and execute_in_process see)
        self.produced_values: dict[str, Any] = {}
        #: optional and dynamic outputs: which values an input reads (runyard.execution.dynamic);
        #: ``storage`` answers for steps other processes ran (None: every source counts as produced)
        self.outputs = OutputLookup(storage, run.run_id)
        self.input_sources = InputSources(job, plan, run.run_id) if needs_sources(job, plan) else None

    # ---- resources -------------------------------------------------------------------------------
    def init_resources(self, step_keys: list[str] | None = None) -> None:
        """Initialise the resources that ``step_keys`` (default: every step of the plan) need: their
        ops' resources, the IO managers of their outputs and of the upstream outputs they load.
        Once per process: the first call decides."""
        if self.resources is not None:
            return
        needed = {IO_MANAGER_KEY}
        every = [*self.plan.steps, *sorted(self.plan.selected_templates)]  # mapped ops' steps come later
        for step_key in every if step_keys is None else step_keys:
            node = self.job.nodes[node_of_step(step_key)]
            needed |= node.op.required_resource_keys
            needed |= {k for hook in node_hooks(self.job, node) for k in hook.required_resource_keys}
            needed |= {out.io_manager_key for out in node.op.outs.values()}
            for deps in node.inputs.values():
                needed |= {self.job.nodes[up].op.outs[out].io_manager_key for up, out in deps}
        resources = ResourceSet()
        for key in sorted(needed):
            definition = self.job.resource_defs.get(key)
            if definition is None and key == IO_MANAGER_KEY:
                definition = FilesystemIOManager()
            log = StepLogger(self.sink, None)
            try:
                resources.init(key, definition, self.resolved.resource_configs.get(key), log, self.run.run_id,
                               self.home)
            except Exception as exc:
                resources.teardown()
                raise ResourceInitError(f"resource '{key}' failed to initialize: {type(exc).__name__}: "
                                        f"{exc}", user_traceback(exc)) from exc
        self.resources = resources

    def teardown_resources(self) -> None:
        if self.resources is None:
            return
        for key, exc in self.resources.teardown():
            self.sink.emit(EventType.ENGINE_EVENT, f"teardown of resource '{key}' failed: {exc}",
                           level="ERROR", data={"error": user_traceback(exc)})
        self.resources = None

    def _io_manager(self, key: str) -> IOManager:
        assert self.resources is not None
        manager = self.resources.get(key)
        if not isinstance(manager, IOManager):
            raise _StepError(f"resource '{key}' is not an IOManager (got {type(manager).__name__})")
        return manager

    # ---- compute logs ----------------------------------------------------------------------------
    @contextmanager
    def capture_logs(self, step_key: str, attempt: int = 0) -> Iterator[StepLogFiles | None]:
        """Capture this process's stdout/stderr into the step's compute log files for the block and
        announce them with a ``LOGS_CAPTURED`` event. :meth:`run_attempt` does this around each
        attempt by itself; a step process calls it to capture its whole life (attempts run inside
        the block are then not captured twice). Yields the files, or None when not capturing."""
        manager = self.compute_logs
        if manager is None or self._capturing:
            yield None
            return
        with ExitStack() as stack:
            try:
                files = stack.enter_context(manager.capture(self.run.run_id, step_key, attempt))
            except (OSError, ValueError) as exc:
                files = None
                self.sink.emit(EventType.ENGINE_EVENT, f"Could not capture the output of step '{step_key}' "
                               f"({type(exc).__name__}: {exc}); it goes to the process's own stdout/stderr.",
                               step_key=step_key, level="WARNING", data={"error": str(exc)})
            if files is not None:
                self.sink.emit(EventType.LOGS_CAPTURED, f"Capturing stdout and stderr of step '{step_key}' "
                               f"(attempt {attempt + 1}) in {files.stdout} and {files.stderr}.",
                               step_key=step_key, level="DEBUG",
                               data={"stdout": files.stdout, "stderr": files.stderr, "attempt": attempt + 1,
                                     "manager": manager.name, "pid": os.getpid()})
            self._capturing = True
            try:
                yield files
            finally:
                self._capturing = False

    # ---- one attempt -----------------------------------------------------------------------------
    def run_attempt(self, step_key: str, attempt: int = 0) -> StepOutcome:
        """Run one attempt of the step (its output captured, when compute logs are on)."""
        with self.capture_logs(step_key, attempt):
            return self._run_attempt(step_key, attempt)

    def _run_attempt(self, step_key: str, attempt: int) -> StepOutcome:
        node = self.job.nodes[node_of_step(step_key)]
        op = node.op
        emit = self.sink.emit
        started = time.perf_counter()
        if attempt:
            emit(EventType.STEP_RESTARTED, f"Started re-execution (attempt {attempt + 1}) of step "
                 f"'{step_key}'.", step_key=step_key, data={"attempt": attempt + 1})
        else:
            emit(EventType.STEP_START, f"Started execution of step '{step_key}'.", step_key=step_key,
                 data={"pid": os.getpid()})
        log = StepLogger(self.sink, step_key)
        self.current_step = step_key
        self.produced_values = {}
        try:
            self.init_resources([step_key])  # a no-op where the run worker set up all of them
            kwargs = self._load_inputs(step_key, node, log)
            context = OpContext(run_id=self.run.run_id, step_key=step_key, op_name=op.name,
                                op_config=self.resolved.op_configs.get(node.name), resources=self.resources,
                                log=log, retry_number=attempt, run_tags=self.run.tags, home=self.home,
                                run_config=self.run.run_config,
                                partitions_def=getattr(self.job, "partitions_def", None))
            if op.config_model is not None:
                kwargs["config"] = context.op_config
            args = (context,) if op.takes_context else ()
            try:
                result = op.fn(*args, **kwargs)
            except SystemExit as exc:
                raise _StepError(f"op '{op.name}' called sys.exit({exc.code!r}); ops must return or raise, "
                                 "not exit the process") from exc
            produced = self._handle_outputs(step_key, node, result, log)
        except (RunTerminated, KeyboardInterrupt):
            emit(EventType.STEP_FAILURE, f"Step '{step_key}' was interrupted: the run is being terminated.",
                 step_key=step_key, level="ERROR", data={"error": "interrupted by termination",
                                                         "attempt": attempt + 1})
            raise
        except Exception as exc:  # noqa: BLE001 - every op failure becomes a step outcome
            outcome = self._failed(step_key, op.retry_policy, attempt, exc, time.perf_counter() - started)
            if outcome.status == StepStatus.FAILURE:  # the final attempt: failure hooks, where it ran
                if not isinstance(exc, _StepError):  # runyard's own step errors: RunFailedError
                    capture_step_error(step_key, exc)
                run_step_hooks(self, step_key, node, "failure", exception=exc)
            return outcome
        finally:
            self.current_step = None
        duration = time.perf_counter() - started
        emit(EventType.STEP_SUCCESS, f"Finished execution of step '{step_key}' in {duration * 1000:.1f}ms.",
             step_key=step_key, data={"duration_ms": round(duration * 1000, 3)})
        capture_step_outputs(step_key, self.produced_values)
        run_step_hooks(self, step_key, node, "success", outputs=self.produced_values)
        return StepOutcome(step_key, StepStatus.SUCCESS, attempt, duration=duration, data={"outputs": produced})

    def _record_output(self, name: str, value: Any, mapping_key: str | None = None) -> None:
        """Remember an output the current attempt produced (see :attr:`produced_values`)."""
        if mapping_key is None:
            self.produced_values[name] = value
        else:
            self.produced_values.setdefault(name, {})[mapping_key] = value

    def _failed(self, step_key: str, policy: RetryPolicy | None, attempt: int, exc: BaseException,
                duration: float) -> StepOutcome:
        emit = self.sink.emit
        if isinstance(exc, _StepError):
            message, tb = str(exc), (user_traceback(exc.__cause__) if exc.__cause__ else "")
        else:
            message = f"{type(exc).__name__}: {exc}"
            tb = user_traceback(exc)
        error_data = {"error": message, "error_class": type(exc).__name__, "traceback": tb,
                      "attempt": attempt + 1}
        retry_delay, max_retries = None, 0
        if isinstance(exc, RetryRequested):
            max_retries, retry_delay = exc.max_retries, exc.seconds_to_wait
        elif policy is not None and not isinstance(exc, (Failure, _StepError)):
            max_retries, retry_delay = policy.max_retries, policy.delay_for(attempt + 1)
        if retry_delay is not None and attempt < max_retries:
            emit(EventType.STEP_UP_FOR_RETRY,
                 f"Step '{step_key}' failed ({message}); retrying in {retry_delay:.2f}s "
                 f"(attempt {attempt + 2} of {max_retries + 1}).", step_key=step_key, level="WARNING",
                 data={**error_data, "retry_delay": retry_delay, "max_retries": max_retries})
            return StepOutcome(step_key, StepStatus.RETRY, attempt, retry_delay=retry_delay, max_retries=max_retries,
                               error=message, duration=duration)
        if isinstance(exc, Failure):
            error_data["metadata"] = exc.metadata
        emit(EventType.STEP_FAILURE, f"Step '{step_key}' failed: {message}", step_key=step_key,
             level="ERROR", data=error_data)
        return StepOutcome(step_key, StepStatus.FAILURE, attempt, error=message, duration=duration, data=error_data)

    def _upstream_run_id(self, step_key: str, output: str) -> str:
        return self.plan.external_outputs.get((step_key, output), self.run.run_id)

    def _load_inputs(self, step_key: str, node: Any, log: StepLogger) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        sources_of = self.input_sources
        if sources_of is not None:
            self.outputs.new_attempt()
        for input_name, deps in node.inputs.items():
            many = input_name in node.fan_in or input_name in node.collect
            if sources_of is None:
                sources = [Source(up, out, self._upstream_run_id(up, out)) for up, out in deps]
            else:
                found = sources_of.sources(step_key, node, input_name, self.outputs.mapping_keys)
                # the executor started the step: its single inputs were produced; a fan-in or a
                # collect reads the values that were (optional outputs, skipped mapped steps)
                sources = [src for src, certain in found if not many or certain or self.outputs.produced(src)]
                if not sources and not many:
                    raise _StepError(f"input '{input_name}' of op '{node.op.name}' has no value: its source "
                                     "output was not produced")
            values = [self._load_one(step_key, input_name, src, log) for src in sources]
            value = values if many else values[0]
            expected = node.op.ins[input_name].type
            if not many and not type_matches(value, expected):
                raise _StepError(f"input '{input_name}' of op '{node.op.name}' expected "
                                 f"{describe_type(expected)}, got {type(value).__name__}")
            kwargs[input_name] = value
        return kwargs

    def _load_one(self, step_key: str, input_name: str, src: Source, log: StepLogger) -> Any:
        out_def = self.job.nodes[node_of_step(src.step)].op.outs[src.output]
        if out_def.is_nothing:
            return None
        where = f"{src.step}.{src.output}" + (f"[{src.mapping_key}]" if src.mapping_key is not None else "")
        manager = self._io_manager(out_def.io_manager_key)
        ctx = InputContext(run_id=self.run.run_id, step_key=step_key, input_name=input_name,
                           home=self.home, upstream_run_id=src.run_id,
                           upstream_step_key=src.step, upstream_output_name=src.output, log=log,
                           upstream_mapping_key=src.mapping_key)
        try:
            value = manager.load_input(ctx)
        except Exception as exc:
            raise _StepError(f"could not load input '{input_name}' from {where}: "
                             f"{type(exc).__name__}: {exc}") from exc
        self.sink.emit(EventType.LOADED_INPUT, f"Loaded input '{input_name}' from {where}.",
                       step_key=step_key, level="DEBUG", data={"input": input_name, "upstream": where})
        return value

    def _handle_outputs(self, step_key: str, node: Any, result: Any, log: StepLogger) -> dict[str, Any]:
        """Check and store what the op produced (runyard.execution.outputs); return the summary
        ``{output: None | [mapping keys]}`` that ``StepOutcome.data["outputs"]`` carries."""
        outs = node.op.outs
        try:
            produced = op_result_values(node.op, result)
        except StepOutputError as exc:
            raise _StepError(str(exc)) from None
        for item in produced:
            name, value, mapping_key = item.output_name, item.value, item.mapping_key
            out_def = outs[name]
            self._record_output(name, value, mapping_key)
            keyed = {"mapping_key": mapping_key} if mapping_key is not None else {}
            if out_def.is_nothing:
                if self.input_sources is not None:  # a job where what was produced is news
                    self.sink.emit(EventType.STEP_OUTPUT, f"Yielded output '{name}'.", step_key=step_key,
                                   level="DEBUG", data={"output": name, "type": "None", **keyed})
                continue
            manager = self._io_manager(out_def.io_manager_key)
            ctx = OutputContext(run_id=self.run.run_id, step_key=step_key, output_name=name,
                                home=self.home, log=log, dagster_type=out_def.type, mapping_key=mapping_key)
            shown = f"'{name}'" + (f" (mapping key '{mapping_key}')" if mapping_key is not None else "")
            self.sink.emit(EventType.STEP_OUTPUT, f"Yielded output {shown} of type "
                           f"{type(value).__name__}.", step_key=step_key, level="DEBUG",
                           data={"output": name, "type": type(value).__name__, **keyed})
            try:
                metadata = manager.handle_output(ctx, value) or {}
            except Exception as exc:
                raise _StepError(f"the IO manager could not store output {shown} of op "
                                 f"'{node.op.name}': {type(exc).__name__}: {exc}") from exc
            metadata = {**item.metadata, **metadata}
            self.sink.emit(EventType.HANDLED_OUTPUT, f"Stored output {shown}.", step_key=step_key,
                           level="DEBUG", data={"output": name, **keyed,
                                                **{k: str(v) for k, v in metadata.items()}})
        summary = produced_summary(produced)
        self.outputs.record(step_key, summary)
        return summary
