"""Talking to the Docker engine: one client per address, typed errors, and what every container
runyard starts has in common (names, labels, the worker's environment, how it is created, started,
stopped and removed). How a container ended is :mod:`.exits`; its settings are :mod:`.settings`.

The engine is the one ``DOCKER_HOST`` names (default: the local socket), or ``docker_host`` in the
config; TLS from ``tls`` or the Docker client's own variables (``DOCKER_TLS_VERIFY``,
``DOCKER_CERT_PATH``).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from runyard.launchers.base import LaunchError

from .settings import ContainerSettings

if TYPE_CHECKING:  # pragma: no cover
    import docker
    from docker.models.containers import Container

    from runyard.instance.instance import Instance

API_VERSION = "1.41"  # Docker 20.10 and every later engine speak it
LABEL_PREFIX = "org.runyard."
INSTANCE_LABEL = LABEL_PREFIX + "instance-id"
RUN_LABEL = LABEL_PREFIX + "run-id"
KIND_LABEL = LABEL_PREFIX + "kind"  # run | step
JOB_LABEL = LABEL_PREFIX + "job"
LOCATION_LABEL = LABEL_PREFIX + "location"
STEP_LABEL = LABEL_PREFIX + "step-key"
ATTEMPT_LABEL = LABEL_PREFIX + "attempt"

# ---- the engine ------------------------------------------------------------------------------------------
_clients: dict[tuple, docker.DockerClient] = {}
_clients_lock = threading.Lock()


def engine_address(settings: ContainerSettings) -> str:
    return settings.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def describe_address(address: str) -> str:
    """The engine address without credentials (for messages and ``launcher_info``)."""
    return re.sub(r"//[^@/]*@", "//", address)


def client_for(settings: ContainerSettings) -> docker.DockerClient:
    """One client per engine address and TLS setting in this process; the first use pings the engine,
    and an engine that does not answer is a :class:`LaunchError` naming the address."""
    import docker

    address = engine_address(settings)
    tls_key = settings.tls.model_dump_json() if settings.tls else os.environ.get("DOCKER_TLS_VERIFY", "")
    key = (address, tls_key, settings.api_timeout_seconds)
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            return client
        tls: Any = False
        if settings.tls is not None:
            t = settings.tls
            tls = docker.tls.TLSConfig(client_cert=(t.client_cert, t.client_key) if t.client_cert else None,
                                       ca_cert=t.ca_cert, verify=t.ca_cert if (t.verify and t.ca_cert) else t.verify)
        elif os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
            tls = None  # let the SDK read DOCKER_TLS_VERIFY / DOCKER_CERT_PATH
        try:
            if tls is None:
                client = docker.DockerClient.from_env(version=API_VERSION, timeout=int(settings.api_timeout_seconds),
                                                      environment={**os.environ, "DOCKER_HOST": address})
            else:
                client = docker.DockerClient(base_url=address, version=API_VERSION, tls=tls,
                                             timeout=int(settings.api_timeout_seconds))
            client.ping()
        except Exception as exc:  # noqa: BLE001 - every way of not answering is the same to the user
            raise engine_error(address, exc) from None
        _clients[key] = client
        return client


def engine_error(address: str, exc: BaseException) -> LaunchError:
    where = describe_address(address)
    source = "DOCKER_HOST" if os.environ.get("DOCKER_HOST") == address else "docker_host / DOCKER_HOST"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # the OS's reason ("[Errno 111] Connection refused", "No such file or directory"), not the
    # retry and connection-pool wrapping around it
    cause = re.search(r"\[Errno -?\d+\] [^'\")]+|\w+Error\(-?\d+, '([^']+)'\)", detail)
    if cause:
        detail = (cause.group(1) or cause.group(0)).strip()
    return LaunchError(f"cannot reach the Docker engine at {where} ({source}): {detail}. Start the engine, or "
                       "point DOCKER_HOST (or the docker_host key) at one that runs.",
                       reason="engine_unreachable", details={"docker_host": where})


def forget_client(settings: ContainerSettings) -> None:
    address = engine_address(settings)
    with _clients_lock:
        for key in [k for k in _clients if k[0] == address]:
            _clients.pop(key).close()


def instance_id(instance: Instance) -> str:
    """The instance's id (:meth:`Instance.instance_id`); labels on every container carry it."""
    from runyard.errors import StorageError

    try:
        return instance.instance_id()
    except StorageError as exc:
        raise LaunchError(str(exc), reason="storage_error") from None


# ---- names and labels ------------------------------------------------------------------------------------
def run_container_name(run_id: str) -> str:
    return f"runyard-run-{run_id}"


def step_container_name(run_id: str, step_key: str, attempt: int) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", step_key)[:60].strip("-.") or "step"
    digest = hashlib.sha1(step_key.encode()).hexdigest()[:8]
    return f"runyard-step-{run_id}-{safe}-{digest}-{attempt}"


