"""Talking to the Kubernetes API: one client per cluster setting in this process, the namespace to
use, and API errors turned into typed :class:`LaunchError`\\ s.

Only plain API calls a real API server serves are used (create, read, list and watch with label
selectors, delete with a propagation policy, the pod ``log`` subresource), so the test emulator
(docs/plugins/launcher_k8s.md, "What was tested how") and a real cluster behave the same for it.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from runyard.launchers.base import LaunchError

from .settings import JobSettings

if TYPE_CHECKING:  # pragma: no cover
    from kubernetes.client import ApiClient

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: concurrent requests one client carries (the daemon's launches, a step executor's pool, watches)
POOL_SIZE = 32

_clients: dict[tuple, tuple[ApiClient, str]] = {}
_lock = threading.Lock()


def _in_cluster(settings: JobSettings) -> bool:
    if settings.in_cluster is not None:
        return settings.in_cluster
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (settings.kubeconfig or settings.context)


def describe(settings: JobSettings) -> str:
    """Which cluster, in words, for messages."""
    if _in_cluster(settings):
        return "the cluster this pod runs in (in_cluster)"
    path = settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return f"kubeconfig {path}" + (f", context {settings.context}" if settings.context else "")


def client_for(settings: JobSettings) -> tuple[ApiClient, str]:
    """The API client for ``settings`` and the default namespace of that cluster setting (the pod's own
    in a cluster, the context's from a kubeconfig, else ``default``). A kubeconfig that cannot be read
    is a :class:`LaunchError` (``kubeconfig_error``) naming it."""
    key = (_in_cluster(settings), settings.kubeconfig, settings.context)
    with _lock:
        found = _clients.get(key)
        if found is not None:
            return found
        from kubernetes import client, config

        configuration = client.Configuration()
        namespace = "default"
        try:
            if key[0]:
                config.load_incluster_config(client_configuration=configuration)
                try:
                    with open(os.path.join(SERVICE_ACCOUNT_DIR, "namespace")) as fh:
                        namespace = fh.read().strip() or namespace
                except OSError:
                    pass
            else:
                path = settings.kubeconfig or os.environ.get("KUBECONFIG") or None
                config.load_kube_config(config_file=path, context=settings.context,
                                        client_configuration=configuration)
                contexts, active = config.list_kube_config_contexts(config_file=path)
                chosen = (next((c for c in contexts if c["name"] == settings.context), None) if settings.context
                          else active)
                namespace = (chosen or {}).get("context", {}).get("namespace") or namespace
        except Exception as exc:  # noqa: BLE001 - the client raises several types for one problem
            raise LaunchError(f"cannot use {describe(settings)}: {exc}", reason="kubeconfig_error") from None
        configuration.connection_pool_maxsize = POOL_SIZE
        api = client.ApiClient(configuration)
        _clients[key] = (api, namespace)
        return api, namespace


def namespace_of(settings: JobSettings) -> str:
    return settings.namespace or client_for(settings)[1]


def batch(settings: JobSettings) -> Any:
    from kubernetes import client

    return client.BatchV1Api(client_for(settings)[0])


def core(settings: JobSettings) -> Any:
    from kubernetes import client

    return client.CoreV1Api(client_for(settings)[0])


def forget_clients() -> None:
    with _lock:
        for api, _ in _clients.values():
            try:
                api.close()
            except Exception:  # noqa: BLE001 - closing what may already be closed
                pass
        _clients.clear()


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error (None when the server was not reached)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status or None
    return None


def server_message(exc: BaseException) -> str:
    """The API server's own message in an error (its Status object's ``message``), else the error."""
    import json

    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)[:500]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def launch_error(exc: BaseException, what: str, settings: JobSettings) -> LaunchError:
    """An API failure while doing ``what`` as a :class:`LaunchError` with a reason a user can act on:
    ``api_unreachable``, ``forbidden`` (RBAC), ``namespace_not_found``, ``invalid_manifest``,
    ``api_error``."""
    status = status_of(exc)
    text = server_message(exc)
    where = describe(settings)
    if status is None:
        return LaunchError(f"the Kubernetes API ({where}) did not answer while trying to {what}: {text}",
                           reason="api_unreachable")
    if status in (401, 403):
        return LaunchError(f"the Kubernetes API refused to {what} ({status}): {text}. Give the service account "
                           "the RBAC of docs/plugins/launcher_k8s.md", reason="forbidden")
    if status == 404 and "namespace" in text.lower():
        return LaunchError(f"cannot {what}: {text}", reason="namespace_not_found")
    if status in (400, 422):
        return LaunchError(f"the Kubernetes API rejected the manifest while trying to {what}: {text}",
                           reason="invalid_manifest")
    return LaunchError(f"the Kubernetes API failed to {what} ({status}): {text}", reason="api_error")
