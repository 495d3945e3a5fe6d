#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, and its admin URL on stdout.
#
# Debian's postgresql is installed when missing (root, or passwordless sudo); the cluster lives in
# /var/tmp/localbox-postgres-<uid> (LOCALBOX_TEST_POSTGRES_DIR), listens on 127.0.0.1 only
# (port LOCALBOX_TEST_POSTGRES_PORT, 55432 by default) and answers a password made at its
# creation. As root, the cluster runs as the postgres user (PostgreSQL refuses to run as root).
# Idempotent: a cluster that already runs is only reported. Durability is off: it is for tests.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

BASE=${LOCALBOX_TEST_POSTGRES_DIR:-/var/tmp/localbox-postgres-$(id -u)}
PORT=${LOCALBOX_TEST_POSTGRES_PORT:-55432}
PGDATA_DIR=$BASE/data
USER_NAME=localbox

find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v pg_ctl)"; fi
}

BINDIR=$(find_bindir)
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi
  if [ ! -f /etc/debian_version ] || { [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; }; then
    echo "PostgreSQL is needed for the tests on PostgreSQL: install it (its server binaries," \
      "initdb and pg_ctl), or set LOCALBOX_TEST_POSTGRES_URL to an admin URL of one." >&2
    exit 1
  fi
  log "installing Debian's postgresql for the tests on PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq postgresql >/dev/null
  BINDIR=$(find_bindir)
fi

# As root, everything touching the cluster runs as the postgres user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  OWNER=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  OWNER=$(id -un)
  as_owner() { "$@"; }
fi

mkdir -p "$BASE"
chmod 755 "$BASE"
exec 9>"$BASE/lock"
flock 9  # two test runs starting at once make one cluster

if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
  log "creating a PostgreSQL cluster for the tests in $PGDATA_DIR"
  rm -rf "$PGDATA_DIR"
  mkdir -m 700 "$PGDATA_DIR"
  chown "$OWNER" "$PGDATA_DIR"
  (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$BASE/password")
  pwfile=$PGDATA_DIR.pw
  (umask 077 && cp "$BASE/password" "$pwfile")
  chown "$OWNER" "$pwfile"
  if ! as_owner "$BINDIR/initdb" -D "$PGDATA_DIR" -U "$USER_NAME" --pwfile="$pwfile" \
    -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 9>&-; then
    rm -f "$pwfile"
    cat "$BASE/initdb.log" >&2
    rm -rf "$PGDATA_DIR"
    exit 1
  fi
  rm -f "$pwfile"
  cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
# localbox's test cluster
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi

if ! as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
  log "starting the tests' PostgreSQL on 127.0.0.1:$PORT"
  if ! as_owner "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/postgres.log" -w -t 60 \
    start </dev/null >&2 9>&-; then  # the server must not inherit (and hold) the lock
    tail -n 20 "$PGDATA_DIR/postgres.log" >&2 || true
    exit 1
  fi
fi

for _ in $(seq 1 60); do
  if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
    echo "postgresql://$USER_NAME:$(cat "$BASE/password")@127.0.0.1:$PORT/postgres"
    exit 0
  fi
  sleep 0.5
done
echo "the tests' PostgreSQL does not answer on 127.0.0.1:$PORT; see $PGDATA_DIR/postgres.log" >&2
exit 1
