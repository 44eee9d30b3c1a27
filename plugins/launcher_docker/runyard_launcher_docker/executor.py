"""The ``docker`` executor: each step attempt in its own container of the run's image, up to
``max_concurrent`` at a time, scheduled by the run worker.

A step container runs :mod:`.step` (``python -m runyard_launcher_docker.step RUN_ID STEP_KEY
ATTEMPT``), which writes the step's events straight to storage and reports its outcome as the last
line of its output. The run worker creates and starts containers, learns that one ended from the
engine's event stream (with a poll as a safety net), reads the outcome, stores the last lines of the
container's output as an event and removes the container. A container that ended without an
outcome fails its step with the reason (OOMKilled, killed, exit code...) in ``data["reason"]``; a
container that could not be created or started fails its step the same way, never the worker.

Outputs pass between steps through storage both sides reach: the instance home, mounted at the same
path in every step container (``mount_home``), where the default FilesystemIOManager keeps them, or
an IO manager of the job's own (S3, a database...).

On termination every step container is stopped (SIGTERM, ``grace_period_seconds``, SIGKILL), its
step's failure recorded and the container removed; at the end of every run, whatever its outcome, the
run's step containers still on the engine are removed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, TypeAdapter, ValidationError

from runyard.execution.step import StepOutcome
from runyard.execution.step_process import parse_outcome
from runyard.executors.base import (
    ExecuteContext,
    ExecutionResult,
    Executor,
    TagConcurrencyLimit,
)
from runyard.executors.scheduling import StepScheduler
from runyard.launchers.base import LaunchError
from runyard.storage.records import Event, EventType, StepStatus
from runyard.tags import IMAGE_TAG

from . import engine, exits
from .settings import ContainerSettings

if TYPE_CHECKING:  # pragma: no cover
    import docker

log = logging.getLogger("runyard.executor.docker")

#: op tags that set a step container's limits (the launcher reads the same names from run tags)
MEM_LIMIT_TAG = "docker/mem_limit"
CPUS_TAG = "docker/cpus"
STEP_MODULE = "runyard_launcher_docker.step"
POLL_SECONDS = 1.0


class DockerExecutorConfig(ContainerSettings):
    max_concurrent: int = Field(4, ge=1, le=1024, description="Step containers running at once.")
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(
        default_factory=list, description="At most `limit` steps whose op has tag `key` (=`value`) at once.")
    grace_period_seconds: float = Field(5.0, ge=0, le=3600, description="SIGTERM to SIGKILL delay when a run is "
                                                                        "terminated.")


@dataclass
class _StepContainer:
    key: str
    attempt: int
    tags: dict[str, str]
    name: str
    mem_limit: Any = None
    container: Any = None
    launched: bool = False
    ended: bool = False
    finishing: bool = False
    started: float = field(default_factory=time.monotonic)


class DockerExecutor(Executor):
    config_model = DockerExecutorConfig
    runs_steps_out_of_process = True

    def execute(self, context: ExecuteContext) -> ExecutionResult:
        try:
            engine.instance_id(context.instance)  # once, before the pool's threads label containers with it
        except Exception:  # noqa: BLE001 - each step's launch meets it again and reports it
            pass
        run = _Run(self.config, context)
        try:
            return run.schedule()
        finally:
            run.close()


class _Run:
    """One run's scheduling: the main thread decides; a small pool creates, starts and disposes of
    containers; a thread follows the engine's events. They talk to the main thread through a queue."""

    def __init__(self, config: DockerExecutorConfig, context: ExecuteContext):
        self.config = config
        self.context = context
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.running: dict[str, _StepContainer] = {}
        self.by_id: dict[str, _StepContainer] = {}
        self.died: set[str] = set()  # ids the engine said died before their launch was reported
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=min(config.max_concurrent, 6),
                                       thread_name_prefix="runyard-docker-step")
        self.image = context.run.tags.get(IMAGE_TAG) or config.image
        self._image_checked: LaunchError | bool = False
        self._image_lock = threading.Lock()
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._events_stream: Any = None
        self._events_thread: threading.Thread | None = None

    # ---- the engine ------------------------------------------------------------------------------
    def client(self) -> docker.DockerClient:
        with self._client_lock:  # the pool's first launches ask at once; one event stream
            if self._client is None:
                self._client = engine.client_for(self.config)
                self._follow_events()
            return self._client

    def _follow_events(self) -> None:
        """A thread that puts ("died", container id) on the queue for each step container of this
        run the engine reports dead."""
        assert self._client is not None
        filters = {"type": "container", "event": ["die"],
                   "label": [f"{engine.RUN_LABEL}={self.context.run.run_id}", f"{engine.KIND_LABEL}=step"]}
        try:
            self._events_stream = self._client.api.events(filters=filters, decode=True)
        except Exception as exc:  # noqa: BLE001 - polling still notices ended containers
            log.warning("cannot follow the Docker engine's events (%s); polling containers instead", exc)
            return

        def follow() -> None:
            try:
                for event in self._events_stream:
                    ident = event.get("id") or event.get("Actor", {}).get("ID")
                    if ident:
                        self.messages.put(("died", ident))
            except Exception:  # noqa: BLE001 - the stream was closed, or broke: polling takes over
                pass

        self._events_thread = threading.Thread(target=follow, name="runyard-docker-events", daemon=True)
        self._events_thread.start()

    # ---- scheduling ------------------------------------------------------------------------------
    def schedule(self) -> ExecutionResult:
        context = self.context
        steps = StepScheduler(context, max_concurrent=self.config.max_concurrent,
                              tag_limits=self.config.tag_concurrency_limits)
        running = self.running
        try:
            while steps.unfinished:
                if context.is_terminating():
                    steps.result.interrupted = True
                    break
                for key, attempt in steps.start_now():
                    failed = self._launch(key, attempt, steps.running[key])
                    if failed is not None:  # its downstream steps are skipped by the next start_now
                        steps.settle(key, failed)
                if not running:
                    steps.idle()
                    continue
                for proc, outcome in self._pump(steps.wait_seconds(POLL_SECONDS)):
                    del running[proc.key]
                    steps.settle(proc.key, outcome)
        finally:
            if running:
                self._stop_all()
        return steps.result

    # ---- launching -------------------------------------------------------------------------------
    def _launch(self, key: str, attempt: int, tags: dict[str, str]) -> StepOutcome | None:
        """Hand the attempt's container to the pool; a step whose op tags are invalid fails now."""
        run_id = self.context.run.run_id
        try:
            overrides = _op_limits(key, tags)
        except LaunchError as exc:
            return self._failure(key, attempt, str(exc), exc.reason, exc.details)
        proc = _StepContainer(key, attempt, dict(tags), engine.step_container_name(run_id, key, attempt),
                              mem_limit=overrides.get("mem_limit", self.config.mem_limit))
        self.running[key] = proc
        self.pool.submit(self._start, proc, overrides)
        return None

    def _check_image(self, client: docker.DockerClient) -> str:
        with self._image_lock:
            if not self.image:
                raise LaunchError("no image for the step containers: the run's code location names none (tag "
                                  f"{IMAGE_TAG}) and execution.docker has no `image`", reason="no_image")
            if isinstance(self._image_checked, LaunchError):
                raise self._image_checked
            if not self._image_checked:
                try:
                    engine.ensure_image(client, self.image, self.config.image_pull)
                except LaunchError as exc:
                    self._image_checked = exc
                    raise
                self._image_checked = True  # once per run, `always` included
            return self.image

    def _start(self, proc: _StepContainer, overrides: dict[str, Any]) -> None:
        """In the pool: create and start the container, then tell it its host pid."""
        context = self.context
        try:
            if self.stopping.is_set():
                raise LaunchError("the run is being terminated", reason="terminated")
            client = self.client()
            image = self._check_image(client)
            labels = engine.base_labels(context.instance, context.run, "step", self.config.labels)
            labels.update({engine.STEP_LABEL: proc.key, engine.ATTEMPT_LABEL: str(proc.attempt)})
            command = ["python", "-m", STEP_MODULE, context.run.run_id, proc.key, str(proc.attempt)]
            kwargs = engine.create_kwargs(context.instance, self.config, image=image, name=proc.name,
                                          command=command, labels=labels, overrides=overrides)
            kwargs["stdin_open"] = True  # the host pid comes that way
            container, created = engine.create_container(client, kwargs, list(self.config.networks[1:]))
            if not created:  # a container of an earlier worker of this run: not ours to resume
                engine.remove_quietly(container)
                container, _ = engine.create_container(client, kwargs, list(self.config.networks[1:]))
            proc.container = container
            if self.stopping.is_set():
                engine.remove_quietly(container)
                raise LaunchError("the run is being terminated", reason="terminated")
            engine.start_container(container)
            _send_host_pid(client, container)
        except LaunchError as exc:
            self.messages.put(("launch_failed", (proc, exc)))
            return
        except Exception as exc:  # noqa: BLE001 - whatever the engine says, the step fails, not the worker
            if proc.container is not None:
                try:
                    engine.remove_quietly(proc.container)
                except Exception:  # noqa: BLE001
                    pass
            self.messages.put(("launch_failed", (proc, LaunchError(
                f"could not start step container {proc.name}: {type(exc).__name__}: {exc}",
                reason="engine_error"))))
            return
        self.messages.put(("launched", proc))

    # ---- waiting ---------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> list[tuple[_StepContainer, StepOutcome]]:
        """Wait up to ``timeout`` for news; return the attempts that finished."""
        finished: list[tuple[_StepContainer, StepOutcome]] = []
        try:
            item = self.messages.get(timeout=timeout)
        except queue.Empty:
            self._poll()
            return finished
        while True:
            finished.extend(self._handle(*item))
            try:
                item = self.messages.get_nowait()
            except queue.Empty:
                return finished

    def _handle(self, kind: str, payload: Any) -> list[tuple[_StepContainer, StepOutcome]]:
        if kind == "launched":
            proc = payload
            proc.launched = True
            self.by_id[proc.container.id] = proc
            if proc.container.id in self.died:
                self._finish(proc)
        elif kind == "launch_failed":
            proc, exc = payload
            if exc.reason == "terminated":  # never started: nothing to report but the outcome
                return [(proc, StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=str(exc)))]
            return [(proc, self._failure(proc.key, proc.attempt, f"could not launch the step's container: {exc}",
                                         exc.reason, {**exc.details, "container": proc.name}))]
        elif kind == "died":
            proc = self.by_id.get(payload)
            if proc is None:
                self.died.add(payload)
            else:
                self._finish(proc)
        elif kind == "finished":
            proc, events, outcome = payload
            for event in events:
                self.context.events.emit_event(event)
            self.by_id.pop(proc.container.id, None)
            return [(proc, outcome)]
        elif kind == "events":
            for event in payload:
                self.context.events.emit_event(event)
        return []

    def _poll(self) -> None:
        """The safety net under the event stream: look at every launched container."""
        import docker

        for proc in list(self.running.values()):
            if not proc.launched or proc.finishing:
                continue
            try:
                proc.container.reload()
            except docker.errors.NotFound:
                self._finish(proc)
                continue
            except Exception:  # noqa: BLE001 - the engine hiccupped: next poll
                continue
            if not exits.state_of(proc.container).alive:
                self._finish(proc)

    def _finish(self, proc: _StepContainer) -> None:
        if proc.finishing:
            return
        proc.finishing = True
        self.pool.submit(self._dispose, proc)

    def _dispose(self, proc: _StepContainer) -> None:
        """In the pool: read the outcome and hand it over (the scheduler goes on at once), then keep
        the container's output as an event and remove the container."""
        present = False
        try:
            present, events, outcome = self._conclude(proc)
        except Exception as exc:  # noqa: BLE001 - never leave the main thread waiting
            message = f"could not read the end of step container {proc.name}: {type(exc).__name__}: {exc}"
            events = [self._failure_event(proc.key, proc.attempt, message, "engine_error", {"container": proc.name})]
            outcome = StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=message)
        self.messages.put(("finished", (proc, events, outcome)))
        try:
            if present:
                state = exits.state_of(proc.container)
                failed = outcome.status == StepStatus.FAILURE and state.exit_code != 0
                self.messages.put(("events", [exits.output_event(
                    self.context.run.run_id, proc.container, state, self.config.log_tail_lines, step_key=proc.key,
                    failed=failed)]))
        except Exception as exc:  # noqa: BLE001 - the output is a courtesy; the removal is not
            log.warning("could not read the output of step container %s: %s", proc.name, exc)
        finally:
            try:
                engine.remove_quietly(proc.container)
            except Exception as exc:  # noqa: BLE001 - the sweep at the end tries again
                log.warning("could not remove step container %s: %s", proc.name, exc)

    def _conclude(self, proc: _StepContainer) -> tuple[bool, list[Event], StepOutcome]:
        """Whether the container is still there, the events to store and the attempt's outcome."""
        import docker

        container = proc.container
        try:
            container.reload()
            present = True
        except docker.errors.NotFound:
            present = False
        reported = _read_outcome(container, proc) if present else None
        if reported is not None:
            return present, [], reported
        state = exits.state_of(container if present else None)
        reason, message = exits.death_reason(proc.name, state, proc.mem_limit)
        message = f"{message}, before the step reported an outcome"
        events = [self._failure_event(proc.key, proc.attempt, message, reason, {
            "container": proc.name, "exit_code": state.exit_code, "oom_killed": state.oom_killed})]
        return present, events, StepOutcome(proc.key, StepStatus.FAILURE, proc.attempt, error=message,
                                            data={"reason": reason})

    # ---- failures --------------------------------------------------------------------------------
    def _failure_event(self, key: str, attempt: int, message: str, reason: str,
                       details: dict[str, Any]) -> Event:
        return Event(run_id=self.context.run.run_id, event_type=EventType.STEP_FAILURE,
                     message=f"Step '{key}' failed: {message}", step_key=key, level="ERROR",
                     data={**details, "error": message, "reason": reason, "attempt": attempt + 1})

    def _failure(self, key: str, attempt: int, message: str, reason: str,
                 details: dict[str, Any]) -> StepOutcome:
        self.context.events.emit_event(self._failure_event(key, attempt, message, reason, details))
        return StepOutcome(key, StepStatus.FAILURE, attempt, error=message, data={"reason": reason})

    # ---- ending ----------------------------------------------------------------------------------
    def _stop_all(self) -> None:
        """Stop every step container still running (SIGTERM, grace, SIGKILL, in parallel), record
        the failure of each that did not report, and remove them."""
        self.stopping.set()
        grace = self.config.grace_period_seconds

        def stop(proc: _StepContainer) -> None:
            if proc.container is not None:
                try:
                    engine.stop_container(proc.container, grace)
                except Exception as exc:  # noqa: BLE001 - the removal below forces it
                    log.warning("could not stop step container %s: %s", proc.name, exc)

        deadline = time.monotonic() + grace + 30
        while self.running and time.monotonic() < deadline:
            for proc in list(self.running.values()):
                if proc.launched and not proc.finishing and not proc.ended:
                    proc.ended = True
                    threading.Thread(target=lambda p=proc: (stop(p), self.messages.put(("died", p.container.id))),
                                     daemon=True).start()
            try:
                item = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            for proc, _ in self._handle(*item):
                self.running.pop(proc.key, None)

    def close(self) -> None:
        """Whatever happened: no step container of this run stays on the engine."""
        self.stopping.set()
        self.pool.shutdown(wait=True)
        while True:  # events of containers disposed of after the loop ended
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                break
            if kind in ("finished", "events"):
                for event in payload[1] if kind == "finished" else payload:
                    self.context.events.emit_event(event)
        if self._events_stream is not None:
            try:
                self._events_stream.close()
            except Exception:  # noqa: BLE001
                pass
        if self._client is None:
            return
        try:
            left = self._client.containers.list(all=True, filters={"label": [
                f"{engine.INSTANCE_LABEL}={engine.instance_id(self.context.instance)}",
                f"{engine.RUN_LABEL}={self.context.run.run_id}", f"{engine.KIND_LABEL}=step"]})
            for container in left:
                engine.remove_quietly(container)
        except Exception as exc:  # noqa: BLE001 - reported, the run still ends
            self.context.events.emit(EventType.ENGINE_EVENT, f"Could not remove this run's step containers: {exc}",
                                     level="WARNING", data={"error": str(exc)})


