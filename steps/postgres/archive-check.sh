#!/usr/bin/env bash
# Check that a PostgreSQL primary archives its WAL, and how much a loss right now would cost.
# The continuous archive is what point-in-time recovery replays (PostgreSQL manual,
# "Continuous Archiving and Point-in-Time Recovery (PITR)"); a broken archive_command does not
# stop the server, it only piles up WAL in pg_wal and silently widens the recovery point, so
# it has to be checked, not assumed.
#
# Fails when:
#   - archive_mode is off, or neither archive_command nor archive_library is set;
#   - pg_stat_archiver.failed_count rose while the check ran, or the last failure is newer
#     than the last success (the archiver is failing now: it retries the same segment forever);
#   - --max-age is given and the newest archived segment is older than it while WAL written
#     since then waits in pg_wal (the achieved recovery point is worse than the RPO);
#   - --switch true and the switched segment is not archived within --wait.
#
# archived_age_s (and rpo_s, read by the reports' RPO column) is the age of the newest
# archived segment as the check found it, before any switch: what a loss of the server at that
# moment would have cost. It is 0 when nothing written since is waiting in pg_wal (an idle
# server loses nothing). A site bounds it with archive_timeout (≤ the RPO): PostgreSQL then
# switches segments at least that often while anything is written.
#
# --switch true calls pg_switch_wal() and waits for that segment to reach the archive: it
# proves archiving works now (after a failover, on the new primary), not only that it once
# did. Switching writes one small WAL record and closes a segment early; nothing else changes.
#
# Connection: libpq environment, or --service. Needs a superuser (or a role granted
# pg_switch_wal and pg_read_all_settings) for --switch and for archive_command.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: archive-check.sh [--service NAME] [--max-age DURATION] [--switch true|false]
                        [--wait DURATION]

  --service NAME    libpq service of the primary (default: the PG* variables)
  --max-age DUR     fail when the newest archived segment is older than this while newer
                    WAL waits to be archived (default 0: no limit); 90, 90s, 15m, 1h
  --switch BOOL     pg_switch_wal() first and wait for that segment to be archived
                    (default false)
  --wait DUR        how long to wait for the switched segment (default 60s)

outputs: last_archived_wal, archived_age_s, failed_count, rpo_s, switched_wal (with --switch)
EOF2
}

service=""
max_age="0"
switch=false
wait_="60s"
parse_args --service=service --max-age=max_age --switch=switch:bool --wait=wait_ -- "$@"
max_age_s=$(duration --max-age "$max_age")
wait_s=$(duration --wait "$wait_")
[ "$wait_s" -gt 0 ] || usage_error "--wait must be longer than 0s"
pg_service "$service"
pg_need psql

q() { psql -w -X -q -tA -F '|' --dbname=postgres -c "$1"; }
target=$(pg_target)

IFS='|' read -r in_recovery archive_mode archive_command archive_library archive_timeout < <(q "
  SELECT pg_is_in_recovery(), current_setting('archive_mode'),
         current_setting('archive_command'), coalesce(current_setting('archive_library', true), ''),
         current_setting('archive_timeout')") \
  || die "cannot connect to $target; check the service or PGHOST/PGPORT/PGUSER/PGPASSWORD"
[ -n "$archive_mode" ] || die "cannot read the archive settings of $target"

case "$archive_mode" in
  off) die "archive_mode is off on $target: no WAL is archived, point-in-time recovery is impossible (set archive_mode = on and archive_command, then restart the server)" ;;
esac
if [ -z "$archive_command" ] && [ -z "$archive_library" ]; then
  die "archive_command is empty on $target: WAL piles up in pg_wal and nothing is archived (set archive_command to copy %p to the archive, then SELECT pg_reload_conf())"
fi
if [ "$in_recovery" = t ] && [ "$archive_mode" != always ]; then
  die "$target is a standby with archive_mode = $archive_mode: it archives nothing until promoted (check the primary, or set archive_mode = always)"
fi
if [ "$in_recovery" = t ] && $switch; then
  die "$target is a standby: pg_switch_wal() runs on the primary only (check the primary, or pass --switch false)"
fi

