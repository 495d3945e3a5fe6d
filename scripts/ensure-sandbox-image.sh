#!/usr/bin/env bash
# Make sure the sandbox image exists and matches sandbox-image/. Rebuilds only when the
# content hash of sandbox-image/ differs from the one recorded in the image's label.
# When the Dockerfile's base image cannot be pulled (no registry reachable), it is
# bootstrapped with debootstrap and imported under the tag the Dockerfile names.
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE="${LOCALBOX_SANDBOX_IMAGE:-localbox-sandbox:latest}"
CONTEXT=sandbox-image
log() { printf '==> %s\n' "$*" >&2; }

hash=$(cd "$CONTEXT" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  exit 0
fi

base=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$CONTEXT/Dockerfile")
if ! docker image inspect "$base" >/dev/null 2>&1; then
  log "pulling base image $base"
  if ! timeout 120 docker pull "$base" >/dev/null 2>&1; then
    suite=$(printf '%s' "$base" | sed -E 's/^[^:]*:([a-z]+).*/\1/')
    [ "$suite" = "$base" ] && suite=bookworm
    log "cannot pull $base; bootstrapping Debian $suite with debootstrap (about a minute)"
    if ! command -v debootstrap >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 \
          || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
      else
        echo "debootstrap is needed to build $base offline; install it or make $base pullable" >&2
        exit 1
      fi
    fi
    rootfs=$(mktemp -d /tmp/localbox-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase "$suite" "$rootfs" >/tmp/localbox-debootstrap.log 2>&1 \
      || { tail -n 20 /tmp/localbox-debootstrap.log >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
    log "imported $base"
  fi
fi

if [ -z "$current" ]; then
  log "building sandbox image $IMAGE: about 1.4 GB (Python with the usual data libraries);"
  log "the first build takes a few minutes, later ones only run when sandbox-image/ changes"
else
  log "rebuilding sandbox image $IMAGE: sandbox-image/ changed (content hash $hash)"
fi
started=$(date +%s)
# A line now and then while a long step (the package install) runs, so it is not mistaken
# for a hang.
( while sleep 20; do log "  ... still building ($(( $(date +%s) - started )) s)"; done ) &
ticker=$!
DOCKER_BUILDKIT=0 docker build --label "localbox.content-hash=$hash" --label localbox.role=sandbox-image \
  -t "$IMAGE" "$CONTEXT" 2>&1 | grep --line-buffered -E '^Step|^Successfully|rror' >&2 || true
kill "$ticker" 2>/dev/null || true
wait "$ticker" 2>/dev/null || true
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" != "$hash" ]; then
  echo "building $IMAGE failed; run: docker build $CONTEXT" >&2
  exit 1
fi
log "sandbox image $IMAGE is ready ($(( $(date +%s) - started )) s)"
