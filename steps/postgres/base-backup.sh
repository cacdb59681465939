#!/usr/bin/env bash
# Take a base backup of a PostgreSQL cluster (pg_basebackup -Ft -z -X fetch -c fast): the
# starting point a point-in-time recovery replays the WAL archive onto (PostgreSQL manual,
# "Continuous Archiving and Point-in-Time Recovery (PITR)", "Making a Base Backup").
#
# One file per backup, <prefix>-YYYYMMDDTHHMMSSZ.base.tar (UTC, the time it started): a plain
# tar holding pg_basebackup's own output (base.tar.gz, pg_wal.tar.gz, backup_manifest, one
# <oid>.tar.gz per tablespace), so that the same upload, download, checksum and prune steps
# serve it as serve the dumps. Two sidecars, as postgres/backup writes them:
#   <name>.meta    key=value: start and stop time, start and stop LSN, timeline, system
#                  identifier, server version, size, sha256 (what postgres/pitr chooses by)
#   <name>.sha256  `sha256sum -c` format, written last: its presence marks a complete backup
#
# -X fetch puts the WAL the backup needs inside it: restorable to its own end even when the
# archive is lost. The backup is consistent from its stop LSN on: a recovery target must be
# at or after its stop time (postgres/pitr picks the newest backup that stopped before).
#
# --dest uploads it (storage/upload: checked, then the local copy removed) to the
# backup storage; --every skips the run when the newest complete base backup there is younger:
# the hourly backup job takes a base backup once a day, and the WAL archive carries the rest
# (the plan's "full + incremental").
#
# Connection: libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGSERVICE);
# the role needs the REPLICATION attribute (or to be a superuser).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: base-backup.sh --out-dir DIR [--dest DIR|REMOTE:PATH] [--every DURATION]
                      [--prefix NAME] [--service NAME]

  --out-dir DIR   where the backup and its sidecars are written (created if missing)
  --dest          upload it there (a folder, or an rclone remote:path), checked, and remove
                  the local copy (default: keep it in --out-dir)
  --every DUR     skip when the newest complete base backup in --dest (else --out-dir) is
                  younger than this (default 0: take one every run); 90s, 15m, 24h
  --prefix NAME   file name prefix (default: omni); files are
                  <prefix>-YYYYMMDDTHHMMSSZ.base.tar (UTC)
  --service NAME  libpq service of the server to back up (default: the PG* variables)

outputs: file (where it is: in --dest when given), name, sha256, size, meta, created_at,
         created_epoch, start_lsn, stop_lsn, timeline, stopped_at, skipped
EOF2
}

out_dir=""
dest=""
every="0"
prefix="omni"
service=""
parse_args --out-dir=out_dir --dest=dest --every=every --prefix=prefix --service=service -- "$@"
[ -n "$out_dir" ] || usage_error "--out-dir is required"
check_prefix "$prefix"
every_s=$(duration --every "$every")
dest=${dest%/}
pg_service "$service"
pg_need pg_basebackup psql sha256sum tar
target=$(pg_target)
# The backup is the whole cluster, every database and role: readable by its owner only.
umask 077

mkdir -p "$out_dir" || die "cannot create $out_dir"
out_dir=$(cd "$out_dir" && pwd)

