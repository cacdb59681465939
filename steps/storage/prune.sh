#!/usr/bin/env bash
# Delete backups older than the retention period (default 30 days, the plan's retention) from
# a local folder or an rclone remote (`remote:path`, any destination with a colon), with their
# .sha256 and .meta sidecars. The newest --keep-min backups are never deleted, however old:
# if backups stopped a month ago, pruning must not delete the last ones there are.
# Age is the file's modification time in the destination.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: prune.sh --dest DIR|REMOTE:PATH --pattern GLOB [--retention-days N] [--keep-min N]
                [--dry-run true|false]

  --pattern GLOB       which files are backups, e.g. 'omni-*.dump' (required: prune never
                       guesses what it may delete)
  --retention-days N   delete backups older than N days (default 30)
  --keep-min N         always keep the N newest backups (default 3)
  --dry-run            only print what would be deleted (default false)

outputs: deleted, kept
EOF2
}

dest=""
pattern=""
retention_days=30
keep_min=3
dry_run=false
parse_args --dest=dest --pattern=pattern --retention-days=retention_days --keep-min=keep_min \
  --dry-run=dry_run:bool -- "$@"
[ -n "$dest" ] || usage_error "--dest is required"
[ -n "$pattern" ] || usage_error "--pattern is required (e.g. 'omni-*.dump')"
[ "$pattern" != "*" ] || usage_error "--pattern '*' would treat every file as a backup; name them (e.g. 'omni-*.dump')"
[[ $retention_days =~ ^[1-9][0-9]*$ ]] || usage_error "--retention-days must be a positive number of days (got '$retention_days')"
[[ $keep_min =~ ^[0-9]+$ ]] || usage_error "--keep-min must be a number (got '$keep_min')"
dest=${dest%/}

remote=false
is_remote "$dest" && remote=true
if $remote; then
  need_rclone destination "$dest"
  # rclone prints modification times in local time, which date -d reads the same way.
  rows=$(rclone -q lsf --files-only --format 'tp' --separator '|' --include "$pattern" "$dest") \
    || die "cannot list $dest with rclone"
  rows=$(printf '%s\n' "$rows" | while IFS='|' read -r t n; do
    [ -n "$n" ] || continue
    printf '%s|%s\n' "$(date -d "$t" +%s)" "$n"
  done)
else
  need_folder "folder" "$dest"
  rows=$(find "$dest" -maxdepth 1 -type f -name "$pattern" -printf '%T@|%f\n' | sed 's/\.[0-9]*|/|/')
fi
# Backups only (not their sidecars, not partial uploads), newest first.
rows=$(printf '%s\n' "$rows" | grep -v -E '\.(sha256|meta|partial)$|\|\.' | grep -v '^$' | sort -t'|' -k1,1nr -k2,2r || true)

# An age that cannot be read is no age: prune nothing rather than delete on a guess (an
# empty time made the age test fail, and the backup was deleted).
while IFS='|' read -r mtime n; do
  [ -n "$n" ] || continue
  [[ $mtime =~ ^[0-9]+$ ]] || die "cannot tell how old $dest/$n is (modification time '${mtime}'): nothing deleted"
done <<< "$rows"

cutoff=$(( $(date +%s) - retention_days * 86400 ))
deleted=0
kept=0
rank=0
while IFS='|' read -r mtime n; do
  [ -n "$n" ] || continue
  rank=$((rank + 1))
  if [ "$rank" -le "$keep_min" ] || [ "$mtime" -ge "$cutoff" ]; then
    kept=$((kept + 1)); continue
  fi
  age_d=$(( ($(date +%s) - mtime) / 86400 ))
  if [ "$dry_run" = true ]; then
    echo "would delete $n (${age_d} days old) and its sidecars"
  else
    echo "deleting $n (${age_d} days old) and its sidecars"
    for f in "$n" "$n.sha256" "$n.meta"; do
      if $remote; then
        rclone -q deletefile "$dest/$f" 2>/dev/null || [ "$f" != "$n" ] || die "cannot delete $dest/$f"
      else
        rm -f -- "$dest/$f" || die "cannot delete $dest/$f"
      fi
    done
  fi
  deleted=$((deleted + 1))
done <<< "$rows"

echo "$( [ "$dry_run" = true ] && echo 'would delete' || echo 'deleted' ) $deleted backup(s) older than $retention_days days; kept $kept"
out deleted "$deleted"
out kept "$kept"