def base_labels(instance: Instance, run: Any, kind: str, extra: dict[str, str]) -> dict[str, str]:
    from runyard.tags import LOCATION_TAG

    labels = {k: v for k, v in extra.items() if not k.startswith(LABEL_PREFIX)}
    labels.update({INSTANCE_LABEL: instance_id(instance), RUN_LABEL: run.run_id, KIND_LABEL: kind,
                   JOB_LABEL: run.job_name})
    location = run.tags.get(LOCATION_TAG)
    if location:
        labels[LOCATION_LABEL] = location
    return labels


# ---- what a worker in a container needs ------------------------------------------------------------------
def is_sqlite(instance: Instance) -> str | None:
    """The SQLite database file of the instance's storage, or None for another storage."""
    storage = instance.storage
    engine = getattr(storage, "engine", None)
    if engine is not None and engine.dialect.name == "sqlite":
        return str(getattr(storage, "path", "") or engine.url.database or "")
    return None


def worker_environment(instance: Instance, settings: ContainerSettings, *, home: str) -> dict[str, str]:
    """The environment of a worker or step container: the instance file's text (``{env:}`` unresolved)
    and home, the variables that text names (its secrets, from this process's environment), and
    ``env_vars``. Nothing of this reaches the command line, labels or ``launcher_info``."""
    from runyard.instance.instance import HOME_ENV, INSTANCE_SOURCE_ENV, INSTANCE_YAML_ENV

    env: dict[str, str] = {}
    for name in sorted(instance.worker_env_names()):
        if name in os.environ:
            env[name] = os.environ[name]
    for item in settings.env_vars:
        if "=" in item:
            name, value = item.split("=", 1)
            env[name] = value
        elif item in os.environ:
            env[item] = os.environ[item]
        else:
            raise LaunchError(f"env_vars names {item}, which is not set in the environment of the process that "
                              f"launches (pid {os.getpid()}): set it there, or give NAME=VALUE",
                              reason="env_var_missing", details={"env_var": item})
    env.update({HOME_ENV: home, INSTANCE_YAML_ENV: instance.worker_config_text(),
                INSTANCE_SOURCE_ENV: f"{instance.instance_file} (as handed to the container)",
                "PYTHONUNBUFFERED": "1"})
    return env


