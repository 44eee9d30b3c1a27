"""With every plugin installed, a process imports only the components its instance selects: a SQLite
web UI never loads the Kubernetes or Docker launchers, the PostgreSQL or MySQL storages or their
client libraries (their plugins register classes by ``"module:Class"``; docs/plugin-authors.md).

Needs: every runyard distribution installed (the ``all`` tox env), real subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from runyard import Instance
from runyard_webui import create_app

instance = Instance.open(home=sys.argv[1])
instance.storage.ping()
instance.run_launcher, instance.run_coordinator
create_app(instance)
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("runyard_launcher_k8s.launcher", "runyard_launcher_k8s.executor", "runyard_launcher_docker.launcher",
         "runyard_launcher_docker.executor", "runyard_storage_postgres.storage", "runyard_storage_mysql.storage",
         "runyard_executor_multiprocess.executor", "kubernetes", "docker", "psycopg2", "pymysql")


def test_a_sqlite_web_ui_imports_no_other_plugins_components(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "runyard_storage_sqlite.storage" in modules and "runyard_launcher_k8s.plugin" in modules
    assert sorted(modules.intersection(HEAVY)) == []


def test_selecting_a_plugins_component_imports_it(tmp_path):
    (tmp_path / "runyard.yaml").write_text("run_launcher:\n  docker: {}\n")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "runyard_launcher_docker.launcher" in modules and "runyard_launcher_k8s.launcher" not in modules
