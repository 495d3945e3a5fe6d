#!/usr/bin/env bash
# Make sure the egress proxy image exists and matches egress-image/. Rebuilds only when the
# content hash of egress-image/ differs from the one recorded in the image's label. The base
# is the sandbox image's (ensure-sandbox-image.sh bootstraps it when it cannot be pulled), and
# mitmproxy comes from Debian's packages, so the build needs no package index.
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE="${LOCALBOX_EGRESS_IMAGE:-localbox-egress:latest}"
CONTEXT=egress-image
log() { printf '==> %s\n' "$*" >&2; }

hash=$(cd "$CONTEXT" && find . -name __pycache__ -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  exit 0
fi

base=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$CONTEXT/Dockerfile")
if ! docker image inspect "$base" >/dev/null 2>&1; then
  log "base image $base is missing; making it the way the sandbox image does"
  bash scripts/ensure-sandbox-image.sh
fi

started=$(date +%s)
log "building egress proxy image $IMAGE (mitmproxy and localbox's addon)"
DOCKER_BUILDKIT=0 docker build --label "localbox.content-hash=$hash" --label localbox.role=egress-image \
  -t "$IMAGE" "$CONTEXT" 2>&1 | grep --line-buffered -E '^Step|^Successfully|rror' >&2 || true
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" != "$hash" ]; then
  echo "building $IMAGE failed; run: docker build $CONTEXT" >&2
  exit 1
fi
log "egress proxy image $IMAGE is ready ($(( $(date +%s) - started )) s)"
