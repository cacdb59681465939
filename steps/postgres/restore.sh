#!/usr/bin/env bash
# Restore a PostgreSQL backup into a named database, creating the database if it is missing.
#
# A custom-format dump (postgres/backup) is restored with pg_restore --clean --if-exists in a
# single transaction: either the whole backup replaces the objects it contains, or nothing
# changes. Objects created after the backup and absent from it are left alone; pass
# --recreate true to drop and recreate the database for an exact copy, or --keep-old true to
# set the current database aside (renamed <name>_before_restore_<UTC time>, with its owner,
# encoding and locale given to the new one) and restore into a fresh one: the damaged data
# stays for the investigation and for replaying what the backup lacks.
#
# A plain SQL file (`.sql`, or `.sql.gz` as the old backup-database.sh wrote them) is also
# accepted, into a new or recreated database only: plain SQL cannot clean what already exists.
# Unlike the old restore-database.sh, the file is decompressed on the fly, never renamed.
#
# The file's .sha256 sidecar must be present and match unless --allow-unverified true.
# Connection: libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGSERVICE);
# the maintenance connection (existence check, CREATE/DROP DATABASE) goes to database postgres.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF'
usage: restore.sh --file PATH --database NAME [--jobs N] [--recreate true|false]
                  [--keep-old true|false]
                  [--terminate-connections true|false] [--no-owner true|false]
                  [--allow-unverified true|false] [--service NAME]

  --file PATH        backup to restore: custom-format dump, .sql or .sql.gz
  --database NAME    database to restore into; created if missing
  --jobs N           parallel pg_restore jobs (default 1; 1 restores in one transaction,
                     more is faster but a failure leaves a partial restore)
  --recreate         drop and recreate the database first (default false)
  --keep-old         rename the current database aside and restore into a new one
                     (default false; --recreate wins)
  --terminate-connections  end other sessions on the database first, so that --clean does
                     not wait on their locks (default false)
  --no-owner         do not restore object ownership (default false)
  --allow-unverified restore even without a .sha256 sidecar (default false)
  --service NAME     libpq service from pg_service.conf
  --skip REASON      do nothing, saying why (a runbook whose point-in-time path ran instead)

outputs: database, restored_from, format, seconds, kept_as (with --keep-old);
         on a failure, rolled_back=true when the set-aside database was put back as it was
EOF
}

file=""
database=""
jobs=1
recreate=false
keep_old=false
terminate=false
no_owner=false
allow_unverified=false
service=""
skip=""
parse_args --skip=skip --file=file --database=database --jobs=jobs --recreate=recreate:bool --keep-old=keep_old:bool \
  --terminate-connections=terminate:bool --no-owner=no_owner:bool \
  --allow-unverified=allow_unverified:bool --service=service -- "$@"
if [ -n "$skip" ]; then
  echo "skipped: $skip"
  exit 0
fi

[ -n "$file" ] || usage_error "--file is required"
[ -n "$database" ] || usage_error "--database is required"
# A name that libpq could take for a connection string, or that needs quoting, is refused
# rather than risked: restore targets are plain names.
[[ $database =~ ^[A-Za-z_][A-Za-z0-9_-]*$ ]] || usage_error "--database must be a plain name (letters, digits, _ and -), got '$database'"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage_error "--jobs must be a positive number (got '$jobs')"
pg_service "$service"
pg_need psql pg_restore sha256sum
[ -f "$file" ] || die "backup file '$file' does not exist"
[ -r "$file" ] || die "backup file '$file' is not readable"

check_sidecar "$file" "$allow_unverified" \
  || echo "warning: no $file.sha256; restoring unverified (--allow-unverified true)" >&2

magic=$(head -c 5 "$file" | od -An -c | tr -d ' \n')
if [ "$magic" = "PGDMP" ]; then
  format=custom
