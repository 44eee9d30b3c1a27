"""Dagster's Python GraphQL client, unchanged, against a real ``runyard webui`` (issue 15, item 1;
docs/api.md): submit a job and see it succeed, invalid run config and unknown jobs raise the client's
errors, an unknown run's status raises, a started run is terminated to CANCELED, a code location is
reloaded (and its load failure reported), a read-only web UI refuses. Every query the client can
send validates against runyard's schema, and runyard's own API keeps working beside it."""

from __future__ import annotations

import shutil

import pytest
from conftest import DEFS, client_for
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClientError, ReloadRepositoryLocationStatus, ShutdownRepositoryLocationStatus
from dagster_graphql.client import client_queries

from runyard.testing import wait_until

LOCATION = "defs_webui"
REPOSITORY = "__repository__"


def wait_status(client, run_id: str, *statuses: DagsterRunStatus, timeout: float = 60) -> DagsterRunStatus:
    return wait_until(lambda: (s := client.get_run_status(run_id)) in statuses and s, timeout=timeout,
                      what=f"run {run_id} to be {'/'.join(s.value for s in statuses)}")


def run_of(webui, run_id: str) -> dict:
    return webui.gql("""query($id: ID!) { run(runId: $id) { jobName status location stepKeysToExecute
        tags { key value } } }""", {"id": run_id})["run"]


def test_every_client_query_validates_against_the_schema():
    from graphql import parse, validate

    from runyard_webui.schema import VALIDATION_RULES, build_schema

    schema = build_schema().graphql_schema
    documents = {name: text for name, text in vars(client_queries).items() if name.isupper()}
    assert len(documents) == 7
    for name, text in documents.items():
        assert validate(schema, parse(text), VALIDATION_RULES) == [], name


def test_submit_job_execution_runs_to_success(webui, client):
    run_id = client.submit_job_execution("hello", run_config={"ops": {"greet": {"config": {"name": "dagster"}}}},
                                         tags={"team": "data"})
    assert wait_status(client, run_id, DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) \
        == DagsterRunStatus.SUCCESS
    run = run_of(webui, run_id)
    assert run["jobName"] == "hello" and run["location"] == LOCATION
    assert {"key": "team", "value": "data"} in run["tags"]

    # named explicitly (no repository lookup), with an op selection
    selected = client.submit_job_execution("hello", repository_location_name=LOCATION, repository_name=REPOSITORY,
                                           op_selection=["greet"])
    assert wait_status(client, selected, DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) \
        == DagsterRunStatus.SUCCESS
    assert run_of(webui, selected)["stepKeysToExecute"] == ["greet"]


def test_invalid_run_config_raises_the_config_errors(webui, client):
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client.submit_job_execution("hello", run_config={"ops": {"greet": {"config": {"times": "many",
                                                                                      "colour": "red"}}}})
    kind, errors = raised.value.args
    assert kind == "RunConfigValidationInvalid"
    assert sorted(e["path"] for e in errors) == ["ops.greet.config.colour", "ops.greet.config.times"]
    assert all(e["message"] and e["reason"] for e in errors)
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_unknown_job_repository_or_location_raises(webui, client):
    with pytest.raises(DagsterGraphQLClientError) as raised:  # the client's own lookup finds nothing
        client.submit_job_execution("nope")
    assert raised.value.args[0] == "JobNotFoundError"
    cases = {(LOCATION, REPOSITORY, "nope"): "no job named 'nope'",
             (LOCATION, "elsewhere", "hello"): "no repository named 'elsewhere'",
             ("elsewhere", REPOSITORY, "hello"): "no code location named 'elsewhere'"}
    for (location, repository, job), said in cases.items():
        with pytest.raises(DagsterGraphQLClientError) as raised:
            client.submit_job_execution(job, repository_location_name=location, repository_name=repository)
        kind, message = raised.value.args
        assert kind == "PipelineNotFoundError" and said in message, raised.value.args
    # the location's name is accepted as its repository's name too
    run_id = client.submit_job_execution("hello", repository_location_name=LOCATION, repository_name=LOCATION)
    wait_status(client, run_id, DagsterRunStatus.SUCCESS)
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 1


def test_status_of_an_unknown_run_raises(client):
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client.get_run_status("no-such-run")
    assert raised.value.args == ("RunNotFoundError", "no run with id 'no-such-run'")


def test_terminate_a_started_run_ends_canceled(webui, client):
    run_id = client.submit_job_execution("sleepy", run_config={"ops": {"nap": {"config": {"seconds": 60}}}})
    wait_status(client, run_id, DagsterRunStatus.STARTED)
    client.terminate_run(run_id)
    assert wait_status(client, run_id, DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS,
                       DagsterRunStatus.FAILURE) == DagsterRunStatus.CANCELED

    with pytest.raises(DagsterGraphQLClientError) as raised:  # nothing left to stop
        client.terminate_run(run_id)
    assert raised.value.args[0] == "TerminateRunFailure" and "already finished (CANCELED)" in raised.value.args[1]
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client.terminate_run("no-such-run")
    assert raised.value.args == ("RunNotFoundError", "Run Id no-such-run not found")

    # several at once: the running one is stopped, the others are reported
    running = client.submit_job_execution("sleepy", run_config={"ops": {"nap": {"config": {"seconds": 60}}}})
    wait_status(client, running, DagsterRunStatus.STARTED)
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client.terminate_runs([running, run_id, "no-such-run"])
    kind, message = raised.value.args
    assert kind == "TerminateRunsError" and message.startswith("Some runs could not be terminated")
    assert "TerminateRunFailure" in message and "RunNotFoundError" in message
    assert wait_status(client, running, DagsterRunStatus.CANCELED, DagsterRunStatus.SUCCESS,
                       DagsterRunStatus.FAILURE) == DagsterRunStatus.CANCELED


