"""Run config YAML from the launchpad and GraphQL ``runConfigYaml`` goes through runyard's one YAML
loader: unquoted dates work exactly as from ``runyard job execute -c``, an impossible date and an
alias bomb are refused with a clear message, quickly, without the web UI's memory growing.

Needs: a real ``runyard webui`` process over SQLite with a real code server (tests/webui/conftest.py);
/proc for the web UI's resident memory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DEFS = Path(__file__).with_name("defs_webui.py")
LAUNCH = """mutation($yaml: String) { launchRun(location: "defs_webui", jobName: "hello", runConfigYaml: $yaml) {
  ok code message run { runId } errors { message path } } }"""

# 9 levels of 9 aliases: 387 million nodes once expanded, from 689 bytes.
BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\nops: *a9\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def launch_yaml(webui, text: str) -> dict:
    return webui.gql(LAUNCH, {"yaml": text})["launchRun"]


def test_unquoted_date_launches_like_the_cli(webui, cli, tmp_path):
    text = "ops:\n  greet:\n    config:\n      name: 2024-02-01\n"
    result = launch_yaml(webui, text)
    assert result["ok"], result
    status, events = webui.wait_finished(result["run"]["runId"])
    assert status == "SUCCESS"
    assert any(e["message"] == "hello 2024-02-01" for e in events)
    run = webui.gql("""query($id: ID!) { run(runId: $id) { runConfig } }""", {"id": result["run"]["runId"]})["run"]
    assert run["runConfig"] == {"ops": {"greet": {"config": {"name": "2024-02-01"}}}}
    # the same file from the CLI gives the same run config
    (tmp_path / "date.yaml").write_text(text)
    proc = cli("job", "execute", "-f", DEFS, "-j", "hello", "-c", tmp_path / "date.yaml")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(cli.ok("run", "list", "--json").stdout)
    assert all(r["run_config"] == {"ops": {"greet": {"config": {"name": "2024-02-01"}}}} for r in runs), runs


def test_impossible_date_is_a_clear_refusal(webui):
    result = launch_yaml(webui, "ops:\n  greet:\n    config:\n      name: 2024-13-01\n")
    assert not result["ok"] and result["code"] == "INVALID" and result["run"] is None
    assert "2024-13-01" in result["message"] and "line 4" in result["message"], result
    assert "ops.greet.config.name" in result["message"]


def test_alias_bomb_is_refused_quickly_without_memory_growth(webui):
    before = rss_kib(webui.proc.pid)
    started = time.monotonic()
    result = launch_yaml(webui, BILLION_LAUGHS)
    assert time.monotonic() - started < 5
    assert not result["ok"] and result["code"] == "INVALID", result
    assert "alias" in result["message"] and "line " in result["message"]
    self_ref = launch_yaml(webui, "ops: &o\n  greet: *o\n")
    assert not self_ref["ok"] and "refers to itself" in self_ref["message"]
    deep = launch_yaml(webui, "ops: " + "[" * 1000 + "]" * 1000)
    assert not deep["ok"] and "deeper than" in deep["message"]
    assert rss_kib(webui.proc.pid) - before < 200 * 1024  # the bomb grew it by 2.5 GB
    assert webui.gql("{ runs { count } }")["runs"]["count"] == 0