elif [ "$(head -c 2 "$file" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; then
  format=sql.gz
else
  format=sql
fi

# SQL on stdin, with the database name as the psql variable :db (quoted by psql, not by us).
maint() { psql -w -X -q -v ON_ERROR_STOP=1 -v db="$database" "$@" --dbname=postgres -tA; }

exists=$(maint <<'SQL'
SELECT count(*) FROM pg_database WHERE datname = :'db';
SQL
) || die "cannot connect to the server (maintenance database postgres); check PGHOST/PGPORT/PGUSER/PGPASSWORD"

terminate_sessions() {
  maint <<'SQL' >/dev/null
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = :'db' AND pid <> pg_backend_pid();
SQL
}

created=false
kept=""
# After a failure once the current database is set aside: the new one (empty, or partly
# restored with --jobs > 1) is dropped and the old one renamed back.
put_back() {
  local rc=$?
  [ "$rc" -ne 0 ] || return 0
  trap - EXIT
  if ! $created || maint <<'SQL' >/dev/null; then
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
SQL
    if maint -v old="$kept" <<'SQL' >/dev/null; then
ALTER DATABASE :"old" RENAME TO :"db";
SQL
      echo "rolled back: $kept renamed back to $database, as it was before the restore" >&2
      # What a runbook reads before resuming writes: only this failure left it as it was.
      out rolled_back true
      exit "$rc"
    fi
  fi
  warn "could not put $kept back as $database: rename it by hand (ALTER DATABASE \"$kept\" RENAME TO \"$database\")"
  exit "$rc"
}
create_opts=""
if [ "$exists" = 1 ] && [ "$keep_old" = true ] && [ "$recreate" = false ]; then
  kept="${database:0:40}_before_restore_$(date -u +%Y%m%d_%H%M%S)"
  # The new database is made like the old one: same owner, encoding and locale.
  IFS='|' read -r owner encoding collate ctype < <(maint <<'SQL'
SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype
  FROM pg_database WHERE datname = :'db';
SQL
  ) || die "cannot read how database $database was made"
  create_opts=ok
  echo "setting the current $database aside as $kept (--keep-old true)"
  # No new sessions while it is renamed; those there are ended, and may take a moment to go.
  renamed=false
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    if maint -v old="$kept" <<'SQL' >/dev/null 2>&1
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = :'db' AND pid <> pg_backend_pid();
SELECT pg_sleep(0.2);
ALTER DATABASE :"db" RENAME TO :"old";
SQL
    then renamed=true; break; fi
    sleep 0.5
  done
  if ! $renamed; then
    maint <<'SQL' >/dev/null 2>&1 || true
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true;
SQL
    die "cannot set $database aside as $kept: sessions keep reconnecting (stop the application's writes first)"
  fi
  maint -v old="$kept" <<'SQL' >/dev/null || warn "$kept does not accept connections: ALTER DATABASE \"$kept\" WITH ALLOW_CONNECTIONS true"
ALTER DATABASE :"old" WITH ALLOW_CONNECTIONS true;
SQL
  # From here a failure (or a timeout's SIGTERM) puts the set-aside database back, so that a
  # failed restore leaves $database as it was: a rollback, which a runbook may rely on
  # (restore-database resumes writes after one).
  trap 'exit 143' TERM INT
  trap put_back EXIT
  exists=0
fi
if [ "$exists" = 1 ] && [ "$recreate" = true ]; then
  echo "dropping database $database (--recreate true)"
  maint <<'SQL' || die "cannot drop database $database"
DROP DATABASE :"db" WITH (FORCE);
SQL
  exists=0
fi
if [ "$exists" = 0 ] && [ -n "$create_opts" ]; then
  echo "creating database $database (owner $owner, encoding $encoding, locale $collate)"
  maint -v owner="$owner" -v enc="$encoding" -v coll="$collate" -v ctype="$ctype" <<'SQL' \
    || die "cannot create database $database (the old one is kept as $kept)"
CREATE DATABASE :"db" OWNER :"owner" TEMPLATE template0 ENCODING :'enc' LC_COLLATE :'coll' LC_CTYPE :'ctype';
SQL
  created=true
elif [ "$exists" = 0 ]; then
  echo "creating database $database"
  maint <<'SQL' || die "cannot create database $database"
CREATE DATABASE :"db";
SQL
  created=true
elif [ "$terminate" = true ]; then
  echo "terminating other sessions on $database"
  terminate_sessions || die "cannot terminate sessions on $database"
fi

started=$(date +%s)
case "$format" in
  custom)
    args=(-w --dbname="$database" --clean --if-exists --exit-on-error)
    if [ "$jobs" -gt 1 ]; then args+=(--jobs="$jobs"); else args+=(--single-transaction); fi
    [ "$no_owner" = false ] || args+=(--no-owner --no-privileges)
    echo "restoring $file into $database (pg_restore ${args[*]:1})"
    pg_restore "${args[@]}" "$file" || die "pg_restore into $database failed; $( [ "$jobs" -gt 1 ] && echo 'the database may be partially restored' || echo 'the transaction was rolled back, nothing changed' )"
    ;;
  sql|sql.gz)
    $created || die "$file is plain SQL, which cannot replace existing objects: restore into a new database, or pass --recreate true"
    echo "restoring plain SQL $file into $database"
    if [ "$format" = sql.gz ]; then
      gzip -dc -- "$file" | psql -w -X -q -v ON_ERROR_STOP=1 --single-transaction --dbname="$database" >/dev/null \
        || die "restoring $file into $database failed; the transaction was rolled back"
    else
      psql -w -X -q -v ON_ERROR_STOP=1 --single-transaction --dbname="$database" -f "$file" >/dev/null \
        || die "restoring $file into $database failed; the transaction was rolled back"
    fi
    ;;
esac

# pg_restore does not restore planner statistics; without them the first queries after a
# restore can be slow enough to look like a second outage.
psql -w -X -q --dbname="$database" -c 'ANALYZE' \
  || echo "warning: ANALYZE failed; run it by hand" >&2

trap - EXIT
seconds=$(( $(date +%s) - started ))
echo "restored $file into $database in ${seconds}s"
out database "$database"
out restored_from "$file"
out format "$format"
out seconds "$seconds"
if [ -n "$kept" ]; then
  echo "the database as it was before the restore is kept as $kept: drop it once it is no longer needed"
  out kept_as "$kept"
fi
