"""The API calls the launcher and the executor make, on plain dicts (no model round trip: a launch is
one ``POST`` of a dict), and :class:`PodWatch`, a list-then-watch of the pods matching a label
selector that keeps their latest state and calls back on every change.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from runyard.launchers.base import LaunchError

from . import kube
from .settings import JobSettings

log = logging.getLogger("runyard.launcher.k8s")


def _load(response: Any) -> dict[str, Any]:
    return json.loads(response.data or b"{}")


def create_job(settings: JobSettings, namespace: str, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the Job; a Job of that name already there (a doubled or retried launch) is adopted:
    returns (job, created)."""
    name = manifest["metadata"]["name"]
    try:
        response = kube.batch(settings).create_namespaced_job(namespace, manifest, _preload_content=False,
                                                              _request_timeout=settings.api_timeout_seconds)
        return _load(response), True
    except Exception as exc:  # noqa: BLE001 - mapped below
        if kube.status_of(exc) != 409:
            raise kube.launch_error(exc, f"create Job {namespace}/{name}", settings) from None
    found = read_job(settings, namespace, name)
    if found is None:  # deleted between the 409 and the read: a stale conflict, try once more
        return create_job(settings, namespace, manifest)
    return found, False


def read_job(settings: JobSettings, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _load(kube.batch(settings).read_namespaced_job(name, namespace, _preload_content=False,
                                                              _request_timeout=settings.api_timeout_seconds))
    except Exception as exc:  # noqa: BLE001 - mapped below
        if kube.status_of(exc) == 404:
            return None
        raise kube.launch_error(exc, f"read Job {namespace}/{name}", settings) from None


def delete_job(settings: JobSettings, namespace: str, name: str, *, grace_seconds: int | None = None,
               propagation: str = "Foreground") -> bool:
    """Delete a Job and (``Foreground``: before the Job itself goes) its pods, each stopped with
    SIGTERM and ``grace_seconds`` before SIGKILL. Returns False when there was no such Job."""
    body: dict[str, Any] = {"propagationPolicy": propagation}
    if grace_seconds is not None:
        body["gracePeriodSeconds"] = int(grace_seconds)
    try:
        kube.batch(settings).delete_namespaced_job(name, namespace, body=body, _preload_content=False,
                                                   _request_timeout=settings.api_timeout_seconds)
        return True
    except Exception as exc:  # noqa: BLE001 - mapped below
        if kube.status_of(exc) == 404:
            return False
        raise kube.launch_error(exc, f"delete Job {namespace}/{name}", settings) from None


def list_jobs(settings: JobSettings, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    try:
        return _load(kube.batch(settings).list_namespaced_job(
            namespace, label_selector=label_selector, _preload_content=False,
            _request_timeout=settings.api_timeout_seconds)).get("items") or []
    except Exception as exc:  # noqa: BLE001 - mapped below
        raise kube.launch_error(exc, f"list Jobs in {namespace}", settings) from None


def list_pods(settings: JobSettings, namespace: str, label_selector: str) -> list[dict[str, Any]]:
    try:
        return _load(kube.core(settings).list_namespaced_pod(
            namespace, label_selector=label_selector, _preload_content=False,
            _request_timeout=settings.api_timeout_seconds)).get("items") or []
    except Exception as exc:  # noqa: BLE001 - mapped below
        raise kube.launch_error(exc, f"list pods in {namespace}", settings) from None


def pod_log_tail(settings: JobSettings, namespace: str, pod_name: str, lines: int) -> str:
    """The last ``lines`` lines of a pod's log ("" when it has none or is gone)."""
    if lines <= 0:
        return ""
    try:
        response = kube.core(settings).read_namespaced_pod_log(
            pod_name, namespace, tail_lines=lines, _preload_content=False,
            _request_timeout=settings.api_timeout_seconds)
        return (response.data or b"").decode("utf-8", errors="replace")
    except Exception as exc:  # noqa: BLE001 - a log that cannot be read is not a launch failure
        log.debug("cannot read the log of pod %s/%s: %s", namespace, pod_name, exc)
        return ""


def ensure_config_map(settings: JobSettings, namespace: str, manifest: dict[str, Any]) -> None:
    """Create the ConfigMap, or bring an existing one of that name to ``manifest``'s data."""
    name = manifest["metadata"]["name"]
    api = kube.core(settings)
    try:
        api.create_namespaced_config_map(namespace, manifest, _preload_content=False,
                                         _request_timeout=settings.api_timeout_seconds)
        return
    except Exception as exc:  # noqa: BLE001 - mapped below
        if kube.status_of(exc) != 409:
            raise kube.launch_error(exc, f"create ConfigMap {namespace}/{name}", settings) from None
    try:
        current = _load(api.read_namespaced_config_map(name, namespace, _preload_content=False,
                                                       _request_timeout=settings.api_timeout_seconds))
        if current.get("data") != manifest["data"]:
            api.patch_namespaced_config_map(name, namespace, {"data": manifest["data"]}, _preload_content=False,
                                            _request_timeout=settings.api_timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - mapped below
        raise kube.launch_error(exc, f"update ConfigMap {namespace}/{name}", settings) from None


def check_config_map(settings: JobSettings, namespace: str, name: str) -> None:
    """An operator's ConfigMap (``instance_config_map``) must exist before a pod can start from it."""
    try:
        kube.core(settings).read_namespaced_config_map(name, namespace, _preload_content=False,
                                                       _request_timeout=settings.api_timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - mapped below
        if kube.status_of(exc) == 404:
            raise LaunchError(f"ConfigMap {namespace}/{name} (instance_config_map) does not exist: the pods read "
                              "the instance file from it", reason="config_map_not_found") from None
        raise kube.launch_error(exc, f"read ConfigMap {namespace}/{name}", settings) from None


class PodWatch:
    """The pods of one namespace matching ``label_selector``, kept current by a watch in a thread:
    ``on_change(pod, deleted)`` is called for every change (from that thread, so it must be quick or
    hand work on). Reconnects after errors (relisting, so no change is missed); ``pods`` is the latest
    state by name, ``synced`` tells whether it reflects the server (after the first list)."""

    def __init__(self, settings: JobSettings, namespace: str, label_selector: str,
                 on_change: Callable[[dict[str, Any], bool], None], *, name: str = "runyard-k8s-watch"):
        self.settings = settings
        self.namespace = namespace
        self.label_selector = label_selector
        self.on_change = on_change
        self.pods: dict[str, dict[str, Any]] = {}
        self.synced = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # Closing the response alone waits for the watch thread's blocking read (the buffer's
            # lock) until the server sends something or ends the watch, up to a minute: shutting the
            # socket down first ends that read at once.
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing what may be closed
                pass
        self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def _main(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                version = self._relist()
                backoff = 0.2
                self._watch(version)
            except Exception as exc:  # noqa: BLE001 - every failure means: relist and watch again
                if self._stop.is_set():
                    return
                text = kube.server_message(exc)
                if text != self.error:
                    log.warning("watching pods in %s (%s) failed, retrying: %s", self.namespace,
                                self.label_selector, text)
                self.error = text
                self.synced.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _relist(self) -> str | None:
        body = _load(kube.core(self.settings).list_namespaced_pod(
            self.namespace, label_selector=self.label_selector, _preload_content=False,
            _request_timeout=self.settings.api_timeout_seconds))
        items = {p["metadata"]["name"]: p for p in body.get("items") or []}
        gone = [p for n, p in self.pods.items() if n not in items]
        self.pods = items
        if self.error:
            log.warning("watching pods in %s works again", self.namespace)
            self.error = None
        self.synced.set()
        for pod in gone:
            self._notify(pod, True)
        for pod in items.values():
            self._notify(pod, False)
        return (body.get("metadata") or {}).get("resourceVersion")

    def _watch(self, version: str | None) -> None:
        kwargs: dict[str, Any] = {"label_selector": self.label_selector, "watch": True, "timeout_seconds": 60,
                                  "_preload_content": False, "_request_timeout": (10, 75)}
        if version and version.isdigit():
            kwargs["resource_version"] = version
        self._response = response = kube.core(self.settings).list_namespaced_pod(self.namespace, **kwargs)
        try:
            started = time.monotonic()
            for line in response:
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                pod = event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: the version is too old, relist
                    raise RuntimeError(f"watch error: {pod.get('message') or pod}")
                if kind not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                name = pod.get("metadata", {}).get("name")
                if not name:
                    continue
                if kind == "DELETED":
                    self.pods.pop(name, None)
                else:
                    self.pods[name] = pod
                self._notify(pod, kind == "DELETED")
            if time.monotonic() - started < 1.0 and not self._stop.is_set():
                self._stop.wait(0.5)  # a server that ends watches at once: don't spin
        finally:
            self._response = None
            response.release_conn()

    def _notify(self, pod: dict[str, Any], deleted: bool) -> None:
        try:
            self.on_change(pod, deleted)
        except Exception:  # noqa: BLE001 - one callback's trouble never stops the watch
            log.exception("handling a change of pod %s failed", pod.get("metadata", {}).get("name"))
