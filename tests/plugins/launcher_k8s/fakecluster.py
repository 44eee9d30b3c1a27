"""A fake one-node Kubernetes cluster for tests and benchmarks: an API server over real HTTP plus a node
agent that really runs each Job's pod as a container on the Docker engine.

No real API server can run on these machines (docs: DESIGN.md §6), so this module serves the
Kubernetes API from kmock's ``KubernetesEmulator`` (a subclass, :class:`FakeApiServer`) and closes
the gaps a client of the official ``kubernetes`` package meets there: label and field selectors on
list and watch, ``uid``/``resourceVersion``/``creationTimestamp``/``generation``, watches that honour
``timeoutSeconds`` and ``resourceVersion``, typed lists (``JobList``...), namespaces, PUT, the
``status``, ``log`` and ``eviction`` subresources, Status errors as a real server sends them
(``NotFound``, ``AlreadyExists``, ``Conflict``, ``Invalid``), DeleteOptions with grace periods and
``propagationPolicy``, finalizers, Secret ``stringData``, ``generateName``, ``limit``/``continue`` and
the API server's defaults for Jobs and Pods (``backoffLimit: 6``, selector and labels, pull policy).
kmock still serves discovery (``/api``, ``/apis/...``) and the HTTP server. Watches send no BOOKMARK
events (``allowWatchBookmarks`` is accepted); a ``resourceVersion`` older than the last 50,000 events
of a resource gets ``410 Expired``. Not served: OpenAPI, server-side apply semantics (an apply patch is
a merge patch), field managers, RBAC, admission.

The node agent (:class:`NodeAgent`) is this cluster's scheduler, job controller, kubelet, garbage
collector and TTL controller. It runs in threads of the same process and talks to the API server
only over HTTP with the ``kubernetes`` client (list, watch, create, patch, delete), as a real
controller would. It knows nothing about runyard. What it does:

- Job controller: one pod at a time per Job (``completions`` run one after another), pods named
  ``<job>-<5 random chars>`` with the template's labels plus ``job-name``, ``controller-uid`` (and
  their ``batch.kubernetes.io/`` forms) and an ownerReference to the Job; Job ``startTime``,
  ``active``, ``succeeded``, ``failed``, ``completionTime`` and ``Complete``/``Failed`` conditions
  (reasons ``BackoffLimitExceeded``, ``DeadlineExceeded``). A failed pod is replaced while
  ``failed <= backoffLimit`` (without the back-off delay). As in a real cluster, a pod of an active
  Job that is deleted or evicted before it finished counts as failed: with ``backoffLimit: 0`` the
  Job fails with ``BackoffLimitExceeded``. ``activeDeadlineSeconds`` counts from ``startTime``.
  ``ttlSecondsAfterFinished`` deletes the finished Job and its pods. ``suspend`` Jobs wait.
- Scheduler: one node (``fake-node``, labels ``kubernetes.io/os=linux``,
  ``kubernetes.io/hostname=fake-node`` plus ``--node-label``s, allocatable 64 CPU and 64Gi, no
  taints). ``nodeSelector``, required nodeAffinity (In/NotIn/Exists/DoesNotExist/Gt/Lt) and resource
  requests are checked once; a pod that does not fit stays Pending with ``PodScheduled=False``,
  reason ``Unschedulable`` and the scheduler's message.
- Kubelet (``--mode docker``): runs the pod's first container (other containers and init
  containers are ignored) with the host network, ``--init``, the image (pull policies as a kubelet;
  no registry is reachable here, so a pull fails: ``ErrImagePull`` then ``ImagePullBackOff``),
  command/args (with ``$(VAR)`` expansion), env/envFrom (Secrets, ConfigMaps, fieldRef), volumes
  (hostPath, emptyDir, configMap, secret; ``subPath``, ``readOnly``), memory and cpu limits,
  ``workingDir``, ``runAsUser``/``runAsGroup``. Pod status as a kubelet writes it, container exit
  seen through the engine's wait call, output captured for ``pods/log`` (live while the container
  runs, ``follow=true`` streams it; kept after it ends until the pod is deleted; no ``previous``),
  ``terminationMessagePolicy: FallbackToLogsOnError``, restarts for ``OnFailure`` and ``Always``,
  core/v1 Events (Scheduled, FailedScheduling, Pulled, Failed, Created, Started, Killing, Evicted,
  and the job controller's). A deleted pod gets SIGTERM, ``deletionGracePeriodSeconds``, SIGKILL,
  then is removed. Not done: probes, ports, services, DNS, service-account tokens and in-cluster
  config (no TLS), init/sidecar containers, ``imagePullSecrets``, PVCs (an empty directory).
- Eviction: a ``pods/eviction`` POST stands for the node running out of memory (a real API server
  would delete the pod instead): the pod ends ``Failed`` with ``reason: Evicted``.
- Garbage collector: ``propagationPolicy: Foreground`` keeps the Job (``deletionTimestamp``,
  finalizer ``foregroundDeletion``) until its pods are gone; ``Background`` deletes the Job at once and
  its pods after; ``Orphan`` (the API's default for batch/v1 Jobs) strips the pods' ownerReferences.
- ``--mode instant`` (benchmarks of a launcher, not of Kubernetes): no Docker; each Job gets its pod,
  which ends Succeeded at once with an empty log, and the Job ``Complete`` (no Events).

Run ``python fakecluster.py serve --port 0 --ready-file F`` (it writes the URL to F when ready and,
on SIGTERM, removes every container it started), or use :class:`FakeCluster` from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import copy
import datetime
import heapq
import itertools
import json
import logging
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock

log = logging.getLogger("fakecluster")

CLUSTER_LABEL = "org.runyard.test.fakecluster"
POD_LABEL = "org.runyard.test.fakecluster.pod"
NAMESPACE_LABEL = "org.runyard.test.fakecluster.namespace"
NODE_NAME = "fake-node"
ALLOCATABLE = {"cpu": "64", "memory": "64Gi", "pods": "110"}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
HERE = Path(__file__).resolve()
VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fakecluster", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "", "compiler": "fakecluster", "platform": "linux/amd64"}


def now_iso(offset: float = 0.0) -> str:
    moment = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Selectors, quantities, patches
# --------------------------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*(\S*))?\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b=c``)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> Callable[[dict[str, str]], bool]:
    """A predicate over a labels dict for a ``labelSelector`` query (=, ==, !=, in, notin, exists, !)."""
    if not text:
        return lambda labels: True
    tests: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_selector(text):
        match = _SET_RE.match(part)
        if not match:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r} in labelSelector {text!r}")
        negate, key, set_op, values, op, value = match.groups()
        if set_op:
            choices = {item.strip() for item in values.split(",") if item.strip()}
            if set_op == "in":
                tests.append(lambda labels, k=key, c=choices: labels.get(k) in c)
            else:
                tests.append(lambda labels, k=key, c=choices: labels.get(k) not in c)
        elif op in ("=", "=="):
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif op == "!=":
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif negate:
            tests.append(lambda labels, k=key: k not in labels)
        else:
            tests.append(lambda labels, k=key: k in labels)
    return lambda labels: all(test(labels) for test in tests)


def _field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def parse_field_selector(text: str | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate over an object for a ``fieldSelector`` query (``metadata.name=x,status.phase!=Failed``)."""
    if not text:
        return lambda obj: True
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for part in _split_selector(text):
        match = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not match:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        path, op, value = match.groups()
        if op == "!=":
            tests.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
        else:
            tests.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
    return lambda obj: all(test(obj) for test in tests)


_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value: Any) -> float:
    """A Kubernetes quantity (``64Mi``, ``500m``, ``1.5``, ``2G``, ``1e3``) as a number."""
    text = str(value).strip()
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?", text)
    if not match:
        raise ValueError(f"quantity {value!r} is not a Kubernetes quantity (e.g. 64Mi, 500m, 2)")
    return float(match.group(1)) * _SUFFIXES[match.group(2) or ""]


_MERGE_KEYS = {"conditions": "type", "containerStatuses": "name", "initContainerStatuses": "name",
               "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
               "volumeMounts": "mountPath", "ports": "containerPort", "ownerReferences": "uid",
               "imagePullSecrets": "name", "tolerations": "key"}


