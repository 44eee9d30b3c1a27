"""Dagster's Python GraphQL client, unchanged, with a runyard API token in its ``headers=`` (issue 15,
item 2; docs/auth.md): a launcher token submits and terminates; a viewer token is refused with an
error the client reads (never a ``KeyError`` inside it) for every operation; a revoked token is
refused on its next call; a token limited to another code location cannot touch this one."""

from __future__ import annotations

import time

import pytest
from conftest import client_for
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClientError, ReloadRepositoryLocationStatus, ShutdownRepositoryLocationStatus

from runyard import Instance
from runyard.auth import new_token
from runyard.storage.records import ApiToken
from runyard.testing import wait_until

LOCATION = "defs_webui"


def _token(home, name: str, role: str, locations=None) -> tuple[str, str]:
    made = new_token()
    instance = Instance.open(home=str(home))
    try:
        instance.storage.add_api_token(ApiToken(token_id=made.token_id, name=name, role=role, locations=locations,
                                                digest=made.digest, created_at=time.time(), created_by="test"))
    finally:
        instance.dispose()
    return made.token_id, made.secret


def _client(ui, secret: str):
    return client_for(ui, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def ui(start_webui, instance_file):
    instance_file("webui:\n  auth: {}\n")  # API tokens only
    return start_webui()


def test_a_launcher_token_submits_and_a_viewer_token_is_refused_readably(ui, home):
    _, launcher = _token(home, "ci", "launcher")
    _, viewer = _token(home, "dashboards", "viewer")
    client = _client(ui, launcher)
    run_id = client.submit_job_execution("hello", run_config={"ops": {"greet": {"config": {"name": "token"}}}})
    assert wait_until(lambda: client.get_run_status(run_id) in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
                      and client.get_run_status(run_id), timeout=60, what="the run") == DagsterRunStatus.SUCCESS

    refused = _client(ui, viewer)
    assert refused.get_run_status(run_id) == DagsterRunStatus.SUCCESS  # reading is a viewer's
    with pytest.raises(DagsterGraphQLClientError) as raised:
        refused.submit_job_execution("hello", repository_location_name=LOCATION, repository_name="__repository__")
    assert raised.value.args[0] == "UnauthorizedError" and "'launcher' or above" in raised.value.args[1]
    with pytest.raises(DagsterGraphQLClientError) as raised:
        refused.terminate_run(run_id)
    assert raised.value.args[0] == "PythonError" and "terminate run needs 'launcher'" in raised.value.args[1]
    reload = refused.reload_repository_location(LOCATION)
    assert reload.status == ReloadRepositoryLocationStatus.FAILURE and "'editor' or above" in reload.message
    shutdown = _client(ui, launcher).shutdown_repository_location(LOCATION)
    assert shutdown.status == ShutdownRepositoryLocationStatus.FAILURE and "'admin' or above" in shutdown.message


def test_a_revoked_or_scoped_token(ui, home):
    token_id, secret = _token(home, "ci", "admin")
    _, elsewhere = _token(home, "other-team", "launcher", ("other",))
    client = _client(ui, secret)
    assert client.reload_repository_location(LOCATION).status == ReloadRepositoryLocationStatus.SUCCESS

    with pytest.raises(DagsterGraphQLClientError) as raised:
        _client(ui, elsewhere).submit_job_execution("hello", repository_location_name=LOCATION,
                                                    repository_name="__repository__")
    assert raised.value.args[0] == "UnauthorizedError" and "limited to code locations other" in raised.value.args[1]

    instance = Instance.open(home=str(home))
    try:
        assert instance.storage.revoke_api_token(token_id, time.time())
    finally:
        instance.dispose()
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client.get_run_status("any")
    assert "401" in raised.value.args[0]
