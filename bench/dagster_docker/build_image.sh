#!/usr/bin/env bash
# Build Dagster's image for bench/docker_compare.py the way scripts/build-images builds runyard:dev: on the
# base image runyard-base:bookworm, from wheels downloaded on this host for the base image's Python
# (pip download --only-binary), with no network inside the build (classic builder).
#
#   bash bench/dagster_docker/build_image.sh [DAGSTER_PYTHON]
#
# DAGSTER_PYTHON: the python of the host's Dagster virtualenv (default: that of bench/setup_dagster.sh);
# its virtualenv path is where the image's venv goes (see Dockerfile). The image is tagged
# runyard-bench-dagster:<hash of versions, venv path and Dockerfile> and not built again while that tag
# exists. Prints the image's name on stdout. Needs DOCKER_HOST and the base image (scripts/build-images
# makes it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DPY="${1:-${DAGSTER_PY:-$HOME/.cache/runyard-bench/dagster-venv/bin/python}}"
BASE="runyard-base:bookworm"
[ -x "$DPY" ] || { echo "no Dagster python at $DPY: run bash bench/setup_dagster.sh first" >&2; exit 2; }
VENV="$("$DPY" -c 'import sys; print(sys.prefix)')"
PACKAGES="$("$DPY" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{p}=={version(p)}" for p in ("dagster", "dagster-docker", "dagster-postgres", "psycopg2-binary")))
PY
)"
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "== the base image $BASE is missing: making it with scripts/build-images" >&2
  "$ROOT/scripts/build-images" >&2
fi
HASH="$({ echo "$VENV"; echo "$PACKAGES"; sha256sum "$HERE/Dockerfile"; docker image inspect --format '{{.Id}}' "$BASE"; } \
        | sha256sum | cut -c1-12)"
TAG="runyard-bench-dagster:$HASH"
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi
CTX="$(mktemp -d)"
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/wheels"
BASE_PY="$(docker run --rm --network none "$BASE" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
ARCH="$(uname -m)"
echo "== wheels for Python $BASE_PY: $PACKAGES" >&2
# shellcheck disable=SC2086
"$DPY" -m pip download -q --disable-pip-version-check --dest "$CTX/wheels" --only-binary=:all: \
  --python-version "$BASE_PY" --implementation cp --platform "manylinux2014_$ARCH" \
  --platform "manylinux_2_17_$ARCH" --platform "manylinux_2_28_$ARCH" --platform any $PACKAGES 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
echo "== building $TAG (venv at $VENV)" >&2
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE" --build-arg "VENV=$VENV" \
  --build-arg "PACKAGES=$PACKAGES" -t "$TAG" "$CTX" >/dev/null
# earlier builds (other inputs) are not kept
for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' runyard-bench-dagster); do
  [ "$old" = "$TAG" ] || docker image rm "$old" >/dev/null 2>&1 || true
done
echo "$TAG"
