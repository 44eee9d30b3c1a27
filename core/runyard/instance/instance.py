"""The Instance: one home directory, one instance file, and the components it selects.

Every process of a deployment opens an Instance the same way (``Instance.open()``), so a run worker
started by a launcher sees exactly the storage the submitter used.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..component import Component, ComponentContext
from ..component import build_component as _build_component
from ..errors import InvalidTransitionError, RunNotFoundError
from ..storage.records import (
    FINISHED_STATUSES,
    IN_PROGRESS_STATUSES,
    PENDING_STATUSES,
    STATUS_EVENT,
    CodePointer,
    Event,
    EventType,
    RunRecord,
    RunStatus,
)
from .env import env_names, resolve_env
from .sections import get_section_registry, resolve_section, validate_sections
from .settings import InstanceSettings, Selection, parse_selection
from .yaml_source import YamlDocument, load_yaml_file, load_yaml_text

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from ..coordinators.base import RunCoordinator
    from ..execution.compute_logs import ComputeLogManager
    from ..launchers.base import RunLauncher
    from ..storage.base import RunStorage

HOME_ENV = "RUNYARD_HOME"
#: the key-value entry holding the instance's id (:meth:`Instance.instance_id`)
INSTANCE_ID_KEY = "runyard/instance-id"
_instance_id_lock = threading.Lock()
INSTANCE_FILE_ENV = "RUNYARD_INSTANCE_FILE"
#: the instance file's text itself, for a worker whose host's files it cannot see (a container): its
#: ``{env: ...}`` references are unresolved, as in the file. ``RUNYARD_INSTANCE_SOURCE`` names it in errors.
INSTANCE_YAML_ENV = "RUNYARD_INSTANCE_YAML"
INSTANCE_SOURCE_ENV = "RUNYARD_INSTANCE_SOURCE"
INSTANCE_FILE_NAME = "runyard.yaml"
DEFAULT_HOME = ".runyard"
COMPONENT_KEYS = ("storage", "run_coordinator", "run_launcher")
#: the top-level instance-file keys a run worker uses: runyard's own but the coordinator and launcher
#: (a worker runs its run; it neither submits nor launches). Plugin sections are not among them.
RUN_WORKER_KEYS = frozenset(InstanceSettings.model_fields) - {"run_coordinator", "run_launcher"}
#: a code server opens no instance: it uses no key (and gets none of the file's variables)
CODE_SERVER_KEYS: frozenset[str] = frozenset()


def resolve_home(home: str | None = None) -> str:
    return os.path.abspath(home or os.environ.get(HOME_ENV) or DEFAULT_HOME)


class Instance:
    def __init__(self, home: str, doc: YamlDocument):
        self.home = home
        self.doc = doc
        self.instance_file = doc.source
        from ..config_models import validate_model

        raw = doc.data if doc.data is not None else {}
        if not isinstance(raw, dict):
            from ..errors import ConfigError

            raise ConfigError("the instance file must be a mapping of settings", source=doc.source, line=1)
        # runyard's plain settings resolve {env: ...} now; component config is resolved when the
        # component is built and a plugin section when its plugin first asks for it, so a process
        # resolves (and needs) only the variables of what it uses: a run worker never resolves the
        # web UI's password (docs/instance.md, "Secrets stay where they are used").
        core_keys = frozenset(InstanceSettings.model_fields)
        origins: dict[tuple, str] = {}
        settings = {key: value if key in COMPONENT_KEYS else
                    resolve_env(value, source=doc.source, path=(key,), lines=doc, origins=origins)
                    for key, value in raw.items() if key in core_keys}
        self.settings: InstanceSettings = validate_model(InstanceSettings, settings, source=doc.source, doc=doc,
                                                         env_origins=origins)
        # Top-level keys runyard does not own are plugin sections (``webui:``), validated by the model
        # their plugin registered; plugins are only loaded here when the file has such a key.
        self._sections, self._pending_sections = validate_sections(
            {k: v for k, v in raw.items() if k not in core_keys}, core_keys, doc)
        # Selections are checked now (a class selection is imported and checked against its kind);
        # a registered name is looked up only when its component is first needed, so a command that
        # never needs, say, a launcher never loads the launcher plugins.
        self._selections: dict[str, Selection] = {
            kind: parse_selection(kind, getattr(self.settings, kind), doc) for kind in COMPONENT_KEYS}
        self._components: dict[str, Component] = {}
        # request threads (the web UI) may ask for a component first at the same time: one is built
        self._components_lock = threading.RLock()

    # ---- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, home: str | None = None, instance_file: str | None = None) -> Instance:
        """Open the instance at ``home`` (else ``$RUNYARD_HOME``, else ``./.runyard``). Its file is
        ``instance_file``, else ``$RUNYARD_INSTANCE_FILE``, else the text in ``$RUNYARD_INSTANCE_YAML``
        (what a container launcher hands its workers), else ``<home>/runyard.yaml``."""
        home = resolve_home(home)
        if not instance_file and not os.environ.get(INSTANCE_FILE_ENV) and INSTANCE_YAML_ENV in os.environ:
            source = os.environ.get(INSTANCE_SOURCE_ENV) or f"${INSTANCE_YAML_ENV}"
            return cls(home, load_yaml_text(os.environ[INSTANCE_YAML_ENV], source))
        explicit = instance_file or os.environ.get(INSTANCE_FILE_ENV)
        path = explicit or os.path.join(home, INSTANCE_FILE_NAME)
        # Only the default file may be absent; a file named explicitly must exist.
        return cls(home, load_yaml_file(path, missing_ok=not explicit))

    @classmethod
    def from_yaml(cls, home: str, text: str) -> Instance:
        """An instance from config text, e.g. in tests."""
        return cls(os.path.abspath(home), load_yaml_text(text, os.path.join(home, INSTANCE_FILE_NAME)))

    def child_environ(self, uses: Collection[str], extra: Mapping[str, str] | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a child process runyard starts: ``base`` (default: this process's)
        without every variable the instance file names with ``{env: NAME}`` only outside the
        top-level keys the child ``uses`` (:data:`RUN_WORKER_KEYS`, :data:`CODE_SERVER_KEYS`), plus
        ``extra``. So the web UI's password, set for the web UI, never reaches a run worker or a code
        server, which run user code (docs/instance.md, "Secrets stay where they are used")."""
        base = os.environ if base is None else base
        raw = self.doc.data if isinstance(self.doc.data, dict) else {}
        used: set[str] = set()
        unused: set[str] = set()
        for key, value in raw.items():
            (used if key in uses else unused).update(env_names(value))
        dropped = unused - used
        env = {k: v for k, v in base.items() if k not in dropped}
        env.update(extra or {})
        return env

    def worker_env(self) -> dict[str, str]:
        """Environment that lets a run worker open this same instance (never resolved secrets).
        Workers read the instance file from disk: an instance built by :meth:`from_yaml` whose text
        is not in a file hands its workers only the home."""
        env = {HOME_ENV: self.home}
        if os.path.exists(self.instance_file):
            env[INSTANCE_FILE_ENV] = os.path.abspath(self.instance_file)
        return env

    def worker_config_text(self) -> str:
        """The instance file's text as a run worker needs it: only :data:`RUN_WORKER_KEYS`, with every
        ``{env: NAME}`` left unresolved (no secret is in it). For workers that cannot read the file
        (a container), in ``$RUNYARD_INSTANCE_YAML``."""
        import yaml

        raw = self.doc.data if isinstance(self.doc.data, dict) else {}
        return yaml.safe_dump({k: v for k, v in raw.items() if k in RUN_WORKER_KEYS}, sort_keys=False)

    def instance_id(self) -> str:
        """A stable id of this instance (of its storage), made once and kept in its key-value table:
        container launchers label what they start with it, so one engine or cluster serves several
        instances and each one reconciles only its own containers and Jobs."""
        cached = getattr(self, "_instance_id", None)
        if cached:
            return cached
        with _instance_id_lock:  # threads of one process (an executor's pool) make one id
            value = self.storage.kv_get(INSTANCE_ID_KEY)
            if not value:
                try:
                    self.storage.kv_set(INSTANCE_ID_KEY, uuid.uuid4().hex[:16])
                except Exception:  # noqa: BLE001 - another process wrote it at the same moment: read theirs
                    pass
                value = self.storage.kv_get(INSTANCE_ID_KEY)  # whoever wrote last: all read the same from now on
            if not value:
                from ..errors import StorageError

                raise StorageError(f"could not store this instance's id ({INSTANCE_ID_KEY}) in its storage")
        self._instance_id = str(value)
        return self._instance_id

    def worker_env_names(self) -> set[str]:
        """The environment variables the parts of the instance file a run worker uses name with
        ``{env: NAME}`` (its storage's password, say): what a worker in a container must be given."""
        raw = self.doc.data if isinstance(self.doc.data, dict) else {}
        return {name for key, value in raw.items() if key in RUN_WORKER_KEYS for name in env_names(value)}

    # ---- plugin sections -------------------------------------------------------------------------
    def section(self, name: str) -> BaseModel:
        """The validated block of the top-level section ``name`` that a plugin owns (through
        ``runyard_register_instance_sections``); its model's defaults when the file has no such block."""
        if name in self._sections:
            return self._sections[name]
        pending = self._pending_sections.get(name)
        if pending is not None:
            # stored before the pending entry goes: a concurrent caller resolves it again, never
            # falls through to the defaults (which would be "no auth" for the web UI)
            self._sections[name] = resolve_section(pending, self.doc)
            self._pending_sections.pop(name, None)
            return self._sections[name]
        from ..errors import PluginError

        registry = get_section_registry(frozenset(InstanceSettings.model_fields))
        reg = registry.get(name)
        if reg is None:
            raise PluginError(f"no installed plugin owns the instance section '{name}' (installed sections: "
                              f"{registry.describe_installed()})")
        self._sections[name] = reg.model()
        return self._sections[name]

    def sections(self) -> dict[str, BaseModel]:
        """Every installed plugin's section, validated (defaults where the file has no block)."""
        registry = get_section_registry(frozenset(InstanceSettings.model_fields))
        return {name: self.section(name) for name in registry.names()}

    # ---- components ------------------------------------------------------------------------------
    def _selection(self, kind: str) -> Selection:
        return self._selections[kind]

    def build_component(self, kind: str, selection: Selection | None = None) -> Component:
        from ..config_models import validate_model
        from ..plugins import get_registry

        sel = selection or self._selection(kind)
        cls = sel.cls or get_registry(kind).get(sel.name or "", where=sel.where)
        origins: dict[tuple, str] = {}
        config = resolve_env(sel.config, source=self.doc.source, path=sel.path, lines=self.doc, origins=origins)
        model = getattr(cls, "config_model", None)
        if model is not None:
            config = validate_model(model, config, source=self.doc.source, path=sel.path, doc=self.doc,
                                    env_origins=origins)
        name = sel.name or f"{cls.__module__}.{cls.__qualname__}"
        return _build_component(cls, config, ComponentContext(home=self.home, instance_file=self.instance_file,
                                                              name=name))

    def _component(self, kind: str) -> Any:
        component = self._components.get(kind)
        if component is None:
            with self._components_lock:
                if kind not in self._components:
                    self._components[kind] = self.build_component(kind)
                component = self._components[kind]
        return component

    @cached_property
    def storage(self) -> RunStorage:
        storage = self._component("storage")
        storage.check_ready()
        return storage

    def storage_unchecked(self) -> RunStorage:
        """The storage without the schema check, for ``runyard instance migrate``."""
        return self._component("storage")

    @property
    def run_coordinator(self) -> RunCoordinator:
        return self._component("run_coordinator")

    @property
    def run_launcher(self) -> RunLauncher:
        return self._component("run_launcher")

    @cached_property
    def compute_log_manager(self) -> ComputeLogManager | None:
        """What captures each step's stdout/stderr (``compute_logs:``); None when turned off."""
        from ..execution.compute_logs import build_compute_log_manager

        return build_compute_log_manager(self.settings.compute_logs, self.home)

    def dispose(self) -> None:
        if "storage" in self._components:
            self._components["storage"].dispose()

    # ---- runs ------------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord:
        run = self.storage.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    def create_run(self, *, job_name: str, run_config: dict[str, Any] | None = None,
                   tags: dict[str, str] | None = None, code_pointer: CodePointer | None = None,
                   step_keys_to_execute: list[str] | None = None, parent_run_id: str | None = None,
                   root_run_id: str | None = None, status: RunStatus = RunStatus.NOT_STARTED,
                   run_id: str | None = None, events: Sequence[Event] = ()) -> RunRecord:
        """Store a new run, with ``events`` (of any run) in the same transaction. Callers validate
        run config against the job first (see execution.api)."""
        run = RunRecord(run_id=run_id or uuid.uuid4().hex, job_name=job_name, status=status,
                        run_config=run_config or {}, tags=dict(tags or {}),
                        code_pointer=code_pointer or CodePointer(),
                        step_keys_to_execute=step_keys_to_execute, parent_run_id=parent_run_id,
                        root_run_id=root_run_id or parent_run_id)
        self.storage.add_run(run, events)
        self._notify(run, None, status, None)
        return run

    def transition(self, run: RunRecord | str, expected: Sequence[RunStatus], new_status: RunStatus,
                   message: str = "", *, data: dict[str, Any] | None = None,
                   events: Sequence[Event] = (), level: str | None = None, **fields: Any) -> bool:
        """Compare-and-set a run's status, writing the matching RUN_* event in the same transaction."""
        run_obj = run if isinstance(run, RunRecord) else None
        run_id = run_obj.run_id if run_obj else str(run)
        now = time.time()
        if new_status == RunStatus.STARTED:
            fields.setdefault("start_time", now)
        if new_status in FINISHED_STATUSES:
            fields.setdefault("end_time", now)
        status_event = Event(run_id=run_id, event_type=STATUS_EVENT[new_status],
                             message=message or _default_message(new_status),
                             level=level or ("ERROR" if new_status == RunStatus.FAILURE else "INFO"),
                             data=data or {}, timestamp=now)
        previous = self.storage.transition_run(run_id, expected, new_status, [*events, status_event], **fields)
        if previous is None:
            return False
        from ..plugins import has_status_hooks

        if has_status_hooks():
            before = run_obj or self.storage.get_run(run_id)
            if before is not None:
                self._notify(replace(before, status=previous), previous, new_status, status_event)
        return True

    def _notify(self, run: RunRecord | None, old: RunStatus | None, new: RunStatus,
                event: Event | None) -> None:
        from ..plugins import notify_status_changed

        if run is not None:
            notify_status_changed(run, old, new, event)

    def report_engine_event(self, run_id: str, message: str, *, level: str = "INFO",
                            data: dict[str, Any] | None = None, step_key: str | None = None) -> None:
        self.storage.store_event(Event(run_id=run_id, event_type=EventType.ENGINE_EVENT, message=message,
                                       level=level, data=data or {}, step_key=step_key))

    def submit_run(self, run: RunRecord) -> RunRecord:
        """Hand a NOT_STARTED run to the run coordinator."""
        from ..coordinators.base import SubmitRunContext

        return self.run_coordinator.submit_run(SubmitRunContext(instance=self, run=run))

    def launch_run(self, run: RunRecord) -> RunRecord:
        """Move a run to STARTING and have the launcher start its worker (coordinators call this)."""
        if not self.transition(run, list(PENDING_STATUSES), RunStatus.STARTING,
                               f"Launching run with the {self.run_launcher.name} launcher."):
            current = self.get_run(run.run_id)
            raise InvalidTransitionError(f"Run {run.run_id} is {current.status}; only a NOT_STARTED or "
                                         "QUEUED run can be launched.")
        return self._start_worker(self.get_run(run.run_id))

    def _start_worker(self, run: RunRecord) -> RunRecord:
        """Hand a STARTING run to the launcher; if it cannot start a worker, the run ends FAILURE."""
        from ..launchers.base import LaunchError, LaunchRunContext

        try:
            self.run_launcher.launch_run(LaunchRunContext(instance=self, run=run))
        except Exception as exc:
            import traceback

            data: dict[str, Any] = {"error": traceback.format_exc()}
            if isinstance(exc, LaunchError):  # a typed failure: its reason, no traceback of ours
                data = {**exc.details, "reason": exc.reason, "error": str(exc)}
            self.transition(run.run_id, [RunStatus.STARTING], RunStatus.FAILURE,
                            f"The {self.run_launcher.name} launcher failed to start the run worker: {exc}",
                            data=data)
            raise
        return self.get_run(run.run_id)

    def launch_claimed_run(self, run: RunRecord) -> RunRecord:
        """Start the worker of a run a queue claim already moved QUEUED -> STARTING (see
        :meth:`RunStorage.claim_queued_runs`): no second compare-and-set, the claim was it. Fires the
        status hook for the claim's change; a launcher failure finishes the run as FAILURE."""
        if run.status != RunStatus.STARTING:
            raise InvalidTransitionError(f"Run {run.run_id} is {run.status}; only a claimed (STARTING) "
                                         "run can be launched this way.")
        from ..plugins import has_status_hooks

        if has_status_hooks():
            claim = next(iter(self.storage.get_events(run.run_id, event_types=[EventType.RUN_STARTING])),
                         None)
            self._notify(replace(run, status=RunStatus.QUEUED), RunStatus.QUEUED, RunStatus.STARTING, claim)
        return self._start_worker(run)

    def terminate_run(self, run_id: str) -> bool:
        """Ask a run to stop: QUEUED/NOT_STARTED runs are canceled at once, running ones through the
        launcher (the worker then writes CANCELED)."""
        from ..launchers.base import TerminateRunContext

        run = self.get_run(run_id)
        if run.status in FINISHED_STATUSES:
            raise InvalidTransitionError(f"Run {run_id} already finished ({run.status}).")
        if run.status in PENDING_STATUSES:
            return self.transition(run, [run.status], RunStatus.CANCELED, "Run canceled before it started.")
        if run.status != RunStatus.CANCELING:
            self.transition(run, [RunStatus.STARTING, RunStatus.STARTED], RunStatus.CANCELING,
                            "Termination requested.")
        signalled = self.run_launcher.terminate(TerminateRunContext(instance=self, run=self.get_run(run_id)))
        self._finish_canceling(run_id)
        return signalled

    def _finish_canceling(self, run_id: str, wait_seconds: float = 2.0) -> None:
        """A worker killed before it could write CANCELED (SIGTERM before its handler was installed,
        or the SIGKILL escalation) leaves the run CANCELING: the terminating side finishes it once the
        launcher reports the worker dead, so nobody has to run a health check later."""
        if not self.run_launcher.supports_health_check:
            return
        deadline = time.monotonic() + wait_seconds
        while True:
            run = self.get_run(run_id)
            if run.status != RunStatus.CANCELING or self.check_run_health(run_id) != "running":
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def check_run_health(self, run_id: str) -> str:
        """Ask the launcher whether an in-progress run's worker is alive; finish the run as FAILURE
        if it died. Returns the health verdict ("running", "dead", "finished", "unknown")."""
        from ..launchers.base import HealthCheckContext, WorkerHealth

        run = self.get_run(run_id)
        if run.status in FINISHED_STATUSES:
            return "finished"
        if run.status not in IN_PROGRESS_STATUSES:
            return "unknown"
        launcher = self.run_launcher
        if not launcher.supports_health_check:
            return "unknown"
        result = launcher.check_run_worker_health(HealthCheckContext(instance=self, run=run))
        if result.health != WorkerHealth.DEAD:
            return result.health.value
        from ..execution.open_steps import closing_events, open_steps_in_storage

        final = RunStatus.CANCELED if run.status == RunStatus.CANCELING else RunStatus.FAILURE
        closing = closing_events(run_id, open_steps_in_storage(self.storage, run_id),
                                 f"the run worker died ({result.message})", "run_worker_died")
        self.transition(run, [run.status], final,
                        f"Run worker died: {result.message}. Run marked {final} by the health check.",
                        data={**result.details, "reason": result.reason or result.message,
                              "error": result.message}, events=[*result.events, *closing])
        return "dead"

    def delete_run(self, run_id: str, *, files: bool = False) -> None:
        """Delete a run that is not in progress, with its events. With ``files``, also the files
        runyard's components wrote for it (see :mod:`runyard.operations.delete`)."""
        from ..operations.delete import delete_run

        delete_run(self, run_id, files=files)

def _default_message(status: RunStatus) -> str:
    return {
        RunStatus.QUEUED: "Run queued.",
        RunStatus.STARTING: "Run starting.",
        RunStatus.STARTED: "Run started.",
        RunStatus.CANCELING: "Run canceling.",
        RunStatus.SUCCESS: "Run succeeded.",
        RunStatus.FAILURE: "Run failed.",
        RunStatus.CANCELED: "Run canceled.",
    }.get(status, str(status))
