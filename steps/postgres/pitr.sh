#!/usr/bin/env bash
# Point-in-time recovery of a PostgreSQL cluster: a base backup (postgres/base-backup) plus the
# WAL archive, replayed by the server up to a target time or LSN, then promoted onto a new
# timeline. The steps are the PostgreSQL manual's "Recovering Using a Continuous Archive
# Backup" (Continuous Archiving and Point-in-Time Recovery (PITR)):
#   1. stop the server (the site's --stop-cmd);
#   2./3. move the damaged data directory ASIDE, never delete it: its pg_wal may hold WAL the
#      archive lacks, and it is the evidence of what went wrong;
#   4. extract the newest base backup that finished before the target into a fresh data
#      directory, with the old one's owner and mode 0700;
#   5. copy the old pg_wal's segments in (the manual: "unarchived WAL segment files");
#   6./7. restore_command (reading the archive), recovery_target_time or _lsn,
#      recovery_target_action = promote, recovery.signal; the configuration files of the
#      damaged cluster replace the backup's (the site's current ports, paths and settings:
#      configuration is not data, and a setting changed since the backup must not revert);
#   8. start it (the site's --start-cmd), wait for the end of recovery, check that the timeline
#      moved past the backup's and how far recovery reached (pg_last_xact_replay_timestamp).
# The recovery settings are removed again (ALTER SYSTEM RESET) once the server is a primary,
# so that a later restart cannot replay into the past.
#
# Everything that can refuse refuses BEFORE the server is stopped: a target before the oldest
# base backup (nothing to recover from), after the newest archived WAL (on a running server,
# the current segment is switched and archived first), in the future, or a backup whose
# checksum or system identifier does not match.
#
# The recovery point (rpo_s, read by the reports) is what is lost: the writes between the
# target and the incident (--incident-time, default: when this step started, after writes were
# stopped) — not a backup's age.
#
# With neither --target-time nor --target-lsn it does nothing and says so: the runbooks
# take the logical-dump path then (output path=logical).
#
# --preflight true: only the checks made before anything is stopped (the base backup it would
# use, how far the archive reaches) and what would be lost: what an approver decides on.
#
# --scratch-dir DIR: a rehearsal. The same recovery, into DIR/pitr-<time> on a free port
# (sockets only, archiving off, so nothing reaches the site's archive), checked and stopped;
# the running cluster is not touched. What a drill runs.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: pitr.sh (--target-time TIME | --target-lsn LSN) --base-dir DIR|REMOTE:PATH
               --data-dir DIR (--wal-archive DIR | --restore-command CMD)
               [--stop-cmd CMD --start-cmd CMD | --scratch-dir DIR]
               [--prefix NAME] [--service NAME] [--incident-time TIME]
               [--inclusive true|false] [--download-to DIR] [--wait DURATION]
               [--preflight true|false]

  --target-time TIME    recover up to this time (ISO 8601 with its zone: Z or an offset,
                        e.g. 2024-05-01T02:59:00Z or 2024-05-01 04:59:00.5+02:00);
                        empty with --target-lsn empty: do nothing (the logical path runs)
  --target-lsn LSN      recover up to this WAL location (e.g. 0/3000060) instead
  --base-dir            folder or rclone remote holding <prefix>-*.base.tar backups
  --prefix NAME         base backup name prefix (default: omni)
  --data-dir DIR        the cluster's data directory (moved aside, then replaced)
  --wal-archive DIR     the WAL archive, a folder the server's user can read
  --restore-command CMD the site's restore_command instead (%f and %p as PostgreSQL gives them)
  --stop-cmd CMD        stops the server (e.g. systemctl stop postgresql@15-main)
  --start-cmd CMD       starts it
  --service NAME        libpq service of the server (default: the PG* variables)
  --incident-time TIME  when writes stopped (ISO 8601 with its zone): the loss is measured from the target to it
                        (default: when this step starts)
  --inclusive BOOL      keep transactions committed exactly at the target (default true)
  --download-to DIR     where a backup from a remote is downloaded (default: $TMPDIR)
  --wait DUR            how long recovery may take (default 30m)
  --scratch-dir DIR     rehearse: recover into DIR/pitr-<time> on a free port; production
                        untouched
  --preflight BOOL      only check and say what would be lost; stop nothing (default false)

