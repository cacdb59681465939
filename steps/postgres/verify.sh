#!/usr/bin/env bash
# Verify a database against a backup's metadata (the .meta file postgres/backup writes): for
# each chosen table, the live row count and the sha256 of its rows (COPY text, sorted
# bytewise: the same recipe backup.sh applies to the dump) must equal the recorded ones.
#
#   --mode exact     counts and checksums must match: the database holds exactly the backup
#                    (use right after a restore)
#   --mode at-least  each table has at least the recorded number of rows: nothing older than
#                    the backup is missing (use on a replica or failover target that kept
#                    taking writes after the backup)
#
# Connection: libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGSERVICE).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF'
usage: verify.sh --meta FILE --database NAME [--tables "schema.table ..."]
                 [--mode exact|at-least] [--service NAME]

  --meta FILE      the backup's metadata (<backup>.meta); a path to the backup itself also works
  --database NAME  database to check
  --tables LIST    tables to check (default: every table recorded in the metadata)
  --mode           exact (default) or at-least; see the top of this script
  --skip REASON    do nothing, saying why (a runbook whose point-in-time path ran instead)

outputs: tables_ok, tables_failed, rows (total rows seen in the checked tables)
EOF
}

meta=""
database=""
tables=""
mode="exact"
service=""
skip=""
parse_args --skip=skip --meta=meta --database=database --tables=tables --mode=mode --service=service -- "$@"
if [ -n "$skip" ]; then
  echo "skipped: $skip"
  exit 0
fi

[ -n "$meta" ] || usage_error "--meta is required"
[ -n "$database" ] || usage_error "--database is required"
case "$mode" in exact|at-least) ;; *) usage_error "--mode takes exact or at-least (got '$mode')" ;; esac
pg_service "$service"
pg_need psql
[[ $meta == *.meta ]] || meta="$meta.meta"
[ -s "$meta" ] || die "no metadata file $meta (was the backup made by postgres/backup?)"

meta_get() { sed -n "s/^$(printf '%s' "$1" | sed 's/[.[\*^$]/\\&/g')=//p" "$meta" | head -n1; }

[ -n "$tables" ] || tables=$(meta_get tables)
[ -n "$tables" ] || die "$meta records no tables: nothing to verify (back up with --tables)"

# COPY text depends on these settings; pin them to what pg_dump uses, and read in the
# server's own encoding as pg_dump does.
export PGTZ=UTC
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex"
q() { psql -w -X -q -tA --dbname="$database" "$@"; }
server_encoding=$(q -c 'SHOW server_encoding') \
  || die "cannot connect to database '$database'; check PGHOST/PGPORT/PGUSER/PGPASSWORD"
export PGCLIENTENCODING="$server_encoding"

# The COPY target comes from pg_dump's own output: schema.table (columns), each name bare
# (lower case) or double-quoted as pg_dump writes it. Nothing else gets into the COPY below:
# the .meta is read from backup storage, which an attacker may have written to.
ident='([a-z_][a-z0-9_$]*|"([^"]|"")+")'
copy_re="^${ident}[.]${ident} [(]${ident}(, ${ident})*[)]\$"
ok=0
failed=0
total_rows=0
tmp_rows=""
trap 'rm -f -- "$tmp_rows"' EXIT
echo "verifying $database against $meta (mode $mode)"
for t in ${tables//,/ }; do
  [[ $t == *.* ]] || t="public.$t"
  copy_target=$(meta_get "table.$t.copy")
  want_rows=$(meta_get "table.$t.rows")
  want_sha=$(meta_get "table.$t.sha256")
  if [ -z "$copy_target" ] || [ -z "$want_rows" ] || [ -z "$want_sha" ]; then
    echo "  $t: FAILED: not recorded in $meta" >&2
    failed=$((failed + 1)); continue
  fi
  [[ $copy_target =~ $copy_re ]] \
    || die "$meta: unexpected COPY target for $t: $copy_target"
  tmp_rows=$(mktemp)
  if [ "$mode" = exact ]; then
    got_sha=$(q -c "COPY $copy_target TO STDOUT" \
      | awk -v cnt="$tmp_rows" '{ print; n++ } END { print n + 0 > cnt; close(cnt) }' \
      | LC_ALL=C sort | sha256sum | cut -d' ' -f1) \
      || { rm -f "$tmp_rows"; echo "  $t: FAILED: cannot read the table" >&2; failed=$((failed + 1)); continue; }
    got_rows=$(cat "$tmp_rows")
  else
    got_sha="-"
    got_rows=$(q -c "SELECT count(*) FROM ${copy_target%% (*}") \
      || { rm -f "$tmp_rows"; echo "  $t: FAILED: cannot count its rows" >&2; failed=$((failed + 1)); continue; }
  fi
  rm -f "$tmp_rows"
  total_rows=$((total_rows + got_rows))
  if [ "$mode" = exact ]; then
    if [ "$got_rows" = "$want_rows" ] && [ "$got_sha" = "$want_sha" ]; then
      echo "  $t: ok ($got_rows rows, content matches)"
      ok=$((ok + 1))
    elif [ "$got_rows" != "$want_rows" ]; then
      echo "  $t: FAILED: $got_rows rows, the backup has $want_rows" >&2
      failed=$((failed + 1))
    else
      echo "  $t: FAILED: $got_rows rows as in the backup, but their content differs (sha256 $got_sha, expected $want_sha)" >&2
      failed=$((failed + 1))
    fi
  else
    if [ "$got_rows" -ge "$want_rows" ]; then
      echo "  $t: ok ($got_rows rows, backup had $want_rows)"
      ok=$((ok + 1))
    else
      echo "  $t: FAILED: $got_rows rows, fewer than the $want_rows in the backup" >&2
      failed=$((failed + 1))
    fi
  fi
done

out tables_ok "$ok"
out tables_failed "$failed"
out rows "$total_rows"
[ "$failed" -eq 0 ] || die "$failed of $((ok + failed)) table(s) do not match $meta"
echo "verified: $ok table(s) match"
