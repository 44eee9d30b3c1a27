"""Fixtures for driving runyard with Dagster's own Python client (``dagster-graphql``'s
``DagsterGraphQLClient``, installed only in the ``dagster_client`` tox env): the real
``runyard webui`` of the web UI tests (tests/webui/conftest.py, loaded from its file; it imports
Playwright, but no browser is started here) and a client pointed at it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_spec = importlib.util.spec_from_file_location("webui_fixtures", Path(__file__).parents[1] / "webui" / "conftest.py")
webui_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webui_fixtures)

DEFS = webui_fixtures.DEFS
start_webui = webui_fixtures.start_webui
webui = webui_fixtures.webui
instance_file = webui_fixtures.instance_file


def client_for(ui, **kwargs):
    """A ``DagsterGraphQLClient`` talking to web UI ``ui`` (host and port, as a Dagster user gives
    them); ``kwargs`` go to the client (``auth``, ``headers``)."""
    from dagster_graphql import DagsterGraphQLClient

    url = urlsplit(ui.url)
    return DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60, **kwargs)


@pytest.fixture
def client(webui):
    return client_for(webui)
