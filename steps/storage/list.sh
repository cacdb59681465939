#!/usr/bin/env bash
# List the backups in a destination (local folder, or rclone remote:path when it contains a
# colon), newest name first, with size and modification time. Sidecars are not listed.
set -euo pipefail

me=${0##*/}
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$me" "$*" >&2; exit 2; }
out() { printf '%s=%s\n' "$1" "$2" >> "${RUNBOOK_OUTPUT:-/dev/null}"; }

usage() {
  cat <<'EOF2'
usage: list.sh --dest DIR|REMOTE:PATH [--pattern GLOB]

  --pattern GLOB   only names matching it (default: *)

outputs: count, newest
EOF2
}

dest=""
pattern="*"
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) [ $# -ge 2 ] || usage_error "$1 needs a value"; dest=$2; shift 2 ;;
    --pattern) [ $# -ge 2 ] || usage_error "$1 needs a value"; pattern=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$dest" ] || usage_error "--dest is required"
dest=${dest%/}

if [[ $dest == *:* ]]; then
  command -v rclone >/dev/null || die "destination '$dest' is an rclone remote but rclone is not installed"
  rows=$(rclone -q lsf --files-only --format 'pst' --separator '|' --include "$pattern" "$dest") \
    || die "cannot list $dest with rclone"
else
  [ -d "$dest" ] || die "folder '$dest' does not exist"
  rows=$(find "$dest" -maxdepth 1 -type f -name "$pattern" -printf '%f|%s|%TY-%Tm-%Td %TH:%TM:%.2TS\n')
fi
rows=$(printf '%s\n' "$rows" | grep -v -E '^[^|]*\.(sha256|meta)\||^\.' | grep -v '^$' | LC_ALL=C sort -r || true)

count=0
newest=""
if [ -n "$rows" ]; then
  printf '%-48s %14s  %s\n' NAME BYTES MODIFIED
  while IFS='|' read -r n size mtime; do
    printf '%-48s %14s  %s\n' "$n" "$size" "$mtime"
    count=$((count + 1))
    [ -n "$newest" ] || newest=$n
  done <<< "$rows"
fi
echo "$count file(s) in $dest matching '$pattern'"
out count "$count"
out newest "$newest"
