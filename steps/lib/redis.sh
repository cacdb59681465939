# shellcheck shell=bash
# The Redis connection, the same in every redis step. Sourced after common.sh (it uses die):
#
#   # shellcheck source=../lib/redis.sh
#   . "$(dirname -- "${BASH_SOURCE[0]}")/../lib/redis.sh"
#
# Connection: REDIS_URL (redis://[user[:password]@]host[:port][/db], rediss:// for TLS), or
# REDIS_HOST / REDIS_PORT; the password from REDISCLI_AUTH. A password found in REDIS_URL is
# moved to REDISCLI_AUTH, so it never appears on a command line.

# need_redis_cli: redis-cli must be installed.
need_redis_cli() { command -v redis-cli >/dev/null || die "redis-cli not found in PATH (install redis-tools)"; }

# redis_connect sets the redis-cli arguments (redis_args) and the server's name in messages
# (redis_target, read by the scripts that source this file) from the environment.
redis_args=()
# shellcheck disable=SC2034
redis_target=""
# shellcheck disable=SC2034
redis_connect() {
  local url rest userinfo hostport db host port
  if [ -n "${REDIS_URL:-}" ]; then
    url=$REDIS_URL
    case "$url" in
      redis://*) rest=${url#redis://} ;;
      rediss://*) rest=${url#rediss://}; redis_args+=(--tls) ;;
      *) die "REDIS_URL must start with redis:// or rediss:// (got '${url%%://*}://...')" ;;
    esac
    if [[ $rest == *@* ]]; then
      userinfo=${rest%@*}; rest=${rest##*@}
      if [[ $userinfo == *:* ]]; then
        [ -z "${userinfo#*:}" ] || export REDISCLI_AUTH="${userinfo#*:}"
        userinfo=${userinfo%%:*}
      fi
      [ -z "$userinfo" ] || redis_args+=(--user "$userinfo")
    fi
    hostport=${rest%%/*}; db=""
    [[ $rest == */* ]] && db=${rest#*/}
    host=${hostport%%:*}; port=6379
    [[ $hostport == *:* ]] && port=${hostport##*:}
    [ -n "$host" ] || host=127.0.0.1
    [ -z "$db" ] || redis_args+=(-n "$db")
  else
    host=${REDIS_HOST:-127.0.0.1}; port=${REDIS_PORT:-6379}
  fi
  [[ $port =~ ^[0-9]+$ ]] || die "redis port is not a number: '$port'"
  redis_args+=(-h "$host" -p "$port")
  redis_target="$host:$port"
}
rcli() { redis-cli "${redis_args[@]}" "$@"; }
# One command whose reply must not be an error; redis-cli exits 0 on some error replies.
rcmd() {
  local reply
  reply=$(rcli "$@" 2>&1) || { printf '%s\n' "$reply" >&2; return 1; }
  case "$reply" in
    ERR*|NOAUTH*|WRONGPASS*|NOPERM*|LOADING*|MISCONF*|"Could not connect"*|"(error)"*) printf '%s\n' "$reply" >&2; return 1 ;;
  esac
  printf '%s\n' "$reply"
}
# info_field SECTION FIELD: one field of INFO SECTION.
info_field() { rcmd INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"; }
# total_keys: the keys in all databases.
total_keys() { rcmd INFO keyspace | tr -d '\r' | sed -n 's/^db[0-9]*:keys=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }'; }
