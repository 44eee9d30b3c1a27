"""The command line, end to end in subprocesses: listing jobs, executing and launching runs, and
inspecting, deleting and re-executing stored runs.

Needs: real subprocesses (``python -m runyard``) and a SQLite file per test home.
"""

from __future__ import annotations

import re
import subprocess

import pytest

RUN_ID = re.compile(r"\b([0-9a-f]{32})\b")

DOCUMENTED_RUN_FIELDS = {"run_id", "job_name", "status", "run_config", "tags", "code_pointer",
                         "launcher_info", "created_at", "start_time", "end_time", "duration", "steps"}


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    match = RUN_ID.search(proc.stdout)
    assert match, f"no run id in output:\n{proc.stdout}\n{proc.stderr}"
    return match.group(1)


# ---- job list ------------------------------------------------------------------------------------

def test_job_list_from_file(cli, sample_defs):
    out = cli.ok("job", "list", "-f", sample_defs).stdout
    assert "etl (3 ops) — Extract, transform, load." in out
    assert "ops: extract, transform, load" in out
    assert "broken" in out and "waiting" in out


def test_job_list_from_module_json(cli, sample_defs, tmp_path):
    jobs = cli.json("job", "list", "-m", "defs", "-d", tmp_path, "--json")
    assert [j["name"] for j in jobs] == ["broken", "etl", "waiting"]
    etl = jobs[1]
    assert etl["ops"] == ["extract", "transform", "load"]
    assert etl["tags"] == {"team": "data"}
    assert etl["resources"] == []
    assert etl["description"] == "Extract, transform, load."


def test_job_list_from_module_in_the_working_directory(cli, sample_defs):
    # cli runs in tmp_path, where defs.py lives: -m resolves against the current directory
    assert [j["name"] for j in cli.json("job", "list", "-m", "defs", "--json")] == ["broken", "etl", "waiting"]


def test_job_list_gathers_module_level_jobs_without_definitions(cli, write_defs):
    path = write_defs("""
        from runyard import job, op

        @op
        def ping() -> str:
            return "pong"

        @job
        def first():
            ping()

        @job
        def second():
            ping()
    """, name="loose.py")
    assert [j["name"] for j in cli.json("job", "list", "-f", path, "--json")] == ["first", "second"]


def test_job_list_needs_a_location(cli):
    proc = cli("job", "list")
    assert proc.returncode == 2
    assert "give a definitions file with -f FILE or a module with -m MODULE" in proc.stderr


# ---- job execute ---------------------------------------------------------------------------------

def test_job_execute_prints_step_progress_and_exits_zero(cli, sample_defs, home):
    proc = cli.ok("job", "execute", "-f", sample_defs, "-j", "etl", "--tag", "owner=me")
    out = proc.stdout
    run_id = run_id_of(proc)
    assert f"Executing job 'etl' as run {run_id}" in out
    for step in ("extract", "transform", "load"):
        assert re.search(rf"STEP_START\s+{step}\s", out), out
        assert re.search(rf"STEP_SUCCESS\s+{step}\s", out), out
    assert re.search(r"LOG\s+load\s+loaded 3 rows", out)
    assert "LOADED_INPUT" not in out  # debug-level events only with -v
    assert re.search(rf"Run {run_id} SUCCESS in ", out)
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "SUCCESS"
    assert run["tags"] == {"team": "data", "owner": "me"}
    assert (home / "storage" / run_id / "load" / "result").is_file()


def test_job_execute_verbose_shows_debug_events(cli, sample_defs):
    out = cli.ok("job", "execute", "-f", sample_defs, "-j", "etl", "-v").stdout
    assert re.search(r"LOADED_INPUT\s+transform", out)
    assert re.search(r"HANDLED_OUTPUT\s+extract", out)


