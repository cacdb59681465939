#!/usr/bin/env bash
# Measure replication lag in seconds and fail when it is above --max-lag.
#
# On a standby: 0 when its WAL receiver is streaming and everything received has been
# replayed; otherwise the time since the last replayed transaction. With the primary gone,
# that is an upper bound on the writes a promotion would lose (on an idle system it
# overstates them: no transactions, nothing lost).
# On a primary: the largest replay lag among its connected standbys (pg_stat_replication);
# fewer connected standbys than --min-replicas is a failure.
#
# Connection: libpq environment, or --service.
set -euo pipefail

me=${0##*/}
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$me" "$*" >&2; exit 2; }
out() { printf '%s=%s\n' "$1" "$2" >> "${RUNBOOK_OUTPUT:-/dev/null}"; }

usage() {
  cat <<'EOF2'
usage: replication-lag.sh [--service NAME] [--max-lag DURATION] [--min-replicas N]

  --service NAME     libpq service of the server to ask (a standby or a primary)
  --max-lag DUR      fail above this lag (default 5m); 90, 90s, 15m, 1h
  --min-replicas N   on a primary: standbys that must be connected (default 1)

outputs: role (standby|primary), lag_s, replicas (on a primary)
EOF2
}

to_seconds() {
  local s=$1 total=0 n u
  if [[ $s =~ ^[0-9]+$ ]]; then echo "$((10#$s))"; return 0; fi
  [[ $s =~ ^([0-9]+[smhd])+$ ]] || return 1
  while [[ $s =~ ^([0-9]+)([smhd])(.*)$ ]]; do
    n=$((10#${BASH_REMATCH[1]})); u=${BASH_REMATCH[2]}; s=${BASH_REMATCH[3]}
    case $u in s) total=$((total + n)) ;; m) total=$((total + n * 60)) ;;
               h) total=$((total + n * 3600)) ;; d) total=$((total + n * 86400)) ;; esac
  done
  echo "$total"
}

service=""
max_lag="5m"
min_replicas=1
while [ $# -gt 0 ]; do
  case "$1" in
    --service) [ $# -ge 2 ] || usage_error "$1 needs a value"; service=$2; shift 2 ;;
    --max-lag) [ $# -ge 2 ] || usage_error "$1 needs a value"; max_lag=$2; shift 2 ;;
    --min-replicas) [ $# -ge 2 ] || usage_error "$1 needs a value"; min_replicas=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
max_lag_s=$(to_seconds "$max_lag") || usage_error "--max-lag: not a duration: '$max_lag'"
[[ $min_replicas =~ ^[0-9]+$ ]] || usage_error "--min-replicas must be a number (got '$min_replicas')"
[ -z "$service" ] || export PGSERVICE="$service"
command -v psql >/dev/null || die "psql not found in PATH (install the PostgreSQL client tools)"

q() { psql -w -X -q -tA -F ' ' --dbname=postgres -c "$1"; }
target="${PGSERVICE:+service $PGSERVICE}"
target="${target:-${PGHOST:-local socket}:${PGPORT:-5432}}"

in_recovery=$(q 'SELECT pg_is_in_recovery()') \
  || die "cannot connect to $target; check the service or PGHOST/PGPORT/PGUSER/PGPASSWORD"

if [ "$in_recovery" = t ]; then
  read -r streaming caught_up since_replay < <(q "
    SELECT coalesce((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
           coalesce(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false),
           coalesce(floor(extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::bigint, -1)")
  if [ "$streaming" = t ] && [ "$caught_up" = t ]; then
    lag_s=0
    how="streaming, all received WAL replayed"
  elif [ "$since_replay" -ge 0 ]; then
    lag_s=$since_replay
    how="$( [ "$streaming" = t ] && echo 'streaming, replay behind' || echo 'not streaming (primary unreachable?)' ); last replayed transaction ${since_replay}s ago"
  else
    out role standby
    die "$target is a standby that has replayed no transaction and is not caught up: lag unknown"
  fi
  echo "$target is a standby: lag ${lag_s}s ($how)"
  out role standby
  out lag_s "$lag_s"
else
  read -r replicas lag_s < <(q "
    SELECT count(*), coalesce(max(round(extract(epoch FROM coalesce(replay_lag, interval '0')))), 0)::bigint
      FROM pg_stat_replication")
  echo "$target is a primary with $replicas connected standby(s); largest replay lag ${lag_s}s"
  out role primary
  out replicas "$replicas"
  out lag_s "$lag_s"
  [ "$replicas" -ge "$min_replicas" ] \
    || die "$target has $replicas connected standby(s), fewer than --min-replicas $min_replicas"
fi

[ "$lag_s" -le "$max_lag_s" ] || die "replication lag ${lag_s}s is above the limit of ${max_lag_s}s"
echo "lag ${lag_s}s is within ${max_lag_s}s"
