#!/usr/bin/env bash
# Make sure a compose tool is there for the packaging test: docker-compose (v1, Debian's
# package) or the `docker compose` plugin. On Debian as root, install docker-compose.
set -euo pipefail
if command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  printf '==> installing docker-compose with apt-get\n' >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq docker-compose >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }
  exit 0
fi
echo "docker-compose (or the docker compose plugin) is needed for the packaging test" >&2
exit 1