def merge_patch(target: Any, patch: Any, *, strategic: bool = False, key: str | None = None) -> Any:
    """RFC 7386 merge patch; with ``strategic``, the lists Kubernetes merges by key are merged so.

    The result shares the parts the patch does not touch with ``target`` and takes the patch's values
    as they are: both are treated as immutable (the store never changes an object in place)."""
    if isinstance(patch, list) and strategic and key in _MERGE_KEYS and isinstance(target, list):
        merge_key = _MERGE_KEYS[key]
        result = list(target)
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                return patch
            found = next((i for i, old in enumerate(result) if isinstance(old, dict)
                          and old.get(merge_key) == item[merge_key]), None)
            if item.get("$patch") == "delete":
                if found is not None:
                    result.pop(found)
            elif found is None:
                result.append(item)
            else:
                result[found] = merge_patch(result[found], item, strategic=True)
        return result
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if name.startswith("$"):
            continue
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value, strategic=strategic, key=name)
    return result


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 (add, replace, remove, test, copy, move) on a copy of ``target``."""
    doc = copy.deepcopy(target)

    def locate(pointer: str) -> tuple[Any, str]:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        return node, parts[-1]

    def get(pointer: str) -> Any:
        node, last = locate(pointer)
        return node[int(last)] if isinstance(node, list) else node[last]

    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        try:
            if kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(422, "Invalid", f"the json patch test at {path} failed")
                continue
            if kind in ("copy", "move"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    node, last = locate(op["from"])
                    node.pop(int(last) if isinstance(node, list) else last)
                kind, op = "add", {"path": path, "value": value}
            node, last = locate(path)
            if kind == "remove":
                node.pop(int(last) if isinstance(node, list) else last)
            elif kind == "add" and isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), op["value"])
            elif kind in ("add", "replace"):
                if isinstance(node, list):
                    node[int(last)] = op["value"]
                else:
                    node[last] = op["value"]
            else:
                raise ApiError(422, "Invalid", f"unsupported json patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"the json patch operation {op} does not apply: {exc!r}") from None
    return doc


# --------------------------------------------------------------------------------------------------
# The API server
# --------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How a real server names the resource in messages: ``pods``, ``jobs.batch``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = {(k.group, k.version, k.plural): k for k in [
    Kind("", "v1", "pods", "Pod", status_subresource=True, subresources=("status", "log", "eviction")),
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True, subresources=("status",)),
    Kind("", "v1", "nodes", "Node", namespaced=False, status_subresource=True, subresources=("status",)),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "configmaps", "ConfigMap"),
    Kind("", "v1", "events", "Event"),
    Kind("", "v1", "services", "Service", status_subresource=True, subresources=("status",)),
    Kind("", "v1", "serviceaccounts", "ServiceAccount"),
    Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status_subresource=True,
         subresources=("status",)),
    Kind("batch", "v1", "jobs", "Job", status_subresource=True, subresources=("status",)),
    Kind("batch", "v1", "cronjobs", "CronJob", status_subresource=True, subresources=("status",)),
    Kind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", status_subresource=True,
         subresources=("status",)),
    Kind("events.k8s.io", "v1", "events", "Event"),
    Kind("coordination.k8s.io", "v1", "leases", "Lease"),
]}
BY_KIND = {(k.api_version, k.kind): k for k in KINDS.values()}
POD = KINDS[("", "v1", "pods")]
JOB = KINDS[("batch", "v1", "jobs")]
NAMESPACE = KINDS[("", "v1", "namespaces")]
SECRET = KINDS[("", "v1", "secrets")]

_ROUTE = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$")
_NAMESPACE_OBJECT = re.compile(r"^/api/v1/namespaces/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?/?$")


@dataclass(frozen=True)
class Route:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_route(path: str) -> Route | None:
    """The resource a path addresses, or None for non-resource paths (discovery, /version...)."""
    match = _NAMESPACE_OBJECT.match(path)
    if match:
        return Route(NAMESPACE, None, match["name"], match["sub"])
    match = _ROUTE.match(path)
    if not match:
        return None
    group, version = ("", "v1") if match["core"] else (match["group"], match["version"])
    kind = KINDS.get((group, version, match["plural"]))
    if kind is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource",
                       {"group": group, "kind": match["plural"]})
    if match["ns"] is not None and not kind.namespaced:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(kind, match["ns"], match["name"], match["sub"])


@dataclass(eq=False)
class _Watcher:
    kind: Kind
    namespace: str | None
    labels: Callable[[dict[str, str]], bool]
    fields: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)


# (namespace, pod, container, tailLines, follow) -> the log text, a stream of its chunks (follow on a
# running container: a blocking iterator with close()), or None when there is no log yet
LogSource = Callable[[str, str, str, int | None, bool], "str | Iterator[bytes] | None"]



_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_HISTORY = 50_000
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False, ensure_ascii=False)


@attrs.define(kw_only=True)
class FakeApiServer(kmock.KubernetesEmulator):
    """kmock's emulator with the object API of a real server (see the module docstring).

    Every resource request (``/api/v1/...``, ``/apis/G/V/...``) is served from this class's own store,
    kept as immutable dicts per resource, each change bumping one global ``resourceVersion`` and
    recorded in a bounded history that watches resume from; discovery and ``/version`` stay kmock's.
    ``log_source`` answers ``pods/log`` (see :data:`LogSource`); ``follow=true`` streams a running
    container's output until it ends.
    """

    log_source: LogSource | None = None
    _objects_by_kind: dict[Kind, dict[tuple[str | None, str], dict[str, Any]]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False)
    _rv: int = attrs.field(default=1, init=False)
    _history: dict[Kind, collections.deque] = attrs.field(
        factory=lambda: collections.defaultdict(lambda: collections.deque(maxlen=_HISTORY)), init=False)
    _compacted: dict[Kind, int] = attrs.field(factory=lambda: collections.defaultdict(int), init=False)
    _watchers: dict[Kind, set[_Watcher]] = attrs.field(factory=lambda: collections.defaultdict(set), init=False)
    _encoded: dict[int, tuple[dict[str, Any], bytes]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in KINDS.values():
            info = self.resources[kmock.resource(kind.group, kind.version, kind.plural)]
            info.kind, info.namespaced, info.singular = kind.kind, kind.namespaced, kind.kind.lower()
            info.verbs = {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
            info.subresources = set(kind.subresources)
        for name in DEFAULT_NAMESPACES:
            self._create(NAMESPACE, None, {"metadata": {"name": name}})

    # ---- HTTP entry ----

    def _encode(self, obj: dict[str, Any]) -> bytes:
        """An object's JSON, encoded once for the response and every watch that sends it (stored
        objects never change, so the bytes stay right while the object lives)."""
        hit = self._encoded.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        data = _ENCODER.encode(obj).encode()
        self._encoded[id(obj)] = (obj, data)
        if len(self._encoded) > 4096:
            del self._encoded[next(iter(self._encoded))]
        return data

    def _respond(self, obj: dict[str, Any], status: int = 200) -> aiohttp.web.Response:
        if obj.get("items") is not None and "metadata" in obj and obj.get("kind", "").endswith("List"):
            head = _ENCODER.encode({k: v for k, v in obj.items() if k != "items"}).encode()
            body = head[:-1] + b',"items":[' + b",".join(self._encode(item) for item in obj["items"]) + b"]}"
        else:
            body = self._encode(obj)
        return aiohttp.web.Response(body=body, status=status, content_type="application/json")

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            if raw.path.rstrip("/") == "/version":  # the client asks for /version/, kmock serves /version only
                return aiohttp.web.json_response(VERSION)
            route = parse_route(raw.path)
            if route is None:
                return await super().__call__(raw)
            return await self._serve(raw, route)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except Exception as exc:  # noqa: BLE001 - answered as a Status, as a server would
            log.exception("fakecluster: %s %s failed", raw.method, raw.path_qs)
            return aiohttp.web.json_response(ApiError(500, "InternalError", repr(exc)).status(), status=500)

    async def _serve(self, raw: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        query = raw.query
        body = await raw.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            raise ApiError(400, "BadRequest", "the request body is not JSON") from None
        kind, ns, name, sub, method = route.kind, route.namespace, route.name, route.subresource, raw.method
        if kind.namespaced and ns is None and method not in ("GET",):
            raise ApiError(405, "MethodNotAllowed", f"{kind.plural} must be addressed in a namespace")
        dry = bool(query.get("dryRun"))
        if sub == "log" and kind is POD and method == "GET":
            return await self._serve_log(raw, ns, name, query)
        if sub == "eviction" and kind is POD and method == "POST":
            self._evict(ns, name)
            return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                              "status": "Success", "code": 201}, status=201)
        if sub not in (None, "status") or (sub and sub not in kind.subresources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._watch(raw, kind, ns, query)
            if method == "GET":
                return self._respond(self._list(kind, ns, query))
            if method == "POST":
                if ns is None and kind.namespaced:
                    raise ApiError(405, "MethodNotAllowed", f"{kind.plural} are created in a namespace")
                created = self._create(kind, ns, data, dry_run=dry)
                return self._respond(created, status=201)
            if method == "DELETE":
                items = self._list(kind, ns, query)["items"]
                for item in items:
                    self._delete(kind, item["metadata"].get("namespace"), item["metadata"]["name"], data, query)
                return self._respond(self._list_body(kind, items))
        else:
            if method == "GET" and query.get("watch") in ("true", "1"):
                fields = f"metadata.name={name}" + (f",{query['fieldSelector']}" if query.get("fieldSelector") else "")
                return await self._watch(raw, kind, ns, {**query, "fieldSelector": fields})
            if method == "GET":
                return self._respond(self._get(kind, ns, name))
            if method == "PUT":
                return self._respond(self._replace(kind, ns, name, data, sub, dry_run=dry))
            if method == "PATCH":
                ctype = raw.headers.get("Content-Type", "application/merge-patch+json").split(";")[0].strip()
                return self._respond(self._patch(kind, ns, name, data, ctype, sub, dry_run=dry))
            if method == "DELETE" and sub is None:
                return self._respond(self._delete(kind, ns, name, data, query, dry_run=dry))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {raw.path}")

    # ---- store ----

    def _not_found(self, kind: Kind, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', _details(kind, name))

    def _get(self, kind: Kind, ns: str | None, name: str) -> dict[str, Any]:
        obj = self._objects_by_kind[kind].get((ns if kind.namespaced else None, name))
        if obj is None:
            raise self._not_found(kind, name)
        return obj

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, kind: Kind, etype: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        history = self._history[kind]
        if len(history) == history.maxlen:
            self._compacted[kind] = history[0][0]
        history.append((int(new["metadata"]["resourceVersion"]), etype, old, new))
        for watcher in self._watchers.get(kind, ()):
            event = self._event_for(watcher, etype, old, new)
            if event is not None:
                watcher.queue.put_nowait(event)

    @staticmethod
    def _event_for(watcher: _Watcher, etype: str, old: dict[str, Any] | None,
                   new: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The event a watcher sees: a change that makes an object (no longer) match its selectors is
        an ADDED (DELETED) for it, as on a real server."""
        now = watcher.matches(new)
        if etype != "MODIFIED":
            return (etype, new) if now else None
        was = watcher.matches(old)
        if was and now:
            return ("MODIFIED", new)
        if now:
            return ("ADDED", new)
        if was:
            return ("DELETED", new)
        return None

    def _put(self, kind: Kind, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
        """Store ``new`` (a fresh dict, never mutated afterwards) with a new resourceVersion; an object
        being deleted whose last finalizer is gone is removed instead."""
        meta = new["metadata"] = dict(new["metadata"])
        meta["resourceVersion"] = self._next_rv()
        key = (meta.get("namespace"), meta["name"])
        terminating = kind is POD and meta.get("deletionGracePeriodSeconds")  # until the kubelet confirms
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not terminating:
            self._objects_by_kind[kind].pop(key, None)
            self._emit(kind, "DELETED", old, new)
            return new
        self._objects_by_kind[kind][key] = new
        self._emit(kind, "MODIFIED" if old is not None else "ADDED", old, new)
        return new

    def _remove(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        last = copy.deepcopy(obj)
        last["metadata"]["resourceVersion"] = self._next_rv()
        self._objects_by_kind[kind].pop((last["metadata"].get("namespace"), last["metadata"]["name"]), None)
        self._emit(kind, "DELETED", obj, last)
        return last

    # ---- verbs ----

    def _list_body(self, kind: Kind, items: list[dict[str, Any]], cont: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if cont:
            meta["continue"] = cont
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta, "items": items}

    def _list(self, kind: Kind, ns: str | None, query: Any) -> dict[str, Any]:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"))
        keys = sorted(k for k in self._objects_by_kind[kind] if ns is None or k[0] == ns)
        if query.get("continue"):
            start = tuple(json.loads(base64.b64decode(query["continue"])))
            keys = [k for k in keys if (k[0] or "", k[1]) > (start[0] or "", start[1])]
        limit = int(query.get("limit") or 0)
        items: list[dict[str, Any]] = []
        cont = None
        for index, key in enumerate(keys):
            obj = self._objects_by_kind[kind][key]
            if labels(obj["metadata"].get("labels") or {}) and fields(obj):
                items.append(obj)
                if limit and len(items) >= limit and index < len(keys) - 1:
                    cont = base64.b64encode(json.dumps([key[0], key[1]]).encode()).decode()
                    break
        return self._list_body(kind, items, cont)

    def _create(self, kind: Kind, ns: str | None, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"the body of a {kind.kind} create is not a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        if kind.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            if ns not in DEFAULT_NAMESPACES and (None, ns) not in self._objects_by_kind[NAMESPACE]:
                raise ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f'{kind.kind} "" is invalid: metadata.name: Required value: '
                                               "name or generateName is required")
            existing = self._objects_by_kind[kind]
            while True:
                name = meta["generateName"] + "".join(random.choices(_GENERATE_CHARS, k=5))
                if (meta.get("namespace"), name) not in existing:
                    break
            meta["name"] = name
        name = meta["name"]
        if not _NAME_RE.match(name) or len(name) > 253:
            raise ApiError(422, "Invalid", f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: '
                                           f'"{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                                           "alphanumeric characters, '-' or '.', and must start and end with an "
                                           "alphanumeric character")
        if (meta.get("namespace"), name) in self._objects_by_kind[kind]:
            raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists', _details(kind, name))
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(transient, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        self._default(kind, obj)
        if dry_run:
            return obj
        return self._put(kind, None, obj)

    def _default(self, kind: Kind, obj: dict[str, Any]) -> None:
        """What a real API server's defaulting and validation do to the kinds the agent handles."""
        if kind is SECRET:
            data = dict(obj.get("data") or {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif kind is NAMESPACE:
            obj["status"] = {"phase": "Active"}
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif kind is POD:
            self._default_pod_spec(obj, obj.setdefault("spec", {}), f"Pod \"{obj['metadata']['name']}\"", "spec")
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj["spec"])}
        elif kind is JOB:
            self._default_job(obj)

    @staticmethod
    def _default_pod_spec(obj: dict[str, Any], spec: dict[str, Any], what: str, path: str) -> None:
        containers = spec.get("containers") or []
        if not containers:
            raise ApiError(422, "Invalid", f"{what} is invalid: {path}.containers: Required value")
        for index, container in enumerate(containers):
            for key in ("name", "image"):
                if not container.get(key):
                    raise ApiError(422, "Invalid",
                                   f"{what} is invalid: {path}.containers[{index}].{key}: Required value")
            image = container["image"]
            tag = image.rsplit("/", 1)[-1]
            if "@" not in tag:
                latest = ":" not in tag or tag.endswith(":latest")
                container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")

    def _default_job(self, obj: dict[str, Any]) -> None:
        name, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
        what = f'Job.batch "{name}"'
        spec = obj.setdefault("spec", {})
        template = spec.get("template") or {}
        spec["template"] = template
        pod_spec = template.setdefault("spec", {})
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            raise ApiError(422, "Invalid", f'{what} is invalid: spec.template.spec.restartPolicy: '
                                           f'Required value: valid values: "OnFailure", "Never"',
                           {"name": name, "group": "batch", "kind": "Job"})
        self._default_pod_spec(obj, pod_spec, what, "spec.template.spec")
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
        obj["status"] = {}

    def _replace(self, kind: Kind, ns: str | None, name: str, body: Any, sub: str | None,
                 *, dry_run: bool = False) -> dict[str, Any]:
        old = self._get(kind, ns, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of a replace is not a JSON object")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({meta['name']}) does not match the name "
                                              f"on the URL ({name})")
        self._check_version(kind, old, meta)
        if sub == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status") or {})
        else:
            new = self._updated(kind, old, copy.deepcopy(body))
        return new if dry_run else self._put(kind, old, new)

    def _check_version(self, kind: Kind, old: dict[str, Any], meta: dict[str, Any]) -> None:
        wanted = meta.get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} '
                                            f'"{old["metadata"]["name"]}": the object has been modified; please '
                                            "apply your changes to the latest version and try again",
                           _details(kind, old["metadata"]["name"]))

    def _updated(self, kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """``new`` as an update of ``old``: identity and system fields kept, status kept when it has its
        own subresource, generation bumped when the spec changed."""
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        meta = new["metadata"] = dict(new.get("metadata") or {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        if old["metadata"].get("deletionTimestamp") and set(meta.get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or []):
            raise ApiError(422, "Invalid", "no new finalizers can be added if the object is being deleted")
        if kind.status_subresource:
            new["status"] = old.get("status", {})
        if kind is SECRET and "stringData" in new:
            self._default(kind, new)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        return new

    def _patch(self, kind: Kind, ns: str | None, name: str, patch: Any, ctype: str, sub: str | None,
               *, dry_run: bool = False) -> dict[str, Any]:
        old = self._get(kind, ns, name)
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "a json patch is a JSON list of operations")
            patched = json_patch(old, patch)
        elif isinstance(patch, dict):
            self._check_version(kind, old, patch.get("metadata") or {})
            patched = merge_patch(old, patch, strategic=ctype == "application/strategic-merge-patch+json")
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the patch body is not valid for {ctype}")
        if sub == "status":
            new = {**old, "status": patched.get("status") or {}}
        else:
            new = self._updated(kind, old, patched)
            new["metadata"].pop("resourceVersion", None)
        return new if dry_run else self._put(kind, old, new)

    def _dependents(self, owner: dict[str, Any]) -> list[tuple[Kind, dict[str, Any]]]:
        uid, ns = owner["metadata"]["uid"], owner["metadata"].get("namespace")
        found = []
        for kind in (POD, JOB):
            for (obj_ns, _), obj in self._objects_by_kind[kind].items():
                if (ns is None or obj_ns == ns) and any(
                        ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append((kind, obj))
        return found

    def _delete(self, kind: Kind, ns: str | None, name: str, options: Any, query: Any,
                *, dry_run: bool = False) -> dict[str, Any]:
        old = self._get(kind, ns, name)
        options = options if isinstance(options, dict) else {}
        if dry_run:
            return old
        policy = options.get("propagationPolicy") or query.get("propagationPolicy")
        if options.get("orphanDependents") is True or query.get("orphanDependents") == "true":
            policy = "Orphan"
        policy = policy or ("Orphan" if kind is JOB else "Background")
        grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        grace = int(grace) if grace is not None else None
        meta = old["metadata"]
        if kind is POD:
            spec, phase = old.get("spec", {}), old.get("status", {}).get("phase")
            grace = spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
            graceful = grace > 0 and spec.get("nodeName") and phase not in ("Succeeded", "Failed")
            if meta.get("deletionTimestamp") and (graceful or meta.get("finalizers")):
                return old
            if graceful:
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_iso(grace)
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._put(kind, old, new)
            if meta.get("deletionTimestamp"):
                return self._remove(kind, old)
        if kind is NAMESPACE:
            for other in list(KINDS.values()):
                for (obj_ns, _), obj in list(self._objects_by_kind[other].items()):
                    if other.namespaced and obj_ns == name:
                        self._remove(other, obj)
        if meta.get("deletionTimestamp"):
            return old
        if policy == "Orphan":
            for dep_kind, dep in self._dependents(old):
                updated = copy.deepcopy(dep)
                updated["metadata"]["ownerReferences"] = [
                    ref for ref in dep["metadata"]["ownerReferences"] if ref.get("uid") != meta["uid"]]
                self._put(dep_kind, dep, updated)
        if policy == "Foreground" and self._dependents(old):
            new = copy.deepcopy(old)
            new["metadata"]["finalizers"] = [*meta.get("finalizers", []), "foregroundDeletion"]
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._put(kind, old, new)
        if meta.get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = grace or 0
            return self._put(kind, old, new)
        return self._remove(kind, old)

    def _evict(self, ns: str | None, name: str) -> None:
        old = self._get(POD, ns, name)
        new = copy.deepcopy(old)
        conditions = [c for c in new.setdefault("status", {}).get("conditions", []) if c["type"] != "DisruptionTarget"]
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                           "message": "Eviction API: evicting", "lastTransitionTime": now_iso()})
        new["status"]["conditions"] = conditions
        self._put(POD, old, new)

    async def _stream_log(self, raw: aiohttp.web.BaseRequest, chunks: Any) -> aiohttp.web.StreamResponse:
        """Relay a blocking iterator of log chunks (read in a thread) until it ends or the client goes."""
        loop = asyncio.get_running_loop()
        received: asyncio.Queue[bytes | None] = asyncio.Queue()

        def pump() -> None:
            try:
                for chunk in chunks:
                    loop.call_soon_threadsafe(received.put_nowait, chunk)
            except Exception:  # noqa: BLE001 - the stream was closed: the client went away
                pass
            finally:
                loop.call_soon_threadsafe(received.put_nowait, None)

        threading.Thread(target=pump, name="fakecluster-log-follow", daemon=True).start()
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        try:
            await response.prepare(raw)
            while (chunk := await received.get()) is not None:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
        return response

    async def _serve_log(self, raw: aiohttp.web.BaseRequest, ns: str | None, name: str,
                         query: Any) -> aiohttp.web.StreamResponse:
        pod = self._get(POD, ns, name)
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        container = query.get("container") or containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        follow = query.get("follow") in ("true", "1")
        text = None
        loop = asyncio.get_running_loop()
        if self.log_source is not None:
            text = await loop.run_in_executor(None, self.log_source, ns or "", name, container, tail, follow)
        if text is not None and not isinstance(text, str):
            return await self._stream_log(raw, text)
        if text is None:
            statuses = pod.get("status", {}).get("containerStatuses") or [{}]
            reason = statuses[0].get("state", {}).get("waiting", {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode(errors="replace")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _watch(self, raw: aiohttp.web.BaseRequest, kind: Kind, ns: str | None,
                     query: Any) -> aiohttp.web.StreamResponse:
        watcher = _Watcher(kind, ns, parse_label_selector(query.get("labelSelector")),
                           parse_field_selector(query.get("fieldSelector")))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        since = query.get("resourceVersion")
        initial: list[tuple[str, dict[str, Any]]] = []
        gone = None
        if not since or since == "0":
            initial = [("ADDED", item) for item in self._list(kind, ns, query)["items"]]
        else:
            try:
                since_rv = int(since)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}") from None
            if since_rv < self._compacted[kind]:
                gone = ApiError(410, "Expired", f"too old resource version: {since_rv} ({self._compacted[kind]})")
            else:
                for rv, etype, old, new in self._history[kind]:
                    if rv > since_rv:
                        event = self._event_for(watcher, etype, old, new)
                        if event is not None:
                            initial.append(event)
        self._watchers[kind].add(watcher)
        try:
            response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            await response.prepare(raw)
            if gone is not None:
                await response.write(json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n")
                return response
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            pending = collections.deque(initial)
            while True:
                while True:  # send what is queued in one write
                    try:
                        pending.append(watcher.queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                if pending:
                    chunk = b"".join(b'{"type":"' + t.encode() + b'","object":' + self._encode(o) + b"}\n"
                                     for t, o in pending)
                    pending.clear()
                    await response.write(chunk)
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if event is None:  # server closing
                    break
                pending.append(event)
            await response.write_eof()
            return response
        except (ConnectionResetError, ConnectionError):
            return aiohttp.web.Response(status=200)
        finally:
            self._watchers[kind].discard(watcher)

    def close_watches(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)


def _details(kind: Kind, name: str) -> dict[str, str]:
    """A Status's details as a real server writes them (no group for the core API)."""
    return {"name": name, **({"group": kind.group} if kind.group else {}), "kind": kind.plural}


def _qos_class(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(res) and (r.get("requests") or r.get("limits") or {}).get(res)
        == (r.get("limits") or {}).get(res) for r in resources for res in ("cpu", "memory"))
    return "Guaranteed" if guaranteed else "Burstable"


# --------------------------------------------------------------------------------------------------
# The node agent
# --------------------------------------------------------------------------------------------------


class _Kube:
    """The agent's access to the API server: the ``kubernetes`` client over HTTP, answers read as
    JSON dicts (``_preload_content=False``: no model objects, which keeps instant mode fast)."""

    def __init__(self, url: str):
        import kubernetes.client

        config = kubernetes.client.Configuration()
        config.host = url
        config.connection_pool_maxsize = 64
        self.client = kubernetes.client.ApiClient(config)
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.batch = kubernetes.client.BatchV1Api(self.client)
        self.ApiException = kubernetes.client.ApiException

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        response = fn(*args, _preload_content=False, **kwargs)
        return json.loads(response.data) if response.data else None

    def quiet(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``call``, None when the object is gone (404) or was changed meanwhile (409)."""
        try:
            return self.call(fn, *args, **kwargs)
        except self.ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise

    def send(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> Any:
        """A request through the client's own serialise/call layer, skipping the typed methods'
        validation of the body (the hot path of instant mode); None on 404/409 as ``quiet``."""
        request = self.client.param_serialize(method, path, header_params={
            "Accept": "application/json", "Content-Type": content_type}, body=body)
        response = self.client.call_api(*request)
        response.read()
        if response.status in (404, 409):
            return None
        if not 200 <= response.status <= 299:
            raise self.ApiException.from_response(http_resp=response, body=None, data=None)
        return json.loads(response.data) if response.data else None

    def create_pod(self, ns: str, body: dict[str, Any]) -> Any:
        return self.send("POST", f"/api/v1/namespaces/{ns}/pods", body)

    _PATCH_PATHS = {"patch_namespaced_pod": "/api/v1/namespaces/{ns}/pods/{name}",
                    "patch_namespaced_pod_status": "/api/v1/namespaces/{ns}/pods/{name}/status",
                    "patch_namespaced_job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
                    "patch_namespaced_job_status": "/apis/batch/v1/namespaces/{ns}/jobs/{name}/status"}

    def merge(self, fn: Callable[..., Any], name: str, ns: str, body: dict[str, Any]) -> Any:
        """A JSON merge patch with the typed method ``fn``'s path."""
        path = self._PATCH_PATHS[fn.__name__].format(ns=ns, name=name)
        return self.send("PATCH", path, body, "application/merge-patch+json")

    def watch(self, list_fn: Callable[..., Any], on_event: Callable[[str, dict[str, Any]], None],
              stop: threading.Event) -> None:
        """List then watch from the list's resourceVersion, resuming after timeouts; relist on 410."""
        from kubernetes.watch.watch import iter_resp_lines

        rv = None
        while not stop.is_set():
            try:
                if rv is None:
                    listed = self.call(list_fn)
                    for item in listed["items"]:
                        on_event("ADDED", item)
                    rv = listed["metadata"]["resourceVersion"]
                response = list_fn(watch=True, resource_version=rv, timeout_seconds=30,
                                   allow_watch_bookmarks=True, _preload_content=False)
                try:
                    for line in iter_resp_lines(response):
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            rv = None
                            break
                        rv = event["object"]["metadata"].get("resourceVersion", rv)
                        if event["type"] != "BOOKMARK":
                            on_event(event["type"], event["object"])
                        if stop.is_set():
                            break
                finally:
                    response.release_conn()
            except Exception:  # noqa: BLE001 - the server is going away, or a transient error
                if stop.is_set():
                    return
                log.warning("fakecluster agent: watch failed, retrying\n%s", traceback.format_exc())
                stop.wait(0.5)


class _Timers:
    """Callbacks at given times, run by the agent's controller thread."""

    def __init__(self, post: Callable[[Callable[[], None]], None], stop: threading.Event):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._post, self._stop = post, stop
        threading.Thread(target=self._run, name="fakecluster-timers", daemon=True).start()

    def at(self, when: float, callback: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._counter), callback))
            self._cond.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                delay = self._heap[0][0] - time.time() if self._heap else 0.5
                if delay > 0:
                    self._cond.wait(min(delay, 0.5))
                    continue
                _, _, callback = heapq.heappop(self._heap)
            self._post(callback)


def _parse_time(text: str | None) -> float:
    if not text:
        return time.time()
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


def _condition(ctype: str, status: str = "True", reason: str | None = None, message: str | None = None,
               *, probe: bool = False) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": now_iso()}
    if probe:
        cond["lastProbeTime"] = now_iso()
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


@dataclass
class _JobState:
    namespace: str
    name: str
    uid: str
    spec: dict[str, Any]
    template: dict[str, Any]
    start: float = 0.0
    finished: bool = False
    succeeded: int = 0
    failed: int = 0
    active: set[str] = field(default_factory=set)
    counted: set[str] = field(default_factory=set)
    deleting: bool = False


class NodeAgent:
    """Scheduler, job controller, kubelet, garbage collector and TTL controller of the fake cluster's
    one node (see the module docstring). Events from the Job and Pod watches and from timers run
    one at a time on the controller thread; each pod's container lives in a :class:`_PodWorker`
    thread (docker mode) or is finished at once (instant mode)."""

    def __init__(self, url: str, *, mode: str = "docker", docker_host: str | None = None,
                 node_labels: dict[str, str] | None = None, cluster_id: str = "fake"):
        if mode not in ("docker", "instant"):
            raise ValueError(f"fakecluster: mode must be 'docker' or 'instant', not {mode!r}")
        self.mode, self.cluster_id = mode, cluster_id
        self.kube = _Kube(url)
        self.node_labels = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                            "kubernetes.io/hostname": NODE_NAME, **(node_labels or {})}
        self.stop = threading.Event()
        self.events: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.jobs: dict[str, _JobState] = {}
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> latest pod
        self.pods_of: dict[str, set[str]] = collections.defaultdict(set)  # owner uid -> pod uids
        self.owners_of: dict[str, list[str]] = {}  # pod uid -> owner uids
        self.gone_jobs: set[str] = set()
        self.workers: dict[str, _PodWorker] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.live: dict[tuple[str, str], str] = {}  # (ns, pod) -> container id while it runs
        self.lock = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"fakecluster-{cluster_id}-"))
        self.docker = None
        if mode == "docker":
            import docker

            base_url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            self.docker = docker.DockerClient(base_url=base_url, version="1.41", timeout=120)
            try:
                self.docker.ping()
            except Exception as exc:  # noqa: BLE001
                raise SystemExit(f"fakecluster: no Docker engine answers at {base_url} ({exc}); start one "
                                 "(scripts/docker-engine) and pass --docker-host, or use --mode instant") from None
        self.pool = None
        if mode == "instant":
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(8, thread_name_prefix="fakecluster-instant")
        self.timers = _Timers(self.events.put, self.stop)
        self.threads = [threading.Thread(target=self._control, name="fakecluster-controller", daemon=True),
                        threading.Thread(target=self.kube.watch, name="fakecluster-watch-jobs", daemon=True,
                                         args=(self.kube.batch.list_job_for_all_namespaces,
                                               lambda t, o: self.events.put(lambda: self._on_job(t, o)), self.stop)),
                        threading.Thread(target=self.kube.watch, name="fakecluster-watch-pods", daemon=True,
                                         args=(self.kube.core.list_pod_for_all_namespaces,
                                               lambda t, o: self.events.put(lambda: self._on_pod(t, o)), self.stop))]

    def start(self) -> None:
        self._register_node()
        for thread in self.threads:
            thread.start()

    def _register_node(self) -> None:
        node = {"metadata": {"name": NODE_NAME, "labels": self.node_labels},
                "spec": {}, "status": {"capacity": ALLOCATABLE, "allocatable": ALLOCATABLE,
                                       "conditions": [_condition("Ready", reason="KubeletReady",
                                                                 message="kubelet is posting ready status")],
                                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                                     {"type": "Hostname", "address": NODE_NAME}],
                                       "nodeInfo": {"kubeletVersion": "v1.31.0-fake", "operatingSystem": "linux",
                                                    "architecture": "amd64", "containerRuntimeVersion": "docker://",
                                                    "kubeProxyVersion": "", "kernelVersion": os.uname().release,
                                                    "osImage": "fakecluster", "bootID": "", "machineID": "",
                                                    "systemUUID": ""}}}
        self.kube.quiet(self.kube.core.create_node, node)

    def shutdown(self) -> None:
        """Stop the loops and remove every container this cluster started."""
        self.stop.set()
        self.events.put(None)
        for worker in list(self.workers.values()):
            worker.request_stop("shutdown", 0)
        if self.docker is not None:
            mine = {"label": f"{CLUSTER_LABEL}={self.cluster_id}"}
            for container in self.docker.containers.list(all=True, filters=mine, ignore_removed=True):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _control(self) -> None:
        while True:
            callback = self.events.get()
            if callback is None or self.stop.is_set():
                return
            try:
                callback()
            except Exception:  # noqa: BLE001 - one event's failure must not stop the node
                log.error("fakecluster agent: event failed\n%s", traceback.format_exc())

    # ---- logs (called by the API server's thread pool) ----

    def log_text(self, ns: str, pod: str, container: str, tail: int | None, follow: bool = False) -> Any:
        """The pod's log (the API server's ``log_source``): the running container's, else the one kept
        from its last run; following a running container streams its output until it ends."""
        with self.lock:
            text, live = self.logs.get((ns, pod)), self.live.get((ns, pod))
        if live is not None and self.docker is not None:
            with contextlib.suppress(Exception):
                container_ = self.docker.containers.get(live)
                if follow:
                    return container_.logs(stdout=True, stderr=True, stream=True, follow=True,
                                           tail="all" if tail is None else tail)
                text = container_.logs(stdout=True, stderr=True).decode(errors="replace")
        if text is None:
            return None
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    # ---- job controller, garbage collector, TTL ----

    def _on_job(self, etype: str, job: dict[str, Any]) -> None:
        meta, status = job["metadata"], job.get("status") or {}
        uid = meta["uid"]
        if etype == "DELETED":
            self.gone_jobs.add(uid)
            state = self.jobs.pop(uid, None)
            for pod_uid in list(self.pods_of.pop(uid, ())):  # Background: the dependents go after the owner
                cached = self.pods.get(pod_uid)
                # read live, as a garbage collector does: an Orphan delete strips the ownerReferences on a
                # watch this thread may not have caught up with
                pod = cached and self.kube.quiet(self.kube.core.read_namespaced_pod, cached["metadata"]["name"],
                                                 cached["metadata"]["namespace"])
                if pod and pod["metadata"]["uid"] == pod_uid and any(
                        r.get("uid") == uid for r in pod["metadata"].get("ownerReferences") or []):
                    self._delete_pod(pod)
            if state is not None:
                state.deleting = True
            return
        state = self.jobs.get(uid)
        finished = any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                       for c in status.get("conditions") or [])
        if state is None:
            state = _JobState(meta.get("namespace", "default"), meta["name"], uid, job.get("spec") or {},
                              (job.get("spec") or {}).get("template") or {}, finished=finished,
                              succeeded=status.get("succeeded", 0), failed=status.get("failed", 0))
            self.jobs[uid] = state
            if finished:
                self._schedule_ttl(state, status)
        state.spec = job.get("spec") or {}
        if meta.get("deletionTimestamp"):
            state.deleting = True
            pods = [self.pods[p] for p in self.pods_of.get(uid, ()) if p in self.pods]
            for pod in pods:
                self._delete_pod(pod)
            if "foregroundDeletion" in (meta.get("finalizers") or []) and not pods and not self.kube.call(
                    self.kube.core.list_namespaced_pod, state.namespace,
                    label_selector=f"batch.kubernetes.io/controller-uid={uid}")["items"]:
                self._release(job)
            return
        if state.finished or state.spec.get("suspend"):
            return
        if not state.start:
            state.start = _parse_time(status.get("startTime")) if status.get("startTime") else time.time()
            if self.mode == "instant":
                self.pool.submit(self._instant_job, state)
                return
            deadline = state.spec.get("activeDeadlineSeconds")
            if deadline is not None:
                self.timers.at(state.start + float(deadline), lambda: self._deadline(state))
            if not status.get("active"):
                self._new_pod(state, **({} if status.get("startTime") else {"startTime": now_iso()}))

    def _release(self, job: dict[str, Any]) -> None:
        """The garbage collector's end of a Foreground deletion: drop the ``foregroundDeletion`` finalizer."""
        finalizers = [f for f in job["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
        self.kube.merge(self.kube.batch.patch_namespaced_job, job["metadata"]["name"],
                        job["metadata"]["namespace"], {"metadata": {"finalizers": finalizers or None}})

    def _pod_manifest(self, state: _JobState) -> dict[str, Any]:
        template = copy.deepcopy(state.template)
        meta = template.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), "job-name": state.name, "batch.kubernetes.io/job-name": state.name,
                  "controller-uid": state.uid, "batch.kubernetes.io/controller-uid": state.uid}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": f"{state.name}-", "namespace": state.namespace, "labels": labels,
                             "annotations": meta.get("annotations") or {},
                             "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": state.name,
                                                  "uid": state.uid, "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": template.get("spec") or {}}

    def _new_pod(self, state: _JobState, **status: Any) -> None:
        pod = self.kube.create_pod(state.namespace, self._pod_manifest(state))
        if pod is not None:
            state.active.add(pod["metadata"]["uid"])
            self._job_status(state, **status)
            self.event(self._job_ref(state), "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                       component="job-controller")

    def _job_status(self, state: _JobState, **extra: Any) -> None:
        body = {"active": len(state.active), "succeeded": state.succeeded, "failed": state.failed,
                "ready": 0, **extra}
        self.kube.merge(self.kube.batch.patch_namespaced_job_status, state.name, state.namespace, {"status": body})

    @staticmethod
    def _job_ref(state: _JobState) -> dict[str, Any]:
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": state.name, "namespace": state.namespace, "uid": state.uid}}

    def _finish(self, state: _JobState, ok: bool, reason: str | None = None, message: str | None = None) -> None:
        state.finished = True
        self.event(self._job_ref(state), "Completed" if ok else reason or "Failed",
                   "Job completed" if ok else message or "Job failed", warning=not ok, component="job-controller")
        if ok:
            conditions = [_condition("SuccessCriteriaMet", reason="CompletionsReached",
                                     message="Reached expected number of succeeded pods", probe=True),
                          _condition("Complete", reason="CompletionsReached",
                                     message="Reached expected number of succeeded pods", probe=True)]
            self._job_status(state, completionTime=now_iso(), conditions=conditions)
        else:
            conditions = [_condition("FailureTarget", reason=reason, message=message, probe=True),
                          _condition("Failed", reason=reason, message=message, probe=True)]
            self._job_status(state, conditions=conditions)
        self._schedule_ttl(state, {})

    def _schedule_ttl(self, state: _JobState, status: dict[str, Any]) -> None:
        ttl = state.spec.get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        done = status.get("completionTime") or next(
            (c.get("lastTransitionTime") for c in status.get("conditions") or []
             if c["type"] in ("Complete", "Failed")), None)
        self.timers.at(_parse_time(done) + float(ttl) if done else time.time() + float(ttl),
                       lambda: self.kube.quiet(self.kube.batch.delete_namespaced_job, state.name, state.namespace,
                                               propagation_policy="Foreground"))

    def _deadline(self, state: _JobState) -> None:
        if state.finished or state.deleting or state.uid not in self.jobs:
            return
        active = [self.pods[p] for p in state.active if p in self.pods]
        state.failed += len(active)
        state.counted.update(state.active)
        state.active.clear()
        self._finish(state, False, "DeadlineExceeded", "Job was active longer than specified deadline")
        for pod in active:
            self._delete_pod(pod)

    def _pod_ended(self, state: _JobState, pod_uid: str, phase: str) -> None:
        """A pod of the Job ended (Succeeded, Failed, or gone before it finished: counted as failed)."""
        if pod_uid in state.counted or state.finished or state.deleting:
            return
        state.counted.add(pod_uid)
        state.active.discard(pod_uid)
        if phase == "Succeeded":
            state.succeeded += 1
            if state.succeeded >= int(state.spec.get("completions") or 1):
                self._finish(state, True)
            else:
                self._new_pod(state)
            return
        state.failed += 1
        if state.failed > int(state.spec.get("backoffLimit", 6)):
            self._finish(state, False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            self._new_pod(state)

    def _instant_job(self, state: _JobState) -> None:
        """Instant mode: the pod is created and ends Succeeded at once, and so does the Job."""
        try:
            pod = self.kube.create_pod(state.namespace, self._pod_manifest(state))
            if pod is None:
                return
            state.counted.add(pod["metadata"]["uid"])
            started = now_iso()
            container = (pod["spec"].get("containers") or [{}])[0]
            self.logs[(state.namespace, pod["metadata"]["name"])] = ""
            self.kube.merge(self.kube.core.patch_namespaced_pod_status, pod["metadata"]["name"], state.namespace, {
                "status": {"phase": "Succeeded", "startTime": started, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                           "conditions": [_condition("PodScheduled"), _condition("Initialized"),
                                          _condition("Ready", "False", "PodCompleted"),
                                          _condition("ContainersReady", "False", "PodCompleted")],
                           "containerStatuses": [{
                               "name": container.get("name"), "image": container.get("image"), "imageID": "",
                               "ready": False, "started": False, "restartCount": 0, "containerID": "instant://",
                               "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started,
                                                        "finishedAt": started}}}]}})
            state.succeeded, state.finished = 1, True
            self.kube.merge(self.kube.batch.patch_namespaced_job_status, state.name, state.namespace, {"status": {
                "startTime": started, "completionTime": started, "active": 0, "succeeded": 1, "failed": 0,
                "ready": 0, "conditions": [_condition("SuccessCriteriaMet", reason="CompletionsReached"),
                                           _condition("Complete", reason="CompletionsReached")]}})
            if state.spec.get("ttlSecondsAfterFinished") is not None:
                self.events.put(lambda: self._schedule_ttl(state, {}))
        except Exception:  # noqa: BLE001
            log.error("fakecluster agent: instant job %s failed\n%s", state.name, traceback.format_exc())

    # ---- pods: kubelet dispatch and job bookkeeping ----

    def _on_pod(self, etype: str, pod: dict[str, Any]) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        uid = meta["uid"]
        owners = [r["uid"] for r in meta.get("ownerReferences") or [] if r.get("kind") == "Job"]
        phase = status.get("phase")
        if etype == "DELETED":
            self.pods.pop(uid, None)
            with self.lock:
                self.logs.pop((meta.get("namespace"), meta["name"]), None)
            worker = self.workers.get(uid)
            if worker is not None:
                worker.request_stop("deleted", 0)
            for owner in self.owners_of.pop(uid, ()):
                self.pods_of[owner].discard(uid)
            for owner in owners:
                state = self.jobs.get(owner)
                if state is not None:
                    self._pod_ended(state, uid, phase if phase in ("Succeeded", "Failed") else "Failed")
                    if state.deleting:
                        job = self.kube.quiet(self.kube.batch.read_namespaced_job, state.name, state.namespace)
                        if job and job["metadata"].get("deletionTimestamp"):
                            self.events.put(lambda j=job: self._on_job("MODIFIED", j))
            return
        self.pods[uid] = pod
        if any(owner in self.gone_jobs for owner in owners) and not meta.get("deletionTimestamp"):
            self._delete_pod(pod)  # the garbage collector's: its owner is gone
        for owner in self.owners_of.get(uid, ()):
            if owner not in owners:
                self.pods_of[owner].discard(uid)
        self.owners_of[uid] = owners
        for owner in owners:
            self.pods_of[owner].add(uid)
            state = self.jobs.get(owner)
            if state is not None and phase in ("Succeeded", "Failed"):
                self._pod_ended(state, uid, phase)
            elif state is not None and not meta.get("deletionTimestamp"):
                restarts = sum(s.get("restartCount", 0) for s in status.get("containerStatuses") or [])
                if restarts > int(state.spec.get("backoffLimit", 6)) and not state.finished:
                    state.counted.add(uid)
                    state.active.discard(uid)
                    state.failed += 1
                    self._finish(state, False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
                    self._delete_pod(pod)
        if self.mode == "instant":
            if meta.get("deletionTimestamp"):
                self.kube.quiet(self.kube.core.delete_namespaced_pod, meta["name"], meta["namespace"],
                                grace_period_seconds=0)
            return
        worker = self.workers.get(uid)
        if meta.get("deletionTimestamp"):
            if worker is not None:
                worker.request_stop("deleted", int(meta.get("deletionGracePeriodSeconds") or 0))
            else:
                self.kube.quiet(self.kube.core.delete_namespaced_pod, meta["name"], meta["namespace"],
                                grace_period_seconds=0)
            return
        evicted = any(c["type"] == "DisruptionTarget" and c.get("reason") == "EvictionByEvictionAPI"
                      for c in status.get("conditions") or [])
        if evicted and phase not in ("Succeeded", "Failed"):
            if worker is not None:
                worker.request_stop("evicted", 0)
            else:
                _PodWorker(self, pod).evicted_status(None)
            return
        if worker is None and phase not in ("Succeeded", "Failed") and not evicted and not status.get("startTime") \
                and not (status.get("conditions") or []):
            worker = _PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()

    def event(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False,
              component: str = "kubelet") -> None:
        """Record a core/v1 Event about ``obj`` as the component would (docker mode only: instant mode
        stays lean)."""
        if self.mode != "docker":
            return
        meta = obj["metadata"]
        stamp = now_iso()
        self.kube.quiet(self.kube.core.create_namespaced_event, meta["namespace"], {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta.get("uid")},
            "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
            "source": {"component": component, **({"host": NODE_NAME} if component == "kubelet" else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "reportingComponent": component,
            "reportingInstance": NODE_NAME if component == "kubelet" else ""})

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp"):
            self.kube.quiet(self.kube.core.delete_namespaced_pod, meta["name"], meta["namespace"])

    # ---- scheduling ----

    def unschedulable(self, spec: dict[str, Any]) -> str | None:
        """The scheduler's message when the pod does not fit the node, else None."""
        labels = self.node_labels
        fits = all(labels.get(k) == str(v) for k, v in (spec.get("nodeSelector") or {}).items())
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
        terms = required.get("nodeSelectorTerms") or []
        if fits and terms:
            fits = any(all(_expression_matches(expr, labels) for expr in term.get("matchExpressions") or [])
                       for term in terms)
        if not fits:
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. " \
                   "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        short = []
        for resource in ("cpu", "memory"):
            total = 0.0
            for container in spec.get("containers") or []:
                res = container.get("resources") or {}
                value = (res.get("requests") or {}).get(resource) or (res.get("limits") or {}).get(resource)
                total += parse_quantity(value) if value is not None else 0.0
            if total > parse_quantity(ALLOCATABLE[resource]):
                short.append(f"1 Insufficient {resource}")
        if short:
            return f"0/1 nodes are available: {', '.join(short)}. " \
                   "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        return None


def _expression_matches(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), [str(v) for v in expr.get("values") or []]
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        try:
            left, right = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return left > right if op == "Gt" else left < right
    return False


class _ConfigError(Exception):
    """The container cannot be configured yet (a missing Secret or ConfigMap)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


def _docker_time(text: str | None) -> str:
    return f"{text[:19]}Z" if text and not text.startswith("0001") else now_iso()


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (unknown references stay as written; ``$$`` escapes)."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text).replace("$$", "$")


class _PodWorker(threading.Thread):
    """The kubelet's work for one pod in docker mode: schedule, configure, pull, run, restart, report."""

    def __init__(self, agent: NodeAgent, pod: dict[str, Any]):
        meta = pod["metadata"]
        super().__init__(name=f"fakecluster-pod-{meta['name']}", daemon=True)
        self.agent, self.pod, self.kube = agent, pod, agent.kube
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.spec = pod.get("spec") or {}
        self.cspec = (self.spec.get("containers") or [{}])[0]
        self.wake = threading.Event()
        self.stop_reason: str | None = None
        self.grace = 0
        self.restarts = 0
        self.container_id: str | None = None
        self.image_id = ""
        self.last_state: dict[str, Any] = {}
        self.conds: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] = {"phase": "Pending", "qosClass": (pod.get("status") or {}).get("qosClass")}
        self.dir = agent.workdir / self.uid

    def request_stop(self, reason: str, grace: int) -> None:
        if self.stop_reason is None or reason in ("deleted", "shutdown"):
            self.stop_reason, self.grace = reason, grace
        self.wake.set()

    # ---- status ----

    def _cond(self, ctype: str, status: str, reason: str | None = None, message: str | None = None) -> None:
        old = self.conds.get(ctype)
        cond = _condition(ctype, status, reason, message, probe=False)
        cond["lastProbeTime"] = None
        if old is not None and old["status"] == status:
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        self.conds[ctype] = cond

    def _container_status(self, state: dict[str, Any], *, ready: bool = False) -> None:
        cstatus = {"name": self.cspec.get("name"), "image": self.cspec.get("image"), "imageID": self.image_id,
                   "ready": ready, "started": "running" in state, "restartCount": self.restarts, "state": state,
                   "lastState": self.last_state}
        if self.container_id:
            cstatus["containerID"] = f"docker://{self.container_id}"
        self.status["containerStatuses"] = [cstatus]

    def _report(self) -> None:
        self.status["conditions"] = list(self.conds.values())
        self.kube.merge(self.kube.core.patch_namespaced_pod_status, self.name, self.ns, {"status": self.status})

    def _waiting(self, reason: str, message: str | None = None) -> None:
        waiting = {"reason": reason, **({"message": message} if message else {})}
        self._container_status({"waiting": waiting})
        self._report()

    def evicted_status(self, terminated: dict[str, Any] | None) -> None:
        message = "The node was low on resource: memory."
        self.agent.event(self.pod, "Evicted", message, warning=True)
        self._cond("DisruptionTarget", "True", "TerminationByKubelet", message)
        self._cond("Ready", "False", "PodFailed")
        self._cond("ContainersReady", "False", "PodFailed")
        self.status.update(phase="Failed", reason="Evicted", message=message)
        self._container_status({"terminated": terminated or {
            "exitCode": 137, "reason": "ContainerStatusUnknown", "startedAt": None, "finishedAt": now_iso(),
            "message": "The container could not be located when the pod was terminated"}})
        self._report()

    # ---- lifecycle ----

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001
            if not self.agent.stop.is_set():  # at shutdown the containers vanish under the workers
                log.error("fakecluster kubelet: pod %s/%s failed\n%s", self.ns, self.name, traceback.format_exc())
        finally:
            self.agent.workers.pop(self.uid, None)
            if self.stop_reason == "deleted":  # also when the deletion came as the container ended by itself
                with contextlib.suppress(Exception):
                    self.kube.quiet(self.kube.core.delete_namespaced_pod, self.name, self.ns, grace_period_seconds=0)
            with self.agent.lock:
                self.agent.live.pop((self.ns, self.name), None)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self) -> None:
        why = self.agent.unschedulable(self.spec)
        if why:
            self._cond("PodScheduled", "False", "Unschedulable", why)
            self._report()
            self.agent.event(self.pod, "FailedScheduling", why, warning=True, component="default-scheduler")
            self.wake.wait()
            return self._stopped(None)
        self.kube.merge(self.kube.core.patch_namespaced_pod, self.name, self.ns, {"spec": {"nodeName": NODE_NAME}})
        self.agent.event(self.pod, "Scheduled", f"Successfully assigned {self.ns}/{self.name} to {NODE_NAME}",
                         component="default-scheduler")
        self.status.update(startTime=now_iso(), hostIP="127.0.0.1", podIP="127.0.0.1",
                           hostIPs=[{"ip": "127.0.0.1"}], podIPs=[{"ip": "127.0.0.1"}])
        unready = f"containers with unready status: [{self.cspec.get('name')}]"
        self._cond("PodReadyToStartContainers", "True")
        self._cond("Initialized", "True")
        self._cond("Ready", "False", "ContainersNotReady", unready)
        self._cond("ContainersReady", "False", "ContainersNotReady", unready)
        self._cond("PodScheduled", "True")
        self._waiting("ContainerCreating")
        while True:
            container = self._prepare()
            if container is None:
                return self._stopped(None)
            terminated = self._execute(container)
            if self.stop_reason:
                return self._stopped(terminated)
            policy = self.spec.get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and terminated["exitCode"] != 0):
                self.restarts += 1
                self.last_state = {"terminated": terminated}
                self.container_id = None
                self._cond("Ready", "False", "ContainersNotReady", unready)
                self._cond("ContainersReady", "False", "ContainersNotReady", unready)
                self.status["phase"] = "Running"
                self._waiting("CrashLoopBackOff", f"back-off restarting failed container {self.cspec.get('name')} "
                                                  f"in pod {self.name}_{self.ns}({self.uid})")
                self.wake.wait(min(2 ** (self.restarts - 1), 10))
                continue
            self.status["phase"] = "Succeeded" if terminated["exitCode"] == 0 else "Failed"
            self._ended(terminated)
            return None

    def _ended(self, terminated: dict[str, Any]) -> None:
        reason = "PodCompleted" if self.status["phase"] == "Succeeded" else "PodFailed"
        self._cond("PodReadyToStartContainers", "False")
        self._cond("Ready", "False", reason)
        self._cond("ContainersReady", "False", reason)
        self._container_status({"terminated": terminated})
        self._report()

    def _stopped(self, terminated: dict[str, Any] | None) -> None:
        if self.stop_reason == "evicted":
            self.evicted_status(terminated)
        elif self.stop_reason == "deleted":
            if terminated is not None:
                self.status["phase"] = "Succeeded" if terminated["exitCode"] == 0 else "Failed"
                self._ended(terminated)
            self.kube.quiet(self.kube.core.delete_namespaced_pod, self.name, self.ns, grace_period_seconds=0)

    def _prepare(self) -> Any:
        """Configure, pull and create the container, retrying as a kubelet does while something is
        missing; None when the pod was stopped meanwhile."""
        attempt = 0
        while not self.stop_reason:
            try:
                env = self._env()
                binds = self._volumes()
                self._image()
                return self._create(env, binds)
            except _ConfigError as exc:
                attempt += 1
                if attempt == 1:
                    self.agent.event(self.pod, "Failed", f"Error: {exc.reason}: {exc.message}", warning=True)
                self._waiting(exc.reason, exc.message)
                if exc.reason == "ErrImagePull":
                    if self.wake.wait(1.0):
                        break
                    self._waiting("ImagePullBackOff", f'Back-off pulling image "{self.cspec.get("image")}"')
                self.wake.wait(min(attempt, 5))
        return None

    def _lookup(self, what: str, name: str, optional: bool) -> dict[str, str] | None:
        fn = self.kube.core.read_namespaced_secret if what == "secret" else self.kube.core.read_namespaced_config_map
        obj = self.kube.quiet(fn, name, self.ns)
        if obj is None:
            if optional:
                return None
            raise _ConfigError("CreateContainerConfigError", f'{what} "{name}" not found')
        if what == "secret":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.cspec.get("envFrom") or []:
            for what, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
                if key in source:
                    ref = source[key]
                    data = self._lookup(what, ref.get("name", ""), bool(ref.get("optional")))
                    env.update({f"{source.get('prefix', '')}{k}": v for k, v in (data or {}).items()})
        meta = self.pod["metadata"]
        for var in self.cspec.get("env") or []:
            name, source = var["name"], var.get("valueFrom")
            if source is None:
                env[name] = _expand(str(var.get("value", "")), env)
                continue
            for what, key, kind in (("secret", "secretKeyRef", "Secret"),
                                    ("configmap", "configMapKeyRef", "ConfigMap")):
                if key in source:
                    ref = source[key]
                    data = self._lookup(what, ref.get("name", ""), bool(ref.get("optional")))
                    if data is not None and ref.get("key") in data:
                        env[name] = data[ref["key"]]
                    elif data is not None and not ref.get("optional"):
                        raise _ConfigError("CreateContainerConfigError",
                                           f"couldn't find key {ref.get('key')} in {kind} {self.ns}/{ref.get('name')}")
            if "fieldRef" in source:
                path = source["fieldRef"].get("fieldPath", "")
                match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
                if match:
                    env[name] = (meta.get(match.group(1)) or {}).get(match.group(2), "")
                else:
                    env[name] = {"metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                                 "spec.nodeName": NODE_NAME, "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
                                 "spec.serviceAccountName": self.spec.get("serviceAccountName", "default")
                                 }.get(path, "")
        env.setdefault("HOSTNAME", self.name)
        return env

    def _volumes(self) -> list[str]:
        paths: dict[str, Path] = {}
        for volume in self.spec.get("volumes") or []:
            name = volume["name"]
            if "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                    path.mkdir(parents=True, exist_ok=True)
                paths[name] = path
            elif "emptyDir" in volume:
                paths[name] = self.dir / "empty" / name
                paths[name].mkdir(parents=True, exist_ok=True)
                paths[name].chmod(0o777)
            elif "configMap" in volume or "secret" in volume:
                what = "configmap" if "configMap" in volume else "secret"
                source = volume.get("configMap") or volume.get("secret") or {}
                ref = source.get("name") or source.get("secretName", "")
                try:
                    data = self._lookup(what, ref, bool(source.get("optional"))) or {}
                except _ConfigError as exc:
                    raise _ConfigError("ContainerCreating", f'MountVolume.SetUp failed for volume "{name}" : '
                                                            f"{exc.message}") from None
                target = self.dir / "files" / name
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                mode = source.get("defaultMode", 0o644)
                for item in items:
                    if item["key"] in data:
                        file = target / item["path"]
                        file.parent.mkdir(parents=True, exist_ok=True)
                        file.write_text(data[item["key"]])
                        file.chmod(item.get("mode", mode))
                paths[name] = target
            else:
                log.warning("fakecluster kubelet: volume %s of pod %s/%s: only hostPath, emptyDir, configMap and "
                            "secret are supported; it is an empty directory", name, self.ns, self.name)
                paths[name] = self.dir / "empty" / name
                paths[name].mkdir(parents=True, exist_ok=True)
        binds = []
        for mount in self.cspec.get("volumeMounts") or []:
            if mount["name"] not in paths:
                raise _ConfigError("CreateContainerConfigError", f'volume "{mount["name"]}" not found in the pod spec')
            source = paths[mount["name"]]
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            binds.append(f"{source}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}")
        return binds

    def _image(self) -> None:
        import docker.errors

        image, policy = self.cspec.get("image", ""), self.cspec.get("imagePullPolicy", "IfNotPresent")
        if policy != "Always":
            try:
                self.image_id = self.agent.docker.images.get(image).id
                self.agent.event(self.pod, "Pulled", f'Container image "{image}" already present on machine')
                return
            except docker.errors.ImageNotFound:
                if policy == "Never":
                    raise _ConfigError("ErrImageNeverPull", f'Container image "{image}" is not present with pull '
                                                            "policy of Never") from None
        try:
            repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
            self.image_id = self.agent.docker.images.pull(repository, tag=tag).id
        except docker.errors.APIError as exc:
            detail = exc.explanation or str(exc)
            raise _ConfigError("ErrImagePull", f'failed to pull and unpack image "{image}": {detail}') from None

    def _create(self, env: dict[str, str], binds: list[str]) -> Any:
        cspec = self.cspec
        limits = (cspec.get("resources") or {}).get("limits") or {}
        context = self.spec.get("securityContext") or {}
        user = (cspec.get("securityContext") or {}).get("runAsUser", context.get("runAsUser"))
        group = (cspec.get("securityContext") or {}).get("runAsGroup", context.get("runAsGroup"))
        kwargs: dict[str, Any] = {
            "image": cspec["image"],
            "name": f"k8s_{cspec.get('name')}_{self.name}_{self.ns}_{self.uid[:8]}_{self.restarts}",
            "entrypoint": [_expand(str(a), env) for a in cspec["command"]] if cspec.get("command") else None,
            "command": [_expand(str(a), env) for a in cspec["args"]] if cspec.get("args") else None,
            "environment": env, "network_mode": "host", "init": True, "detach": True,
            "working_dir": cspec.get("workingDir"), "volumes": binds,
            "labels": {CLUSTER_LABEL: self.agent.cluster_id, POD_LABEL: self.name, NAMESPACE_LABEL: self.ns},
        }
        if user is not None:
            kwargs["user"] = f"{user}:{group}" if group is not None else str(user)
        if limits.get("memory"):
            kwargs["mem_limit"] = kwargs["memswap_limit"] = int(parse_quantity(limits["memory"]))
        if limits.get("cpu"):
            kwargs["nano_cpus"] = int(parse_quantity(limits["cpu"]) * 1e9)
        import docker.errors

        try:
            container = self.agent.docker.containers.create(**{k: v for k, v in kwargs.items() if v is not None})
        except docker.errors.APIError as exc:
            raise _ConfigError("CreateContainerError", exc.explanation or str(exc)) from None
        self.container_id = container.id
        self.agent.event(self.pod, "Created", f"Created container {cspec.get('name')}")
        return container

    def _execute(self, container: Any) -> dict[str, Any]:
        """Start the container and wait for it to end (stopping it when asked); its terminated state."""
        import docker.errors

        try:
            container.start()
        except docker.errors.APIError as exc:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            return {"exitCode": 128, "reason": "StartError", "message": exc.explanation or str(exc),
                    "startedAt": now_iso(), "finishedAt": now_iso(), "containerID": f"docker://{container.id}"}
        with self.agent.lock:
            self.agent.live[(self.ns, self.name)] = container.id
        started = now_iso()
        self.status["phase"] = "Running"
        self._cond("Ready", "True")
        self._cond("ContainersReady", "True")
        self._container_status({"running": {"startedAt": started}}, ready=True)
        self._report()
        self.agent.event(self.pod, "Started", f"Started container {self.cspec.get('name')}")
        exited = threading.Event()

        def wait() -> None:
            with contextlib.suppress(Exception):
                container.wait()
            exited.set()
            self.wake.set()

        threading.Thread(target=wait, name=f"fakecluster-wait-{self.name}", daemon=True).start()
        stopping = False
        while not exited.is_set():
            self.wake.wait()
            self.wake.clear()
            if self.stop_reason and not stopping and not exited.is_set():
                stopping = True
                if self.stop_reason != "shutdown":
                    self.agent.event(self.pod, "Killing", f"Stopping container {self.cspec.get('name')}")
                with contextlib.suppress(Exception):
                    container.stop(timeout=max(0, self.grace))
        container.reload()
        state = container.attrs["State"]
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        with self.agent.lock:
            self.agent.logs[(self.ns, self.name)] = output
            self.agent.live.pop((self.ns, self.name), None)
        with contextlib.suppress(Exception):
            container.remove(force=True)
        code = int(state.get("ExitCode", 0))
        terminated = {"exitCode": code, "reason": "OOMKilled" if state.get("OOMKilled") else
                      ("Completed" if code == 0 else "Error"), "startedAt": _docker_time(state.get("StartedAt")),
                      "finishedAt": _docker_time(state.get("FinishedAt")), "containerID": f"docker://{container.id}"}
        if code != 0 and self.cspec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            terminated["message"] = "".join(output.splitlines(keepends=True)[-80:])[-2048:]
        return terminated


