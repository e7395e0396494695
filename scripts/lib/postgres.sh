# Sourced by scripts: starts a throwaway PostgreSQL and stops it when the script exits.
#
#   start_throwaway_postgres   sets pg_bin, pg_work (its temporary folder, with data/ and
#                              server.log), pg_port, pg_url (postgres://…/unrace_test) and
#                              pg_restart (a shell command that restarts it with -m immediate)
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user. Its data
# directory lives under a temporary folder and it listens on 127.0.0.1 only, on a free port.

run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_throwaway_postgres() {
  [ -n "${pg_work:-}" ] || return 0
  run_pg "$pg_bin/pg_ctl" -D "$pg_work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_work"
}

start_throwaway_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
  pg_work=$(mktemp -d /tmp/unrace-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_work"
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  trap stop_throwaway_postgres EXIT
  run_pg "$pg_bin/initdb" -D "$pg_work/data" -U postgres --auth=trust -E UTF8 >"$pg_work/initdb.log" 2>&1 \
    || { cat "$pg_work/initdb.log" >&2; exit 1; }
  # One role signs in with a password (every other one is trusted), for the tests of a refused one.
  run_pg sed -i '1i host all unrace_password_check 127.0.0.1/32 scram-sha-256' "$pg_work/data/pg_hba.conf"
  run_pg "$pg_bin/pg_ctl" -D "$pg_work/data" -l "$pg_work/server.log" -w \
    -o "-p $pg_port -k $pg_work -c listen_addresses=127.0.0.1 -c max_connections=1000" start >/dev/null \
    || { cat "$pg_work/server.log" >&2; exit 1; }
  run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE unrace_test" >/dev/null
  run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres \
    -qc "CREATE ROLE unrace_password_check LOGIN PASSWORD 'unrace-right-password'" >/dev/null
  pg_url="postgres://postgres@127.0.0.1:$pg_port/unrace_test"
  local runner=""
  [ "$(id -u)" = 0 ] && runner="runuser -u postgres -- "
  pg_restart="${runner}$pg_bin/pg_ctl -D $pg_work/data -l $pg_work/server.log -m immediate -w restart"
}
