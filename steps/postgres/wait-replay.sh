#!/usr/bin/env bash
# Before promoting a standby: its WAL replay is not paused, and everything it received has been
# replayed (pg_last_wal_replay_lsn() has reached pg_last_wal_receive_lsn()), polled within a
# window. A promotion ends recovery where replay stands: WAL received but not replayed, or held
# back by a paused replay (pg_wal_replay_pause(), often left behind by someone investigating),
# is thrown away with the old timeline. A lag check alone passes a paused replay with WAL
# pending.
#
# Paused: fails at once (someone paused it, perhaps on purpose), unless --resume true, which
# resumes it (pg_wal_replay_resume()) and waits. Already a primary (a re-run after the
# promotion): nothing to wait for.
#
# Connection: libpq environment, usually the standby's service (--service).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: wait-replay.sh [--service NAME] [--within DURATION] [--resume true|false]

  --service NAME   libpq service of the standby (default: the PG* variables)
  --within DUR     how long to wait for replay to reach what was received (default 2m)
  --resume BOOL    resume a paused replay instead of failing (default false)

outputs: receive_lsn, replay_lsn
EOF2
}

service=""
within="2m"
resume=false
parse_args --service=service --within=within --resume=resume:bool -- "$@"
within_s=$(duration --within "$within")
pg_service "$service"
pg_need psql

q() { psql -w -X -q -tA -F ' ' --dbname=postgres -c "$1"; }
target=$(pg_target)

in_recovery=$(q 'SELECT pg_is_in_recovery()') \
  || die "cannot connect to the standby ($target); check the service or PGHOST/PGPORT/PGUSER/PGPASSWORD"
if [ "$in_recovery" = f ]; then
  lsn=$(q 'SELECT pg_current_wal_lsn()')
  echo "$target is already a primary (not in recovery): no replay to wait for"
  out receive_lsn "$lsn"
  out replay_lsn "$lsn"
  exit 0
fi

if [ "$(q 'SELECT pg_is_wal_replay_paused()')" = t ]; then
  if ! $resume; then
    die "WAL replay is paused on $target: promoting it now discards the WAL it holds back; find out who paused it and why, then resume it (SELECT pg_wal_replay_resume()) or run with resume true"
  fi
  echo "WAL replay is paused on $target: resuming it (--resume true)"
  q 'SELECT pg_wal_replay_resume()' >/dev/null
fi

deadline=$(( $(date +%s) + within_s ))
while :; do
  read -r receive replay paused done_ < <(q "
    SELECT coalesce(pg_last_wal_receive_lsn()::text, '-'), coalesce(pg_last_wal_replay_lsn()::text, '-'),
           pg_is_wal_replay_paused(),
           coalesce(pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), false)")
  [ "$receive" != - ] || die "$target has received no WAL by streaming (pg_last_wal_receive_lsn() is null): it cannot say what it holds; compare its replay position with the archive by hand before promoting"
  [ "$paused" = f ] || die "WAL replay on $target was paused while waiting (at $replay, received $receive): someone is working on it; ask before promoting"
  if [ "$done_" = t ]; then
    echo "$target has replayed everything it received (receive $receive, replay $replay)"
    out receive_lsn "$receive"
    out replay_lsn "$replay"
    exit 0
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    out receive_lsn "$receive"
    out replay_lsn "$replay"
    die "$target has not replayed what it received within ${within_s}s (receive $receive, replay $replay): promoting now loses the rest; find out why replay is slow (its server log), or wait longer (the within input)"
  fi
  echo "replay at $replay, received $receive: waiting"
  sleep 2
done
