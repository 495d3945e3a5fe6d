#!/usr/bin/env bash
# The path of an haproxy binary on stdout, for the replica tests' load balancer.
#
# Debian's haproxy is installed when missing (root, or passwordless sudo). No service is
# started: the tests run haproxy themselves, in the foreground, with a config of their own.
# Idempotent: when haproxy is already there it is only reported.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

find_haproxy() {
  local path
  for path in "$(command -v haproxy 2>/dev/null || true)" /usr/sbin/haproxy /usr/local/sbin/haproxy; do
    if [ -n "$path" ] && [ -x "$path" ]; then
      echo "$path"
      return
    fi
  done
}

HAPROXY=$(find_haproxy)
if [ -z "$HAPROXY" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi
  if [ ! -f /etc/debian_version ] || { [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; }; then
    echo "HAProxy is needed for the replica tests (their load balancer): install it, as" \
      "root or with passwordless sudo on Debian this script does it." >&2
    exit 1
  fi
  log "installing Debian's haproxy for the replica tests"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  # The package would start its own service; a policy-rc.d saying "no" keeps it from doing so
  # (one already in place, as in most container images, is left as it is).
  made_policy=false
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    made_policy=true
  fi
  status=0
  { $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq haproxy >/dev/null; } || status=$?
  if $made_policy; then
    $SUDO rm -f /usr/sbin/policy-rc.d
  fi
  if [ "$status" != 0 ]; then
    echo "installing haproxy with apt-get failed (status $status)" >&2
    exit "$status"
  fi
  HAPROXY=$(find_haproxy)
  if [ -z "$HAPROXY" ]; then
    echo "haproxy was installed but no haproxy binary was found" >&2
    exit 1
  fi
fi

echo "$HAPROXY"
