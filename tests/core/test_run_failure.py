"""A run's typed failure reason, as ``runyard run show`` prints it: a launcher selected by
{module, class} in the instance file raises :class:`LaunchError` with a reason, and the CLI shows
that reason and message (text and ``--json``); a run that failed in its own steps shows none.

Needs: nothing beyond Python (SQLite under tmp_path, local subprocesses).
"""

from __future__ import annotations

import re

from runyard import Instance
from runyard.operations.failure import run_failure
from runyard.storage.records import RunStatus

REFUSING_LAUNCHER = '''
from runyard.launchers.base import LaunchError, RunLauncher


class RefusingLauncher(RunLauncher):
    """Never starts a worker: says the image is missing, as a container launcher would."""

    def launch_run(self, context):
        raise LaunchError("image etl:missing not found on the engine", reason="image_not_found",
                          details={"image": "etl:missing"})

    def terminate(self, context):
        return False
'''

RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")


def test_run_show_prints_the_launchers_failure_reason(cli, home, tiny_defs, write_file, tmp_path):
    write_file("refusing_launcher.py", REFUSING_LAUNCHER)
    (home / "runyard.yaml").write_text("run_launcher:\n  module: refusing_launcher\n  class: RefusingLauncher\n")
    env = {"PYTHONPATH": str(tmp_path)}
    proc = cli("job", "launch", "-f", tiny_defs, "-j", "tiny", env=env)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "image etl:missing not found on the engine" in proc.stdout + proc.stderr
    run_id = RUN_ID.search(cli.ok("run", "list", env=env).stdout).group(0)

    text = cli.ok("run", "show", run_id, env=env).stdout
    assert "Status     FAILURE" in text
    assert "Failure    image_not_found: image etl:missing not found on the engine\n" in text

    shown = cli.json("run", "show", run_id, "--json", env=env)
    assert shown["status"] == "FAILURE"
    assert shown["failure"] == {"reason": "image_not_found", "message": "image etl:missing not found on the engine"}


def test_a_run_that_failed_in_its_steps_has_no_failure_reason(cli, sample_defs):
    proc = cli("job", "execute", "-f", sample_defs, "-j", "broken")
    assert proc.returncode == 1
    run_id = RUN_ID.search(proc.stdout).group(0)
    assert "Failure " not in cli.ok("run", "show", run_id).stdout
    shown = cli.json("run", "show", run_id, "--json")
    assert shown["status"] == "FAILURE" and shown["failure"] is None


def test_run_failure_reads_the_last_final_event_and_prefers_its_error(home):
    """The lookup itself: the reason of the last RUN_FAILURE/RUN_CANCELED event; its ``error`` as
    the message unless that only repeats the reason (launchers without codes store both alike)."""
    instance = Instance.open(home=str(home))
    try:
        def finished(final: RunStatus, data: dict) -> object:
            run = instance.create_run(job_name="j")
            instance.transition(run.run_id, [RunStatus.NOT_STARTED], final, "Run worker died: gone.", data=data)
            return instance.get_run(run.run_id)

        typed = finished(RunStatus.FAILURE, {"reason": "oom_killed", "error": "killed: out of memory (limit 64m)"})
        assert run_failure(instance.storage, typed).to_dict() == {
            "reason": "oom_killed", "message": "killed: out of memory (limit 64m)"}
        repeated = finished(RunStatus.FAILURE, {"reason": "worker exited", "error": "worker exited"})
        assert run_failure(instance.storage, repeated).message == "Run worker died: gone."
        canceled = finished(RunStatus.CANCELED, {"reason": "cancel_timeout"})
        assert run_failure(instance.storage, canceled).to_dict() == {
            "reason": "cancel_timeout", "message": "Run worker died: gone."}
        assert run_failure(instance.storage, finished(RunStatus.FAILURE, {"error": "Traceback ..."})) is None
        assert run_failure(instance.storage, finished(RunStatus.SUCCESS, {"reason": "odd"})) is None
    finally:
        instance.dispose()
