#!/usr/bin/env bash
# Make sure the Docker engine can run sandboxes under gVisor (LOCALBOX_SANDBOX_RUNTIME=runsc).
# On Debian as root: install Debian's runsc when missing, register it with the engine in
# /etc/docker/daemon.json (two entries, see server/runtime/engine_runtimes.py), reload the
# engine with a SIGHUP (no restart: running containers stay) and check that a sandbox starts
# on gVisor's kernel. Elsewhere: say what to do.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

IMAGE="${LOCALBOX_SANDBOX_IMAGE:-localbox-sandbox:latest}"
DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"

registered() {
  # Both entries present, the first with --network=none and the second with --network=host.
  docker info --format '{{json .Runtimes}}' 2>/dev/null | python3 -c '
import json, os, sys
runtimes = json.load(sys.stdin) or {}
def ok(name, arg):
    entry = runtimes.get(name) or {}
    return os.path.basename(entry.get("path", "")) == "runsc" and arg in (entry.get("runtimeArgs") or [])
sys.exit(0 if ok("runsc", "--network=none") and ok("runsc-host-network", "--network=host") else 1)
'
}

works() {
  # gVisor's kernel says so first thing in its log; the host's denies dmesg to a container.
  docker run --rm --runtime=runsc --network=none --entrypoint dmesg "$IMAGE" 2>/dev/null \
    | grep -q 'Starting gVisor'
}

persisted() {
  # In the engine's configuration too, so that an engine restart keeps them.
  [ -f "$DAEMON_JSON" ] && python3 - "$DAEMON_JSON" <<'PY'
import json, os, sys
try:
    runtimes = json.load(open(sys.argv[1])).get("runtimes") or {}
except (OSError, ValueError):
    sys.exit(1)
def ok(name, arg):
    entry = runtimes.get(name) or {}
    return os.path.basename(entry.get("path", "")) == "runsc" and arg in (entry.get("runtimeArgs") or [])
sys.exit(0 if ok("runsc", "--network=none") and ok("runsc-host-network", "--network=host") else 1)
PY
}

if registered && persisted && works; then
  exit 0
fi

is_root=false; [ "$(id -u)" = 0 ] && is_root=true
is_debian=false; [ -f /etc/debian_version ] && is_debian=true

if ! $is_root || ! $is_debian; then
  cat >&2 <<MSG
LOCALBOX_SANDBOX_RUNTIME=runsc needs gVisor's runsc registered with the Docker engine, and
it is not (or a sandbox does not start under it). As root: install runsc (Debian: apt-get
install runsc; elsewhere see gvisor.dev), add to $DAEMON_JSON:
  {"runtimes": {
     "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]},
     "runsc-host-network": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}}}
then reload the engine (sudo kill -HUP \$(pidof dockerd)) and run the command again.
MSG
  exit 1
fi

if ! command -v runsc >/dev/null 2>&1; then
  log "installing gVisor (Debian's runsc) with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq runsc >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq runsc >/dev/null
  }
fi
RUNSC="$(command -v runsc)"

if ! registered || ! persisted; then
  log "registering runsc with the Docker engine in $DAEMON_JSON"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  python3 - "$DAEMON_JSON" "$RUNSC" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
config = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        config = json.load(f)
runtimes = config.setdefault("runtimes", {})
runtimes["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none"]}
runtimes["runsc-host-network"] = {"path": runsc, "runtimeArgs": ["--network=host"]}
tmp = path + ".localbox-tmp"
with open(tmp, "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
PY
  # dockerd re-reads its runtimes on SIGHUP: no restart, running containers stay.
  pid="$(cat /var/run/docker.pid 2>/dev/null || pidof dockerd || true)"
  if [ -z "$pid" ]; then
    echo "dockerd's pid is unknown: reload the Docker engine yourself, then run this again" >&2
    exit 1
  fi
  kill -HUP "$pid"
  for _ in $(seq 1 40); do
    registered && break
    sleep 0.25
  done
  if ! registered; then
    echo "the Docker engine did not take up the runsc runtimes from $DAEMON_JSON" >&2
    exit 1
  fi
fi

if ! works; then
  echo "a sandbox did not start under runsc (docker run --runtime=runsc $IMAGE):" >&2
  docker run --rm --runtime=runsc --network=none --entrypoint dmesg "$IMAGE" >&2 || true
  exit 1
fi
log "gVisor (runsc) is registered with the Docker engine"
