"""Code location servers: a process that alone imports the user's definitions and answers questions
about them over HTTP/JSON, and the client that the daemon and the web UI use to ask them.

* :mod:`.protocol` and :mod:`.snapshot` — the pydantic models of every message and of the snapshot
  (no user code, no definitions imports); the client validates every answer into them.
* :mod:`.client` — :class:`CodeServerClient`, stdlib ``urllib`` only.
* server side, one concern each: :mod:`.server` (the location service and its endpoints),
  :mod:`.transport` (HTTP routes and the WSGI app), :mod:`.auth` (the token, JSON-only POSTs, no
  browsers), :mod:`.httpd` (serving with waitress, and its limits), :mod:`.loading` (importing and reloading the
  definitions), :mod:`.validation` (run config and op selection), :mod:`.evaluation` (schedules and
  sensors under a time limit), :mod:`.snapshot_builder` (definitions to snapshot, and its id),
  :mod:`.serving` (``runyard code-server`` as a process, and its readiness handshake).

Importing this package is cheap: nothing below is imported until it is used.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CodeServerClient": "runyard.codeserver.client",
    "CodeServerError": "runyard.codeserver.errors",
    "CodeServerUnavailableError": "runyard.codeserver.errors",
    "CodeLocationLoadError": "runyard.codeserver.errors",
    "CodeServerNotFoundError": "runyard.codeserver.errors",
    "LocationSnapshot": "runyard.codeserver.snapshot",
    "JobSnapshot": "runyard.codeserver.snapshot",
    "OpSnapshot": "runyard.codeserver.snapshot",
    "ScheduleSnapshot": "runyard.codeserver.snapshot",
    "SensorSnapshot": "runyard.codeserver.snapshot",
    "ResourceSnapshot": "runyard.codeserver.snapshot",
    "ReloadResult": "runyard.codeserver.protocol",
    "ServerReady": "runyard.codeserver.serving",
    "HealthInfo": "runyard.codeserver.protocol",
    "ValidationResult": "runyard.codeserver.protocol",
    "EvaluationResult": "runyard.codeserver.protocol",
    "RunRequestData": "runyard.codeserver.protocol",
    "SerializedError": "runyard.codeserver.protocol",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runyard.codeserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