def create_kwargs(instance: Instance, settings: ContainerSettings, *, image: str, name: str,
                  command: list[str], labels: dict[str, str],
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arguments of ``containers.create`` for a worker or step container."""
    overrides = overrides or {}
    home = instance.home
    sqlite = is_sqlite(instance)
    mount_home = settings.mount_home
    if sqlite and not mount_home:
        raise LaunchError(f"the instance's storage is SQLite ({sqlite}), which a container reaches only through "
                          "its home: set mount_home: true, or use PostgreSQL or MySQL storage",
                          reason="storage_unreachable")
    kwargs: dict[str, Any] = dict(settings.container_kwargs)
    volumes = list(settings.volumes)
    if mount_home:
        volumes.append(f"{home}:{home}:rw")
        if "user" not in kwargs and os.getuid() != 0:
            kwargs["user"] = f"{os.getuid()}:{os.getgid()}"  # files in the home stay the user's
    env = worker_environment(instance, settings, home=home if mount_home else "/opt/runyard-home")
    kwargs.update(image=image, name=name, command=command, environment=env, labels=labels, detach=True,
                  volumes=volumes, init=settings.init, stdin_open=False, tty=False)
    network = overrides.get("network", settings.network)
    networks = [network] if network else list(settings.networks)
    if networks:
        first = networks[0]
        if first in ("host", "none", "bridge") or first.startswith("container:"):
            kwargs["network_mode"] = first
        else:
            kwargs["network"] = first
    mem = overrides.get("mem_limit", settings.mem_limit)
    if mem is not None:
        kwargs["mem_limit"] = mem
        kwargs.setdefault("memswap_limit", mem)  # no swap on top: over the limit means OOMKilled
    cpus = overrides.get("cpus", settings.cpus)
    if cpus is not None:
        kwargs["nano_cpus"] = int(float(cpus) * 1e9)
    if "ulimits" in kwargs:
        import docker

        kwargs["ulimits"] = [docker.types.Ulimit(**u) if isinstance(u, dict) else u for u in kwargs["ulimits"]]
    if "device_requests" in kwargs:
        import docker

        kwargs["device_requests"] = [docker.types.DeviceRequest(**d) if isinstance(d, dict) else d
                                     for d in kwargs["device_requests"]]
    return kwargs


def ensure_image(client: docker.DockerClient, image: str, policy: str) -> None:
    """Make sure the engine has ``image`` per the pull policy; a missing image is a LaunchError
    (``image_not_found``) at once, with no retry loop."""
    import docker

    if policy != "always":
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            if policy == "never":
                raise LaunchError(f"image {image} not found on the Docker engine (image_pull: never): build or "
                                  "load it there first", reason="image_not_found", details={"image": image}) from None
        except docker.errors.APIError as exc:
            raise LaunchError(f"cannot look up image {image}: {_api_message(exc)}", reason="engine_error",
                              details={"image": image}) from None
    try:
        _pull(client, image)
    except docker.errors.APIError as exc:
        raise LaunchError(f"image {image} not found on the Docker engine and it could not be pulled: "
                          f"{_api_message(exc)}", reason="image_not_found", details={"image": image}) from None
    except Exception as exc:  # noqa: BLE001 - a pull that cannot reach its registry
        import requests

        if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
            detail = (f"the engine reported no progress for {client.api.timeout}s (api_timeout_seconds); the "
                      "registry does not answer")
        else:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LaunchError(f"image {image} not found on the Docker engine and it could not be pulled: {detail}",
                          reason="image_not_found", details={"image": image}) from None


def _pull(client: docker.DockerClient, image: str) -> None:
    """Pull ``image``, waiting at most the client's API timeout for each progress message. The SDK's
    own pull waits without any timeout, so a registry that accepts connections and never answers (or
    stalls mid-layer) would hang the launch, and with it the daemon's queue loop, for as long as the
    engine keeps trying. Closing the request makes the engine drop the pull."""
    import json

    import docker
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(image)
    api = client.api
    response = api.post(api._url("/images/create"), params={"fromImage": repository, "tag": tag or "latest"},
                        stream=True, timeout=api.timeout)
    try:
        api._raise_for_status(response)
        for line in response.iter_lines():
            message = json.loads(line) if line.strip() else {}
            if message.get("error"):  # the engine answered 200, then failed (manifest unknown...)
                raise docker.errors.APIError(message["error"], response=response,
                                             explanation=message["error"])
    finally:
        response.close()


def _api_message(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def create_container(client: docker.DockerClient, kwargs: dict[str, Any],
                     extra_networks: list[str]) -> tuple[Container, bool]:
    """Create the container, or find the one of the same name (a retried or doubled launch).
    Returns it and whether it was created now. Engine refusals are typed LaunchErrors."""
    import docker

    name = kwargs["name"]
    try:
        container = client.containers.create(**kwargs)
        created = True
    except docker.errors.ImageNotFound:
        raise LaunchError(f"image {kwargs['image']} not found on the Docker engine", reason="image_not_found",
                          details={"image": kwargs["image"]}) from None
    except docker.errors.NotFound as exc:
        message = _api_message(exc)
        reason = "network_not_found" if "network" in message.lower() else "create_error"
        raise LaunchError(f"the Docker engine refused to create container {name}: {message}", reason=reason,
                          details={"image": kwargs["image"]}) from None
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # the name is taken: this run's container exists already
            return client.containers.get(name), False
        raise LaunchError(f"the Docker engine refused to create container {name}: {_api_message(exc)}",
                          reason="create_error", details={"image": kwargs["image"]}) from None
    try:
        for network in extra_networks:
            client.networks.get(network).connect(container)
    except docker.errors.NotFound as exc:
        remove_quietly(container)
        raise LaunchError(f"network not found: {_api_message(exc)}", reason="network_not_found") from None
    return container, created


def start_container(container: Container) -> None:
    """Start a created container; an engine that cannot start it (no such command...) is a
    LaunchError with the engine's message and the container removed."""
    import docker

    try:
        container.start()
    except docker.errors.APIError as exc:
        if exc.status_code == 304:  # already started (a doubled launch)
            return
        message = _api_message(exc)
        remove_quietly(container)
        # a `network` the engine lacks passes create and fails here ("network NAME not found")
        missing = re.search(r"network (\S+) not found", message)
        raise LaunchError(f"the Docker engine could not start container {container.name}: {message}",
                          reason="network_not_found" if missing else "start_error",
                          details={"container": container.name,
                                   **({"network": missing.group(1)} if missing else {})}) from None


def remove_quietly(container: Any) -> None:
    import docker

    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            raise


def stop_container(container: Any, grace: float) -> None:
    """SIGTERM (the image's stop signal) to PID 1, then SIGKILL after ``grace`` seconds."""
    import docker

    try:
        container.stop(timeout=int(round(grace)))
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if exc.status_code != 304:
            raise
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the engine may report the stop before the state changes
        try:
            container.reload()
        except docker.errors.NotFound:
            return
        if container.attrs.get("State", {}).get("Status") not in ("running", "restarting", "paused", "removing"):
            return
        time.sleep(0.05)
