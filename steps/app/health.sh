#!/usr/bin/env bash
# HTTP health check: GET each URL until all answer 2xx (and contain --expect, when given)
# or --within runs out. With --watch, keep checking for that long afterwards and fail on
# --max-failures consecutive bad rounds: the plan's "monitor for 1 hour".
#
# URLs come from --url (repeatable; one value may hold several, space-separated), else from
# $APP_HEALTH_URL. Credentials never go on the command line: use a URL without them, or a
# curl config in $CURL_HOME/.curlrc.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: health.sh [--url URL]... [--expect TEXT] [--within DURATION] [--interval DURATION]
                 [--watch DURATION] [--max-failures N] [--request-timeout SECONDS]

  --url URL          endpoint(s) to check (default: $APP_HEALTH_URL)
  --expect TEXT      the response body must contain TEXT (e.g. the serving region)
  --within DUR       give up if not healthy within this (default 2m)
  --interval DUR     between checks (default 5s)
  --watch DUR        once healthy, keep watching this long (default 0: do not watch)
  --max-failures N   while watching, fail after N bad rounds in a row (default 3)
  --request-timeout  seconds per request (default 10)

durations: 90, 90s, 15m, 1h, 1h30m

outputs: status (healthy), checks, failures
EOF2
}

urls=()
expect=""
within="2m"
interval="5s"
watch="0"
max_failures=3
request_timeout=10
parse_args --url=urls:words --expect=expect --within=within --interval=interval --watch=watch \
  --max-failures=max_failures --request-timeout=request_timeout -- "$@"
if [ "${#urls[@]}" -eq 0 ] && [ -n "${APP_HEALTH_URL:-}" ]; then
  read -r -a urls <<< "$APP_HEALTH_URL"
fi
[ "${#urls[@]}" -gt 0 ] || die "no URL to check: pass --url (the app_health_url variable) or set APP_HEALTH_URL"
within_s=$(duration --within "$within")
interval_s=$(duration --interval "$interval")
watch_s=$(duration --watch "$watch")
[[ $max_failures =~ ^[1-9][0-9]*$ ]] || usage_error "--max-failures must be a positive number"
[[ $request_timeout =~ ^[1-9][0-9]*$ ]] || usage_error "--request-timeout must be a positive number of seconds"
[ "$interval_s" -ge 1 ] || interval_s=1
command -v curl >/dev/null || die "curl not found in PATH"

body=$(mktemp)
errors=$(mktemp)
trap 'rm -f "$body" "$errors"' EXIT
checks=0
failures=0
problem=""
round() { # one check of every URL; sets $problem on the first bad one
  local url code
  problem=""
  for url in "${urls[@]}"; do
    checks=$((checks + 1))
    code=$(curl -sS -o "$body" -w '%{http_code}' --max-time "$request_timeout" -- "$url" 2>"$errors") || true
    if ! [[ $code =~ ^2[0-9][0-9]$ ]]; then
      if [ "${code:-000}" = 000 ]; then problem="$url: no answer ($(head -n1 "$errors"))"
      else problem="$url: HTTP $code"; fi
      return 1
    fi
    if [ -n "$expect" ] && ! grep -qF -- "$expect" "$body"; then
      problem="$url: answered $code but the body lacks '$expect'"; return 1
    fi
  done
  return 0
}

deadline=$(( $(date +%s) + within_s ))
until round; do
  failures=$((failures + 1))
  echo "not healthy yet: $problem"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    out checks "$checks"; out failures "$failures"
    die "not healthy within $within: $problem"
  fi
  sleep "$interval_s"
done
echo "healthy: ${urls[*]}"

if [ "$watch_s" -gt 0 ]; then
  echo "watching for $watch (every ${interval_s}s; failing after $max_failures bad rounds in a row)"
  end=$(( $(date +%s) + watch_s ))
  in_a_row=0
  last_report=$(date +%s)
  while [ "$(date +%s)" -lt "$end" ]; do
    sleep "$interval_s"
    if round; then
      in_a_row=0
    else
      failures=$((failures + 1)); in_a_row=$((in_a_row + 1))
      echo "unhealthy ($in_a_row in a row): $problem"
      if [ "$in_a_row" -ge "$max_failures" ]; then
        out checks "$checks"; out failures "$failures"
        die "unhealthy $in_a_row times in a row while watching: $problem"
      fi
    fi
    if [ $(( $(date +%s) - last_report )) -ge 300 ]; then
      echo "still healthy: $checks checks, $failures failure(s), $(( (end - $(date +%s)) / 60 )) min to go"
      last_report=$(date +%s)
    fi
  done
  echo "watched for $watch: $checks checks, $failures failure(s)"
fi
out status healthy
out checks "$checks"
out failures "$failures"
