#!/usr/bin/env bash
# Restore Redis from an RDB backup:
#   1. check the file (sha256 sidecar, RDB header, redis-check-rdb when installed);
#   2. while Redis still runs, read where it loads from (CONFIG GET dir/dbfilename) and
#      refuse if appendonly is on: Redis would load the AOF and silently ignore the RDB;
#   3. stop Redis with --stop-cmd and wait until it no longer answers;
#   4. keep the current file as <rdb>.before-restore-<time>, put the backup in place
#      atomically with the old file's owner and mode;
#   5. start Redis with --start-cmd, wait for PING to answer PONG (not LOADING), and report
#      DBSIZE, comparing it with the key count recorded in the backup's .meta.
#
# --scratch true (the drill variant) touches no running Redis: it loads the backup into a
# throwaway redis-server on a free local port, checks PING and the key count, and removes it.
#
# Connection: REDIS_URL, or REDIS_HOST / REDIS_PORT, and REDISCLI_AUTH (see lib/redis.sh).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/redis.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/redis.sh"

usage() {
  cat <<'EOF2'
usage: restore.sh --file PATH --stop-cmd CMD --start-cmd CMD [--rdb-path PATH]
                  [--timeout DURATION] [--allow-unverified true|false]
       restore.sh --file PATH --scratch true

  --file PATH        the RDB backup
  --stop-cmd CMD     shell command that stops Redis (e.g. "systemctl stop redis-server")
  --start-cmd CMD    shell command that starts it again (e.g. "systemctl start redis-server")
  --rdb-path PATH    where Redis loads its RDB from; default: CONFIG GET dir/dbfilename,
                     asked before stopping (required when Redis is already down)
  --timeout DUR      for stopping, and for starting and loading (default 15m each: a large RDB loads for minutes)
  --scratch true     load into a throwaway local redis-server instead (drills)
  --allow-unverified restore even without a .sha256 sidecar (default false)

outputs: keys, expected_keys, rdb_path, previous (the kept old file), scratch
EOF2
}


file=""
stop_cmd=""
start_cmd=""
rdb_path=""
timeout="15m"
scratch=false
allow_unverified=false
parse_args --file=file --stop-cmd=stop_cmd --start-cmd=start_cmd --rdb-path=rdb_path \
  --timeout=timeout --scratch=scratch:bool --allow-unverified=allow_unverified:bool -- "$@"
[ -n "$file" ] || usage_error "--file is required"
timeout_s=$(duration --timeout "$timeout")
need_redis_cli
[ -f "$file" ] || die "backup file '$file' does not exist"

# 1. the file
check_sidecar "$file" "$allow_unverified" \
  || warn "no $file.sha256; restoring unverified (--allow-unverified true)"
[ "$(head -c 5 "$file")" = REDIS ] || die "$file is not an RDB file (no REDIS header)"
if command -v redis-check-rdb >/dev/null; then
  redis-check-rdb "$file" >/dev/null 2>&1 || die "redis-check-rdb rejects $file"
fi
expected_keys=""
[ ! -s "$file.meta" ] || expected_keys=$(sed -n 's/^keys=\([0-9]*\)$/\1/p' "$file.meta" | head -n1)

wait_for_pong() { # $1: seconds, $2: the server's pid if ours; PING until PONG (LOADING and
  # refused connections are retried), and no longer once our server has died (a bad file)
  local deadline=$(( $(date +%s) + $1 )) reply
  while :; do
    reply=$(rcli PING 2>&1 || true)
    [ "$reply" = PONG ] && return 0
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
      echo "the server exited" >&2; return 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { printf '%s\n' "$reply" >&2; return 1; }
    sleep 0.5
  done
}
report_keys() {
  local keys
  keys=$(total_keys) || die "cannot count keys after the restore"
  echo "Redis answers PING; $keys key(s) loaded"
  out keys "$keys"
  out expected_keys "${expected_keys:-unknown}"
  if [ -n "$expected_keys" ]; then
    if [ "$keys" = 0 ] && [ "$expected_keys" -gt 0 ]; then
      die "Redis came up empty, but the backup recorded $expected_keys keys: the RDB was not loaded"
    elif [ "$keys" != "$expected_keys" ]; then
      warn "$keys keys loaded, the backup recorded $expected_keys (keys that expired since the backup do not load)"
    fi
  fi
}