def test_job_execute_progress_is_live(cli, sample_defs, waiting_config, tmp_path, wait_for):
    go = tmp_path / "go"
    proc = cli.popen("job", "execute", "-f", sample_defs, "-j", "waiting", "-c", waiting_config(go_file=go))
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if re.search(r"LOG\s+wait\s+waiting", line):
                break
        assert any("STEP_START" in ln for ln in seen)
        assert proc.poll() is None, "the step's progress must be printed while it is still running"
        go.touch()
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0
        assert re.search(r"STEP_SUCCESS\s+wait", rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_job_execute_exits_one_when_the_run_fails(cli, sample_defs):
    proc = cli("job", "execute", "-f", sample_defs, "-j", "broken")
    assert proc.returncode == 1
    run_id = run_id_of(proc)
    assert re.search(r"STEP_FAILURE\s+explode\s+Step 'explode' failed: ValueError: cannot handle 3 rows",
                     proc.stdout)
    assert 'raise ValueError(f"cannot handle {len(rows)} rows")' in proc.stdout  # the user's traceback
    assert re.search(r"STEP_SKIPPED\s+load", proc.stdout)
    assert re.search(rf"Run {run_id} FAILURE", proc.stdout)


def test_job_execute_with_run_config_files_merged_in_order(cli, write_defs, write_file):
    defs = write_defs("""
        from runyard import Config, job, op

        class Cfg(Config):
            greeting: str
            name: str = "world"

        @op
        def hello(context, config: Cfg) -> str:
            context.log.info(f"{config.greeting}, {config.name}!")
            return config.greeting

        @job
        def greet():
            hello()
    """)
    base = write_file("base.yaml", "ops:\n  hello:\n    config:\n      greeting: hi\n      name: base\n")
    override = write_file("override.yaml", "ops:\n  hello:\n    config:\n      name: yard\n")
    proc = cli.ok("job", "execute", "-f", defs, "-j", "greet", "-c", base, "-c", override)
    assert "hi, yard!" in proc.stdout
    run = cli.json("run", "show", run_id_of(proc), "--json")
    assert run["run_config"] == {"ops": {"hello": {"config": {"greeting": "hi", "name": "yard"}}}}


# ---- job launch ----------------------------------------------------------------------------------

def test_job_launch_wait_goes_through_coordinator_launcher_and_worker(cli, sample_defs, home):
    proc = cli.ok("job", "launch", "-f", sample_defs, "-j", "etl", "--wait")
    run_id = run_id_of(proc)
    assert f"Launched run {run_id} of job 'etl' (STARTING, launcher process)." in proc.stdout
    for kind in ("RUN_STARTING", "RUN_START", "STEP_SUCCESS", "RUN_SUCCESS"):
        assert kind in proc.stdout
    assert re.search(rf"Run {run_id} SUCCESS", proc.stdout)
    run = cli.json("run", "show", run_id, "--json")
    assert run["status"] == "SUCCESS"
    info = run["launcher_info"]
    assert info["pid"] > 0 and info["log_path"] == str(home / "logs" / "runs" / f"{run_id}.log")
    assert f"run {run_id} finished: SUCCESS" in (home / "logs" / "runs" / f"{run_id}.log").read_text()
    worker_start = [e for e in cli_events(cli, run_id) if e["event_type"] == "RUN_START"][0]
    assert worker_start["data"]["pid"] == info["pid"]  # the run really ran in the launched worker


def test_job_launch_wait_exits_one_when_the_run_fails(cli, sample_defs):
    proc = cli("job", "launch", "-f", sample_defs, "-j", "broken", "--wait")
    assert proc.returncode == 1
    assert cli.json("run", "show", run_id_of(proc), "--json")["status"] == "FAILURE"


def test_job_launch_without_wait_returns_at_once(cli, sample_defs, wait_for):
    proc = cli.ok("job", "launch", "-f", sample_defs, "-j", "etl")
    run_id = run_id_of(proc)
    assert "RUN_START " not in proc.stdout
    wait_for(lambda: cli.json("run", "show", run_id, "--json")["status"] == "SUCCESS", timeout=20,
             what="the launched run to succeed")


# ---- run list / show / logs / delete -------------------------------------------------------------

def cli_events(cli, run_id: str) -> list[dict]:
    import json

    return [json.loads(line) for line in cli.ok("run", "logs", run_id, "--json").stdout.splitlines()]


@pytest.fixture
def two_runs(cli, sample_defs):
    ok = run_id_of(cli.ok("job", "execute", "-f", sample_defs, "-j", "etl"))
    failed = run_id_of(cli("job", "execute", "-f", sample_defs, "-j", "broken"))
    return ok, failed


def test_run_list(cli, two_runs):
    ok, failed = two_runs
    runs = cli.json("run", "list", "--json")
    assert [r["run_id"] for r in runs] == [failed, ok]  # newest first
    assert {r["run_id"]: r["status"] for r in runs} == {ok: "SUCCESS", failed: "FAILURE"}
    assert [r["run_id"] for r in cli.json("run", "list", "--status", "FAILURE", "--json")] == [failed]
    assert [r["run_id"] for r in cli.json("run", "list", "--status", "success", "--json")] == [ok]
    assert [r["run_id"] for r in cli.json("run", "list", "--job", "etl", "--json")] == [ok]
    assert [r["run_id"] for r in cli.json("run", "list", "--tag", "team=data", "--json")] == [ok]
    assert len(cli.json("run", "list", "--limit", "1", "--json")) == 1
    text = cli.ok("run", "list").stdout
    assert ok in text and failed in text and "SUCCESS" in text and "FAILURE" in text


def test_run_list_rejects_an_unknown_status(cli):
    proc = cli("run", "list", "--status", "DONE")
    assert proc.returncode == 2
    assert "DONE" in proc.stderr


def test_run_show_json_has_the_documented_fields(cli, two_runs, sample_defs):
    ok, failed = two_runs
    run = cli.json("run", "show", ok, "--json")
    assert DOCUMENTED_RUN_FIELDS <= set(run)
    assert run["run_id"] == ok and run["job_name"] == "etl" and run["status"] == "SUCCESS"
    assert run["run_config"] == {} and run["tags"] == {"team": "data"}
    assert run["code_pointer"]["python_file"] == str(sample_defs)
    assert run["end_time"] >= run["start_time"] >= run["created_at"] - 1
    assert [(s["step_key"], s["status"], s["attempts"]) for s in run["steps"]] == [
        ("extract", "SUCCESS", 1), ("transform", "SUCCESS", 1), ("load", "SUCCESS", 1)]
    broken = cli.json("run", "show", failed, "--json")
    steps = {s["step_key"]: s for s in broken["steps"]}
    assert steps["explode"]["status"] == "FAILURE"
    assert steps["explode"]["error"] == "ValueError: cannot handle 3 rows"
    assert steps["load"]["status"] == "SKIPPED"


def test_run_show_text(cli, two_runs):
    ok, _ = two_runs
    out = cli.ok("run", "show", ok).stdout
    assert f"Run        {ok}" in out and "Job        etl" in out and "Status     SUCCESS" in out
    assert "Tags       team=data" in out
    assert re.search(r"extract\s+SUCCESS\s+attempts=1", out)


def test_run_logs(cli, two_runs):
    _, failed = two_runs
    events = cli_events(cli, failed)
    kinds = [e["event_type"] for e in events]
    assert kinds[0] == "RUN_START" and kinds[-1] == "RUN_FAILURE"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    failure = next(e for e in events if e["event_type"] == "STEP_FAILURE")
    assert failure["step_key"] == "explode" and failure["level"] == "ERROR"
    assert "Traceback" not in failure["data"]["error"]
    assert "cannot handle" in failure["data"]["traceback"]
    text = cli.ok("run", "logs", failed).stdout
    assert "STEP_FAILURE" in text and 'raise ValueError(f"cannot handle {len(rows)} rows")' in text
    assert "LOADED_INPUT" not in text
    assert "LOADED_INPUT" in cli.ok("run", "logs", failed, "-v").stdout


def test_run_delete(cli, two_runs, home):
    ok, failed = two_runs
    assert (home / "storage" / ok).is_dir()
    assert f"Deleted run {ok}." in cli.ok("run", "delete", ok, "--yes").stdout
    assert [r["run_id"] for r in cli.json("run", "list", "--json")] == [failed]
    proc = cli("run", "show", ok)
    assert proc.returncode == 1
    assert f"No run with id '{ok}'" in proc.stderr
    assert cli.json("instance", "info", "--json")["runs"] == 1


def test_execute_run_refuses_a_finished_run(cli, two_runs):
    ok, _ = two_runs
    before = cli_events(cli, ok)
    proc = cli("execute-run", ok)
    assert proc.returncode == 2
    assert f"Run {ok} is SUCCESS" in proc.stderr and "already have been executed" in proc.stderr
    assert cli_events(cli, ok) == before  # nothing was written
    assert cli.json("run", "show", ok, "--json")["status"] == "SUCCESS"


def test_instance_info_counts_runs(cli, two_runs, home):
    info = cli.json("instance", "info", "--json")
    assert info["runs"] == 2
    assert info["storage"]["schema_revision"]
    text = cli.ok("instance", "info").stdout
    assert str(home) in text and "Runs             2" in text


def test_version_and_help(cli):
    assert "runyard, version" in cli.ok("--version").stdout
    out = cli.ok("--help").stdout
    for command in ("job", "run", "instance", "plugins", "execute-run"):
        assert command in out