if [ "$every_s" -gt 0 ]; then
  where=${dest:-$out_dir}
  # Complete backups only: the .sha256 is written (and uploaded) last.
  if is_remote "$where"; then
    need_rclone destination "$where"
    listing=$(rclone -q lsf --files-only --include "$prefix-*.base.tar.sha256" "$where" 2>/dev/null || true)
  else
    listing=$(find "$where" -maxdepth 1 -type f -name "$prefix-*.base.tar.sha256" -printf '%f\n' 2>/dev/null || true)
  fi
  newest=$(printf '%s\n' "$listing" | grep -E "^${prefix//./\\.}-[0-9]{8}T[0-9]{6}Z\.base\.tar\.sha256$" | LC_ALL=C sort | tail -n1 || true)
  if [ -n "$newest" ]; then
    s=${newest#"$prefix-"}
    taken=$(date -u -d "${s:0:4}-${s:4:2}-${s:6:2}T${s:9:2}:${s:11:2}:${s:13:2}Z" +%s)
    age=$(( $(date -u +%s) - taken ))
    if [ "$age" -lt "$every_s" ]; then
      echo "skipped: the newest base backup, ${newest%.sha256}, is ${age}s old (--every ${every_s}s); the WAL archive carries what was written since"
      out skipped true
      out name "${newest%.sha256}"
      exit 0
    fi
  fi
fi

started_epoch=$(date -u +%s)
stamp=$(date -u -d "@$started_epoch" +%Y%m%dT%H%M%SZ)
created_at=$(date -u -d "@$started_epoch" +%Y-%m-%dT%H:%M:%SZ)
name="$prefix-$stamp.base.tar"
final="$out_dir/$name"
[ ! -e "$final" ] || die "$final already exists (two base backups within one second?)"

work="$out_dir/.$name.partial.d"
tmp_tar="$out_dir/.$name.partial"
tmp_meta="$out_dir/.$name.meta.partial"
tmp_sum="$out_dir/.$name.sha256.partial"
cleanup() { rm -rf -- "$work" "$tmp_tar" "$tmp_meta" "$tmp_sum"; }
trap cleanup EXIT
mkdir -p "$work"

IFS='|' read -r system_id server_version < <(psql -w -X -q -tA -F '|' --dbname=postgres -c \
  "SELECT system_identifier, current_setting('server_version') FROM pg_control_system()") \
  || die "cannot connect to $target; check the service or PGHOST/PGPORT/PGUSER/PGPASSWORD"

echo "base backup of $target to $final"
# -c fast: an immediate checkpoint, so the backup starts now rather than at the next one.
# --verbose prints the start and end points recorded below.
pg_basebackup -w --pgdata="$work" --format=tar --gzip --wal-method=fetch --checkpoint=fast \
  --verbose 2> "$work.log" \
  || { cat "$work.log" >&2; rm -f "$work.log"; die "pg_basebackup of $target failed (see its message above; the role needs REPLICATION)"; }
cat "$work.log"
start_lsn=$(sed -n 's/.*write-ahead log start point: \([0-9A-F]*\/[0-9A-F]*\) on timeline \([0-9]*\).*/\1/p' "$work.log" | head -n1)
timeline=$(sed -n 's/.*write-ahead log start point: [0-9A-F]*\/[0-9A-F]* on timeline \([0-9]*\).*/\1/p' "$work.log" | head -n1)
stop_lsn=$(sed -n 's/.*write-ahead log end point: \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' "$work.log" | head -n1)
rm -f "$work.log"
[ -n "$start_lsn" ] && [ -n "$stop_lsn" ] && [ -n "$timeline" ] \
  || die "pg_basebackup did not report its start and end points; cannot record them"
# The backup is consistent from a moment before this one: a recovery target must not fall
# before it. In seconds rounded up, and in nanoseconds for targets within the same second.
stopped_ns=$(date -u +%s%N)
stopped_epoch=$(( stopped_ns / 1000000000 + 1 ))
stopped_at=$(date -u -d "@$stopped_epoch" +%Y-%m-%dT%H:%M:%SZ)
[ -s "$work/base.tar.gz" ] || die "pg_basebackup wrote no base.tar.gz into $work"
# Each tar must read back whole before it is published.
for t in "$work"/*.tar.gz; do
  tar -tzf "$t" >/dev/null || die "$t, just written, cannot be read back"
done

tar -cf "$tmp_tar" -C "$work" . || die "cannot pack the base backup into $tmp_tar"
size=$(stat -c %s "$tmp_tar")
sha=$(sha256sum "$tmp_tar" | cut -d' ' -f1)
{
  echo "format=runbook-base-backup/1"
  echo "kind=postgres-base"
  echo "file=$name"
  echo "created_at=$created_at"
  echo "created_epoch=$started_epoch"
  echo "stopped_at=$stopped_at"
  echo "stopped_epoch=$stopped_epoch"
  echo "stopped_epoch_ns=$stopped_ns"
  echo "start_lsn=$start_lsn"
  echo "stop_lsn=$stop_lsn"
  echo "timeline=$timeline"
  echo "system_identifier=$system_id"
  echo "server_version=$server_version"
  echo "size=$size"
  echo "sha256=$sha"
} > "$tmp_meta"

# Publish: the backup, then its metadata, then its checksum (the "complete" marker).
mv -f "$tmp_tar" "$final"
mv -f "$tmp_meta" "$final.meta"
printf '%s  %s\n' "$sha" "$name" > "$tmp_sum"
mv -f "$tmp_sum" "$final.sha256"

echo "base backup complete: $final ($size bytes, sha256 $sha; WAL $start_lsn..$stop_lsn on timeline $timeline)"
if [ -n "$dest" ]; then
  RUNBOOK_OUTPUT=/dev/null "$(dirname -- "${BASH_SOURCE[0]}")/../storage/upload.sh" \
    --file "$final" --dest "$dest" --delete-source true \
    || die "the upload of $name to $dest failed; the backup stays in $out_dir"
  final="$dest/$name"
fi
out skipped false
out file "$final"
out name "$name"
out sha256 "$sha"
out size "$size"
out meta "$final.meta"
out created_at "$created_at"
out created_epoch "$started_epoch"
out stopped_at "$stopped_at"
out start_lsn "$start_lsn"
out stop_lsn "$stop_lsn"
out timeline "$timeline"
