#!/usr/bin/env bash
# Snapshot Redis to an RDB file with a sha256 sidecar (and a .meta file):
#   1. record LASTSAVE, 2. BGSAVE, 3. wait (bounded by --timeout) until LASTSAVE moves past
#   the recorded value and the save reports ok, 4. copy the RDB named by CONFIG GET
#   dir/dbfilename.
# The old backup-redis.sh compared LASTSAVE with a variable it never set, and then copied
# whatever file was there; this one waits for its own save and checks that it succeeded.
#
# --method remote instead streams a fresh RDB over the network (redis-cli --rdb), for servers
# whose files this host cannot read (a managed or remote Redis).
#
# Connection: REDIS_URL (redis://[user[:password]@]host[:port][/db], rediss:// for TLS), or
# REDIS_HOST / REDIS_PORT; the password from REDISCLI_AUTH. A password found in REDIS_URL is
# moved to REDISCLI_AUTH, so it never appears on a command line.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/redis.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/redis.sh"

usage() {
  cat <<'EOF2'
usage: backup.sh --out-dir DIR [--prefix NAME] [--timeout DURATION] [--method copy|remote]
                 [--rdb-path PATH]

  --out-dir DIR    where <prefix>-YYYYMMDDTHHMMSSZ.rdb and its sidecars are written
  --prefix NAME    file name prefix (default: omni-redis)
  --timeout DUR    how long to wait for the background save (default 5m)
  --method         copy (default): BGSAVE, then copy the server's RDB file (this host must
                   be able to read it); remote: redis-cli --rdb over the network
  --rdb-path PATH  the server's RDB file, when CONFIG GET is disabled (managed Redis)

outputs: file, name, sha256, size, meta, keys, created_at, created_epoch
EOF2
}

out_dir=""
prefix="omni-redis"
timeout="5m"
method="copy"
rdb_path=""
parse_args --out-dir=out_dir --prefix=prefix --timeout=timeout --method=method \
  --rdb-path=rdb_path -- "$@"
[ -n "$out_dir" ] || usage_error "--out-dir is required"
check_prefix "$prefix"
timeout_s=$(duration --timeout "$timeout")
case "$method" in copy|remote) ;; *) usage_error "--method takes copy or remote (got '$method')" ;; esac
need_redis_cli
redis_connect

pong=$(rcmd PING) || die "cannot reach Redis at $redis_target (check REDIS_URL or REDIS_HOST/REDIS_PORT and REDISCLI_AUTH)"
[ "$pong" = PONG ] || die "unexpected reply to PING from $redis_target: $pong"

mkdir -p "$out_dir" || die "cannot create $out_dir"
out_dir=$(cd "$out_dir" && pwd)
tmp="$out_dir/.$prefix.$$.partial"
cleanup() { rm -f "$tmp"; }
trap cleanup EXIT

deadline=$(( $(date +%s) + timeout_s ))
if [ "$method" = copy ]; then
  before=$(rcmd LASTSAVE) || die "LASTSAVE failed on $redis_target"
  [[ $before =~ ^[0-9]+$ ]] || die "unexpected LASTSAVE reply: $before"
  # LASTSAVE has one-second resolution: a save finishing in the second of the previous one
  # would not move it, and the wait below would time out.
  while [ "$(date +%s)" -le "$before" ]; do sleep 0.2; done

  created_epoch=$(date -u +%s)
  echo "BGSAVE on $redis_target (last save at $(date -u -d "@$before" +%H:%M:%SZ))"
  while :; do
    reply=$(rcli BGSAVE 2>&1 || true)
    case "$reply" in
      *"Background saving started"*|*"Background saving scheduled"*) break ;;
      *"already in progress"*)
        # Someone else's save began before ours was asked for: wait for it, then ask again.
        [ "$(date +%s)" -lt "$deadline" ] || die "a background save already running did not finish within $timeout"
        sleep 1
        before=$(rcmd LASTSAVE)
        created_epoch=$(date -u +%s)
        ;;
      *) die "BGSAVE failed on $redis_target: $reply" ;;
    esac
  done

  while :; do
    now_save=$(rcmd LASTSAVE) || die "LASTSAVE failed while waiting for the save"
    if [ "$now_save" -gt "$before" ] && [ "$(info_field persistence rdb_bgsave_in_progress)" = 0 ]; then
      break
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "BGSAVE did not finish within $timeout (LASTSAVE still $now_save)"
    sleep 1
  done
  status=$(info_field persistence rdb_last_bgsave_status)
  [ "$status" = ok ] || die "the background save failed (rdb_last_bgsave_status:$status); see the Redis log"

  if [ -z "$rdb_path" ]; then
    dir=$(rcmd CONFIG GET dir | sed -n 2p) \
      || die "CONFIG GET dir failed (disabled on managed Redis?): pass --rdb-path, or use --method remote"
    dbfilename=$(rcmd CONFIG GET dbfilename | sed -n 2p) || die "CONFIG GET dbfilename failed"
    rdb_path="$dir/$dbfilename"
  fi
  [ -r "$rdb_path" ] || die "cannot read $rdb_path from this host: run on the Redis host, or use --method remote"
  cp -- "$rdb_path" "$tmp" || die "cannot copy $rdb_path"
else
  created_epoch=$(date -u +%s)
  echo "streaming an RDB from $redis_target (redis-cli --rdb)"
  timeout "$timeout_s" redis-cli "${redis_args[@]}" --rdb "$tmp" >/dev/null \
    || die "redis-cli --rdb failed or took longer than $timeout"
fi

[ "$(head -c 5 "$tmp")" = REDIS ] || die "the copied file is not an RDB file (no REDIS header)"
keys=""
if command -v redis-check-rdb >/dev/null; then
  check=$(redis-check-rdb "$tmp" 2>&1) || die "redis-check-rdb rejects the copied RDB file: $(printf '%s' "$check" | tail -n 3)"
  # The exact number of keys in the file, which restore compares after loading it.
  keys=$(printf '%s\n' "$check" | sed -n 's/^\[info\] \([0-9]*\) keys read$/\1/p' | head -n1)
fi
[ -n "$keys" ] || keys=$(total_keys || echo unknown)
stamp=$(date -u -d "@$created_epoch" +%Y%m%dT%H%M%SZ)
created_at=$(date -u -d "@$created_epoch" +%Y-%m-%dT%H:%M:%SZ)
name="$prefix-$stamp.rdb"
final="$out_dir/$name"
[ ! -e "$final" ] || die "$final already exists"
size=$(stat -c %s "$tmp")
sha=$(sha256sum "$tmp" | cut -d' ' -f1)
mv -f "$tmp" "$final"
{
  echo "format=runbook-backup/1"
  echo "kind=redis"
  echo "file=$name"
  echo "created_at=$created_at"
  echo "created_epoch=$created_epoch"
  echo "size=$size"
  echo "sha256=$sha"
  echo "keys=$keys"
  echo "method=$method"
} > "$out_dir/.$name.meta.partial"
mv -f "$out_dir/.$name.meta.partial" "$final.meta"
printf '%s  %s\n' "$sha" "$name" > "$out_dir/.$name.sha256.partial"
mv -f "$out_dir/.$name.sha256.partial" "$final.sha256"
trap - EXIT

echo "backup complete: $final ($size bytes, $keys keys, sha256 $sha)"
out file "$final"
out name "$name"
out sha256 "$sha"
out size "$size"
out meta "$final.meta"
out keys "$keys"
out created_at "$created_at"
out created_epoch "$created_epoch"
