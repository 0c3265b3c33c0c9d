#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: installs Debian's
# postgresql when missing, initdb's a cluster as the `postgres` user in a
# temporary directory, starts it on 127.0.0.1 on a free port, exports
#   ACTIONQ_TEST_PG_URL   superuser URL of the `postgres` database
#   ACTIONQ_TEST_PG_BIN   the server's bin directory (tests start private clusters)
# runs "$@", and stops and removes the cluster on exit, failure included.
# When ACTIONQ_TEST_PG_URL is already set, runs "$@" on that server instead.
set -euo pipefail

if [[ -n "${ACTIONQ_TEST_PG_URL:-}" ]]; then
  exec "$@"
fi

pg_bin() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  [[ -n "$initdb" ]] && dirname "$initdb"
}

if [[ -z "$(pg_bin)" ]]; then
  echo "with-postgres: installing postgresql from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y postgresql >&2 || { apt-get update >&2 && apt-get install -y postgresql >&2; }
fi
BIN=$(pg_bin)
[[ -n "$BIN" ]] || { echo "with-postgres: no PostgreSQL server binaries found" >&2; exit 1; }

# The server refuses to run as root: the cluster belongs to `postgres` (or to
# the calling user when that is not root).
if [[ $(id -u) -eq 0 ]]; then
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

DIR=$(mktemp -d /tmp/actionq-pg.XXXXXX)
chmod 755 "$DIR"
[[ $(id -u) -eq 0 ]] && chown postgres: "$DIR"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT
# Interrupted (Ctrl-C, a CI timeout's TERM): exit, so the EXIT trap stops the cluster.
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg "$BIN/initdb" -D "$DIR/data" -U postgres -E UTF8 --locale=C --auth=trust >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
# One role authenticates by password, for the tests of a wrong password.
{
  echo "host all actionq_password 127.0.0.1/32 scram-sha-256"
  echo "host all all 127.0.0.1/32 trust"
  echo "local all all trust"
} >"$DIR/data/pg_hba.conf"
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR -c max_connections=400" \
  start >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }

export ACTIONQ_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
export ACTIONQ_TEST_PG_BIN="$BIN"
echo "with-postgres: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') at $ACTIONQ_TEST_PG_URL" >&2
set +e
"$@"
status=$?
exit $status
