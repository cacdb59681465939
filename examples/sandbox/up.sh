#!/usr/bin/env bash
# A throwaway local sandbox for the runbooks, under .sandbox/ at the repository root:
#   - PostgreSQL primary and a streaming replica (127.0.0.1 only, free ports, password auth),
#     database `omni` seeded with `orders` (10,000 rows) and `customers` (1,000 rows);
#     both archive their WAL (archive_mode on: the primary now, the replica once promoted) to
#     one archive, .sandbox/backups/wal, as a production site archives to its backup storage;
#   - libpq services in .sandbox/pg_service.conf: `omni-primary` and `omni-replica` name the
#     two servers, `omni` is the application's own connection path (it names the primary; a
#     failover re-points it, as a site re-points the DNS name or pooler its clients use);
#   - Redis (127.0.0.1, a free port, password, data in .sandbox/redis) with some keys;
#   - a static HTTP health endpoint (python3 http.server) at /healthz;
#   - helpers in .sandbox/bin: redis-stop, redis-start, dns-update, dns-lookup, dns-ttl, and
#     pg-ctl (start, stop, status of the primary or the replica, as the server's own user),
#     pg-rebuild (one server remade as a standby of the other, after a failover).
#     The DNS stand-in keeps each record's TTL beside it (300 s until changed).
# Each part starts only when its binaries are installed; what is missing is reported.
#
#   eval "$(examples/sandbox/up.sh)"      # start (or reuse) and set the environment
#   examples/sandbox/down.sh              # stop everything and remove .sandbox/
#
# Idempotent: run it again and it reuses what runs, restarts what stopped, and prints the same
# exports. Everything it says goes to stderr; stdout carries only `export` lines.
# PostgreSQL refuses to run as root: as root, its binaries run as the `postgres` user (or a
# dedicated `runbook-sandbox` user, created if needed) through runuser.
set -euo pipefail

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() { printf 'sandbox: error: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname -- "$0")/../.." && pwd)
sb="$root/.sandbox"
mkdir -p "$sb" "$sb/bin" "$sb/backups" "$sb/work" "$sb/app" "$sb/dns"
chmod 755 "$sb"
state="$sb/state.env"
# shellcheck source=/dev/null
[ -f "$state" ] && . "$state"

port_in_use() {
  if command -v ss >/dev/null; then [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; fi
}
taken_ports=" "
pick_port() { # $1: the port used before, kept when still free
  local p=${1:-}
  if [ -n "$p" ] && ! port_in_use "$p" && [[ $taken_ports != *" $p "* ]]; then
    taken_ports+="$p "; echo "$p"; return 0
  fi
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! port_in_use "$p" && [[ $taken_ports != *" $p "* ]]; then
      taken_ports+="$p "; echo "$p"; return 0
    fi
  done
  die "no free port found"
}
random_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
# A process from a pid file, alive and running the expected program.
alive() { # $1 pid file, $2 program name
  local pid
  [ -s "$1" ] || return 1
  pid=$(head -n1 "$1")
  [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$2"
}

PG_PASSWORD=${PG_PASSWORD:-$(random_secret)}
REDIS_PASSWORD=${REDIS_PASSWORD:-$(random_secret)}
have_pg=false have_redis=false have_http=false

# ---------------------------------------------------------------- PostgreSQL
pg_bindir=${PG_BINDIR:-}
if [ -z "$pg_bindir" ]; then
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { pg_bindir=$d; break; }
  done
fi
if [ -z "$pg_bindir" ] && command -v initdb >/dev/null; then pg_bindir=$(dirname "$(command -v initdb)"); fi

if [ -n "$pg_bindir" ]; then
  have_pg=true
  if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then pg_user=postgres
    else
      pg_user=runbook-sandbox
      id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user" \
        || die "cannot create user $pg_user to run PostgreSQL (it refuses to run as root)"
    fi
    as_pg() { runuser -u "$pg_user" -- env PGPASSFILE="$pg/pgpass" "$@"; }
  else
    pg_user=$(id -un)
    as_pg() { env PGPASSFILE="$pg/pgpass" "$@"; }
  fi
  # PostgreSQL's files: .sandbox/pg; or, when the repository sits where that user cannot
  # reach (a clone under /root, as CI makes), a folder in /tmp that .sandbox/pg links to.
  pg="$sb/pg"
  [ -L "$pg" ] && pg=$(readlink -f -- "$pg")
  pg_dir_ready() { mkdir -p "$pg/run" && { chown -R "$pg_user" "$pg" 2>/dev/null || true; } && chmod 700 "$pg"; }
  pg_dir_ready
  if ! as_pg test -w "$pg" && [ ! -L "$sb/pg" ] && [ ! -e "$sb/pg/primary/PG_VERSION" ]; then
    rm -rf -- "$sb/pg"
    pg=$(mktemp -d /tmp/runbook-sandbox-pg.XXXXXX)
    ln -s -- "$pg" "$sb/pg"
    log "user $pg_user cannot reach $sb: PostgreSQL's files go to $pg (linked from $sb/pg)"
    pg_dir_ready
  fi
  as_pg test -w "$pg" || die "user $pg_user cannot write to $pg: a parent folder is closed to it (move the repository, or open the path with chmod o+x)"

  primary="$pg/primary"
  replica="$pg/replica"
  PG_PORT=$(pick_port "${PG_PORT:-}")
  PG_REPLICA_PORT=$(pick_port "${PG_REPLICA_PORT:-}")
  printf '127.0.0.1:*:*:postgres:%s\n' "$PG_PASSWORD" > "$pg/pgpass"
  chown "$pg_user" "$pg/pgpass" 2>/dev/null || true
  chmod 600 "$pg/pgpass"

  # The WAL archive: one folder both servers archive to, written by the server's own user
  # (hence beside the data, which that user can reach), seen from the project as
  # .sandbox/backups/wal. A segment already archived is never overwritten; one archived again
  # with the same bytes is a success (PostgreSQL manual, "Setting Up WAL Archiving": a promoted
  # standby may re-archive a segment its old primary archived, and must not fail on it).
  archive="$pg/archive"
  as_pg mkdir -p "$archive"
  ln -sfn -- "$archive" "$sb/backups/wal"
  write_conf() { # $1 data dir, $2 port: per-start settings, included from postgresql.conf
    as_pg sh -c 'cat > "$1/sandbox.conf"' sh "$1" <<EOF
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '$pg/run'
fsync = off
wal_level = replica
archive_mode = on
archive_command = '{ test ! -f $archive/%f && cp %p $archive/%f.part && mv $archive/%f.part $archive/%f; } || cmp -s %p $archive/%f'
EOF
  }
  pg_running() { as_pg "$pg_bindir/pg_ctl" -D "$1" status >/dev/null 2>&1; }
  pg_start() { # $1 data dir, $2 log
    as_pg "$pg_bindir/pg_ctl" -D "$1" -l "$2" -w -t 60 start </dev/null >/dev/null 2>&1 \
      || die "PostgreSQL did not start from $1; see $2"
  }

  if [ ! -s "$primary/PG_VERSION" ]; then
    # A first start only. A primary folder without a cluster beside a replica, or beside data
    # moved aside (a point-in-time recovery or a pg-rebuild interrupted after its move), is
    # not one: starting over would delete the replica, after a failover the only primary.
    moved=$(find "$pg" -mindepth 1 -maxdepth 1 -type d \( -name 'primary.*' -o -name 'replica.*' \) | tr '\n' ' ')
    if [ -e "$replica" ] || [ -n "$moved" ] || [ -n "$(ls -A "$primary" 2>/dev/null)" ]; then
      die "$primary holds no cluster, but the sandbox has data (${moved:+moved aside: $moved}${moved:-$replica}): an interrupted recovery or rebuild? Nothing was removed: finish or undo it (e.g. stop the servers, rmdir or move $primary and mv the folder moved aside back to it), or run examples/sandbox/down.sh for a fresh sandbox"
    fi
    log "initialising PostgreSQL in $primary ($pg_bindir)"
    rm -rf "$primary" "$replica"
    # A new cluster numbers its WAL from 1 again: segments an earlier cluster left in the
    # archive would take the new ones' names, and archiving would fail on the first of them.
    if [ -n "$(ls -A "$archive" 2>/dev/null)" ]; then
      log "emptying the WAL archive $archive: it holds an earlier cluster's segments"
      find "$archive" -mindepth 1 -delete
    fi
    pwfile="$pg/pwfile"
    printf '%s\n' "$PG_PASSWORD" > "$pwfile"; chown "$pg_user" "$pwfile" 2>/dev/null || true; chmod 600 "$pwfile"
    as_pg "$pg_bindir/initdb" -D "$primary" -U postgres --pwfile="$pwfile" -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >"$pg/initdb.log" 2>&1 \
      || die "initdb failed; see $pg/initdb.log"
    rm -f "$pwfile"
    as_pg sh -c 'echo "include_if_exists = '"'"'sandbox.conf'"'"'" >> "$1/postgresql.conf"' sh "$primary"
  fi
  if pg_running "$primary"; then
    PG_PORT=$(sed -n "s/^port = //p" "$primary/sandbox.conf")
    log "PostgreSQL primary already running on 127.0.0.1:$PG_PORT"
  else
    write_conf "$primary" "$PG_PORT"
    pg_start "$primary" "$pg/primary.log"
    log "PostgreSQL primary on 127.0.0.1:$PG_PORT"
  fi

  export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGPASSWORD=$PG_PASSWORD
  psql_admin() { psql -w -X -q -v ON_ERROR_STOP=1 --dbname="$1" "${@:2}"; }
  if [ "$(psql_admin postgres -tAc "SELECT count(*) FROM pg_database WHERE datname = 'omni'")" = 0 ]; then
    log "seeding database omni: orders (10,000 rows), customers (1,000 rows)"
    psql_admin postgres -c 'CREATE DATABASE omni'
    psql_admin omni <<'SQL'
CREATE TABLE customers (
  id         integer PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL UNIQUE
);
INSERT INTO customers
SELECT i, 'Customer ' || i, 'customer' || i || '@example.test' FROM generate_series(1, 1000) AS i;
CREATE TABLE orders (
  id          bigint PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers (id),
  amount      numeric(10, 2) NOT NULL,
  status      text NOT NULL,
  note        text,
  created_at  timestamptz NOT NULL
);
INSERT INTO orders
SELECT i,
       1 + (i * 7919) % 1000,
       round(((i * 104729) % 100000) / 100.0, 2),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4],
       CASE WHEN i % 10 = 0 THEN 'gift, "wrapped"' || E'\t' || 'tab' END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '7 minutes'
  FROM generate_series(1, 10000) AS i;
ANALYZE;
SQL
  fi

  if [ ! -s "$replica/PG_VERSION" ]; then
    log "creating the streaming replica (pg_basebackup) in $replica"
    rm -rf "$replica"
    as_pg "$pg_bindir/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$replica" -R -X stream -c fast -w \
      >"$pg/basebackup.log" 2>&1 || die "pg_basebackup failed; see $pg/basebackup.log"
  fi
  if pg_running "$replica"; then
    PG_REPLICA_PORT=$(sed -n "s/^port = //p" "$replica/sandbox.conf")
    log "PostgreSQL replica already running on 127.0.0.1:$PG_REPLICA_PORT"
  else
    write_conf "$replica" "$PG_REPLICA_PORT"
    pg_start "$replica" "$pg/replica.log"
    log "PostgreSQL replica on 127.0.0.1:$PG_REPLICA_PORT"
  fi
  # Wait until the replica has replayed everything the primary has written so far.
  target_lsn=$(psql_admin postgres -tAc 'SELECT pg_current_wal_lsn()')
  for _ in $(seq 1 60); do
    caught=$(PGPORT=$PG_REPLICA_PORT psql_admin postgres -tAc \
      "SELECT pg_is_in_recovery() AND pg_last_wal_replay_lsn() >= '$target_lsn'::pg_lsn" 2>/dev/null || echo f)
    [ "$caught" = t ] && break
    [ "$(PGPORT=$PG_REPLICA_PORT psql_admin postgres -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && { log "note: the replica has been promoted (a region-failure run?); down.sh and up.sh give a fresh pair"; break; }
    sleep 0.5
  done

  # Written when missing or when it names a port neither server has (one restarted on a new
  # port): a failover's re-pointing of `omni` and `omni-primary` survives running up.sh again.
  service_ports_current() {
    local line
    while IFS= read -r line; do
      case $line in
        port=*) [ "${line#port=}" = "$PG_PORT" ] || [ "${line#port=}" = "$PG_REPLICA_PORT" ] || return 1 ;;
      esac
    done < "$sb/pg_service.conf"
  }
  if [ ! -s "$sb/pg_service.conf" ] || ! service_ports_current; then
  cat > "$sb/pg_service.conf" <<EOF
# libpq services for the sandbox (PGSERVICEFILE points here); passwords come from PGPASSWORD.
[omni-primary]
host=127.0.0.1
port=$PG_PORT
user=postgres
dbname=omni

[omni-replica]
host=127.0.0.1
port=$PG_REPLICA_PORT
user=postgres
dbname=omni

# The application's connection path: the primary, until a failover re-points it.
[omni]
host=127.0.0.1
port=$PG_PORT
user=postgres
dbname=omni
EOF
  fi
  # Quoted here-document: the script is written as is; the sandbox's paths come from the
  # variables set on its first lines.
  {
    echo '#!/usr/bin/env bash'
    echo '# pg-ctl primary|replica start|stop|status|datadir: a sandbox PostgreSQL server, run as the'
    echo '# user it runs as (what a site does with systemctl or its cloud API for its own servers).'
    printf 'pg=%q\npg_bindir=%q\npg_user=%q\n' "$pg" "$pg_bindir" "$pg_user"
    cat <<'PGCTL'
set -euo pipefail
cd /   # its paths are absolute, and the server's user may not enter the caller's folder
usage() { echo "usage: pg-ctl primary|replica start|stop|status|datadir" >&2; exit 2; }
case "${1:-}" in primary|replica) ;; *) usage ;; esac
data="$pg/$1"
as_owner() { if [ "$(id -u)" = 0 ] && [ "$pg_user" != root ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }
case "${2:-}" in
  start)   as_owner "$pg_bindir/pg_ctl" -D "$data" -l "$pg/$1.log" -w -t 60 start </dev/null >/dev/null ;;
  stop)    as_owner "$pg_bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop ;;
  status)  as_owner "$pg_bindir/pg_ctl" -D "$data" status ;;
  datadir) echo "$data" ;;
  *) usage ;;
