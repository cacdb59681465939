#!/usr/bin/env bash
# Wait until a DNS record resolves to the expected target, as seen from here, within --within
# (0: check once and exit 1 when it does not yet, for a runbook's `poll:`).
#
# The wait is bounded by the old record's TTL: once a resolver's cached answer has expired, it
# asks again and gets the new one. With --old-ttl and --changed-at (dns/update's old_ttl_s and
# changed_at outputs), a record that still resolves to something else past changed_at + the
# old TTL + --grace is a hard failure, not "not ready yet": the change did not reach the
# authoritative servers, or something (a second record, a stale resolver, a CDN) answers for
# it. Waiting out the rest of the window would only hide that.
#
# Lookup: --lookup-cmd (prints the current value(s), one a line, and sees DNS_RECORD and
# DNS_TYPE), else `getent` for A/AAAA records. For CNAME and other types a lookup command is
# needed (e.g. `dig +short "$DNS_TYPE" "$DNS_RECORD" @8.8.8.8`).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: check.sh --record NAME --target VALUE [--type TYPE] [--lookup-cmd CMD]
                [--within DURATION] [--interval DURATION]
                [--old-ttl SECONDS --changed-at EPOCH] [--grace DURATION]

  --within DUR       keep checking this long (default 0: check once)
  --interval DUR     between checks (default 30s)
  --old-ttl S        the TTL of the answer before the change (dns/update's old_ttl_s)
  --changed-at T     when the change was made, epoch seconds (dns/update's changed_at)
  --grace DUR        allowed past changed-at + old-ttl (default 60s)

outputs: resolved (the value(s) seen, space-separated)
EOF2
}

record=""
target=""
type="CNAME"
lookup_cmd=""
within="0"
interval="30s"
old_ttl=""
changed_at=""
grace="60s"
parse_args --record=record --target=target --type=type --lookup-cmd=lookup_cmd \
  --within=within --interval=interval --old-ttl=old_ttl --changed-at=changed_at \
  --grace=grace -- "$@"
[ -n "$record" ] || usage_error "--record is required"
[ -n "$target" ] || usage_error "--target is required"
within_s=$(duration --within "$within")
interval_s=$(duration --interval "$interval")
grace_s=$(duration --grace "$grace")
[ -z "$old_ttl" ] || [[ $old_ttl =~ ^[0-9]+$ ]] || usage_error "--old-ttl must be seconds (got '$old_ttl')"
[ -z "$changed_at" ] || [[ $changed_at =~ ^[0-9]+$ ]] || usage_error "--changed-at must be epoch seconds (got '$changed_at')"
if [ -n "$old_ttl" ] && [ -z "$changed_at" ]; then usage_error "--old-ttl needs --changed-at"; fi
if [ -z "$old_ttl" ] && [ -n "$changed_at" ]; then usage_error "--changed-at needs --old-ttl"; fi
type=${type^^}
# As dns/update checks it: the lookup command sees it in its environment.
[[ $record =~ ^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$ ]] \
  || usage_error "--record: \`$record\` is not a DNS name (letters, digits, - and _ between dots): fix the dns_record variable"
[[ $type =~ ^[A-Z0-9]{1,10}$ ]] || usage_error "--type: \`$type\` is not a record type (A, AAAA, CNAME...)"
export DNS_RECORD="$record" DNS_TYPE="$type"

norm() { tr '[:upper:]' '[:lower:]' | sed 's/\.$//' | grep -v '^$' | sort -u; }
# resolves: 0 when the record resolves to the target; sets $seen.
resolves() {
  local current
  if [ -n "$lookup_cmd" ]; then
    current=$(bash -c "$lookup_cmd" 2>&1) || die "the lookup command failed: $current"
  else
    case "$type" in
      A) current=$(getent ahostsv4 "$record" | awk '{ print $1 }' | sort -u || true) ;;
      AAAA) current=$(getent ahostsv6 "$record" | awk '{ print $1 }' | sort -u || true) ;;
      *) die "checking a $type record needs a lookup command: set the dns_lookup_cmd variable (e.g. dig +short \"\$DNS_TYPE\" \"\$DNS_RECORD\")" ;;
    esac
  fi
  seen=$(printf '%s\n' "$current" | norm | tr '\n' ' ' | sed 's/ $//')
  [ "$(printf '%s\n' "$current" | norm)" = "$(printf '%s\n' "$target" | norm)" ]
}

deadline=$(( $(date +%s) + within_s ))
bound=""
[ -z "$old_ttl" ] || bound=$(( changed_at + old_ttl + grace_s ))
while :; do
  if resolves; then
    out resolved "$seen"
    echo "$record ($type) resolves to $target"
    exit 0
  fi
  out resolved "$seen"
  now=$(date +%s)
  if [ -n "$bound" ] && [ "$now" -gt "$bound" ]; then
    die "$record ($type) still resolves to '${seen:-nothing}', not $target, $(( now - changed_at ))s after the change: past the old record's TTL of ${old_ttl}s plus ${grace_s}s of grace, every resolver should have the new answer; check that the change reached the authoritative servers (dig +trace $record) and that nothing else answers for it"
  fi
  echo "$record ($type) resolves to '${seen:-nothing}', not yet $target" >&2
  [ "$now" -lt "$deadline" ] || exit 1
  sleep "$interval_s"
done
