"""A code location's container image (issue 11): the workspace entry's ``image``, else the one its
code server reports (``--image`` / ``$RUNYARD_CODE_IMAGE``), is recorded on each run created from
the location as the ``runyard/image`` tag, which container launchers use; a user cannot forge it.

Needs: nothing beyond Python and SQLite; code servers are real processes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from runyard.codeserver.client import CodeServerClient
from runyard.errors import ConfigError
from runyard.operations.launch import create_from_location, validate_on_location
from runyard.tags import IMAGE_TAG, ReservedTagError, check_user_tags
from runyard.testing import SuiteHome, read_value_after
from runyard.workspace.workspace import Workspace

DEFS = """
from runyard import job, op

@op
def one() -> int:
    return 1

@job
def tiny():
    one()
"""


@pytest.fixture
def suite(tmp_path):
    home = SuiteHome(tmp_path)
    yield home
    home.close()


def _run_of(suite, workspace_yaml, tmp_path):
    (tmp_path / "defs.py").write_text(DEFS)
    ws_file = tmp_path / "workspace.yaml"
    ws_file.write_text(workspace_yaml)
    with Workspace.from_file(str(ws_file)) as ws:
        loc = ws.locations()[0]
        validation = validate_on_location(loc, "tiny", {})
        assert validation.ok, validation.errors
        return create_from_location(suite.instance, loc, validation, run_config={})


def test_the_workspace_entry_names_the_image_of_its_runs(suite, tmp_path):
    run = _run_of(suite, "load_from:\n  - python_file: defs.py\n    image: etl:7\n", tmp_path)
    assert run.tags[IMAGE_TAG] == "etl:7"
    assert suite.instance.get_run(run.run_id).tags[IMAGE_TAG] == "etl:7"


def test_a_location_without_an_image_tags_nothing(suite, tmp_path):
    run = _run_of(suite, "load_from:\n  - python_file: defs.py\n", tmp_path)
    assert IMAGE_TAG not in run.tags


def test_the_code_server_reports_its_image_and_the_entry_wins(suite, tmp_path):
    (tmp_path / "defs.py").write_text(DEFS)
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "code-server", "-f", str(tmp_path / "defs.py"),
                             "--port", "0", "--image", "etl:from-server"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        port = int(read_value_after(proc, "listening on http://127.0.0.1:"))
        assert CodeServerClient("127.0.0.1", port).health().image == "etl:from-server"
        server_entry = f"load_from:\n  - code_server:\n      port: {port}\n      location_name: remote\n"
        assert _run_of(suite, server_entry, tmp_path).tags[IMAGE_TAG] == "etl:from-server"
        pinned = server_entry + "      image: etl:pinned\n"
        assert _run_of(suite, pinned, tmp_path).tags[IMAGE_TAG] == "etl:pinned"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_image_tag_is_reserved():
    with pytest.raises(ReservedTagError, match=IMAGE_TAG):
        check_user_tags({IMAGE_TAG: "evil:latest"})


def test_an_empty_image_is_refused_with_its_line(tmp_path):
    (tmp_path / "defs.py").write_text(DEFS)
    ws_file = tmp_path / "workspace.yaml"
    ws_file.write_text("load_from:\n  - python_file: defs.py\n    image: ''\n")
    with pytest.raises(ConfigError) as err:
        Workspace.from_file(str(ws_file))
    assert "load_from[0].image" in str(err.value) and "line 3" in str(err.value)
