#!/usr/bin/env bash
# Run one site-specific command (isolate systems, revoke tokens, rotate credentials, ...)
# that the runbook cannot know in advance: it comes from an environment variable of the
# runbook. An empty command is an error that names the variable to set, never a silent
# success: a step that "revoked all tokens" by doing nothing is worse than a failed one.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() {
  cat <<'EOF2'
usage: command.sh --what TEXT --command CMD [--var NAME]

  --what TEXT     what the command does, for messages ("revoke all API keys and tokens")
  --command CMD   the shell command (run with bash -c); its stdout may write key=value
                  lines to $RUNBOOK_OUTPUT like any step
  --var NAME      the runbook variable that holds the command, named in the error when empty

outputs: whatever the command writes
EOF2
}

what=""
command_=""
var=""
parse_args --what=what --command=command_ --var=var -- "$@"
[ -n "$what" ] || usage_error "--what is required"
if [ -z "$command_" ]; then
  die "no command configured to $what${var:+: set the variable '$var' in the environment file or with --var $var=...}"
fi
echo "$what: $command_"
bash -c "$command_" || die "failed to $what (exit $?): $command_"
echo "done: $what"
