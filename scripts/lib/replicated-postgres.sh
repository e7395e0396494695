# Sourced by scripts: a throwaway PostgreSQL primary, a streaming-replication standby and HAProxy
# in front of them, all on loopback, stopped when the script exits.
#
#   start_replicated_postgres MODE   MODE is sync or async. Sets pg_bin, pg_work, pg_url (through
#                                    HAProxy: whichever node accepts writes), rp_primary_port,
#                                    rp_standby_port, rp_proxy_port, and rp_failover: a shell
#                                    command that SIGKILLs the primary and promotes the standby
#                                    (`$rp_failover paused` first stops the standby's WAL receiver
#                                    for 1.5 s of load and makes it exit without reading what it
#                                    was sent: the acknowledged commits an asynchronous standby
#                                    never had).
#
# sync sets synchronous_standby_names = '*' and synchronous_commit = on on the primary: a commit
# is acknowledged once the standby has flushed its WAL to disk. `on`, not `remote_apply`: Unrace
# never reads from the standby, and a promotion replays everything flushed before it accepts
# writes, so what `on` acknowledged is there after the failover. HAProxy checks each node every
# 300 ms (scripts/lib/pg-accepts-writes) and cuts the sessions of a node marked down.
#
# PostgreSQL runs as the `postgres` user when this runs as root (see scripts/lib/postgres.sh).

. "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

stop_replicated_postgres() {
  [ -n "${pg_work:-}" ] || return 0
  if [ -f "$pg_work/haproxy.pid" ]; then kill "$(cat "$pg_work/haproxy.pid")" 2>/dev/null || true; fi
  for node in primary standby; do
    [ -d "$pg_work/$node" ] && run_pg "$pg_bin/pg_ctl" -D "$pg_work/$node" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$pg_work"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_replicated_postgres() {
  local mode=$1
  [ "$mode" = sync ] || [ "$mode" = async ] || { echo "replicated PostgreSQL: mode must be sync or async" >&2; exit 2; }
  command -v haproxy >/dev/null || { echo "haproxy not found (scripts/install-dependencies installs it)" >&2; exit 1; }
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }
  pg_work=$(mktemp -d /tmp/unrace-failover.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_work"
  trap stop_replicated_postgres EXIT
  rp_primary_port=$(free_port)
  rp_standby_port=$(free_port)
  rp_proxy_port=$(free_port)
  local options="-c listen_addresses=127.0.0.1 -c max_connections=300 -c wal_level=replica -c max_wal_senders=10 -c wal_keep_size=256MB -c hot_standby=on"
  run_pg "$pg_bin/initdb" -D "$pg_work/primary" -U postgres --auth=trust -E UTF8 >"$pg_work/initdb.log" 2>&1 \
    || { cat "$pg_work/initdb.log" >&2; exit 1; }
  run_pg "$pg_bin/pg_ctl" -D "$pg_work/primary" -l "$pg_work/primary.log" -w -o "-p $rp_primary_port -k $pg_work $options" start >/dev/null \
    || { cat "$pg_work/primary.log" >&2; exit 1; }
  run_pg "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -D "$pg_work/standby" -X stream -R >"$pg_work/basebackup.log" 2>&1 \
    || { cat "$pg_work/basebackup.log" >&2; exit 1; }
  run_pg "$pg_bin/pg_ctl" -D "$pg_work/standby" -l "$pg_work/standby.log" -w -o "-p $rp_standby_port -k $pg_work $options" start >/dev/null \
    || { cat "$pg_work/standby.log" >&2; exit 1; }
  # Set after the base backup, so the standby does not inherit it: once promoted, it has no
  # standby of its own to wait for.
  if [ "$mode" = sync ]; then
    run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -qAtc "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
    run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -qAtc "ALTER SYSTEM SET synchronous_commit = 'on'" >/dev/null
    run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -qAtc "SELECT pg_reload_conf()" >/dev/null
  fi
  # The standby streams before anything is written.
  for _ in $(seq 100); do
    [ "$(run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -qAtc "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
    sleep 0.1
  done
  run_pg "$pg_bin/psql" -h 127.0.0.1 -p "$rp_primary_port" -U postgres -qc "CREATE DATABASE unrace_test" >/dev/null
  cat >"$pg_work/haproxy.cfg" <<CONFIG
global
  maxconn 2000
  external-check
  insecure-fork-wanted
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout check 2s
listen postgres
  bind 127.0.0.1:$rp_proxy_port
  # Servers start UP until their first check: the primary first, so none reaches the standby.
  balance first
  option external-check
  external-check command $(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg-accepts-writes
  default-server inter 300ms fall 1 rise 1 on-marked-down shutdown-sessions
  server primary 127.0.0.1:$rp_primary_port check
  server standby 127.0.0.1:$rp_standby_port check
CONFIG
  haproxy -f "$pg_work/haproxy.cfg" -p "$pg_work/haproxy.pid" -D >"$pg_work/haproxy.log" 2>&1 \
    || { cat "$pg_work/haproxy.log" >&2; exit 1; }
  pg_url="postgres://postgres@127.0.0.1:$rp_proxy_port/unrace_test"
  # HAProxy routes to the primary once its checks have run: ten answers in a row from it.
  local writable=0
  for _ in $(seq 200); do
    if [ "$(PGCONNECT_TIMEOUT=1 psql "$pg_url" -qAtc "SELECT NOT pg_is_in_recovery()" 2>/dev/null)" = t ]; then
      writable=$((writable + 1))
      [ "$writable" -ge 10 ] && break
    else
      writable=0
    fi
    sleep 0.05
  done
  [ "$writable" -ge 10 ] || { echo "HAProxy does not route to the primary" >&2; cat "$pg_work/haproxy.log" >&2; exit 1; }
  rp_failover="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/failover $pg_work $pg_bin"
}
