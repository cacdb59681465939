#!/usr/bin/env bash
# Find the newest *good* PostgreSQL backup: its .sha256 sidecar is present and matches, its
# .meta sidecar is present, and pg_restore can read its table of contents. Backups that fail
# any of these are reported and skipped, and the next older one is tried.
#
# The source is a local folder, or an rclone remote (`remote:path`) when it contains a colon;
# from a remote, candidates are downloaded to --download-to before they are checked, so the
# `file` output is always a local path ready for postgres/restore.
#
# `age_s` is the age of the backup's snapshot in seconds: the recovery point this backup gives.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF'
usage: latest-backup.sh --source DIR|REMOTE:PATH [--prefix NAME] [--before TIME]
                        [--rpo DURATION] [--max-age DURATION] [--download-to DIR]
                        [--restores true|false]

  --source         folder or rclone remote holding <prefix>-YYYYMMDDTHHMMSSZ.dump files
  --prefix NAME    backup name prefix (default: omni)
  --before TIME    only backups taken at or before TIME (any `date -d` form, e.g.
                   2024-05-01T03:00:00Z); `now` (the default) means no limit. Use it to pick
                   the last backup from before a corruption or a breach began.
  --rpo DURATION   recovery point objective, for the rpo_met output (default: 1h)
  --max-age DUR    fail if the best backup is older than this (default: 0 = never fail on age)
  --download-to    where remote backups are downloaded (default: ${TMPDIR:-/tmp}/runbook-backups)
  --restores       the run restores this backup (default true): its age is then the run's
                   recovery point (output rpo_s, read by the report); false when the backup
                   is only a reference to check data against, and nothing is lost

durations: 90, 90s, 15m, 1h, 1h30m, 2d

outputs: file, name, meta, sha256, created_at, age_s, rpo_s (with --restores true), rpo_met, skipped
EOF
}

human() { # seconds -> 45s, 12m05s, 3h07m
  local s=$1
  if [ "$s" -lt 60 ]; then printf '%ds' "$s"
  elif [ "$s" -lt 3600 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60))
  else printf '%dh%02dm' $((s / 3600)) $((s % 3600 / 60)); fi
}

source_=""
prefix="omni"
before="now"
rpo="1h"
max_age="0"
download_to="${TMPDIR:-/tmp}/runbook-backups"
restores=true
parse_args --source=source_ --prefix=prefix --before=before --rpo=rpo --max-age=max_age \
  --download-to=download_to --restores=restores:bool -- "$@"

[ -n "$source_" ] || usage_error "--source is required"
check_prefix "$prefix"
rpo_s=$(duration --rpo "$rpo")
max_age_s=$(duration --max-age "$max_age")
now=$(date -u +%s)
case "$before" in
  "") usage_error "--before is empty: give the time the damage began (e.g. 2024-05-01T03:00:00Z), or 'now'" ;;
  now) before_epoch=$now ;;
  *) before_epoch=$(date -u -d "$before" +%s 2>/dev/null) \
       || usage_error "--before: cannot read '$before' as a time (try 2024-05-01T03:00:00Z)" ;;
esac
pg_need pg_restore

remote=false
is_remote "$source_" && remote=true
if $remote; then
  need_rclone source "$source_"
  mkdir -p "$download_to" || die "cannot create $download_to"
  listing=$(rclone -q lsf --files-only --include "$prefix-*.dump" "$source_") \
    || die "cannot list $source_ with rclone (check the remote name and its credentials)"
else
  need_folder "backup folder" "$source_"
  source_=$(cd "$source_" && pwd)
  listing=$(find "$source_" -maxdepth 1 -type f -name "$prefix-*.dump" -printf '%f\n')
fi

# The UTC timestamp in the name sorts the backups; names of another shape are ignored.
candidates=$(printf '%s\n' "$listing" \
  | grep -E "^${prefix//./\\.}-[0-9]{8}T[0-9]{6}Z\.dump$" | LC_ALL=C sort -r || true)
[ -n "$candidates" ] || die "no backups named $prefix-YYYYMMDDTHHMMSSZ.dump in $source_"