# Drill: a throwaway server on a free port, nothing else touched.
if [ "$scratch" = true ]; then
  command -v redis-server >/dev/null || die "--scratch true needs redis-server installed on this host"
  work=$(mktemp -d)
  port=""
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
  done
  [ -n "$port" ] || die "no free local port found for the scratch server"
  cp -- "$file" "$work/dump.rdb"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --dbfilename dump.rdb \
    --save "" --appendonly no --daemonize no --logfile "$work/redis.log" &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  trap 'exit 130' INT TERM HUP PIPE
  unset REDISCLI_AUTH
  redis_args=(-h 127.0.0.1 -p "$port")
  redis_target="127.0.0.1:$port (scratch)"
  echo "loading $file into a scratch redis-server on 127.0.0.1:$port"
  wait_for_pong "$timeout_s" "$pid" || die "the scratch server did not come up: $(tail -n 5 "$work/redis.log" 2>/dev/null)"
  report_keys
  out rdb_path "$work/dump.rdb"
  out scratch true
  rcli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  exit 0
fi

[ -n "$stop_cmd" ] || usage_error "--stop-cmd is required (how Redis is stopped here, e.g. 'systemctl stop redis-server')"
[ -n "$start_cmd" ] || usage_error "--start-cmd is required (how Redis is started here, e.g. 'systemctl start redis-server')"
redis_connect

# 2. where Redis loads from, asked while it still runs
if rcli PING 2>/dev/null | grep -qx PONG; then
  aof=$(rcmd CONFIG GET appendonly | sed -n 2p || true)
  [ "$aof" != yes ] || die "appendonly is on: Redis would load its AOF and ignore the restored RDB. Turn AOF off (CONFIG SET appendonly no, and in redis.conf), restore, then turn it back on (CONFIG SET appendonly yes rewrites the AOF from the restored data)"
  if [ -z "$rdb_path" ]; then
    dir=$(rcmd CONFIG GET dir | sed -n 2p) || die "CONFIG GET dir failed (disabled?): pass --rdb-path"
    dbfilename=$(rcmd CONFIG GET dbfilename | sed -n 2p) || die "CONFIG GET dbfilename failed: pass --rdb-path"
    rdb_path="$dir/$dbfilename"
  fi
else
  [ -n "$rdb_path" ] || die "Redis at $redis_target is not answering, so its RDB location is unknown: pass --rdb-path"
  warn "Redis at $redis_target is not answering; restoring to $rdb_path"
fi
rdb_dir=$(dirname "$rdb_path")
[ -d "$rdb_dir" ] || die "$rdb_dir does not exist"
[ -w "$rdb_dir" ] || die "cannot write to $rdb_dir (run as its owner, or as root)"

# 3. the backup beside Redis's file, while Redis still runs: a copy that fails (a full disk)
# leaves Redis as it was, not stopped
stamp=$(date -u +%Y%m%dT%H%M%SZ)
tmp="$rdb_dir/.restore-$stamp.rdb"
trap 'rm -f -- "$tmp"' EXIT
cp -- "$file" "$tmp" || die "cannot copy $file to $rdb_dir (Redis was not stopped)"

# 4. stop
echo "stopping Redis: $stop_cmd"
bash -c "$stop_cmd" || die "the stop command failed: $stop_cmd"
deadline=$(( $(date +%s) + timeout_s ))
while rcli PING 2>/dev/null | grep -qx PONG; do
  [ "$(date +%s)" -lt "$deadline" ] || die "Redis still answers $timeout after the stop command; not replacing its file under it"
  sleep 0.5
done
echo "Redis is stopped"

# 5. swap the file, keeping the old one
previous=""
if [ -e "$rdb_path" ]; then
  chown --reference="$rdb_path" "$tmp" 2>/dev/null || warn "cannot give $tmp the owner of $rdb_path"
  chmod --reference="$rdb_path" "$tmp" 2>/dev/null || true
  previous="$rdb_path.before-restore-$stamp"
  mv -f -- "$rdb_path" "$previous"
  echo "kept the previous file as $previous"
fi
mv -f -- "$tmp" "$rdb_path"
echo "placed $file at $rdb_path"

# 6. start and check
echo "starting Redis: $start_cmd"
bash -c "$start_cmd" || die "the start command failed: $start_cmd (the backup is in place at $rdb_path${previous:+, the old file at $previous})"
wait_for_pong "$timeout_s" || die "Redis did not answer PONG within $timeout after starting"
# Checked again now that it answers (it may not have before the stop): with AOF on, Redis
# loaded its AOF and ignored the restored file.
aof=$(rcmd CONFIG GET appendonly | sed -n 2p || true)
[ "$aof" != yes ] || die "appendonly is on: Redis loaded its AOF, not the restored RDB ($rdb_path). Turn AOF off in redis.conf, restart Redis, check, then turn it back on with CONFIG SET appendonly yes"
report_keys
out rdb_path "$rdb_path"
out previous "$previous"
out scratch false