outputs: path (pitr|logical), target, recovered_to, timeline, base_backup, kept_aside,
         incident_time, rpo_s; with --preflight: path, target, base_backup, incident_time, lost_s
EOF2
}

target_time=""
target_lsn=""
base_dir=""
prefix="omni"
data_dir=""
wal_archive=""
restore_command=""
stop_cmd=""
start_cmd=""
service=""
incident_time=""
inclusive=true
download_to="${TMPDIR:-/tmp}/runbook-backups"
wait_="30m"
scratch_dir=""
preflight=false
parse_args --target-time=target_time --target-lsn=target_lsn --base-dir=base_dir \
  --prefix=prefix --data-dir=data_dir --wal-archive=wal_archive \
  --restore-command=restore_command --stop-cmd=stop_cmd --start-cmd=start_cmd \
  --service=service --incident-time=incident_time --inclusive=inclusive:bool \
  --download-to=download_to --wait=wait_ --scratch-dir=scratch_dir --preflight=preflight:bool -- "$@"

if [ -z "$target_time" ] && [ -z "$target_lsn" ]; then
  echo "skipped: no recovery target (recovery_target_time is empty): the logical-dump path restores instead"
  out path logical
  out incident_time "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  exit 0
fi
[ -z "$target_time" ] || [ -z "$target_lsn" ] || usage_error "give --target-time or --target-lsn, not both"
[ -n "$base_dir" ] || usage_error "--base-dir is required"
[ -n "$data_dir" ] || usage_error "--data-dir is required (the cluster's data directory)"
check_prefix "$prefix"
wait_s=$(duration --wait "$wait_")
if [ -z "$restore_command" ] && [ -z "$wal_archive" ]; then
  usage_error "--wal-archive (the archive folder) or --restore-command is required: recovery replays the archived WAL"
fi
if [ -z "$scratch_dir" ] && ! $preflight; then
  # A drill whose runbook named no scratch folder must not fall through to the real thing.
  [ "${RUNBOOK_MODE:-real}" != drill ] \
    || die "a drill never stops the server: give --scratch-dir (a folder with room for a copy of the cluster) to rehearse the recovery"
  [ -n "$stop_cmd" ] || usage_error "--stop-cmd is required: the damaged server must be stopped before its data directory is replaced"
  [ -n "$start_cmd" ] || usage_error "--start-cmd is required"
fi
pg_service "$service"
pg_need psql sha256sum tar
here=$(dirname -- "${BASH_SOURCE[0]}")

# check_time FLAG VALUE: an ISO 8601 time with its zone (Z, UTC or an offset). Without one,
# date -u would read it as UTC while the DBA noted local time and PostgreSQL reads it in the
# server's zone: off by the offset, a recovery replays the damage or loses hours. Relative
# forms date(1) also takes ("yesterday", "1 hour ago") are refused for the same reason.
check_time() {
  local iso='^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?'
  [[ $2 =~ $iso ]] \
    || usage_error "$1: \`$2\` is not an ISO 8601 time: give one like 2024-05-01T02:59:00Z"
  [[ $2 =~ ${iso}\ ?(Z|z|UTC|[+-][0-9]{2}(:?[0-9]{2})?)$ ]] \
    || usage_error "$1: \`$2\` has no time zone: add Z (UTC) or the offset it was noted in (e.g. ${2}+02:00)"
  date -u -d "$2" +%s >/dev/null 2>&1 || usage_error "$1: cannot read \`$2\` as a time (try 2024-05-01T02:59:00Z)"
}

