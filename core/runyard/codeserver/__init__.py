"""Code location servers: a process that alone imports the user's definitions and answers questions
about them over HTTP/JSON, and the client that the daemon and the web UI use to ask them.

* :mod:`.server` — ``runyard code-server``: snapshot, run config validation and execution plan,
  schedule and sensor evaluation, reload. Versioned paths under ``/v1/``.
* :mod:`.client` — :class:`CodeServerClient`, stdlib ``urllib`` only.
* :mod:`.protocol` — the typed results both sides share (no user code, no definitions imports).
* :mod:`.snapshot` — turning a :class:`runyard.Definitions` into the JSON snapshot and its id.

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
    "LocationSnapshot": "runyard.codeserver.protocol",
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
