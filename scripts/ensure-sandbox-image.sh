#!/usr/bin/env bash
# Make sure the sandbox image exists and matches sandbox-image/. Rebuilds only when the
# content hash of sandbox-image/ differs from the one recorded in the image's label.
# When the Dockerfile's base image cannot be pulled (no registry reachable), it is
# bootstrapped with debootstrap and imported under the tag the Dockerfile names.
# The wheels that sandbox-image/requirements.txt pins (libraries Debian lacks) are downloaded
# into sandbox-image/wheels/ first, so the build itself needs no network; that folder is not
# hashed, since the pinned requirements decide its content.
# LOCALBOX_SANDBOX_EXTRA_RUNTIMES (empty by default) names extra runtimes to install beside
# Python and Node.js: some of java, php, ruby and go, or all. It is passed to the build as
# EXTRA_RUNTIMES and hashed with sandbox-image/, so changing it rebuilds the image.
set -euo pipefail

cd "$(dirname "$0")/.."
IMAGE="${LOCALBOX_SANDBOX_IMAGE:-localbox-sandbox:latest}"
CONTEXT=sandbox-image
EXTRA_RUNTIMES="${LOCALBOX_SANDBOX_EXTRA_RUNTIMES:-}"
log() { printf '==> %s\n' "$*" >&2; }

hash=$(
  cd "$CONTEXT" && find . -path ./wheels -prune -o -name __pycache__ -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  # Only when set, so that the default image's hash stays that of sandbox-image/ alone.
  [ -z "$EXTRA_RUNTIMES" ] || printf 'EXTRA_RUNTIMES=%s\n' "$EXTRA_RUNTIMES"
)
hash=$(printf '%s\n' "$hash" | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  exit 0
fi
# A custom image (README: Sandbox image) says so in its role label: it is never rebuilt here.
role=$(docker image inspect -f '{{ index .Config.Labels "localbox.role" }}' "$IMAGE" 2>/dev/null || true)
if [ -n "$role" ] && [ "$role" != sandbox-image ]; then
  log "$IMAGE is a custom sandbox image (localbox.role=$role); using it as it is"
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

log "collecting the wheels sandbox-image/requirements.txt pins"
pip=(python3 -m pip)
[ -x .venv/bin/python ] && pip=(.venv/bin/python -m pip)
arch=$(uname -m)  # the engine runs images of this machine's architecture
wheel_log=$(mktemp /tmp/localbox-wheels.XXXXXX)
if ! "${pip[@]}" download -q --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  -r "$CONTEXT/requirements.txt" -d "$CONTEXT/wheels" >"$wheel_log" 2>&1; then
  grep -v "WARNING: Location" "$wheel_log" >&2
  echo "could not download the wheels $CONTEXT/requirements.txt names (is the package index reachable?)" >&2
  rm -f "$wheel_log"
  exit 1
fi
rm -f "$wheel_log"


if [ -z "$current" ]; then
  log "building sandbox image $IMAGE: about 2.5 GB (Python with the usual data, office and PDF libraries, Node.js);"
  log "the first build takes a few minutes, later ones only run when sandbox-image/ changes"
else
  log "rebuilding sandbox image $IMAGE: sandbox-image/ or LOCALBOX_SANDBOX_EXTRA_RUNTIMES changed (content hash $hash)"
fi
[ -z "$EXTRA_RUNTIMES" ] || log "with the extra runtimes: $EXTRA_RUNTIMES"
started=$(date +%s)
# A line now and then while a long step (the package install) runs, so it is not mistaken
# for a hang.
( while sleep 20; do log "  ... still building ($(( $(date +%s) - started )) s)"; done ) &
ticker=$!
DOCKER_BUILDKIT=0 docker build --label "localbox.content-hash=$hash" --label localbox.role=sandbox-image \
  --build-arg "EXTRA_RUNTIMES=$EXTRA_RUNTIMES" -t "$IMAGE" "$CONTEXT" 2>&1 | grep --line-buffered -E '^Step|^Successfully|rror' >&2 || true
kill "$ticker" 2>/dev/null || true
wait "$ticker" 2>/dev/null || true
current=$(docker image inspect -f '{{ index .Config.Labels "localbox.content-hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" != "$hash" ]; then
  echo "building $IMAGE failed; run: docker build $CONTEXT" >&2
  exit 1
fi
log "sandbox image $IMAGE is ready ($(( $(date +%s) - started )) s)"