fetch() { # name -> local path, downloading from a remote source when needed
  local name=$1 f
  if ! $remote; then printf '%s/%s' "$source_" "$name"; return 0; fi
  # Sidecars first: a fresh .sha256 decides whether an earlier download can be reused.
  for f in "$name.sha256" "$name.meta"; do
    rclone -q copyto "$source_/$f" "$download_to/.$f.partial" >&2 || return 1
    mv -f "$download_to/.$f.partial" "$download_to/$f"
  done
  if ! (cd "$download_to" && sha256sum --quiet -c "$name.sha256" >/dev/null 2>&1); then
    echo "downloading $source_/$name" >&2
    rclone -q copyto "$source_/$name" "$download_to/.$name.partial" >&2 || return 1
    mv -f "$download_to/.$name.partial" "$download_to/$name"
  fi
  printf '%s/%s' "$download_to" "$name"
}

skipped=0
checked=0
while IFS= read -r name; do
  [ -n "$name" ] || continue
  stamp=${name#"$prefix-"}; stamp=${stamp%.dump}
  taken=$(date -u -d "${stamp:0:4}-${stamp:4:2}-${stamp:6:2}T${stamp:9:2}:${stamp:11:2}:${stamp:13:2}Z" +%s 2>/dev/null) \
    || { warn "skipping $name: cannot read the time in its name"; skipped=$((skipped + 1)); continue; }
  if [ "$taken" -gt "$before_epoch" ]; then
    echo "skipping $name: taken after $before"
    continue
  fi
  checked=$((checked + 1))
  if ! path=$(fetch "$name"); then
    warn "skipping $name: download from $source_ failed or a sidecar is missing (incomplete upload?)"
    skipped=$((skipped + 1)); continue
  fi
  if [ ! -s "$path.sha256" ]; then
    warn "skipping $name: no $name.sha256 (incomplete or interrupted backup)"
    skipped=$((skipped + 1)); continue
  fi
  expected=$(cut -d' ' -f1 < "$path.sha256")
  actual=$(sha256sum "$path" | cut -d' ' -f1)
  if [ "$expected" != "$actual" ]; then
    warn "skipping $name: checksum mismatch (expected $expected, got $actual)"
    skipped=$((skipped + 1)); continue
  fi
  if [ ! -s "$path.meta" ]; then
    warn "skipping $name: no $name.meta (not written by postgres/backup?)"
    skipped=$((skipped + 1)); continue
  fi
  if ! pg_restore --list "$path" >/dev/null 2>&1; then
    warn "skipping $name: pg_restore cannot read it"
    skipped=$((skipped + 1)); continue
  fi
  created_epoch=$(sed -n 's/^created_epoch=//p' "$path.meta" | head -n1)
  [[ $created_epoch =~ ^[0-9]+$ ]] || created_epoch=$taken
  created_at=$(date -u -d "@$created_epoch" +%Y-%m-%dT%H:%M:%SZ)
  age_s=$((now - created_epoch))
  [ "$age_s" -ge 0 ] || age_s=0
  rpo_met=true
  [ "$age_s" -le "$rpo_s" ] || rpo_met=false

  echo "latest good backup: $path"
  echo "  taken $created_at, $(human "$age_s") ago; RPO $(human "$rpo_s") met: $rpo_met"
  [ "$skipped" -eq 0 ] || echo "  ($skipped newer backup(s) skipped as bad; see warnings above)"
  $rpo_met || warn "the best backup is older than the RPO: restoring it loses up to $(human "$age_s") of writes"
  out file "$path"
  out name "$name"
  out meta "$path.meta"
  out sha256 "$actual"
  out created_at "$created_at"
  out age_s "$age_s"
  # The recovery point a restore from it achieves (read by the report); none when nothing is
  # restored from it.
  if $restores; then out rpo_s "$age_s"; fi
  out rpo_met "$rpo_met"
  out skipped "$skipped"
  if [ "$max_age_s" -gt 0 ] && [ "$age_s" -gt "$max_age_s" ]; then
    die "the best backup is ${age_s}s old, more than --max-age ${max_age_s}s"
  fi
  exit 0
done <<< "$candidates"

die "no good backup in $source_ (prefix $prefix, at or before $before): $checked checked, $skipped bad"