now=$(date -u +%s)
target_sec=""
if [ -n "$target_time" ]; then
  check_time --target-time "$target_time"
  target_sec=$(date -u -d "$target_time" +%s)
  # As PostgreSQL's setting reads it: its parser takes fewer forms than date(1) (not ...T...Z).
  pg_target_time=$(date -u -d "$target_time" '+%Y-%m-%d %H:%M:%S.%6N+00')
  target_ns=$(date -u -d "$target_time" +%s%N)
  [ "$target_sec" -le "$now" ] || die "recovery target $target_time is in the future: nothing was written after now"
  target_desc="time $target_time"
else
  [[ $target_lsn =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]] \
    || usage_error "--target-lsn must look like 0/3000060 (got '$target_lsn')"
  target_desc="LSN $target_lsn"
fi
# An LSN as one number, to compare.
lsn_num() { local hi=${1%/*} lo=${1#*/}; echo $(( (16#$hi << 32) + 16#$lo )); }
if [ -n "$incident_time" ]; then
  check_time --incident-time "$incident_time"
  incident_sec=$(date -u -d "$incident_time" +%s 2>/dev/null) \
    || usage_error "--incident-time: cannot read '$incident_time' as a time"
else
  incident_sec=$now
fi

# A recovery interrupted (the step killed, the host rebooted) after it moved the damaged
# cluster aside leaves no data directory, the cluster in <dir>.damaged-<time> and its
# half-made successor in <dir>.pitr-<time>. Run again for real, it puts the cluster back and
# starts over: the successor is only a copy of the backup, and a run that took the half-made
# one for the damaged cluster would lose the unarchived WAL and the site's configuration.
if [ ! -e "$data_dir" ]; then
  abs_dir="$(readlink -f -- "$(dirname -- "$data_dir")")/$(basename -- "$data_dir")"
  resumed=""
  for partial in $(find "$(dirname -- "$abs_dir")" -mindepth 1 -maxdepth 1 -type d \
      -name "$(basename -- "$abs_dir").pitr-*" -printf '%p\n' 2>/dev/null | LC_ALL=C sort -r); do
    [ -d "$abs_dir.damaged-${partial##*.pitr-}" ] && { resumed=$partial; break; }
  done
  if [ -n "$resumed" ]; then
    was="$abs_dir.damaged-${resumed##*.pitr-}"
    if [ -n "$scratch_dir" ] || $preflight; then
      die "data directory $data_dir does not exist: a recovery was interrupted after it moved the cluster to $was; run the recovery again (not a preflight or rehearsal) to finish it, or mv $was $data_dir"
    fi
    echo "a recovery was interrupted after it moved the cluster aside: putting $was back and starting over (the half-made $resumed is removed: a copy of the backup)"
    rm -rf -- "$resumed" "$resumed".unpack.*
    mv -T -- "$was" "$abs_dir" || die "cannot move $was back to $data_dir"
  else
    aside_dirs=$(find "$(dirname -- "$abs_dir")" -mindepth 1 -maxdepth 1 -type d -name "$(basename -- "$abs_dir").damaged-*" 2>/dev/null | tr '\n' ' ')
    die "data directory $data_dir does not exist (check the pg_data_dir variable)${aside_dirs:+; clusters kept aside by earlier recoveries: $aside_dirs}"
  fi
fi
[ -d "$data_dir" ] || die "data directory $data_dir is not a directory (check the pg_data_dir variable)"
data_dir=$(readlink -f -- "$data_dir")
[ -s "$data_dir/PG_VERSION" ] || die "$data_dir holds no PostgreSQL cluster (no PG_VERSION): check the pg_data_dir variable"
if [ -n "$wal_archive" ]; then
  [ -d "$wal_archive" ] || die "WAL archive $wal_archive does not exist (check the wal_archive variable)"
  wal_archive=$(readlink -f -- "$wal_archive")
  # It goes into postgresql.auto.conf inside single quotes and into a shell command.
  [[ $wal_archive =~ ^[A-Za-z0-9/._+-]+$ ]] \
    || die "WAL archive path $wal_archive has characters unsafe in restore_command: give --restore-command instead"
  restore_command="cp \"$wal_archive/%f\" \"%p\""
fi
[[ $restore_command != *"'"* ]] || die "--restore-command must not hold a single quote (it is written into postgresql.auto.conf as a quoted string)"

q() { psql -w -X -q -tA -F '|' --dbname=postgres -c "$1"; }
target=$(pg_target)

# ── What the running server says, if it runs: its identity, timeline, and how far its
# archive reaches once the current segment is switched and archived.
system_id=""
cur_timeline=""
archived_to=""
if facts=$(q "SELECT system_identifier, pg_is_in_recovery(), current_user FROM pg_control_system()" 2>/dev/null); then
  IFS='|' read -r system_id in_recovery live_role <<< "$facts"
  if [ "$in_recovery" = f ]; then
    cur_timeline=$(( 16#$(q "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)") ))
    # Harmless in a rehearsal too: it closes a segment early, as archive_timeout would.
    echo "archiving the current WAL segment of $target first (postgres/archive-check --switch true)"
    RUNBOOK_OUTPUT=/dev/null "$here/archive-check.sh" --service "$service" --switch true --wait 60s \
      || warn "archiving fails on $target: the archive reaches only its last success"
    archived_to=$(q "SELECT coalesce(floor(extract(epoch FROM last_archived_time))::bigint, 0) FROM pg_stat_archiver")
  else
    warn "$target is in recovery: is --service the damaged primary?"
  fi
else
  echo "$target does not answer: the cluster is taken as down"
  live_role=${PGUSER:-postgres}
fi
if [ -z "$archived_to" ] && [ -n "$wal_archive" ]; then
  archived_to=$(find "$wal_archive" -maxdepth 1 -type f -regextype posix-extended \
    -regex '.*/[0-9A-F]{24}' -printf '%T@\n' | sort -n | tail -n1 | cut -d. -f1)
fi
if [ -z "$cur_timeline" ] && command -v pg_controldata >/dev/null; then
  cur_timeline=$(LC_ALL=C pg_controldata "$data_dir" 2>/dev/null | sed -n "s/^Latest checkpoint's TimeLineID: *//p")
  [ -n "$system_id" ] || system_id=$(LC_ALL=C pg_controldata "$data_dir" 2>/dev/null | sed -n 's/^Database system identifier: *//p')
fi
if [ -n "$target_sec" ] && [ -n "$archived_to" ] && [ "$archived_to" -gt 0 ]; then
  [ "$target_sec" -le "$archived_to" ] \
    || die "recovery target $target_time is after the newest archived WAL ($(date -u -d "@$archived_to" +%Y-%m-%dT%H:%M:%SZ)): the archive cannot reach it (archive the server's pg_wal, then run again); nothing was stopped"
elif [ -n "$target_sec" ]; then
  warn "cannot tell how far the WAL archive reaches: if it falls short, PostgreSQL stops with 'recovery ended before configured recovery target was reached'"
fi

# ── The base backup: the newest one complete before the target.
remote=false
is_remote "$base_dir" && remote=true
if $remote; then
  need_rclone "base backup source" "$base_dir"
  listing=$(rclone -q lsf --files-only --include "$prefix-*.base.tar.meta" "$base_dir") \
    || die "cannot list $base_dir with rclone (check the remote name and its credentials)"
  mkdir -p "$download_to" || die "cannot create $download_to"
else
  need_folder "base backup folder" "$base_dir"
  base_dir=$(cd "$base_dir" && pwd)
  listing=$(find "$base_dir" -maxdepth 1 -type f -name "$prefix-*.base.tar.meta" -printf '%f\n')
fi
names=$(printf '%s\n' "$listing" | sed -n 's/\.meta$//p' \
  | grep -E "^${prefix//./\\.}-[0-9]{8}T[0-9]{6}Z\.base\.tar$" | LC_ALL=C sort -r || true)
[ -n "$names" ] || die "no base backups named $prefix-YYYYMMDDTHHMMSSZ.base.tar in $base_dir: run backup-database (it takes them) before a recovery can replay onto one"

meta_of() { sed -n "s/^$2=//p" "$1" | head -n1; }
fetch_meta() { # name -> local path of its .meta
  if $remote; then
    rclone -q copyto "$base_dir/$1.meta" "$download_to/$1.meta" >&2 || return 1
    printf '%s/%s.meta' "$download_to" "$1"
  else
    printf '%s/%s.meta' "$base_dir" "$1"
  fi
}
chosen=""
oldest=""
while IFS= read -r name; do
  [ -n "$name" ] || continue
  meta=$(fetch_meta "$name") || { warn "skipping $name: cannot fetch its .meta"; continue; }
  b_stop=$(meta_of "$meta" stopped_epoch)
  b_stop_ns=$(meta_of "$meta" stopped_epoch_ns)
  b_lsn=$(meta_of "$meta" stop_lsn)
  b_tl=$(meta_of "$meta" timeline)
  b_sys=$(meta_of "$meta" system_identifier)
  [[ $b_stop =~ ^[0-9]+$ ]] && [[ $b_lsn == */* ]] && [[ $b_tl =~ ^[0-9]+$ ]] \
    || { warn "skipping $name: its .meta lacks stopped_epoch, stop_lsn or timeline"; continue; }
  [[ $b_stop_ns =~ ^[0-9]+$ ]] || b_stop_ns=$(( b_stop * 1000000000 ))
  if [ -n "$system_id" ] && [ -n "$b_sys" ] && [ "$b_sys" != "$system_id" ]; then
    warn "skipping $name: a backup of another cluster (system identifier $b_sys, this one is $system_id)"
    continue
  fi
  oldest=$(meta_of "$meta" stopped_at)
  if [ -n "$target_sec" ]; then
    [ "$b_stop_ns" -le "$target_ns" ] || { echo "not $name: it completed at $(meta_of "$meta" stopped_at), after the target"; continue; }
  else
    [ "$(lsn_num "$b_lsn")" -le "$(lsn_num "$target_lsn")" ] || { echo "not $name: it ends at $b_lsn, after the target"; continue; }
  fi
  chosen=$name; chosen_meta=$meta; base_tl=$b_tl
  break
done <<< "$names"
[ -n "$chosen" ] || die "recovery target $target_desc is before the oldest base backup (complete at ${oldest:-unknown}): there is nothing to recover from; nothing was stopped"

if $remote; then
  echo "downloading $base_dir/$chosen"
  rclone -q copyto "$base_dir/$chosen.sha256" "$download_to/$chosen.sha256" || die "cannot download $chosen.sha256"
  rclone -q copyto "$base_dir/$chosen" "$download_to/.$chosen.partial" || die "cannot download $base_dir/$chosen"
  mv -f "$download_to/.$chosen.partial" "$download_to/$chosen"
  backup="$download_to/$chosen"
else
  backup="$base_dir/$chosen"
fi
check_sidecar "$backup" false
echo "base backup: $chosen (complete at $(meta_of "$chosen_meta" stopped_at), timeline $base_tl, WAL to $(meta_of "$chosen_meta" stop_lsn))"

if $preflight; then
  echo "preflight passed: $target can be recovered to $target_desc from $chosen and the archive; nothing was stopped"
  out path pitr
  out target "${target_time:-$target_lsn}"
  out base_backup "$backup"
  out incident_time "$(date -u -d "@$incident_sec" +%Y-%m-%dT%H:%M:%SZ)"
  if [ -n "$target_sec" ]; then
    lost=$(( incident_sec - target_sec ))
    echo "recovering to it loses the writes after it: ${lost}s of them, up to $(date -u -d "@$incident_sec" +%Y-%m-%dT%H:%M:%SZ)"
    out lost_s "$lost"
  fi
  exit 0
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
owner_ref=$data_dir

# fill_datadir DIR: the backup, the old pg_wal's segments and configuration, the recovery
# settings; owned like the old data directory, mode 0700.
fill_datadir() {
  local dir=$1 from=$2 unpack f
  [ -d "$dir" ] || mkdir -m 0700 -- "$dir" || die "cannot create $dir"
  unpack=$(mktemp -d "${dir}.unpack.XXXXXX") || die "cannot make a folder beside $dir"
  tar -xf "$backup" -C "$unpack" || { rm -rf -- "$unpack"; die "cannot unpack $backup"; }
  tar -xzf "$unpack/base.tar.gz" -C "$dir" || { rm -rf -- "$unpack"; die "cannot extract base.tar.gz of $backup into $dir"; }
  mkdir -p "$dir/pg_wal" || die "cannot create $dir/pg_wal"
  [ ! -s "$unpack/pg_wal.tar.gz" ] || tar -xzf "$unpack/pg_wal.tar.gz" -C "$dir/pg_wal" \
    || { rm -rf -- "$unpack"; die "cannot extract pg_wal.tar.gz of $backup"; }
  for f in "$unpack"/*.tar.gz; do
    case ${f##*/} in base.tar.gz|pg_wal.tar.gz) continue ;; esac
    rm -rf -- "$unpack"; die "$backup holds a tablespace (${f##*/}): restore tablespaces by hand (pg_tblspc links), this step does not"
  done
  rm -rf -- "$unpack"
  # The manual's step 5: segments the archive may lack (the newest, not yet archived).
  if [ -d "$from/pg_wal" ]; then
    find "$from/pg_wal" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}' \
      -exec cp -n -p -t "$dir/pg_wal" {} + || warn "could not copy every segment of $from/pg_wal"
  fi
  # The site's configuration, not the backup's: every top-level file of the old data
  # directory that is configuration rather than state.
  for f in "$from"/*; do
    [ -f "$f" ] || continue
    case ${f##*/} in
      PG_VERSION|postmaster.pid|postmaster.opts|backup_label|backup_label.old|tablespace_map|\
      tablespace_map.old|current_logfiles|recovery.signal|standby.signal|recovery.done) ;;
      *) cp -p -- "$f" "$dir/" || die "cannot copy $f into $dir" ;;
    esac
  done
  rm -f -- "$dir/standby.signal" "$dir/postmaster.pid"
  {
    echo "# postgres/pitr $stamp: recovery to $target_desc (removed by the step once recovery ends)"
    echo "restore_command = '$restore_command'"
    if [ -n "$target_time" ]; then echo "recovery_target_time = '$pg_target_time'"
    else echo "recovery_target_lsn = '$target_lsn'"; fi
    echo "recovery_target_inclusive = $( $inclusive && echo on || echo off )"
    if [ -n "$cur_timeline" ]; then echo "recovery_target_timeline = '$cur_timeline'"
    else echo "recovery_target_timeline = 'latest'"; fi
    echo "recovery_target_action = 'promote'"
  } >> "$dir/postgresql.auto.conf" || die "cannot write the recovery settings into $dir/postgresql.auto.conf"
  : > "$dir/recovery.signal" || die "cannot create $dir/recovery.signal"
  chown -R --reference="$owner_ref" -- "$dir" || die "cannot give $dir the owner of $owner_ref"
  chmod 0700 -- "$dir"
}

# wait_recovered PSQL...: polls until the server is out of recovery, or fails once it stopped
# or the wait is over.
wait_recovered() {
  local dir=$1; shift
  local deadline=$(( $(date +%s) + wait_s )) state
  while :; do
    state=$("$@" -c 'SELECT pg_is_in_recovery()' 2>/dev/null || true)
    [ "$state" != f ] || return 0
    if [ ! -e "$dir/postmaster.pid" ] && [ "$(date +%s)" -gt $(( deadline - wait_s + 5 )) ]; then
      die "PostgreSQL stopped during recovery of $dir (a target the WAL cannot reach, or a setting it refuses, stops it): see its log"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "$dir is still in recovery after ${wait_s}s (--wait): see its log"
    sleep 1
  done
}

# check_recovered PSQL...: the timeline moved, how far recovery reached; sets timeline,
# recovered_to.
check_recovered() {
  local row replayed
  "$@" -c 'CHECKPOINT' >/dev/null || warn "CHECKPOINT after recovery failed"
  row=$("$@" -F '|' -c "SELECT (pg_control_checkpoint()).timeline_id,
                               coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''),
                               coalesce(floor(extract(epoch FROM pg_last_xact_replay_timestamp()))::bigint, -1)") \
    || die "cannot read the recovered server's timeline"
  IFS='|' read -r timeline recovered_to replayed <<< "$row"
  [ "$timeline" -gt "$base_tl" ] \
    || die "the recovered server is on timeline $timeline, not past the base backup's $base_tl: it did not promote from a recovery"
  if [ -z "$recovered_to" ]; then
    recovered_to=$(meta_of "$chosen_meta" stopped_at)
    echo "no transaction was replayed past the base backup: recovered to the backup's end ($recovered_to)"
  elif [ -n "$target_sec" ] && [ "$replayed" -gt "$target_sec" ]; then
    die "recovery replayed a transaction of $recovered_to, after the target $target_time"
  fi
  echo "recovered to $recovered_to (last transaction replayed), timeline $timeline (base backup: $base_tl)"
}

if [ -n "$scratch_dir" ]; then
  # ── Rehearsal: a copy on a free port; the cluster in --data-dir is only read.
  pg_need pg_ctl
  mkdir -p "$scratch_dir" || die "cannot create $scratch_dir"
  scratch_dir=$(readlink -f -- "$scratch_dir")
  dir="$scratch_dir/pitr-$stamp"
  fill_datadir "$dir" "$data_dir"
  port=$(( 20000 + RANDOM % 40000 ))
  owner=$(stat -c %U -- "$data_dir")
  # Only the owner can reach it (a socket in the 0700 data directory, no TCP), so it trusts
  # local connections; it must never archive into the site's archive: a new timeline there
  # would be taken for the real one.
  printf 'local all all trust\n' > "$dir/pg_hba.rehearsal.conf"
  {
    echo "port = $port"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    echo "archive_mode = off"
    echo "hba_file = '$dir/pg_hba.rehearsal.conf'"
  } >> "$dir/postgresql.auto.conf" || die "cannot write the rehearsal's settings into $dir"
  chown --reference="$data_dir" -- "$dir/pg_hba.rehearsal.conf" "$dir/postgresql.auto.conf"
  as_owner() { if [ "$(id -u)" = 0 ] && [ "$owner" != root ]; then runuser -u "$owner" -- "$@"; else "$@"; fi; }
  sq() { as_owner psql -w -X -q -tA -h "$dir" -p "$port" -U "$live_role" --dbname=postgres "$@"; }
  stop_scratch() { as_owner pg_ctl -D "$dir" -m fast -w stop >/dev/null 2>&1 || true; }
  trap stop_scratch EXIT
  echo "rehearsal: recovering $chosen to $target_desc in $dir (port $port; $data_dir untouched)"
  (cd / && as_owner pg_ctl -D "$dir" -l "$dir.log" -w -t 60 start </dev/null >/dev/null) \
    || warn "pg_ctl start did not report ready (recovery may still run); see $dir.log"
  wait_recovered "$dir" sq
  check_recovered sq
  stop_scratch
  trap - EXIT
  rm -rf -- "$dir"
  echo "rehearsal passed: $chosen and the archive recover to $target_desc (log: $dir.log)"
  out path pitr
  out target "${target_time:-$target_lsn}"
  out recovered_to "$recovered_to"
  out timeline "$timeline"
  out base_backup "$backup"
  exit 0
fi

# ── The real recovery. From here on the damaged cluster is stopped: every failure says where
# it is.
aside="$data_dir.damaged-$stamp"
partial="$data_dir.pitr-$stamp"
# running: a live postmaster holds the data directory. A run again after an interruption finds
# it stopped already, and a stop command such as pg_ctl stop fails on a stopped server.
running() {
  local pid
  [ -s "$data_dir/postmaster.pid" ] || return 1
  pid=$(head -n1 "$data_dir/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}
if running; then
  echo "stopping the server: $stop_cmd"
  bash -c "$stop_cmd" || die "the stop command failed: $stop_cmd (nothing was changed)"
else
  echo "the server is not running in $data_dir: nothing to stop"
fi
if [ -s "$data_dir/postmaster.pid" ]; then
  pid=$(head -n1 "$data_dir/postmaster.pid")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    die "PostgreSQL (pid $pid) still runs in $data_dir after the stop command: not replacing a running cluster"
  fi
fi
# Made first: with $aside it marks a recovery under way (see the start of the script).
mkdir -m 0700 -- "$partial" || die "cannot create $partial (the server is stopped: start it with $start_cmd)"
mv -T -- "$data_dir" "$aside" || { rmdir -- "$partial"; die "cannot move $data_dir aside to $aside (the server is stopped: start it with $start_cmd)"; }
echo "the damaged cluster is kept aside in $aside (never deleted: its WAL and its damage are evidence)"
owner_ref=$aside
out kept_aside "$aside"
undo_hint="the damaged cluster is in $aside (to go back: stop the server, mv $aside $data_dir, start it)"
(fill_datadir "$partial" "$aside") || die "the new data directory could not be prepared in $partial; $undo_hint"
# One rename: the data directory is the damaged cluster or the complete new one, never half.
mv -T -- "$partial" "$data_dir" || die "cannot move $partial to $data_dir; $undo_hint"

echo "starting the server to recover to $target_desc: $start_cmd"
bash -c "$start_cmd" </dev/null \
  || warn "the start command did not report ready (recovery may still run; waiting up to ${wait_s}s)"
sq() { psql -w -X -q -tA --dbname=postgres "$@"; }
(wait_recovered "$data_dir" sq) || die "recovery did not finish; $undo_hint"
check_recovered sq
sq -c "ALTER SYSTEM RESET restore_command" -c "ALTER SYSTEM RESET recovery_target_time" \
  -c "ALTER SYSTEM RESET recovery_target_lsn" -c "ALTER SYSTEM RESET recovery_target_inclusive" \
  -c "ALTER SYSTEM RESET recovery_target_timeline" -c "ALTER SYSTEM RESET recovery_target_action" \
  -c "SELECT pg_reload_conf()" >/dev/null \
  || warn "could not remove the recovery settings from postgresql.auto.conf: remove them by hand"

rpo_s=0
if [ -n "$target_sec" ]; then
  rpo_s=$(( incident_sec - target_sec ))
  [ "$rpo_s" -ge 0 ] || rpo_s=0
fi
echo "point-in-time recovery done: $target is a primary on timeline $timeline, recovered to $recovered_to"
[ -z "$target_sec" ] || echo "writes between $target_time and $(date -u -d "@$incident_sec" +%Y-%m-%dT%H:%M:%SZ) are lost (${rpo_s}s); they are in $aside"
out path pitr
out target "${target_time:-$target_lsn}"
out recovered_to "$recovered_to"
out timeline "$timeline"
out base_backup "$backup"
out incident_time "$(date -u -d "@$incident_sec" +%Y-%m-%dT%H:%M:%SZ)"
# What is lost: the writes after the target (read by the reports' RPO column).
[ -z "$target_sec" ] || out rpo_s "$rpo_s"
