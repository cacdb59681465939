#!/usr/bin/env bash
# Send a message to a chat/paging webhook: POST {"text": ..., "channel": ...} as JSON.
#
# The URL is read from an environment variable (--url-env, default NOTIFY_WEBHOOK_URL), never
# from the command line: webhook URLs carry their own secret. It is handed to curl on its
# standard input (curl -K -), so it does not show in `ps` either. The JSON body is built with
# escaping done here, so any message text is safe.
#
# --log FILE also appends the message to a local log (the plan's audit trail of DR actions).
# --required false turns a missing URL into a warning: for a sandbox or a drill, where the
# log file is the only channel. By default a missing URL is an error, so that an escalation
# that pages nobody does not pass for one that paged someone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
here=$(cd "$(dirname -- "$0")" && pwd)

usage() {
  cat <<'EOF2'
usage: webhook.sh --message TEXT [--channel NAME] [--url-env VAR] [--required true|false]
                  [--log FILE] [--prefix TEXT]

  --message TEXT   what to say
  --channel NAME   channel name, sent along and used in the log (e.g. devops-lead)
  --url-env VAR    environment variable holding the webhook URL (default NOTIFY_WEBHOOK_URL)
  --required       fail when the variable is unset (default true)
  --log FILE       also append the message to this file
  --prefix TEXT    put before the message, e.g. "[DRILL] "

outputs: sent (true|false)
EOF2
}

json_string() { # JSON string literal of $1
  local s=$1 i c
  s=${s//\\/\\\\}; s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  for i in $(seq 1 31); do
    c=$(printf "\\$(printf '%03o' "$i")")
    [[ $s == *"$c"* ]] && s=${s//"$c"/$(printf '\\u%04x' "$i")}
  done
  printf '"%s"' "$s"
}

# --required takes true or false, and says only that when it gets another value.
true_or_false() { case "$2" in true|false) printf '%s' "$2" ;; *) usage_error "$1 takes true or false" ;; esac; }

message=""
channel=""
url_env="NOTIFY_WEBHOOK_URL"
required=true
log=""
prefix=""
parse_args --message=message --channel=channel --url-env=url_env \
  --required=required:true_or_false --log=log --prefix=prefix -- "$@"
[ -n "$message" ] || usage_error "--message is required"
[[ $url_env =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || usage_error "--url-env must be a variable name (got '$url_env')"
text="$prefix$message"

if [ -n "$log" ]; then
  "$here/file.sh" --file "$log" --channel "${channel:-webhook}" --message "$text"
fi

url=${!url_env:-}
if [ -z "$url" ]; then
  if [ "$required" = true ]; then
    die "\$$url_env is not set: cannot notify ${channel:-the webhook} (message: $text)"
  fi
  echo "warning: \$$url_env is not set; ${channel:-webhook} not notified${log:+ (logged to $log)}" >&2
  out sent false
  exit 0
fi
command -v curl >/dev/null || die "curl not found in PATH"

body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '{"text":%s,"channel":%s}\n' "$(json_string "$text")" "$(json_string "$channel")" > "$body"
# The URL goes to curl through a config on stdin: quote it for curl's config syntax.
curl_url=${url//\\/\\\\}; curl_url=${curl_url//\"/\\\"}
printf 'url = "%s"\n' "$curl_url" \
  | curl -K - -fsS --max-time 15 --retry 3 --retry-delay 2 \
      -H 'Content-Type: application/json' --data-binary "@$body" -o /dev/null \
  || die "the webhook for ${channel:-notifications} (\$$url_env) did not accept the message"
echo "notified ${channel:-webhook}: $text"
out sent true
