#!/usr/bin/env bash
# Append one line to a log file: "<UTC time> [<channel>] <message>". Newlines in the message
# are written as \n so that one notification is one line. Appends are serialised with flock,
# so parallel steps and escalations do not interleave.
set -euo pipefail

me=${0##*/}
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$me" "$*" >&2; exit 2; }
out() { printf '%s=%s\n' "$1" "$2" >> "${RUNBOOK_OUTPUT:-/dev/null}"; }

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
while [ $# -gt 0 ]; do
  case "$1" in
    --file) [ $# -ge 2 ] || usage_error "$1 needs a value"; file=$2; shift 2 ;;
    --message) [ $# -ge 2 ] || usage_error "$1 needs a value"; message=$2; shift 2 ;;
    --channel) [ $# -ge 2 ] || usage_error "$1 needs a value"; channel=$2; shift 2 ;;
    --prefix) [ $# -ge 2 ] || usage_error "$1 needs a value"; prefix=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
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
