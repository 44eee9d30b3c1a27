"""Why a run failed, in a real ``runyard webui``: GraphQL ``Run.failure { reason message }`` and the
run page's failure line, for a launcher (selected by {module, class} in the instance file) that
raises LaunchError with a reason; nothing for a run that failed in its own steps.

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
