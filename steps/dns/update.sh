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
# already resolves to the target is left alone and `changed=false` is reported.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: update.sh --record NAME --target VALUE --command CMD [--type TYPE] [--ttl SECONDS]
                 [--lookup-cmd CMD]

  --record NAME     e.g. api.omni.example.com
  --target VALUE    new value: an address for A/AAAA, a host name for CNAME
  --type TYPE       record type (default CNAME)
  --ttl SECONDS     (default 60)
  --command CMD     the site's update command (see above)
  --lookup-cmd CMD  prints the record's current value(s), one a line (default: getent for
                    A/AAAA; none for other types, which are then always updated)

outputs: changed (true|false), record, target
EOF2
}

record=""
target=""
type="CNAME"
ttl=60
command_=""
lookup_cmd=""
parse_args --record=record --target=target --type=type --ttl=ttl --command=command_ \
  --lookup-cmd=lookup_cmd -- "$@"
[ -n "$record" ] || usage_error "--record is required (the dns_record variable)"
[ -n "$target" ] || usage_error "--target is required (the dns_failover_target variable)"
[[ $ttl =~ ^[0-9]+$ ]] || usage_error "--ttl must be a number of seconds"
type=${type^^}
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

if current=$(lookup 2>/dev/null) && [ -n "$current" ]; then
  if [ "$(printf '%s\n' "$current" | norm | sort -u)" = "$(printf '%s\n' "$target" | norm)" ]; then
    echo "$record ($type) already resolves to $target: no change needed"
    out changed false; out record "$record"; out target "$target"
    exit 0
  fi
  echo "$record ($type) currently resolves to: $(printf '%s' "$current" | tr '\n' ' ')"
fi

if [ -z "$command_" ]; then
  die "no DNS update command configured: set the dns_update_cmd variable (it sees \$DNS_RECORD, \$DNS_TYPE, \$DNS_TARGET, \$DNS_TTL), or update $record to $target by hand"
fi
echo "updating $record ($type, ttl $ttl) -> $target"
bash -c "$command_" || die "the DNS update command failed: $command_"
echo "DNS update submitted; propagation takes up to the old record's TTL"
out changed true
out record "$record"
out target "$target"
