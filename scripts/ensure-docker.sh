#!/usr/bin/env bash
# Make sure a Docker engine answers. On Debian as root: install docker.io when it is
# missing and start dockerd when it is not answering. Elsewhere: say what to start.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

is_root=false; [ "$(id -u)" = 0 ] && is_root=true
is_debian=false; [ -f /etc/debian_version ] && is_debian=true

if ! $is_root || ! $is_debian; then
  cat >&2 <<'MSG'
localbox needs a running Docker engine and none answers.
Start one (for example `sudo systemctl start docker`, or Docker Desktop), make sure
this user may use /var/run/docker.sock, then run the command again.
MSG
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing the Docker engine (docker.io) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

# A daemon killed without cleaning up leaves its pid file behind and refuses to start.
for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
    log "removing stale $pidfile"
    rm -f "$pidfile"
  fi
done

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  log "starting docker with systemctl"
  systemctl start docker || true
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/localbox-dockerd.log)"
  nohup setsid dockerd >/var/log/localbox-dockerd.log 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine is up"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not answer within 30 s; see /var/log/localbox-dockerd.log" >&2
tail -n 20 /var/log/localbox-dockerd.log >&2 || true
exit 1
