"""runyard's web UI: a Flask app serving HTML pages and a GraphQL API (``/graphql``).

The web UI is stateless — everything it shows or changes lives in the instance's storage — and it
never imports user code: jobs, schedules and sensors come from the code locations' snapshots.
Start it with ``runyard webui`` (or as part of ``runyard dev``); embed it with :func:`create_app`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def create_app(*args, **kwargs):
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app", "__version__"]