# --------------------------------------------------------------------------------------------------
# The process and its Python wrapper
# --------------------------------------------------------------------------------------------------


async def serve(port: int, ready_file: Path | None, *, mode: str = "docker", docker_host: str | None = None,
                node_labels: dict[str, str] | None = None, cluster_id: str = "fake") -> None:
    """Serve the API on 127.0.0.1:``port`` (0: any free port) with the node agent until SIGTERM/SIGINT;
    the URL goes to ``ready_file`` once both answer. On the way out every container is removed."""
    loop = asyncio.get_running_loop()
    api = FakeApiServer()
    async with api, kmock.Server(api, host="127.0.0.1", port=port or None) as server:
        url = f"http://127.0.0.1:{server.port}"
        agent = NodeAgent(url, mode=mode, docker_host=docker_host, node_labels=node_labels, cluster_id=cluster_id)
        api.log_source = agent.log_text
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await loop.run_in_executor(None, agent.start)
            if ready_file is not None:
                partial = ready_file.with_name(ready_file.name + ".partial")
                partial.write_text(url)
                partial.replace(ready_file)
            log.info("fakecluster %s: serving %s (%s mode)", cluster_id, url, mode)
            await stop.wait()
        finally:
            await loop.run_in_executor(None, agent.shutdown)
            api.close_watches()
            await asyncio.sleep(0.05)
    log.info("fakecluster %s: stopped", cluster_id)


