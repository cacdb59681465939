#!/usr/bin/env bash
# Check that a DNS record resolves to the expected target, as seen from here. Meant to be
# polled (`poll: { every: 30s, within: ... }`) while a change propagates: exits 0 when it
# resolves as expected, 1 otherwise.
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

outputs: resolved (the value(s) seen, space-separated)
EOF2
}

record=""
target=""
type="CNAME"
lookup_cmd=""
parse_args --record=record --target=target --type=type --lookup-cmd=lookup_cmd -- "$@"
[ -n "$record" ] || usage_error "--record is required"
[ -n "$target" ] || usage_error "--target is required"
type=${type^^}
export DNS_RECORD="$record" DNS_TYPE="$type"

if [ -n "$lookup_cmd" ]; then
  current=$(bash -c "$lookup_cmd" 2>&1) || die "the lookup command failed: $current"
else
  case "$type" in
    A) current=$(getent ahostsv4 "$record" | awk '{ print $1 }' | sort -u || true) ;;
    AAAA) current=$(getent ahostsv6 "$record" | awk '{ print $1 }' | sort -u || true) ;;
    *) die "checking a $type record needs a lookup command: set the dns_lookup_cmd variable (e.g. dig +short \"\$DNS_TYPE\" \"\$DNS_RECORD\")" ;;
  esac
fi
norm() { tr '[:upper:]' '[:lower:]' | sed 's/\.$//' | grep -v '^$' | sort -u; }
seen=$(printf '%s\n' "$current" | norm | tr '\n' ' ' | sed 's/ $//')
out resolved "$seen"
if [ "$(printf '%s\n' "$current" | norm)" = "$(printf '%s\n' "$target" | norm)" ]; then
  echo "$record ($type) resolves to $target"
  exit 0
fi
echo "$record ($type) resolves to '${seen:-nothing}', not yet $target" >&2
exit 1
