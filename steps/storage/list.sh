#!/usr/bin/env bash
# List the backups in a destination (local folder, or rclone remote:path when it contains a
# colon), newest name first, with size and modification time. Sidecars are not listed.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: list.sh --dest DIR|REMOTE:PATH [--pattern GLOB]

  --pattern GLOB   only names matching it (default: *)

outputs: count, newest
EOF2
}

dest=""
pattern="*"
parse_args --dest=dest --pattern=pattern -- "$@"
[ -n "$dest" ] || usage_error "--dest is required"
dest=${dest%/}

if is_remote "$dest"; then
  need_rclone destination "$dest"
  rows=$(rclone -q lsf --files-only --format 'pst' --separator '|' --include "$pattern" "$dest") \
    || die "cannot list $dest with rclone"
else
  need_folder folder "$dest"
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
