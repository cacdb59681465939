#!/usr/bin/env bash
# Point a DNS record at a new target with the site's DNS command (gcloud, aws, an API
# client...). The command is required: there is no safe default for changing production DNS,
# and a step that only printed what it would do would pass while nothing changed.
#
# The command runs with bash -c and sees DNS_RECORD, DNS_TYPE, DNS_TARGET and DNS_TTL in its
# environment, e.g.:
#   gcloud dns record-sets update "$DNS_RECORD." --zone=omni --type="$DNS_TYPE" \
#     --ttl="$DNS_TTL" --rrdatas="$DNS_TARGET."
#
# "Update DNS if needed": with --lookup-cmd (or `getent` for A/AAAA records), a record that
# already resolves to the target is left alone and `changed=false` is reported, unless its TTL
# is above --ttl (then the update only lowers the TTL: what a preparation runbook does).
#
# How long clients keep the old answer is the OLD record's TTL, not the new one's: a resolver
# that cached it a moment before the change keeps it that long. With --ttl-cmd (prints the TTL
# in seconds of the record's current answer, sees DNS_RECORD and DNS_TYPE; e.g. `dig +noall
# +answer "$DNS_RECORD" "$DNS_TYPE" @<an authoritative server> | awk '{ print $2; exit }'`) it
# is read before the change and given out as old_ttl_s, with changed_at, for dns/check to bound
# the propagation wait by.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: update.sh --record NAME --target VALUE --command CMD [--type TYPE] [--ttl SECONDS]
                 [--lookup-cmd CMD] [--ttl-cmd CMD]

  --record NAME     e.g. api.omni.example.com
  --target VALUE    new value: an address for A/AAAA, a host name for CNAME
  --type TYPE       record type (default CNAME)
  --ttl SECONDS     (default 60)
  --command CMD     the site's update command (see above)
  --lookup-cmd CMD  prints the record's current value(s), one a line (default: getent for
                    A/AAAA; none for other types, which are then always updated)
  --ttl-cmd CMD     prints the TTL (seconds) of the record's current answer (default: none;
                    old_ttl_s is then empty and the propagation wait is not bounded by it)

outputs: changed (true|false), record, target, old_ttl_s, changed_at (epoch seconds)
EOF2
}

record=""
target=""
type="CNAME"
ttl=60
command_=""
lookup_cmd=""
ttl_cmd=""
parse_args --record=record --target=target --type=type --ttl=ttl --command=command_ \
  --lookup-cmd=lookup_cmd --ttl-cmd=ttl_cmd -- "$@"
[ -n "$record" ] || usage_error "--record is required (the dns_record variable)"
[ -n "$target" ] || usage_error "--target is required (the dns_failover_target variable)"
[[ $ttl =~ ^[0-9]+$ ]] || usage_error "--ttl must be a number of seconds"
type=${type^^}
# The site's command gets these in its environment, and its scripts use them in paths, API
# URLs and command lines (the sandbox's stand-in writes one file per record): a record that
# is not a DNS name (`../x`, `a;b`, `$(...)`) must not get that far.
dns_name_re='^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$'
[[ $record =~ $dns_name_re ]] && [ ${#record} -le 254 ] \
  || usage_error "--record: \`$record\` is not a DNS name (letters, digits, - and _ between dots): fix the dns_record variable"
[[ $type =~ ^[A-Z0-9]{1,10}$ ]] || usage_error "--type: \`$type\` is not a record type (A, AAAA, CNAME...)"
case "$type" in
  CNAME) [[ $target =~ $dns_name_re ]] \
    || usage_error "--target: \`$target\` is not a host name, which a CNAME points at: fix the dns_failover_target variable" ;;
  A) [[ $target =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] \
    || usage_error "--target: \`$target\` is not an IPv4 address, which an A record holds: fix the dns_failover_target variable" ;;
  AAAA) [[ $target =~ ^[0-9A-Fa-f:.]+$ ]] && [[ $target == *:* ]] \
    || usage_error "--target: \`$target\` is not an IPv6 address, which an AAAA record holds: fix the dns_failover_target variable" ;;
esac
export DNS_RECORD="$record" DNS_TYPE="$type" DNS_TARGET="$target" DNS_TTL="$ttl"

lookup() {
  if [ -n "$lookup_cmd" ]; then bash -c "$lookup_cmd"
  else
    case "$type" in
      A) getent ahostsv4 "$record" | awk '{ print $1 }' | sort -u ;;
      AAAA) getent ahostsv6 "$record" | awk '{ print $1 }' | sort -u ;;
      *) return 1 ;;
    esac
  fi
}
norm() { tr '[:upper:]' '[:lower:]' | sed 's/\.$//'; }

old_ttl=""
if [ -n "$ttl_cmd" ]; then
  old_ttl=$(bash -c "$ttl_cmd" 2>&1 | tr -d '[:space:]') || true
  [[ $old_ttl =~ ^[0-9]+$ ]] \
    || die "the TTL command printed '${old_ttl}', not a number of seconds: fix the dns_ttl_cmd variable (it sees \$DNS_RECORD, \$DNS_TYPE) before changing $record"
  echo "$record ($type) is served with a TTL of ${old_ttl}s: resolvers may keep its current answer that long after the change"
else
  warn "no TTL command: the old record's TTL is unknown, so the propagation wait cannot be bounded by it (set the dns_ttl_cmd variable)"
fi
finish() { # changed
  out changed "$1"; out record "$record"; out target "$target"
  out old_ttl_s "$old_ttl"; out changed_at "$(date +%s)"
}

if current=$(lookup 2>/dev/null) && [ -n "$current" ]; then
  if [ "$(printf '%s\n' "$current" | norm | sort -u)" = "$(printf '%s\n' "$target" | norm)" ]; then
    if [ -z "$old_ttl" ] || [ "$old_ttl" -le "$ttl" ]; then
      echo "$record ($type) already resolves to $target: no change needed"
      finish false
      exit 0
    fi
    echo "$record ($type) already resolves to $target, with a TTL of ${old_ttl}s: lowering it to ${ttl}s"
  else
    echo "$record ($type) currently resolves to: $(printf '%s' "$current" | tr '\n' ' ')"
  fi
fi

if [ -z "$command_" ]; then
  die "no DNS update command configured: set the dns_update_cmd variable (it sees \$DNS_RECORD, \$DNS_TYPE, \$DNS_TARGET, \$DNS_TTL), or update $record to $target by hand"
fi
echo "updating $record ($type, ttl $ttl) -> $target"
bash -c "$command_" || die "the DNS update command failed: $command_"
echo "DNS update submitted; propagation takes up to the old record's TTL${old_ttl:+ (${old_ttl}s)}"
finish true
