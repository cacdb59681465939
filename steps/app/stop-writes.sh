#!/usr/bin/env bash
# Stop application writes: run the site's command for it (e.g. switch the API to read-only),
# or create a maintenance flag file that the application checks. One of the two must be
# configured: a runbook that believes writes are stopped when they are not would restore a
# database under live traffic.
set -euo pipefail

me=${0##*/}
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$me" "$*" >&2; exit 2; }
out() { printf '%s=%s\n' "$1" "$2" >> "${RUNBOOK_OUTPUT:-/dev/null}"; }

usage() {
  cat <<'EOF2'
usage: stop-writes.sh (--command CMD | --flag-file PATH) [--reason TEXT]

  --command CMD     shell command that stops writes (run with bash -c)
  --flag-file PATH  maintenance flag file to create (the application refuses writes while
                    it exists)
  --reason TEXT     written into the flag file

outputs: mode (command|flag), flag_file
EOF2
}

command_=""
flag_file=""
reason="disaster recovery in progress"
while [ $# -gt 0 ]; do
  case "$1" in
    --command) [ $# -ge 2 ] || usage_error "$1 needs a value"; command_=$2; shift 2 ;;
    --flag-file) [ $# -ge 2 ] || usage_error "$1 needs a value"; flag_file=$2; shift 2 ;;
    --reason) [ $# -ge 2 ] || usage_error "$1 needs a value"; reason=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ -z "$command_" ] && [ -z "$flag_file" ]; then
  die "no way to stop writes is configured: set the stop_writes_cmd or maintenance_flag variable (--command or --flag-file)"
fi

if [ -n "$command_" ]; then
  echo "stopping writes: $command_"
  bash -c "$command_" || die "the stop-writes command failed: $command_"
  out mode command
fi
if [ -n "$flag_file" ]; then
  mkdir -p "$(dirname -- "$flag_file")" || die "cannot create the folder of $flag_file"
  printf 'since=%s\nreason=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$reason" > "$flag_file.tmp"
  mv -f -- "$flag_file.tmp" "$flag_file"
  echo "maintenance flag set: $flag_file"
  [ -n "$command_" ] || out mode flag
  out flag_file "$flag_file"
fi
echo "application writes stopped"
