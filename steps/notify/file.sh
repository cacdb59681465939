#!/usr/bin/env bash
# Append one line to a log file: "<UTC time> [<channel>] <message>". Newlines in the message
# are written as \n so that one notification is one line. Appends are serialised with flock,
# so parallel steps and escalations do not interleave.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: file.sh --file PATH --message TEXT [--channel NAME] [--prefix TEXT]

outputs: file
EOF2
}

file=""
message=""
channel="log"
prefix=""
parse_args --file=file --message=message --channel=channel --prefix=prefix -- "$@"
[ -n "$file" ] || usage_error "--file is required"
[ -n "$message" ] || usage_error "--message is required"

text="$prefix$message"
text=${text//$'\r'/}
text=${text//$'\n'/\\n}
mkdir -p "$(dirname -- "$file")" || die "cannot create the folder of $file"
line="$(date -u +%Y-%m-%dT%H:%M:%SZ) [$channel] $text"
{
  if command -v flock >/dev/null; then flock 9; fi
  printf '%s\n' "$line" >&9
} 9>>"$file" || die "cannot append to $file"
echo "logged to $file: [$channel] $text"
out file "$file"
