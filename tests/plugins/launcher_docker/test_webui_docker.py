"""The web UI with the docker launcher: a real ``runyard webui`` over a workspace whose entries name
their image (``image:``), its instance on PostgreSQL with the docker launcher. A run launched through
GraphQL ``launchRun`` succeeds in a container of its location's image and carries the
``runyard/image`` tag (shown with the tags on its page); a location whose image does not exist gives
a FAILURE run whose ``failure`` says ``image_not_found``, in GraphQL and on the run page.

Needs: the Docker engine, image and PostgreSQL of conftest.py, and the web UI distribution. The web
UI and its code servers are real subprocesses; the web UI launches the containers itself (the
``default`` coordinator).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from launchertest import JOBS, runyard_env, wait_status

from runyard.storage.records import RunStatus
from runyard.tags import IMAGE_TAG

MISSING_IMAGE = "runyard:no-such-image"


def _webui_harness():
    """tests/webui/conftest.py's ``WebUI`` (a ``runyard webui`` subprocess driven over HTTP): loaded
    by path, since that directory is not on sys.path when only these tests run."""
    path = Path(__file__).resolve().parents[2] / "webui" / "conftest.py"
    spec = importlib.util.spec_from_file_location("runyard_webui_harness", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WebUI


WebUI = _webui_harness()

LAUNCH = """mutation($loc: String!) { launchRun(location: $loc, jobName: "quick") {
    ok message run { runId status } errors { message } } }"""
RUN = """query($id: ID!) { run(runId: $id) { status location tags { key value } failure { reason message } } }"""


def test_runs_launched_from_the_webui_use_their_locations_image(make_home, runyard_image):
    home = make_home(image_pull="never")
    defs = home.write_defs(JOBS)
    workspace = home.root / "workspace.yaml"
    workspace.write_text(f"load_from:\n"
                         f"  - python_file: {defs}\n    location_name: good\n    image: '{runyard_image}'\n"
                         f"  - python_file: {defs}\n    location_name: bad\n    image: '{MISSING_IMAGE}'\n")
    ui = WebUI(home.home, home.root, ("-w", str(workspace), "--port", "0"), runyard_env(home))
    try:
        good = ui.gql(LAUNCH, {"loc": "good"})["launchRun"]
        assert good["ok"], good
        run_id = good["run"]["runId"]
        assert ui.wait_finished(run_id, timeout=90)[0] == "SUCCESS"
        run = ui.gql(RUN, {"id": run_id})["run"]
        assert run["location"] == "good" and run["failure"] is None
        assert {"key": IMAGE_TAG, "value": runyard_image} in run["tags"]
        stored = wait_status(home, run_id, RunStatus.SUCCESS)
        assert stored.launcher_info["image"] == runyard_image  # the worker really ran in a container of it
        status, page = ui.get(f"/runs/{run_id}")
        assert status == 200 and f'data-tag="{IMAGE_TAG}">{IMAGE_TAG}={runyard_image}</a>' in page

        bad = ui.gql(LAUNCH, {"loc": "bad"})["launchRun"]
        assert not bad["ok"] and MISSING_IMAGE in bad["message"], bad
        bad_id = bad["run"]["runId"]
        run = ui.gql(RUN, {"id": bad_id})["run"]
        assert run["status"] == "FAILURE"
        assert {"key": IMAGE_TAG, "value": MISSING_IMAGE} in run["tags"]
        assert run["failure"]["reason"] == "image_not_found"
        assert f"image {MISSING_IMAGE} not found on the Docker engine" in run["failure"]["message"]
        status, page = ui.get(f"/runs/{bad_id}")
        assert status == 200
        assert "image_not_found" in page and f"image {MISSING_IMAGE} not found on the Docker engine" in page
    finally:
        code = ui.stop()
    assert code == 0, f"runyard webui exited {code} on SIGTERM:\n{''.join(ui.lines)}{ui.proc.stderr.read()}"