def _docker_client(docker_host: str | None) -> Any:
    import docker

    return docker.DockerClient(base_url=docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                               version="1.41", timeout=30)


class FakeCluster:
    """A fake cluster in a subprocess (``fakecluster.py serve``), started by the constructor.

    ``url`` is its API server, ``kubeconfig`` the path of a kubeconfig for it (context ``fake``,
    namespace ``default``), ``api_client()`` a ``kubernetes.client.ApiClient`` loaded from that file.
    ``close()`` (or leaving the ``with`` block) stops it with SIGTERM (SIGKILL after ``stop_timeout``)
    and removes any container still carrying its label. ``mode="instant"`` needs no Docker engine.
    """

    def __init__(self, mode: str = "docker", docker_host: str | None = None,
                 node_labels: dict[str, str] | None = None, *, cluster_id: str | None = None,
                 startup_timeout: float = 30.0, stop_timeout: float = 20.0):
        self.mode = mode
        self.docker_host = docker_host or os.environ.get("DOCKER_HOST")
        self.cluster_id = cluster_id or f"fc-{uuid.uuid4().hex[:12]}"
        self.stop_timeout = stop_timeout
        self.dir = Path(tempfile.mkdtemp(prefix=f"fakecluster-{self.cluster_id}-"))
        self.log_path = self.dir / "server.log"
        ready = self.dir / "ready"
        command = [sys.executable, str(HERE), "serve", "--port", "0", "--ready-file", str(ready), "--mode", mode,
                   "--cluster-id", self.cluster_id]
        if self.docker_host and mode == "docker":
            command += ["--docker-host", self.docker_host]
        for key, value in (node_labels or {}).items():
            command += ["--node-label", f"{key}={value}"]
        self._closed = False
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + startup_timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.returncode
                output = self.server_log()[-4000:]
                self.close()
                state = f"exit {code}" if code is not None else f"not ready after {startup_timeout} s"
                raise RuntimeError(f"fakecluster did not start ({state}); its output:\n{output}")
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        self.kubeconfig = str(self.dir / "kubeconfig")
        Path(self.kubeconfig).write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        }, indent=2))

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` for this cluster, loaded from :attr:`kubeconfig`."""
        import kubernetes.config

        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig, context="fake")

    def server_log(self) -> str:
        """What the subprocess printed (its warnings and tracebacks)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def containers(self) -> list[Any]:
        """The Docker containers carrying this cluster's label (docker mode)."""
        return _docker_client(self.docker_host).containers.list(
            all=True, filters={"label": f"{CLUSTER_LABEL}={self.cluster_id}"}, ignore_removed=True)

    def close(self) -> list[str]:
        """Stop the subprocess and remove its leftover containers; the names of those removed here."""
        if self._closed:
            return []
        self._closed = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        removed = []
        if self.mode == "docker":
            with contextlib.suppress(Exception):
                for container in self.containers():
                    removed.append(container.name)
                    with contextlib.suppress(Exception):
                        container.remove(force=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        return removed

    def __enter__(self) -> FakeCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fakecluster.py", description="A fake one-node Kubernetes cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("serve", help="serve the API and run the node agent until SIGTERM")
    cmd.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    cmd.add_argument("--ready-file", type=Path, help="write the URL here once ready")
    cmd.add_argument("--mode", choices=("docker", "instant"), default="docker",
                     help="docker: run pods as containers; instant: every Job succeeds at once")
    cmd.add_argument("--docker-host", help="the Docker engine (default: $DOCKER_HOST)")
    cmd.add_argument("--node-label", action="append", default=[], metavar="KEY=VALUE", help="a label of the node")
    cmd.add_argument("--cluster-id", default="fake", help=f"value of the containers' {CLUSTER_LABEL} label")
    args = parser.parse_args(argv)
    labels = {}
    for item in args.node_label:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--node-label {item!r}: expected KEY=VALUE")
        labels[key] = value
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args.port, args.ready_file, mode=args.mode, docker_host=args.docker_host,
                      node_labels=labels, cluster_id=args.cluster_id))


if __name__ == "__main__":
    main()
