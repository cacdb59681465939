#!/usr/bin/env bash
# Download a backup (a named one, or the newest one matching a pattern) with its sidecars from
# a local folder or an rclone remote (`remote:path`, any destination with a colon), and check
# it against its .sha256. With --pattern (the newest match), backups without a .sha256
# (incomplete uploads) or whose checksum fails are skipped with a warning and the next older
# one is tried.
# "Newest" is by name: backup names carry a UTC timestamp (prefix-YYYYMMDDTHHMMSSZ.ext).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: download.sh --source DIR|REMOTE:PATH (--name NAME | --pattern GLOB) --to DIR
                   [--verify true|false]

  --source       local folder or rclone remote:path
  --name NAME    the file to fetch
  --pattern GLOB fetch the newest complete file matching it instead, e.g. 'omni-redis-*.rdb'
                 (--latest is accepted for readability and changes nothing)
  --to DIR       where to put it (created if missing)
  --verify       require a matching .sha256 sidecar (default true)

outputs: file, name, sha256
EOF2
}

source_=""
name=""
latest=false
pattern=""
to=""
verify=true
parse_args --source=source_ --name=name --latest=latest:set --pattern=pattern --to=to \
  --verify=verify:bool -- "$@"
[ -n "$source_" ] || usage_error "--source is required"
[ -n "$to" ] || usage_error "--to is required"
if [ -n "$name" ] && [ -n "$pattern" ]; then
  usage_error "give --name or --pattern, not both"
elif [ -n "$pattern" ]; then
  latest=true
elif [ -n "$name" ]; then
  $latest && usage_error "--latest needs --pattern, not --name"
  [[ $name != */* ]] || usage_error "--name is a file name in the source, not a path"
else
  usage_error "give --name NAME, or --pattern GLOB for the newest matching file"
fi
source_=${source_%/}
remote=false
is_remote "$source_" && remote=true
if $remote; then
  need_rclone source "$source_"
else
  need_folder "source folder" "$source_"
fi
mkdir -p "$to" || die "cannot create $to"
to=$(cd "$to" && pwd)

exists() { # is there a file of this name in the source?
  if $remote; then [ -n "$(rclone -q lsf --files-only --include "/$1" "$source_" 2>/dev/null)" ]
  else [ -f "$source_/$1" ]; fi
}
get() { # fetch one file into $to, atomically
  if $remote; then rclone -q copyto "$source_/$1" "$to/.$1.partial" || return 1
  else cp -- "$source_/$1" "$to/.$1.partial" || return 1; fi
  mv -f -- "$to/.$1.partial" "$to/$1"
}
fetch_checked() { # name -> 0 when fetched (and verified, when asked)
  local n=$1
  if [ "$verify" = true ] && ! exists "$n.sha256"; then
    warn "$n has no $n.sha256 in $source_ (incomplete upload?)"; return 1
  fi
  echo "fetching $source_/$n"
  get "$n" || { warn "cannot fetch $n from $source_"; return 1; }
  exists "$n.sha256" && { get "$n.sha256" || return 1; }
  exists "$n.meta" && { get "$n.meta" || return 1; }
  if [ "$verify" = true ]; then
    (cd "$to" && sha256sum --quiet -c "$n.sha256") || { warn "$n fails its checksum"; return 1; }
    echo "checksum ok"
  fi
  return 0
}

if $latest; then
  if $remote; then
    listing=$(rclone -q lsf --files-only --include "$pattern" "$source_") || die "cannot list $source_"
  else
    listing=$(find "$source_" -maxdepth 1 -type f -name "$pattern" -printf '%f\n')
  fi
  candidates=$(printf '%s\n' "$listing" | grep -v -E '\.(sha256|meta)$' | grep -v '^\.' | LC_ALL=C sort -r || true)
  [ -n "$candidates" ] || die "nothing matching '$pattern' in $source_"
  name=""
  while IFS= read -r n; do
    [ -n "$n" ] || continue
    if fetch_checked "$n"; then name=$n; break; fi
    rm -f -- "$to/$n" "$to/$n.sha256" "$to/$n.meta"
  done <<< "$candidates"
  [ -n "$name" ] || die "no complete, intact file matching '$pattern' in $source_"
else
  exists "$name" || die "$name is not in $source_"
  fetch_checked "$name" || die "could not fetch an intact $name from $source_"
fi

sha=$(sha256sum "$to/$name" | cut -d' ' -f1)
echo "downloaded $to/$name"
out file "$to/$name"
out name "$name"
out sha256 "$sha"
