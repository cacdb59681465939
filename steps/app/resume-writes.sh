#!/usr/bin/env bash
# Resume application writes: run the site's command for it, or remove the maintenance flag
# file that app/stop-writes created. Fails when neither is configured.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: resume-writes.sh (--command CMD | --flag-file PATH)

  --command CMD     shell command that resumes writes (run with bash -c)
  --flag-file PATH  maintenance flag file to remove

outputs: mode (command|flag)
EOF2
}

command_=""
flag_file=""
parse_args --command=command_ --flag-file=flag_file -- "$@"
if [ -z "$command_" ] && [ -z "$flag_file" ]; then
  die "no way to resume writes is configured: set the resume_writes_cmd or maintenance_flag variable (--command or --flag-file)"
fi

if [ -n "$command_" ]; then
  echo "resuming writes: $command_"
  bash -c "$command_" || die "the resume-writes command failed: $command_"
  out mode command
fi
if [ -n "$flag_file" ]; then
  if [ -e "$flag_file" ]; then
    rm -f -- "$flag_file" || die "cannot remove $flag_file"
    echo "maintenance flag removed: $flag_file"
  else
    echo "maintenance flag $flag_file was not set"
  fi
  [ -n "$command_" ] || out mode flag
fi
echo "application writes resumed"
