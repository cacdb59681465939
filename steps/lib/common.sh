# shellcheck shell=bash
# Helpers shared by the step scripts: messages, outputs, the command line, durations, backup
# checksums. Sourced, never run. Each step script sources it right after `set -euo pipefail`,
# by a path relative to the script itself, so that it works from any working directory:
#
#   # shellcheck source=../lib/common.sh
#   . "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"

# Messages name the script that was run ($0 is the script's, not this file's).
me=${0##*/}
die() { printf '%s: error: %s\n' "$me" "$*" >&2; exit 1; }
warn() { printf '%s: warning: %s\n' "$me" "$*" >&2; }
usage_error() { printf '%s: %s (see --help)\n' "$me" "$*" >&2; exit 2; }
# out KEY VALUE: one output of the step, for steps['<id>'].outputs.KEY.
out() { printf '%s=%s\n' "$1" "$2" >> "${RUNBOOK_OUTPUT:-/dev/null}"; }

# bool FLAG VALUE: prints VALUE when it is true or false; any other is a usage error.
bool() { case "$2" in true|false) printf '%s' "$2" ;; *) usage_error "$1 takes true or false (got '$2')" ;; esac; }

# parse_args SPEC... -- "$@": reads the script's command line into its variables, which keep
# their defaults when a flag is not given. Each SPEC names a flag and its variable:
#   --flag=var          takes a value: --flag VALUE sets $var
#   --flag=var:check    the same, the value checked by the function `check FLAG VALUE`, which
#                       prints it or ends with a usage error (e.g. bool)
#   --flag=var:set      takes no value: --flag sets $var to true
#   --flag=var:words    takes a value: its space-separated words are appended to the array $var
# -h/--help prints the script's usage and exits 0; a flag without its value or an unknown
# argument is a usage error (exit 2).
parse_args() {
  local -a _specs=() _words=()
  local _spec _var _kind _val
  while [ $# -gt 0 ] && [ "$1" != -- ]; do _specs+=("$1"); shift; done
  [ $# -eq 0 ] || shift
  while [ $# -gt 0 ]; do
    case "$1" in -h|--help) usage; exit 0 ;; esac
    _var=""
    for _spec in "${_specs[@]}"; do
      if [ "${_spec%%=*}" = "$1" ]; then _var=${_spec#*=}; break; fi
    done
    [ -n "$_var" ] || usage_error "unknown argument: $1"
    _kind=""
    if [[ $_var == *:* ]]; then _kind=${_var#*:}; _var=${_var%%:*}; fi
    if [ "$_kind" = set ]; then
      printf -v "$_var" '%s' true
      shift; continue
    fi
    [ $# -ge 2 ] || usage_error "$1 needs a value"
    case "$_kind" in
      "") printf -v "$_var" '%s' "$2" ;;
      words)
        read -r -a _words <<< "$2"
        eval "$_var+=(\${_words[@]+\"\${_words[@]}\"})" ;;
      *)
        _val=$("$_kind" "$1" "$2") || exit
        printf -v "$_var" '%s' "$_val" ;;
    esac
    shift 2
  done
}

# to_seconds DURATION: prints it in seconds; 1 for what is not one. Durations: 90, 90s, 15m,
# 1h, 1h30m, 2d.
to_seconds() {
  local s=$1 total=0 n u
  if [[ $s =~ ^[0-9]+$ ]]; then echo "$((10#$s))"; return 0; fi
  [[ $s =~ ^([0-9]+[smhd])+$ ]] || return 1
  while [[ $s =~ ^([0-9]+)([smhd])(.*)$ ]]; do
    n=$((10#${BASH_REMATCH[1]})); u=${BASH_REMATCH[2]}; s=${BASH_REMATCH[3]}
    case $u in s) total=$((total + n)) ;; m) total=$((total + n * 60)) ;;
               h) total=$((total + n * 3600)) ;; d) total=$((total + n * 86400)) ;; esac
  done
  echo "$total"
}

# duration FLAG VALUE: prints the seconds of the duration given to FLAG; what is not a
# duration is a usage error.
duration() { to_seconds "$2" || usage_error "$1: not a duration: '$2'"; }

# check_prefix PREFIX: a backup file name prefix, else a usage error about --prefix.
check_prefix() {
  [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || usage_error "--prefix must be letters, digits, _ . - (got '$1')"
}

# check_sidecar FILE ALLOW_UNVERIFIED: before a restore, FILE must match its FILE.sha256. Ends
# the script on a mismatch, and on a missing sidecar unless ALLOW_UNVERIFIED is true; then it
# returns 1, for the caller to warn that the restore is unverified.
check_sidecar() {
  local file=$1 expected actual
  if [ -s "$file.sha256" ]; then
    expected=$(cut -d' ' -f1 < "$file.sha256") || exit
    actual=$(sha256sum "$file" | cut -d' ' -f1) || exit
    [ "$expected" = "$actual" ] || die "checksum mismatch for $file: expected $expected, got $actual; refusing to restore a damaged backup"
    echo "checksum ok: $actual"
  elif [ "$2" = true ]; then
    return 1
  else
    die "no $file.sha256 beside the backup: cannot verify it (pass --allow-unverified true to restore anyway)"
  fi
}
