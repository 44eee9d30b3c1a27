"""The instance file's schema. Every key has a default: an empty or missing file is a working
SQLite instance under the home directory."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from .yaml_source import YamlDocument, format_path


class _Strict(BaseModel):
    # inf and NaN are refused by every model validated from a config file (config_models.validate_model);
    # saying it here too makes the error pydantic's own "finite number" at the key.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Upper bounds of times: beyond them a timer overflows (APScheduler's intervals are timedeltas) or
# the setting would in effect turn its loop off, which has its own switch.
HOUR, DAY, WEEK = 3600, 86400, 7 * 86400


class RunMonitoringSettings(_Strict):
    enabled: bool = True
    start_timeout_seconds: float = Field(180, gt=0, le=WEEK)
    cancel_timeout_seconds: float = Field(180, gt=0, le=WEEK)
    poll_interval_seconds: float = Field(5, gt=0, le=HOUR)


class DaemonSettings(_Strict):
    """``daemon:``: how ``runyard daemon`` works. Every key has a default (see docs/daemon.md)."""

    lease_seconds: float = Field(15, gt=0, le=HOUR, description="the leader lease's time to live; a standby takes "
                                 "over at most this long after the leader died (renewed every third of it)")
    max_catchup_ticks: int = Field(5, ge=1, le=10_000, description="after downtime, at most this many due ticks of "
                                   "each schedule are run (the newest ones; older missed ticks are dropped)")
    schedule_interval_seconds: float = Field(0.5, gt=0, le=HOUR,
                                             description="how often schedules are checked for due ticks")
    sensor_interval_seconds: float = Field(1, gt=0, le=HOUR, description="how often sensors are checked (each still "
                                           "waits its own minimum_interval_seconds)")
    heartbeat_interval_seconds: float = Field(5, gt=0, le=HOUR, description="how often each loop heartbeats")
    dequeue_batch_size: int = Field(20, gt=0, le=10_000, description="most runs one queue claim takes")
    launch_concurrency: int = Field(8, ge=1, le=256, description="most queued runs launched at once (each a "
                                    "launcher API round trip), when the run launcher supports concurrent "
                                    "launches; 1, or a launcher without that capability, launches one at a time")
    backfill_interval_seconds: float = Field(0.5, gt=0, le=HOUR, description="how often the leader looks for "
                                             "backfills to turn into runs (docs/backfills.md)")
    backfill_batch_size: int = Field(250, ge=1, le=10_000, description="runs of a backfill created per transaction "
                                     "(with the move of its cursor)")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve Prometheus metrics at "
                                     "http://<metrics_host>:<port>/metrics (docs/metrics.md); null (the default) "
                                     "serves none, 0 picks a free port")
    metrics_host: str = Field("127.0.0.1", min_length=1, description="the interface the metrics port listens "
                              "on; 0.0.0.0 for every interface (the port has no authentication)")


class RetentionSettings(_Strict):
    """``retention:``: the daemon deletes finished runs older than ``runs_days`` and audit log entries
    older than ``audit_days`` (docs/daemon.md)."""

    runs_days: float | None = Field(None, gt=0, le=36_500, description="delete finished runs created more than this "
                                    "many days ago, with their events and local files; null keeps them")
    audit_days: float | None = Field(None, gt=0, le=36_500, description="delete audit log entries older than this "
                                     "many days; null keeps them")
    interval_seconds: float = Field(3600, gt=0, le=WEEK, description="how often the daemon prunes")
    batch_size: int = Field(100, ge=1, le=100_000, description="runs read per batch while pruning")


class RunRetriesSettings(_Strict):
    """``run_retries:``: the daemon re-executes runs that ended FAILURE, by failure reason
    (docs/daemon.md#run-retries). The ``runyard/max_retries`` and ``runyard/retry_on_reasons`` run
    tags override ``max_retries`` and ``retry_on_reasons`` per run."""

    enabled: bool = Field(False, description="whether the daemon retries failed runs at all")
    max_retries: int = Field(0, ge=0, le=100, description="retries of one run (its re-executions made by the "
                             "daemon, counted along the chain) unless its runyard/max_retries tag says otherwise")
    retry_on_reasons: list[str] | None = Field(None, description="the failure reasons retried (data.reason of the "
                                               "run's RUN_FAILURE event: oom_killed, start_timeout, ...; run_error "
                                               "for a failure without a reason); null retries every reason")
    retry_on_op_failure: bool = Field(True, description="retry runs that failed because an op failed (reason "
                                      "step_failure, when retry_on_reasons is null or lists it); false retries only "
                                      "failures of the run worker, the launcher or the daemon")
    strategy: Literal["from_failure", "all_steps"] = Field(
        "from_failure", description="what a retry re-executes: the steps that did not succeed and what depends on "
        "them (from_failure), or every step (all_steps)")
    interval_seconds: float = Field(5, gt=0, le=HOUR, description="how often the daemon looks for failed runs")


class RunWorkerSettings(_Strict):
    """``run_worker:``: how a run worker rides out storage outages (docs/run-worker.md)."""

    outage_tolerance_seconds: float = Field(600, gt=0, allow_inf_nan=False, description="longest continuous "
                                            "storage outage a run worker waits out (keeping its events) before "
                                            "it exits non-zero, leaving them in a spill file")
    max_buffered_events: int = Field(10_000, ge=1, description="unwritten events a run worker keeps in memory "
                                     "during an outage; older ones are spilled to a local file")
    spill_dir: str | None = Field(None, description="directory of spill files (<run_id>.jsonl); relative "
                                  "paths are resolved against the home. Default: <home>/spill.")


class LocalComputeLogsSettings(_Strict):
    base_dir: str | None = Field(None, description="Directory of the captured files; relative paths are "
                                 "resolved against the home. Default: <home>/logs/compute.")


# Compute log manager kinds, by name: each is a key of ComputeLogsSettings with its config model.
COMPUTE_LOG_KINDS = ("local",)


class ComputeLogsSettings(_Strict):
    """``compute_logs:``: which compute log manager captures step output, or ``enabled: false``.

    Written like a component selection: ``{local: {base_dir: ...}}`` (or just ``local``). An empty
    mapping means ``local`` with its defaults. ``{enabled: false}`` turns capture off.
    """

    enabled: bool = True
    local: LocalComputeLogsSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _selection(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, str):
            data = {data: {}}
        if not isinstance(data, dict):
            return data
        unknown = [str(k) for k in data if k != "enabled" and k not in COMPUTE_LOG_KINDS]
        if unknown:
            raise PydanticCustomError(
                "unknown_compute_log_manager",
                "unknown compute log manager '{name}'. Available: {available}; or `enabled: false` to "
                "turn capture off",
                {"name": unknown[0], "available": ", ".join(COMPUTE_LOG_KINDS)})
        chosen = [k for k in COMPUTE_LOG_KINDS if k in data]
        if len(chosen) > 1:
            raise PydanticCustomError("compute_log_choice", "choose exactly one compute log manager (got {got})",
                                      {"got": ", ".join(chosen)})
        return {k: ({} if k in COMPUTE_LOG_KINDS and v is None else v) for k, v in data.items()}

    @model_validator(mode="after")
    def _enabled_or_kind(self) -> ComputeLogsSettings:
        if not self.enabled and self.local is not None:
            raise PydanticCustomError("compute_log_disabled",
                                      "`enabled: false` turns capture off; remove 'local' or the 'enabled' key")
        return self

    @property
    def manager_name(self) -> str | None:
        """The selected manager's name, or None when capture is off."""
        return "local" if self.enabled else None


class InstanceSettings(_Strict):
    """runyard's own top-level keys. Any other top-level key is a plugin's section
    (:mod:`.sections`), e.g. ``webui:`` of runyard-webui."""

    storage: Any = Field(default_factory=lambda: {"sqlite": {}})
    run_coordinator: Any = Field(default_factory=lambda: {"default": {}})
    run_launcher: Any = Field(default_factory=lambda: {"process": {}})
    compute_logs: ComputeLogsSettings = Field(default_factory=ComputeLogsSettings)
    run_monitoring: RunMonitoringSettings = Field(default_factory=RunMonitoringSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    run_retries: RunRetriesSettings = Field(default_factory=RunRetriesSettings)
    run_worker: RunWorkerSettings = Field(default_factory=RunWorkerSettings)


@dataclass
class Selection:
    """One component chosen in the instance file: by registered name, or by module and class."""

    kind: str
    name: str | None
    config: Any
    path: tuple
    cls: type | None = None
    where: str = field(default="")


def _import_class(module: str, cls_name: str, doc: YamlDocument, path: tuple) -> type:
    """``module.cls_name``, which must be a class; any failure is a ConfigError at the key."""

    def fail(message: str, key: str) -> ConfigError:
        return ConfigError(message, source=doc.source, path=format_path(path + (key,)),
                           line=doc.line_of(path + (key,)))

    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the module is the user's: whatever it raises is the message
        raise fail(f"cannot load class {cls_name} from module {module}: {type(exc).__name__}: {exc}",
                   "class") from None
    try:
        cls = getattr(mod, cls_name)
    except AttributeError:
        raise fail(f"cannot load class {cls_name} from module {module}: it has no such attribute", "class") from None
    if not isinstance(cls, type):
        what = ("a module" if inspect.ismodule(cls) else "a function" if callable(cls)
                else f"a {type(cls).__name__}")
        raise fail(f"{module}.{cls_name} is {what}, not a class", "class")
    return cls


def parse_selection(kind: str, raw: Any, doc: YamlDocument) -> Selection:
    path = (kind,)
    where = doc.source + (f", line {doc.line_of(path)}" if doc.line_of(path) else "")
    if isinstance(raw, str):
        return Selection(kind, raw, {}, path + (raw,), where=where)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("expected a mapping like {name: {config}} or {module: ..., class: ...}",
                          source=doc.source, path=kind, line=doc.line_of(path))
    if "module" in raw or "class" in raw:
        extra = set(raw) - {"module", "class", "config"}
        if extra or not {"module", "class"} <= set(raw):
            raise ConfigError("a class selection needs exactly 'module', 'class' and optional 'config'"
                              f" (got {sorted(raw)})", source=doc.source, path=kind, line=doc.line_of(path))
        module, cls_name = raw["module"], raw["class"]
        for key, value in (("module", module), ("class", cls_name)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{key} must be a string naming a {'module' if key == 'module' else 'class'}",
                                  source=doc.source, path=format_path(path + (key,)),
                                  line=doc.line_of(path + (key,)))
        cls = _import_class(module, cls_name, doc, path)
        from ..registry import kind_mismatch

        # Checked now, when the instance loads: a wrong class would otherwise fail only when used.
        mismatch = kind_mismatch(kind, cls)
        if mismatch:
            raise ConfigError(mismatch, source=doc.source, path=format_path(path + ("class",)),
                              line=doc.line_of(path + ("class",)))
        return Selection(kind, None, raw.get("config") or {}, path + ("config",), cls=cls, where=where)
    if len(raw) != 1:
        raise ConfigError(f"choose exactly one {kind.replace('_', ' ')} (got {', '.join(map(str, raw))})",
                          source=doc.source, path=kind, line=doc.line_of(path))
    (name, config), = raw.items()
    return Selection(kind, str(name), config or {}, path + (name,), where=where)
