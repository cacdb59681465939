#!/usr/bin/env bash
# Promote a streaming replica to primary with SELECT pg_promote(), then wait until it accepts
# writes. Safe to re-run: a server that is already a primary is reported and left alone.
#
# Promotion cannot be undone: the old primary, if it comes back, has diverged and must be
# rebuilt from the new one. Runbooks put an approval gate before this step.
#
# Connection: libpq environment, usually a service naming the replica (--service).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: promote-replica.sh [--service NAME] [--database NAME] [--wait SECONDS]

  --service NAME   libpq service naming the replica (default: the PG* variables)
  --database NAME  database to connect to (default: postgres)
  --wait SECONDS   how long to wait for the promotion to finish (default 60)

outputs: promoted (true if this run promoted it, false if it already was a primary), lsn
EOF2
}

service=""
database="postgres"
wait_s=60
parse_args --service=service --database=database --wait=wait_s -- "$@"
[[ $wait_s =~ ^[1-9][0-9]*$ ]] || usage_error "--wait must be a positive number of seconds (got '$wait_s')"
pg_service "$service"
pg_need psql

q() { psql -w -X -q -tA --dbname="$database" -c "$1"; }
target=$(pg_target)

in_recovery=$(q 'SELECT pg_is_in_recovery()') \
  || die "cannot connect to the replica ($target); check the service or PGHOST/PGPORT/PGUSER/PGPASSWORD"
if [ "$in_recovery" = f ]; then
  lsn=$(q 'SELECT pg_current_wal_lsn()')
  echo "$target is already a primary (not in recovery); nothing to promote"
  out promoted false
  out lsn "$lsn"
  exit 0
fi

echo "promoting $target (SELECT pg_promote(true, $wait_s))"
result=$(q "SELECT pg_promote(true, $wait_s)") || die "pg_promote failed on $target"
[ "$result" = t ] || die "pg_promote did not finish within ${wait_s}s on $target; check its server log"

for _ in $(seq 1 "$wait_s"); do
  [ "$(q 'SELECT pg_is_in_recovery()')" = f ] && break
  sleep 1
done
[ "$(q 'SELECT pg_is_in_recovery()')" = f ] || die "$target still reports recovery after ${wait_s}s"

lsn=$(q 'SELECT pg_current_wal_lsn()')
echo "$target is now a primary (WAL at $lsn)"
out promoted true
out lsn "$lsn"
