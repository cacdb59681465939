#!/usr/bin/env bash
# Stop application writes: run the site's command for it (e.g. switch the API to read-only),
# or create a maintenance flag file that the application checks. One of the two must be
# configured: a runbook that believes writes are stopped when they are not would restore a
# database under live traffic.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

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
parse_args --command=command_ --flag-file=flag_file --reason=reason -- "$@"
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