# One line of facts: the archiver's counters, the age of its last success, and whether WAL
# written since then waits in pg_wal. pg_walfile_name() names the segment holding the byte
# before the insert position, so it equals the last archived segment exactly when nothing has
# been written past that segment's end.
archiver() {
  q "SELECT coalesce(last_archived_wal, ''), failed_count,
            coalesce(floor(extract(epoch FROM now() - last_archived_time))::bigint, -1),
            coalesce(last_failed_time > last_archived_time
                     OR (last_archived_time IS NULL AND last_failed_time IS NOT NULL), false),
            coalesce(last_failed_wal, ''),
            CASE WHEN pg_is_in_recovery() THEN true
                 ELSE last_archived_wal IS NULL
                      OR pg_walfile_name(pg_current_wal_lsn()) > substr(last_archived_wal, 1, 24) END
       FROM pg_stat_archiver"
}
IFS='|' read -r last_wal failed_before age_s failing last_failed_wal pending < <(archiver) \
  || die "cannot read pg_stat_archiver on $target"
[[ $failed_before =~ ^[0-9]+$ ]] || die "cannot read pg_stat_archiver on $target"
echo "$target: archive_mode = $archive_mode, archive_timeout = $archive_timeout"
echo "  last archived: ${last_wal:-nothing yet}$( [ "$age_s" -ge 0 ] && printf ', %ss ago' "$age_s" ); failures so far: $failed_before"

# The failure message names the figure to watch and where the archiver says why.
failing_die() {
  die "WAL archiving is failing on $target: failed_count $1 (last failed segment ${last_failed_wal:-unknown}); the archiver retries it forever while pg_wal fills: see the server log for archive_command's error"
}
if [ "$failing" = t ]; then out failed_count "$failed_before"; failing_die "$failed_before"; fi

if [ "$pending" = f ]; then
  rpo_s=0
  echo "  nothing written since the last archived segment waits in pg_wal: a loss now costs nothing"
elif [ "$age_s" -ge 0 ]; then
  rpo_s=$age_s
else
  rpo_s=-1
fi

switched=""
if $switch; then
  # A logical message makes sure the segment holds something, so the switch closes a segment
  # that must be archived now rather than returning one archived long ago.
  switched=$(q "SELECT pg_logical_emit_message(false, 'runbook', 'archive-check'); SELECT pg_walfile_name(pg_switch_wal())" | tail -n1) \
    || die "pg_switch_wal() failed on $target (it needs a superuser, or EXECUTE on pg_switch_wal)"
  echo "switched WAL: waiting up to ${wait_s}s for $switched to reach the archive"
  deadline=$(( $(date +%s) + wait_s ))
  while :; do
    IFS='|' read -r last_wal failed_now age_now failing last_failed_wal _ < <(archiver) \
      || die "cannot read pg_stat_archiver on $target"
    if [ "$failed_now" -gt "$failed_before" ]; then
      out failed_count "$failed_now"
      failing_die "rose from $failed_before to $failed_now while the check ran"
    fi
    if [[ ${last_wal:0:24} =~ ^[0-9A-F]{24}$ ]] && [[ ! ${last_wal:0:24} < $switched ]]; then
      break
    fi
    [ "$(date +%s)" -lt "$deadline" ] \
      || die "$switched was not archived within ${wait_s}s on $target (last archived: ${last_wal:-nothing}; failed_count $failed_now): archive_command is slow or stuck, see the server log"
    sleep 0.5
  done
  echo "  $switched archived: archiving works now"
  out switched_wal "$switched"
  # Nothing archived before the switch: the segment just archived is the recovery point.
  [ "$rpo_s" -ge 0 ] || rpo_s=${age_now:-0}
  failed_before=$failed_now
fi

[ "$rpo_s" -ge 0 ] \
  || die "nothing has been archived yet on $target: the recovery point is unknown (pass --switch true to archive the current segment now)"

out last_archived_wal "$last_wal"
out failed_count "$failed_before"
out archived_age_s "$rpo_s"
# The recovery point a loss of this server would cost now (read by the reports).
out rpo_s "$rpo_s"

if [ "$max_age_s" -gt 0 ] && [ "$rpo_s" -gt "$max_age_s" ]; then
  die "the newest archived segment is ${rpo_s}s old, more than --max-age ${max_age_s}s, while newer WAL waits in pg_wal: archiving is behind (set archive_timeout below the RPO, and check archive_command)"
fi
echo "WAL archiving ok on $target: recovery point ${rpo_s}s, failed_count $failed_before"
