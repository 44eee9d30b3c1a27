"""Why a run failed, in a real ``runyard webui``: GraphQL ``Run.failure { reason message }`` and the
run page's failure line, for a launcher (selected by {module, class} in the instance file) that
raises LaunchError with a reason; nothing for a run that failed in its own steps. Also the run page's
retry facts: a retry's attempt number, and what a failed run was retried as (run_retries).

Needs: nothing beyond Python (SQLite, a real code server and web UI as subprocesses).
"""

from __future__ import annotations

import html
import re

REFUSING_LAUNCHER = '''
from runyard.launchers.base import LaunchError, RunLauncher


class RefusingLauncher(RunLauncher):
    """Never starts a worker: the network is missing, as a container launcher would say."""

    def launch_run(self, context):
        raise LaunchError("network etl-net not found on the engine", reason="network_not_found",
                          details={"network": "etl-net"})

    def terminate(self, context):
        return False
'''

FAILURE = """query($id: ID!) { run(runId: $id) { status failure { reason message } } }"""


def failure_line(page: str) -> str | None:
    """The run page's failure paragraph as text, or None when it is hidden."""
    m = re.search(r'<p class="failure" id="run-failure"\s*(hidden)?\s*>(.*?)</p>', page, re.S)
    assert m, "the run page has no failure line"
    return None if m.group(1) else " ".join(html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).split())


def test_a_launch_failure_shows_its_reason_in_graphql_and_on_the_run_page(start_webui, instance_file, tmp_path):
    (tmp_path / "refusing_launcher.py").write_text(REFUSING_LAUNCHER)
    instance_file("run_launcher:\n  module: refusing_launcher\n  class: RefusingLauncher\n")
    webui = start_webui(env={"PYTHONPATH": str(tmp_path)})
    result = webui.launch("hello")
    assert not result["ok"] and "network etl-net not found on the engine" in result["message"], result
    run_id = result["run"]["runId"]
    run = webui.gql(FAILURE, {"id": run_id})["run"]
    assert run == {"status": "FAILURE", "failure": {"reason": "network_not_found",
                                                    "message": "network etl-net not found on the engine"}}
    status, page = webui.get(f"/runs/{run_id}")
    assert status == 200
    assert failure_line(page) == "Failure: network_not_found — network etl-net not found on the engine"


def test_a_run_that_failed_in_a_step_or_succeeded_has_no_failure(webui):
    for job, final in (("broken", "FAILURE"), ("hello", "SUCCESS")):
        run_id = webui.launch(job)["run"]["runId"]
        assert webui.wait_finished(run_id)[0] == final
        assert webui.gql(FAILURE, {"id": run_id})["run"] == {"status": final, "failure": None}
        assert failure_line(webui.get(f"/runs/{run_id}")[1]) is None


def test_the_run_page_shows_a_retry_and_what_a_failed_run_was_retried_as(webui):
    from runyard.daemon.retries import retry_run_id
    from runyard.instance.instance import Instance
    from runyard.tags import PARENT_RUN_ID_TAG, RETRY_NUMBER_TAG

    failed_id = webui.launch("broken")["run"]["runId"]
    assert webui.wait_finished(failed_id)[0] == "FAILURE"
    # the run the daemon's run retries would store for it (docs/daemon.md#run-retries)
    inst = Instance.open(home=str(webui.home))
    try:
        failed = inst.get_run(failed_id)
        inst.create_run(job_name=failed.job_name, run_id=retry_run_id(failed_id), parent_run_id=failed_id,
                        tags={**failed.tags, PARENT_RUN_ID_TAG: failed_id, RETRY_NUMBER_TAG: "1"})
    finally:
        inst.dispose()
    retry_id = retry_run_id(failed_id)
    page = webui.get(f"/runs/{failed_id}")[1]
    assert re.search(rf'data-retried-as><a href="/runs/{retry_id}"><code>{retry_id[:8]}</code></a> NOT_STARTED', page)
    page = webui.get(f"/runs/{retry_id}")[1]
    assert "<dd data-retry-number>attempt 1 (made by the daemon)</dd>" in page
    assert f'href="/runs/{failed_id}"' in page