def test_reload_a_location_and_see_its_load_failure(start_webui, tmp_path):
    defs = tmp_path / "defs" / "defs_webui.py"
    defs.parent.mkdir()
    shutil.copy(DEFS, defs)
    good = defs.read_text()
    ui = start_webui("-f", str(defs), defs=False)
    client = client_for(ui)

    assert client.reload_repository_location(LOCATION).status == ReloadRepositoryLocationStatus.SUCCESS
    missing = client.reload_repository_location("elsewhere")
    assert missing.status == ReloadRepositoryLocationStatus.FAILURE
    assert missing.failure_type == "RepositoryLocationNotFound" and "no code location named" in missing.message

    defs.write_text(good + "\nraise RuntimeError('broken on purpose')\n")
    broken = client.reload_repository_location(LOCATION)
    assert broken.status == ReloadRepositoryLocationStatus.FAILURE
    assert broken.failure_type == "PythonError" and "broken on purpose" in broken.message
    with pytest.raises(DagsterGraphQLClientError) as raised:  # a location that does not load has no jobs
        client.submit_job_execution("hello")
    assert raised.value.args[0] == "JobNotFoundError"

    defs.write_text(good)
    with pytest.warns(DeprecationWarning):  # Dagster deprecated its shutdown; runyard reloads in place
        shutdown = client.shutdown_repository_location(LOCATION)
    assert shutdown.status == ShutdownRepositoryLocationStatus.SUCCESS
    run_id = client.submit_job_execution("hello")
    assert wait_status(client, run_id, DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) \
        == DagsterRunStatus.SUCCESS


def test_a_read_only_web_ui_refuses_the_client(start_webui):
    """Each refusal is a type the client reads a message from (docs/api.md)."""
    ui = start_webui("--read-only")
    client = client_for(ui)
    calls = {"UnauthorizedError": lambda: client.submit_job_execution("hello"),
             "PythonError": lambda: client.terminate_run("any"),
             "TerminateRunsError": lambda: client.terminate_runs(["any"])}
    for expected, call in calls.items():
        with pytest.raises(DagsterGraphQLClientError) as raised:
            call()
        kind, message = raised.value.args
        assert kind == expected and "read-only" in message, raised.value.args
    reload = client.reload_repository_location(LOCATION)
    assert reload.status == ReloadRepositoryLocationStatus.FAILURE and reload.failure_type == "ReloadNotSupported"
    assert "read-only" in reload.message
    assert ui.gql("{ runs { count } }")["runs"]["count"] == 0


def test_basic_auth_through_the_clients_auth_argument(start_webui, instance_file):
    from requests.auth import HTTPBasicAuth

    instance_file("webui:\n  auth:\n    username: ops\n    password: s3cret\n")
    ui = start_webui()
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client_for(ui).get_run_status("no-such-run")
    assert "401" in raised.value.args[0]
    with pytest.raises(DagsterGraphQLClientError) as raised:
        client_for(ui, auth=HTTPBasicAuth("ops", "s3cret")).get_run_status("no-such-run")
    assert raised.value.args[0] == "RunNotFoundError"


def test_dagster_and_runyard_arguments_share_launch_and_terminate(webui):
    """Scripts written against Dagster's schema (launchRun with executionParams, runOrError) and
    runyard's own API (launchRun with location and jobName, run ids declared ID!) on the same fields."""
    launched = webui.gql("""mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                         {"params": {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                                                  "jobName": "sleepy"},
                                     "runConfigData": "ops:\n  nap:\n    config: {seconds: 60}\n",
                                     "executionMetadata": {"tags": [{"key": "origin", "value": "dagster"}]}}})
    assert launched["launchRun"]["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["launchRun"]["run"]["runId"]
    found = webui.gql("""query($id: ID!) { runOrError(runId: $id) { __typename ... on PipelineRun { runId status
        pipelineName mode runConfigYaml } } }""", {"id": run_id})["runOrError"]
    assert found["__typename"] == "Run" and found["pipelineName"] == "sleepy" and found["mode"] == "default"
    assert "seconds: 60" in found["runConfigYaml"]

    terminated = webui.gql("""mutation($id: ID!) { terminateRun(runId: $id) { __typename ok code message
        run { status } } }""", {"id": run_id})["terminateRun"]
    assert terminated["__typename"] == "TerminateRunSuccess" and terminated["ok"]
    assert terminated["run"]["status"] in ("CANCELING", "CANCELED")

    runyard = webui.gql("""mutation { launchRun(location: "defs_webui", jobName: "hello") { __typename ok code
        run { runId } errors { path } } }""")["launchRun"]
    assert runyard["__typename"] == "LaunchRunSuccess" and runyard["ok"] and runyard["errors"] == []
    both = webui.gql("""mutation { launchRun(location: "defs_webui", executionParams: {selector: {
        repositoryLocationName: "defs_webui", repositoryName: "__repository__", jobName: "hello"}}) {
        __typename ok code message } }""")["launchRun"]
    assert both["__typename"] == "ConflictingExecutionParamsError" and not both["ok"] and both["code"] == "INVALID"
    refused = webui.gql("""mutation { launchPipelineExecution(executionParams: {preset: "p", selector: {
        repositoryLocationName: "defs_webui", repositoryName: "__repository__", pipelineName: "hello"}}) {
        __typename ... on PresetNotFoundError { message preset } } }""")["launchPipelineExecution"]
    assert refused["__typename"] == "PresetNotFoundError" and refused["preset"] == "p"
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 2  # nothing stored for the refused ones
