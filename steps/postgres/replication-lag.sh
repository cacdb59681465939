#!/usr/bin/env bash
# Measure replication lag in seconds and fail when it is above --max-lag, or, with
# --fail-above false, report whether it is within it (output `within`) and let the runbook
# branch on it: region-failure promotes a replica within its RPO and restores the newest
# backup otherwise.
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

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: replication-lag.sh [--service NAME] [--max-lag DURATION] [--min-replicas N]
                          [--fail-above true|false]

  --service NAME     libpq service of the server to ask (a standby or a primary)
  --max-lag DUR      fail above this lag (default 5m); 90, 90s, 15m, 1h
  --min-replicas N   on a primary: standbys that must be connected (default 1)
  --fail-above B     false: a lag above --max-lag is reported (within=false), not a failure

outputs: role (standby|primary), lag_s, max_lag_s, within (true|false), replicas (on a
primary), rpo_s (on a standby within --max-lag: what promoting it loses)
EOF2
}

service=""
max_lag="5m"
min_replicas=1
fail_above=true
parse_args --service=service --max-lag=max_lag --min-replicas=min_replicas --fail-above=fail_above -- "$@"
max_lag_s=$(duration --max-lag "$max_lag")
fail_above=$(bool --fail-above "$fail_above")
[[ $min_replicas =~ ^[0-9]+$ ]] || usage_error "--min-replicas must be a number (got '$min_replicas')"
pg_service "$service"
pg_need psql

q() { psql -w -X -q -tA -F ' ' --dbname=postgres -c "$1"; }
target=$(pg_target)

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
  # Failing over to it loses what it has not replayed: the recovery point (read by the
  # report). Above the limit the runbook takes another path (a restore), which reports its own.
  [ "$lag_s" -gt "$max_lag_s" ] || out rpo_s "$lag_s"
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

out max_lag_s "$max_lag_s"
if [ "$lag_s" -gt "$max_lag_s" ]; then
  out within false
  $fail_above || { echo "lag ${lag_s}s is above the limit of ${max_lag_s}s (--fail-above false: reported, not failed)"; exit 0; }
  die "replication lag ${lag_s}s is above the limit of ${max_lag_s}s"
fi
out within true
echo "lag ${lag_s}s is within ${max_lag_s}s"
