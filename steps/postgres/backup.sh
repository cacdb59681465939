#!/usr/bin/env bash
# Back up one PostgreSQL database as a custom-format dump (pg_dump -Fc, compressed, restorable
# table by table), with two sidecars:
#   <name>.dump.meta    key=value metadata: time, size, sha256, and per-table row counts and
#                       content checksums for the chosen tables (what postgres/verify compares)
#   <name>.dump.sha256  `sha256sum -c` format; written last, so its presence marks a complete
#                       backup (latest-backup and storage/download ignore files without it)
#
# Row counts and checksums are read back from the dump itself, not from the live database, so
# they describe exactly the snapshot pg_dump took even while the application keeps writing.
#
# Connection: libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGSERVICE).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF'
usage: backup.sh --out-dir DIR [--database NAME] [--prefix NAME] [--tables "schema.table ..."]
                 [--service NAME]

  --out-dir DIR    where the dump and its sidecars are written (created if missing)
  --database NAME  database to dump (default: $PGDATABASE, else omni)
  --prefix NAME    file name prefix (default: the database name); files are
                   <prefix>-YYYYMMDDTHHMMSSZ.dump (UTC)
  --tables LIST    tables (comma or space separated, schema defaults to public) whose row
                   count and content checksum go into the metadata for postgres/verify
  --service NAME   libpq service from pg_service.conf (default: $PGSERVICE or the PG* variables)

outputs: file, name, sha256, size, meta, created_at, created_epoch
EOF
}

database=${PGDATABASE:-omni}
out_dir=""
prefix=""
tables=""
service=""
parse_args --out-dir=out_dir --database=database --prefix=prefix --tables=tables \
  --service=service -- "$@"

[ -n "$out_dir" ] || usage_error "--out-dir is required"
[ -n "$database" ] || usage_error "--database is empty"
[ -n "$prefix" ] || prefix=$database
check_prefix "$prefix"
pg_service "$service"
pg_need pg_dump pg_restore sha256sum

# Output that the checksums depend on must not depend on the caller's settings.
export PGTZ=UTC

mkdir -p "$out_dir" || die "cannot create $out_dir"
out_dir=$(cd "$out_dir" && pwd)

started_epoch=$(date -u +%s)
stamp=$(date -u -d "@$started_epoch" +%Y%m%dT%H%M%SZ)
created_at=$(date -u -d "@$started_epoch" +%Y-%m-%dT%H:%M:%SZ)
name="$prefix-$stamp.dump"
final="$out_dir/$name"
[ ! -e "$final" ] || die "$final already exists (two backups within one second?)"

tmp_dump="$out_dir/.$name.partial"
tmp_meta="$out_dir/.$name.meta.partial"
tmp_sum="$out_dir/.$name.sha256.partial"
cleanup() { rm -f "$tmp_dump" "$tmp_meta" "$tmp_sum" "$tmp_meta.rows" "$tmp_meta.copy"; }
trap cleanup EXIT

echo "dumping database $database to $final"
# -w: never prompt for a password (a prompt would hang an unattended step).
pg_dump -w --format=custom --dbname="$database" --file="$tmp_dump" \
  || die "pg_dump of database '$database' failed (see its message above)"
pg_restore --list "$tmp_dump" >/dev/null \
  || die "the dump just written cannot be read back by pg_restore: $tmp_dump"

size=$(stat -c %s "$tmp_dump")
sha=$(sha256sum "$tmp_dump" | cut -d' ' -f1)
server_version=$(pg_restore --list "$tmp_dump" | sed -n 's/^;[[:space:]]*Dumped from database version: //p' | head -n1)

{
  echo "format=runbook-backup/1"
  echo "kind=postgres"
  echo "database=$database"
  echo "file=$name"
  echo "created_at=$created_at"
  echo "created_epoch=$started_epoch"
  echo "size=$size"
  echo "sha256=$sha"
  echo "server_version=$server_version"
} > "$tmp_meta"

# Per-table facts, read from the dump's COPY data: the row count and the sha256 of the rows
# sorted bytewise, so that verify can recompute the same figure from a live table with COPY.
table_list=()
for t in ${tables//,/ }; do
  [[ $t == *.* ]] || t="public.$t"
  [[ $t =~ ^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$ ]] \
    || die "table '$t': only plain schema.table names are supported"
  table_list+=("$t")
done
if [ "${#table_list[@]}" -gt 0 ]; then
  echo "tables=${table_list[*]}" >> "$tmp_meta"
fi
for t in "${table_list[@]}"; do
  schema=${t%%.*}
  table=${t#*.}
  facts=$(
    pg_restore --data-only --schema="$schema" --table="$table" --file=- "$tmp_dump" \
      | awk -v hdr="$tmp_meta.copy" -v cnt="$tmp_meta.rows" '
          !in_copy && /^COPY / { sub(/^COPY /, ""); sub(/ FROM stdin;$/, ""); print > hdr; close(hdr); in_copy = 1; found = 1; next }
          in_copy && $0 == "\\." { in_copy = 0; next }
          in_copy { print; n++ }
          END { if (!found) exit 3; print n + 0 > cnt; close(cnt) }' \
      | LC_ALL=C sort | sha256sum | cut -d' ' -f1
  ) || die "table $t has no data in the dump (does it exist in database '$database'?)"
  rows=$(tr -d ' ' < "$tmp_meta.rows")
  copy_target=$(cat "$tmp_meta.copy")
  rm -f "$tmp_meta.rows" "$tmp_meta.copy"
  {
    echo "table.$t.copy=$copy_target"
    echo "table.$t.rows=$rows"
    echo "table.$t.sha256=$facts"
  } >> "$tmp_meta"
  echo "  $t: $rows rows, content sha256 $facts"
done

# Publish: the dump, then its metadata, then its checksum (the "complete" marker).
mv -f "$tmp_dump" "$final"
mv -f "$tmp_meta" "$final.meta"
printf '%s  %s\n' "$sha" "$name" > "$tmp_sum"
mv -f "$tmp_sum" "$final.sha256"
trap - EXIT

echo "backup complete: $final ($size bytes, sha256 $sha)"
out file "$final"
out name "$name"
out sha256 "$sha"
out size "$size"
out meta "$final.meta"
out created_at "$created_at"
out created_epoch "$started_epoch"
