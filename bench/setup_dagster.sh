#!/usr/bin/env bash
# Create (or reuse) the virtualenv with Dagster 1.13.27 that bench/compare.py measures runyard against.
#
#   bash bench/setup_dagster.sh                        # -> ~/.cache/runyard-bench/dagster-venv
#   DAGSTER_VENV=/opt/dagster-venv bash bench/setup_dagster.sh   # reuse an existing one
#   PYTHON=python3.11 bash bench/setup_dagster.sh      # interpreter the venv is made from
#
# Dagster goes in its own virtualenv, never next to runyard: the two must not share site-packages.
# An existing venv that already has the pinned versions is left as it is. Prints the python to use
# (compare.py finds this location by itself; DAGSTER_VENV or --dagster-python point it elsewhere).
set -euo pipefail

DAGSTER_VERSION=1.13.27
PACKAGES=(
  "dagster==${DAGSTER_VERSION}"
  "dagster-webserver==${DAGSTER_VERSION}"
  "dagster-postgres==0.29.27"   # Dagster's library releases pair 1.13.x with 0.29.x
  "dagster-docker==0.29.27"     # bench/docker_compare.py: DockerRunLauncher and docker_executor
  "dagster-k8s==0.29.27"        # bench/k8s_compare.py: K8sRunLauncher against the fake cluster
  "psycopg2-binary"
)
VENV="${DAGSTER_VENV:-$HOME/.cache/runyard-bench/dagster-venv}"
PYTHON="${PYTHON:-python3}"

have_pinned() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$DAGSTER_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = sys.argv[1]
ok = version("dagster") == want and version("dagster-webserver") == want
version("dagster-postgres"), version("dagster-docker"), version("dagster-k8s"), version("psycopg2-binary")
sys.exit(0 if ok else 1)
EOF
}

if have_pinned; then
  echo "reusing $VENV (dagster $DAGSTER_VERSION, dagster-webserver, dagster-postgres, dagster-docker, dagster-k8s, psycopg2-binary present)"
else
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv $VENV with $("$PYTHON" --version 2>&1)"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
  fi
  echo "installing ${PACKAGES[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"
  have_pinned || { echo "error: $VENV still lacks the pinned packages" >&2; exit 1; }
fi

"$VENV/bin/python" -c "import dagster, sys; print(f'dagster {dagster.__version__} on Python {sys.version.split()[0]}')"
echo "Dagster python: $VENV/bin/python"
echo "next: python bench/compare.py            (or DAGSTER_VENV=$VENV python bench/compare.py)"
