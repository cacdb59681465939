#!/usr/bin/env bash
# Upload a backup and its sidecars to a destination: a local folder, or an rclone remote
# (`remote:path`) when the destination contains a colon.
#
# Order: the file, its .meta, then its .sha256 last, so that a reader never takes a
# half-uploaded backup for a complete one. Every upload is checked before the next step
# (local: sha256 of the copy; rclone: `rclone check`, size and hash where the backend has
# one). --delete-source true removes the local files only after all of them checked out:
# the old backup scripts deleted the local copy whether or not the upload had worked.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/storage.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/storage.sh"

usage() {
  cat <<'EOF2'
usage: upload.sh --file PATH --dest DIR|REMOTE:PATH [--sidecars true|false]
                 [--delete-source true|false]

  --file PATH        the file to upload
  --dest             local folder (created if missing) or rclone remote:path
  --sidecars         also upload PATH.meta and PATH.sha256 when present (default true)
  --delete-source    remove the local file(s) after a verified upload (default false)

outputs: url, name
EOF2
}

file=""
dest=""
sidecars=true
delete_source=false
parse_args --file=file --dest=dest --sidecars=sidecars:bool --delete-source=delete_source:bool \
  -- "$@"
[ -n "$file" ] || usage_error "--file is required"
[ -n "$dest" ] || usage_error "--dest is required"
[ -f "$file" ] || die "'$file' does not exist or is not a file"
dest=${dest%/}

name=$(basename -- "$file")
src_dir=$(cd "$(dirname -- "$file")" && pwd)
files=("$name")
if [ "$sidecars" = true ]; then
  [ ! -f "$src_dir/$name.meta" ] || files+=("$name.meta")
  [ ! -f "$src_dir/$name.sha256" ] || files+=("$name.sha256")
fi

# A sidecar that disagrees with its file must not be published.
if [ -f "$src_dir/$name.sha256" ]; then
  (cd "$src_dir" && sha256sum --quiet -c "$name.sha256") \
    || die "$file does not match its own $name.sha256; not uploading a damaged backup"
fi

if is_remote "$dest"; then
  need_rclone destination "$dest"
  list=$(mktemp)
  trap 'rm -f "$list"' EXIT
  for f in "${files[@]}"; do
    echo "uploading $f to $dest/"
    rclone -q copyto "$src_dir/$f" "$dest/$f" || die "rclone could not upload $f to $dest"
    printf '%s\n' "$f" > "$list"
    rclone -q check --one-way --files-from "$list" "$src_dir" "$dest" \
      || die "$dest/$f does not match the local file after upload"
  done
else
  mkdir -p "$dest" || die "cannot create $dest"
  for f in "${files[@]}"; do
    echo "copying $f to $dest/"
    cp -- "$src_dir/$f" "$dest/.$f.partial" || die "cannot copy $f to $dest"
    [ "$(sha256sum < "$src_dir/$f")" = "$(sha256sum < "$dest/.$f.partial")" ] \
      || { rm -f "$dest/.$f.partial"; die "the copy of $f in $dest differs from the original"; }
    mv -f -- "$dest/.$f.partial" "$dest/$f"
  done
fi
echo "uploaded and verified: ${files[*]} -> $dest"

if [ "$delete_source" = true ]; then
  for f in "${files[@]}"; do rm -f -- "$src_dir/$f"; done
  echo "removed the local copies from $src_dir"
fi
out url "$dest/$name"
out name "$name"
