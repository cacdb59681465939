#!/usr/bin/env bash
# Stop the sandbox that up.sh started (HTTP endpoint, Redis, PostgreSQL replica and primary)
# and remove .sandbox/. Safe to run when nothing, or only part of it, is running. Only the
# processes recorded in .sandbox/ are stopped, after checking that each pid still runs the
# program it was recorded for.
set -uo pipefail

log() { printf 'sandbox: %s\n' "$*" >&2; }

root=$(cd "$(dirname -- "$0")/../.." && pwd)
sb="$root/.sandbox"
if [ ! -d "$sb" ]; then
  log "nothing to do: $sb does not exist"
  exit 0
fi

pid_of() { # $1 pid file, $2 program name: the pid when it is alive and runs that program
  local pid
  [ -s "$1" ] || return 1
  pid=$(head -n1 "$1")
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] \
    && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2" && echo "$pid"
}
stop_pid() { # $1 pid, $2 what: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || { log "stopped $2"; return 0; }; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
  log "killed $2 (it did not stop on SIGTERM)"
}

if pid=$(pid_of "$sb/http.pid" http.server); then stop_pid "$pid" "the health endpoint"; fi
if pid=$(pid_of "$sb/redis/redis.pid" redis-server); then stop_pid "$pid" "Redis"; fi

pg_bindir=${PG_BINDIR:-}
if [ -z "$pg_bindir" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && { pg_bindir=$d; break; }
  done
fi
[ -n "$pg_bindir" ] || { command -v pg_ctl >/dev/null && pg_bindir=$(dirname "$(command -v pg_ctl)"); }
# up.sh may have put PostgreSQL's files in /tmp, linked from .sandbox/pg.
pg="$sb/pg"
[ -L "$pg" ] && pg=$(readlink -f -- "$pg")
for data in "$pg/replica" "$pg/primary"; do
  [ -s "$data/postmaster.pid" ] || continue
  owner=$(stat -c %U "$data")
  if [ -n "$pg_bindir" ]; then
    if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then
      runuser -u "$owner" -- "$pg_bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1
    else
      "$pg_bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1
    fi
  fi
  # pg_ctl missing or failed: stop the postmaster by its pid file.
  if pid=$(pid_of "$data/postmaster.pid" postgres); then
    stop_pid "$pid" "PostgreSQL ($data)"
  else
    log "stopped PostgreSQL ($(basename "$data"))"
  fi
done

rm -rf -- "$sb" && log "removed $sb"
if [[ $pg == /tmp/runbook-sandbox-pg.* ]]; then rm -rf -- "$pg" && log "removed $pg"; fi