def _op_limits(key: str, tags: dict[str, str]) -> dict[str, Any]:
    """The container limits an op's ``docker/mem_limit`` and ``docker/cpus`` tags ask for."""
    out: dict[str, Any] = {}
    for tag, name in ((MEM_LIMIT_TAG, "mem_limit"), (CPUS_TAG, "cpus")):
        if tag not in tags:
            continue
        value = tags[tag]
        try:
            parsed = TypeAdapter(ContainerSettings.model_fields[name].annotation).validate_python(value)
            if name == "cpus" and not 0 < float(parsed) <= 1024:
                raise ValueError("cpus must be in (0, 1024]")
            if name == "mem_limit" and isinstance(parsed, str) and parsed.isdigit():
                parsed = int(parsed)
        except (ValidationError, ValueError) as exc:
            raise LaunchError(f"op tag {tag}={value!r} of step '{key}' is not a valid {name}: "
                              f"{str(exc).splitlines()[-1].strip()}", reason="invalid_op_tag",
                              details={"tag": tag}) from None
        out[name] = parsed
    return out


def _send_host_pid(client: docker.DockerClient, container: Any) -> None:
    """Write the host pid of the container's main process on its stdin (see :mod:`.step`)."""
    container.reload()
    pid = container.attrs.get("State", {}).get("Pid") or 0
    sock = client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
    try:
        getattr(sock, "_sock", sock).sendall(f"{pid}\n".encode())
    finally:
        sock.close()


def _read_outcome(container: Any, proc: _StepContainer) -> StepOutcome | None:
    """The outcome line the step process printed last, or None (it died first)."""
    raw = container.logs(stdout=True, stderr=False, tail=20, timestamps=False)
    return parse_outcome(raw.decode("utf-8", errors="replace"), proc.key, proc.attempt)
