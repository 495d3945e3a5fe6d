#!/usr/bin/env bash
# Build the server image (localbox:latest) when the source changed: wheels are collected on
# the host first, so the build itself needs no network. The base is the one the sandbox
# image uses (ensure-sandbox-image.sh bootstraps it when it cannot be pulled).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${LOCALBOX_SERVER_IMAGE:-localbox:latest}"
log() { printf '==> %s\n' "$*" >&2; }

hash=$( { cat Dockerfile pyproject.toml; find server -name '*.py' -print0 | LC_ALL=C sort -z | xargs -0 cat; } | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
[ "$current" = "$hash" ] && exit 0

log "collecting wheels for the server image"
rm -rf build/wheels
.venv/bin/python -m pip wheel -q --disable-pip-version-check --wheel-dir build/wheels . 2>&1 \
  | grep -v "WARNING: Location" >&2 || true
ls build/wheels/localbox-*.whl >/dev/null
log "building server image $IMAGE"
DOCKER_BUILDKIT=0 docker build --label "localbox.content-hash=$hash" -t "$IMAGE" . 2>&1 \
  | grep -E '^Step|^Successfully|rror' >&2 || true
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
[ "$current" = "$hash" ] || { echo "building $IMAGE failed; run: docker build ." >&2; exit 1; }
log "server image $IMAGE is ready"
