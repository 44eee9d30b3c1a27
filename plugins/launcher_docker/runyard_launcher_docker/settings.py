"""The settings every container runyard starts is made with: the ``docker`` launcher's worker
containers and the ``docker`` executor's step containers (each config model extends
:class:`ContainerSettings`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: SDK arguments ``container_kwargs`` may set; the rest are runyard's to set (name, command,
#: environment, labels, network, mounts, limits have their own keys)
ALLOWED_CONTAINER_KWARGS = frozenset({
    "user", "working_dir", "hostname", "domainname", "shm_size", "cap_add", "cap_drop", "devices",
    "device_requests", "dns", "dns_search", "dns_opt", "extra_hosts", "group_add", "ipc_mode",
    "mem_reservation", "memswap_limit", "cpu_shares", "cpuset_cpus", "cpuset_mems", "cpu_period", "cpu_quota",
    "pids_limit", "read_only", "security_opt", "sysctls", "tmpfs", "ulimits", "runtime", "platform",
    "stop_signal", "oom_score_adj", "oom_kill_disable", "privileged", "storage_opt", "userns_mode",
    "blkio_weight", "log_config", "mac_address", "isolation",
})


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_cert: str | None = Field(None, description="CA certificate file the engine's certificate must chain to.")
    client_cert: str | None = Field(None, description="Client certificate file.")
    client_key: str | None = Field(None, description="Client key file.")
    verify: bool = Field(True, description="Verify the engine's certificate.")


class ContainerSettings(BaseModel):
    """What the launcher's and the executor's containers are configured with alike."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="Image for runs whose code location names none.")
    image_pull: str = Field("missing", pattern="^(missing|always|never)$",
                            description="missing: pull an image the engine lacks; always: pull before each "
                                        "container; never: fail at once when the engine lacks it.")
    network: str | None = Field(None, description="Network to attach containers to: host, none, bridge or the "
                                                  "name of a network (default: the engine's default).")
    networks: list[str] = Field(default_factory=list, description="Several networks (instead of `network`).")
    env_vars: list[str] = Field(default_factory=list,
                                description="NAME (passed from the launching process's environment) or "
                                            "NAME=VALUE.")
    volumes: list[str] = Field(default_factory=list, description="SOURCE:TARGET[:ro|rw] mounts.")
    labels: dict[str, str] = Field(default_factory=dict, description="More labels (org.runyard.* are runyard's).")
    mem_limit: str | int | None = Field(None, description="Memory limit, e.g. 512m or bytes; swap is not added.")
    cpus: float | None = Field(None, gt=0, le=1024, description="CPU limit, e.g. 1.5.")
    container_kwargs: dict[str, Any] = Field(default_factory=dict,
                                             description="More Docker SDK `containers.create` arguments (an "
                                                         "allow-list: user, shm_size, cap_drop, ulimits, ...).")
    mount_home: bool = Field(True, description="Bind-mount the instance home at the same path (SQLite storage, "
                                               "compute logs and step outputs stay on this host's disk).")
    init: bool = Field(True, description="Run an init as PID 1 (docker-init) so SIGTERM reaches the worker "
                                         "and zombies are reaped.")
    grace_period_seconds: float = Field(10.0, ge=0, le=3600, description="SIGTERM to SIGKILL delay on terminate.")
    log_tail_lines: int = Field(100, ge=0, le=10000,
                                description="Lines of a container's output stored as an event before it is "
                                            "removed.")
    docker_host: str | None = Field(None, description="Engine address (default: $DOCKER_HOST, else the local "
                                                      "socket).")
    tls: TlsConfig | None = Field(None, description="TLS to the engine (default: $DOCKER_TLS_VERIFY / "
                                                    "$DOCKER_CERT_PATH).")
    api_timeout_seconds: float = Field(60.0, ge=1, le=3600, description="Timeout of each engine API call.")

    @field_validator("container_kwargs")
    @classmethod
    def _allowed(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(set(value) - ALLOWED_CONTAINER_KWARGS)
        if bad:
            allowed = ", ".join(sorted(ALLOWED_CONTAINER_KWARGS))
            raise ValueError(f"not allowed here: {', '.join(bad)} (allowed: {allowed}; image, network"
                             ", env_vars, volumes, labels, mem_limit and cpus have their own keys)")
        return value

    @model_validator(mode="after")
    def _one_network_key(self) -> ContainerSettings:
        if self.network and self.networks:
            raise ValueError("give either network or networks, not both")
        return self

    @field_validator("env_vars")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for item in value:
            name = item.split("=", 1)[0]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for item in value:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/") or (
                    len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise ValueError(f"{item!r}: a volume is SOURCE:/TARGET or SOURCE:/TARGET:ro|rw")
        return value