esac
PGCTL
  } > "$sb/bin/pg-ctl"
  # pg-rebuild: after a failover, a standby again (the runbooks' standby_cmd in this sandbox).
  {
    echo '#!/usr/bin/env bash'
    echo '# pg-rebuild primary|replica --from primary|replica: remake one server as a streaming'
    echo '# standby of the other (pg_basebackup -R), on its own port; its old data is moved aside'
    echo '# ($pg/<name>.old.<time>), never deleted: it may hold WAL the new primary lacks.'
    printf 'pg=%q\npg_bindir=%q\npg_user=%q\n' "$pg" "$pg_bindir" "$pg_user"
    cat <<'PGREBUILD'
set -euo pipefail
cd /
usage() { echo "usage: pg-rebuild primary|replica --from primary|replica" >&2; exit 2; }
[ $# -eq 3 ] && [ "$2" = --from ] || usage
case "$1/$3" in primary/replica|replica/primary) ;; *) usage ;; esac
as_owner() { if [ "$(id -u)" = 0 ] && [ "$pg_user" != root ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }
data="$pg/$1"
from_port=$(sed -n 's/^port = //p' "$pg/$3/sandbox.conf")
# Only a primary may be copied: rebuilt from a standby (the direction reversed, or run before
# the promotion), this server, maybe the only one taking writes, becomes a standby of a standby.
from_recovery=$(as_owner env PGPASSFILE="$pg/pgpass" "$pg_bindir/psql" -w -X -q -tA -h 127.0.0.1 \
  -p "$from_port" -U postgres -d postgres -c 'SELECT pg_is_in_recovery()' 2>&1) || from_recovery="down: $from_recovery"
if [ "$from_recovery" != f ]; then
  echo "pg-rebuild: error: $3 is not a primary (pg_is_in_recovery: $from_recovery): nothing was changed; promote $3 first, or rebuild $3 from $1 instead (pg-rebuild $3 --from $1)" >&2
  exit 1
fi
if as_owner "$pg_bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_owner "$pg_bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
fi
aside="$data.old.$(date +%Y%m%dT%H%M%S)"
mv -- "$data" "$aside"
as_owner env PGPASSFILE="$pg/pgpass" "$pg_bindir/pg_basebackup" -h 127.0.0.1 -p "$from_port" \
  -U postgres -D "$data" -R -X stream -c fast -w
# The copy brought the source's settings: this server keeps its own port and socket.
as_owner cp -- "$aside/sandbox.conf" "$data/sandbox.conf"
as_owner "$pg_bindir/pg_ctl" -D "$data" -l "$pg/$1.log" -w -t 60 start </dev/null >/dev/null
echo "pg-rebuild: $1 is a standby of $3 (127.0.0.1:$from_port); its old data is in $aside"
PGREBUILD
  } > "$sb/bin/pg-rebuild"
