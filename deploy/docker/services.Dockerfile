# The image of runyard's services: the web UI, the daemon and code servers, one image for all three.
#
#   docker run runyard-services:dev webui -w /etc/runyard/workspace.yaml --host 0.0.0.0 -p 3000
#   docker run runyard-services:dev daemon -w /etc/runyard/workspace.yaml
#   docker run runyard-services:dev code-server -m my_pkg.defs --host 0.0.0.0 --port 4000
#
# The entrypoint is `runyard`, so the command is the service and its options. Run it with an init
# (`docker run --init`, compose `init: true`) so SIGTERM reaches the service and it stops cleanly
# (the daemon then releases its lease at once).
#
# The user's code is not in this image: code servers that import it run from the code-location
# image (deploy/docker/Dockerfile), whose runs use the same image; or add your code as a package
# with PACKAGES.
#
# HEALTHCHECK: `runyard-healthcheck` (deploy/docker/healthcheck.py) finds which service this
# container runs and probes it: the web UI's GET /healthz (storage answers), the code server's
# GET /v1/health (definitions loaded), the daemon's heartbeat in storage (`runyard daemon status
# --check` with the id `runyard daemon` wrote to $RUNYARD_DAEMON_ID_FILE).
#
# Build arguments:
#   BASE_IMAGE  any image with python3 (3.11+) and its venv module; default the official slim image
#   PACKAGES    what to install into /opt/runyard (pip requirement specifiers, space separated)
#   WHEELS      a directory of the build context holding wheels: install from it only, never from an
#               index (no network needed inside the build); it is left out of the final image
#   PIP_ARGS    more arguments for pip (an index URL of your own, constraints, ...)
#
# The build context holds healthcheck.py (deploy/docker/) and, with WHEELS, the wheels: build it
# with `docker build -f deploy/docker/services.Dockerfile deploy/docker` or let scripts/build-images
# do it offline. Nothing of the building machine (certificates, proxy settings, pip configuration)
# is copied in.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# marks the classic builder's leftover of this stage, so scripts/build-images can remove it
LABEL org.runyard.stage="build"
ARG PACKAGES="runyard runyard-webui runyard-storage-sqlite runyard-storage-postgres runyard-launcher-docker runyard-launcher-k8s"
ARG WHEELS=""
ARG PIP_ARGS=""
COPY . /tmp/context
RUN set -eu; \
    python3 -m venv /opt/runyard; \
    if [ -n "$WHEELS" ]; then \
      [ -d "/tmp/context/$WHEELS" ] || { echo "WHEELS=$WHEELS is not a directory of the build context" >&2; exit 1; }; \
      /opt/runyard/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
        --find-links "/tmp/context/$WHEELS" $PIP_ARGS $PACKAGES; \
    else \
      /opt/runyard/bin/pip install --no-cache-dir --disable-pip-version-check $PIP_ARGS $PACKAGES; \
    fi; \
    install -m 0755 /tmp/context/healthcheck.py /opt/runyard/bin/runyard-healthcheck; \
    sed -i '1s|.*|#!/opt/runyard/bin/python|' /opt/runyard/bin/runyard-healthcheck; \
    /opt/runyard/bin/python -m compileall -q -j 0 /opt/runyard >/dev/null || true; \
    /opt/runyard/bin/python -c "import runyard, runyard_webui"

FROM ${BASE_IMAGE}
COPY --from=build /opt/runyard /opt/runyard
ENV PATH=/opt/runyard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RUNYARD_HOME=/var/lib/runyard \
    RUNYARD_DAEMON_ID_FILE=/tmp/runyard-daemon.id
RUN mkdir -p /var/lib/runyard /etc/runyard
WORKDIR /var/lib/runyard
LABEL org.runyard.image="services"
# The first check runs one interval after the start; a service still starting (code servers
# importing definitions, a standby daemon's first heartbeat) has the start period to become healthy.
HEALTHCHECK --interval=10s --timeout=8s --start-period=30s --retries=3 CMD ["runyard-healthcheck"]
ENTRYPOINT ["runyard"]
CMD ["--help"]
