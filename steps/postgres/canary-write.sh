#!/usr/bin/env bash
# After a promotion: write through the clients' own connection path (the libpq service
# the application uses) and read the write back. An HTTP health check can pass while the
# database behind it is still read-only, or while the clients' path still leads to the old,
# fenced server; a committed row read back over a new connection cannot.
#
# Creates the canary table when it is missing (id, at, run_id: one row per run, in the
# application's database, so that it travels with backups and replicas), inserts a row naming
# the run ($RUNBOOK_RUN_ID), reads it back on a second connection, and checks that server is
# not in recovery and takes read-write transactions by default.
#
# Connection: --service, the libpq service the clients use. An application configured with a
# URL gets a service naming the same host, port and database (the password in ~/.pgpass or
# PGPASSWORD): libpq takes a URL only as an argument, and a password in one would then be on
# a command line.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: canary-write.sh [--service NAME] [--table NAME]

  --service NAME   the clients' libpq service (default: the PG* variables)
  --table NAME     the canary table (default runbook_canary), schema-qualified or not

outputs: canary_id, server (address:port that took the write), at
EOF2
}

service=""
table="runbook_canary"
parse_args --service=service --table=table -- "$@"
[[ $table =~ ^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$ ]] \
  || usage_error "--table must be a lowercase SQL name, optionally schema.name (got '$table')"
pg_need psql
pg_service "$service"
target=$(pg_target)
run_id=${RUNBOOK_RUN_ID:-manual-$(date -u +%Y%m%dT%H%M%SZ)}

psql_() { psql -w -X -q -tA -F ' ' -v ON_ERROR_STOP=1 "$@"; }

read -r id at server < <(psql_ -v run_id="$run_id" -v step="${RUNBOOK_STEP:-}" <<SQL
CREATE TABLE IF NOT EXISTS $table (
  id     bigserial PRIMARY KEY,
  at     timestamptz NOT NULL DEFAULT now(),
  run_id text NOT NULL,
  step   text
);
INSERT INTO $table (run_id, step) VALUES (:'run_id', :'step')
RETURNING id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
          coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port');
SQL
) || die "the canary write through $target failed: the clients cannot write either; check that the promotion finished and that $target leads to the new primary"
[ -n "${id:-}" ] || die "the canary write through $target returned no row"

read -r found recovery ro < <(psql_ -v id="$id" <<SQL
SELECT (SELECT run_id FROM $table WHERE id = :'id'), pg_is_in_recovery(), current_setting('default_transaction_read_only');
SQL
) || die "cannot read the canary row back through $target"
[ "$found" = "$run_id" ] || die "the canary row $id read back through $target holds '${found:-nothing}', not run $run_id: the clients' path leads to more than one server"
[ "$recovery" = f ] || die "$target answers from a server in recovery: the clients' path does not lead to the new primary"
[ "$ro" = off ] || die "$target defaults to read-only transactions (default_transaction_read_only = $ro): clients would fail to write; turn it off on the new primary"

echo "canary row $id (run $run_id) written and read back through $target, on $server at $at"
out canary_id "$id"
out server "$server"
out at "$at"