else
  log "PostgreSQL not installed (no initdb in /usr/lib/postgresql/*/bin or PATH): skipped (apt-get install postgresql)"
fi

# ---------------------------------------------------------------- Redis
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  have_redis=true
  mkdir -p "$sb/redis/data"
  if alive "$sb/redis/redis.pid" redis-server; then
    REDIS_PORT=$(sed -n 's/^port //p' "$sb/redis/redis.conf")
    log "Redis already running on 127.0.0.1:$REDIS_PORT"
  else
    REDIS_PORT=$(pick_port "${REDIS_PORT:-}")
    umask_old=$(umask); umask 077
    cat > "$sb/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $REDIS_PASSWORD
daemonize yes
pidfile $sb/redis/redis.pid
logfile $sb/redis/redis.log
dir $sb/redis/data
dbfilename dump.rdb
# No automatic snapshots: backups in the sandbox are the ones the runbooks take.
save ""
appendonly no
EOF
    umask "$umask_old"
    redis-server "$sb/redis/redis.conf" </dev/null >/dev/null 2>&1 || die "redis-server did not start; see $sb/redis/redis.log"
    for _ in $(seq 1 50); do
      [ "$(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ] && break
      sleep 0.2
    done
    log "Redis on 127.0.0.1:$REDIS_PORT"
  fi
  rc() { REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
  [ "$(rc PING)" = PONG ] || die "Redis on 127.0.0.1:$REDIS_PORT does not answer; see $sb/redis/redis.log"
  if [ "$(rc DBSIZE)" = 0 ]; then
    log "seeding Redis: 200 session keys, a hash, a list, a counter"
    {
      for i in $(seq 1 200); do echo "SET session:$i user-$(( (i * 37) % 1000 ))"; done
      echo "HSET config:app feature_x on feature_y off max_upload_mb 50"
      echo "RPUSH queue:emails welcome-1 welcome-2 reset-3"
      echo "SET counter:orders 10000"
    } | rc >/dev/null
  fi
  cat > "$sb/bin/redis-stop" <<EOF
#!/usr/bin/env bash
# Stop the sandbox Redis without saving (the restore puts its own RDB in place).
set -euo pipefail
REDISCLI_AUTH=\$(sed -n 's/^requirepass //p' "$sb/redis/redis.conf") redis-cli -h 127.0.0.1 -p $REDIS_PORT SHUTDOWN NOSAVE >/dev/null 2>&1 || true
for _ in \$(seq 1 50); do [ -e "$sb/redis/redis.pid" ] || exit 0; sleep 0.2; done
echo "redis-stop: Redis did not stop" >&2; exit 1
EOF
  cat > "$sb/bin/redis-start" <<EOF
#!/usr/bin/env bash
set -euo pipefail
exec redis-server "$sb/redis/redis.conf" </dev/null >/dev/null 2>&1
EOF
else
  log "Redis not installed: skipped (apt-get install redis-server)"
fi

# ---------------------------------------------------------------- HTTP health endpoint
if command -v python3 >/dev/null; then
  have_http=true
  mkdir -p "$sb/www"
  printf 'ok region=sandbox\n' > "$sb/www/healthz"
  if alive "$sb/http.pid" http.server; then
    HTTP_PORT=$(sed -n 's/^HTTP_PORT=//p' "$state")
    log "health endpoint already on http://127.0.0.1:$HTTP_PORT/healthz"
  else
    HTTP_PORT=$(pick_port "${HTTP_PORT:-}")
    nohup python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$sb/www" \
      </dev/null >"$sb/http.log" 2>&1 &
    echo $! > "$sb/http.pid"
    for _ in $(seq 1 50); do
      curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null && break
      sleep 0.2
    done
    log "health endpoint on http://127.0.0.1:$HTTP_PORT/healthz"
  fi
else
  log "python3 not installed: no health endpoint"
fi

# ---------------------------------------------------------------- DNS stand-in
[ -s "$sb/dns/api.omni.sandbox" ] || echo "us.omni.sandbox" > "$sb/dns/api.omni.sandbox"
[ -s "$sb/dns/api.omni.sandbox.ttl" ] || echo 300 > "$sb/dns/api.omni.sandbox.ttl"
cat > "$sb/bin/dns-update" <<EOF
#!/usr/bin/env bash
# Stand-in for a DNS provider's CLI: one file per record in .sandbox/dns, its TTL beside it.
set -euo pipefail
printf '%s\n' "\$DNS_TARGET" > "$sb/dns/\$DNS_RECORD"
printf '%s\n' "\${DNS_TTL:-300}" > "$sb/dns/\$DNS_RECORD.ttl"
EOF
cat > "$sb/bin/dns-ttl" <<EOF
#!/usr/bin/env bash
# The TTL, in seconds, resolvers were given with the record's current answer.
set -euo pipefail
cat "$sb/dns/\$DNS_RECORD.ttl" 2>/dev/null || true
EOF
cat > "$sb/bin/dns-lookup" <<EOF
#!/usr/bin/env bash
set -euo pipefail
cat "$sb/dns/\$DNS_RECORD" 2>/dev/null || true
EOF
chmod +x "$sb/bin/"*

{
  echo "# sandbox state, written by up.sh"
  echo "PG_PASSWORD=$PG_PASSWORD"
  echo "REDIS_PASSWORD=$REDIS_PASSWORD"
  $have_pg && echo "PG_PORT=$PG_PORT" && echo "PG_REPLICA_PORT=$PG_REPLICA_PORT"
  $have_redis && echo "REDIS_PORT=$REDIS_PORT"
  $have_http && echo "HTTP_PORT=$HTTP_PORT"
  true
} > "$state.tmp"
chmod 600 "$state.tmp"; mv -f "$state.tmp" "$state"

q() { printf '%q' "$1"; }
echo "export SANDBOX_DIR=$(q "$sb")"
echo "export RUNBOOK_BACKUP_DIR=$(q "$sb/backups")"
if $have_pg; then
  echo "export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=omni"
  echo "export PGPASSWORD=$(q "$PG_PASSWORD")"
  echo "export PGSERVICEFILE=$(q "$sb/pg_service.conf")"
  echo "export PG_REPLICA_PORT=$PG_REPLICA_PORT"
fi
if $have_redis; then
  echo "export REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  echo "export REDISCLI_AUTH=$(q "$REDIS_PASSWORD")"
fi
$have_http && echo "export APP_HEALTH_URL=http://127.0.0.1:$HTTP_PORT/healthz"
log "ready: runbooks run against it with --env local"
