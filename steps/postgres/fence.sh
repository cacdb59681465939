#!/usr/bin/env bash
# Fence the old primary before a standby is promoted, then prove it: a promotion while the old
# primary still takes writes is a split brain (two primaries, diverging data). repmgr's
# "standby promote" expects the primary stopped first; GitLab Geo's disaster recovery says to
# "permanently disable the primary site … to avoid a split-brain situation".
#
# Strategies (--strategy):
#   stop     the site's stop command (--stop-cmd: systemctl, pg_ctl, the cloud API), then
#            standby.signal in the old primary's data directory (--data-dir, where this step
#            can reach it), so that a restart brings it back read-only, never as a primary;
#   command  the site's fence command (--fence-cmd: a cloud API stop, a firewall rule, a
#            load-balancer drain);
#   check    do nothing, only prove it is fenced (fails when it takes writes);
#   probe    do nothing, only say what it is now (never fails): for a gate's prompt. With
#            --ready-for stop|command (a preparation runbook), it fails instead unless that
#            fence could run now: its command is set and found, the data directory is there,
#            and the server answers through the service the fence's check will use.
# With --only-if-writable true, stop and command act only when the check finds it writable: an
# automatic failover may already have made the old primary a standby, which must not be stopped.
# With --successor SERVICE (the clients' service after an automatic failover), they act on a
# writable old primary only when SERVICE reaches another server that takes writes: if no
# failover happened, the old primary is the only one, and fencing it stops the service.
#
# Then ALWAYS the check, through the old primary's own service: it refuses writes (it is in
# recovery, and a write in a rolled-back transaction fails) or it cannot be reached at all.
# Unreachable is not proof: a server in a region that is gone may come back, writable, when the
# region does. The step says so and reports fenced=unreachable; fence it at the network or
# cloud level (a firewall rule, the instance stopped) before the region returns.
#
# Connection: libpq environment, usually the old primary's service (--service).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: fence.sh --strategy stop|command|check|probe [--service NAME] [--stop-cmd CMD]
                [--data-dir DIR] [--fence-cmd CMD] [--only-if-writable true|false]
                [--connect-timeout SECONDS] [--settle SECONDS] [--ready-for stop|command]
                [--successor NAME]

  --strategy S           stop, command, check or probe (see the script's header)
  --service NAME         libpq service of the OLD primary (default: the PG* variables)
  --stop-cmd CMD         stop: the site's command that stops the old primary (run by bash -c)
  --data-dir DIR         stop: the old primary's data directory, for standby.signal (empty:
                         none is written, and a restart may bring it back writable)
  --fence-cmd CMD        command: the site's fence command (run by bash -c)
  --only-if-writable B   act only when the old primary takes writes (default false)
  --connect-timeout S    seconds to wait for a connection (default 10)
  --settle S             seconds to wait for a server starting up or shutting down (its answer
                         is no evidence either way) before failing (default 30)
  --ready-for S          probe: fail unless the stop or command fence could run now
  --successor NAME       libpq service of the server that took over (e.g. the clients'):
                         a writable old primary is fenced only when NAME reaches another
                         primary; probe reports what NAME reaches

outputs: state (writable|read-only|unreachable: as found before acting), fenced
(stopped|read-only|unreachable; none with probe), how; with --successor: successor
(primary|standby|unreachable|the-old-primary)
EOF2
}

strategy=""
service=""
stop_cmd=""
data_dir=""
fence_cmd=""
only_if_writable=false
connect_timeout=10
settle_s=30
ready_for=""
successor=""
parse_args --strategy=strategy --service=service --stop-cmd=stop_cmd --data-dir=data_dir \
  --fence-cmd=fence_cmd --only-if-writable=only_if_writable:bool \
  --connect-timeout=connect_timeout --settle=settle_s --ready-for=ready_for --successor=successor -- "$@"
case "$strategy" in
  stop) [ -n "$stop_cmd" ] || usage_error "--strategy stop needs --stop-cmd (the fence_stop_cmd variable)" ;;
  command) [ -n "$fence_cmd" ] || usage_error "--strategy command needs --fence-cmd (the fence_cmd variable)" ;;
  check|probe) ;;
  "") usage_error "--strategy is required: stop, command, check or probe (the fence_strategy variable)" ;;
  *) usage_error "--strategy must be stop, command, check or probe (got '$strategy')" ;;
esac
case "$ready_for" in
  "") ;;
  stop|command) [ "$strategy" = probe ] || usage_error "--ready-for goes with --strategy probe" ;;
  *) usage_error "--ready-for must be stop or command (got '$ready_for')" ;;
esac
[[ $connect_timeout =~ ^[1-9][0-9]*$ ]] || usage_error "--connect-timeout must be a positive number of seconds (got '$connect_timeout')"
[[ $settle_s =~ ^[1-9][0-9]*$ ]] || usage_error "--settle must be a positive number of seconds (got '$settle_s')"
if [ "$strategy" = stop ] && [ -n "$data_dir" ] && [ ! -d "$data_dir" ]; then
  die "--data-dir $data_dir is not a directory: give the old primary's data directory as this step sees it (the fence_data_dir variable), or leave it empty"
fi
if [ -n "$successor" ]; then
  [[ $successor =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || usage_error "--successor must name a libpq service (got '$successor')"
  [ "$successor" != "$service" ] || usage_error "--successor and --service are the same service ($service)"
fi
pg_service "$service"
pg_need psql
export PGCONNECT_TIMEOUT="$connect_timeout"
target=$(pg_target)

# state: writable, read-only or unreachable, with the evidence in $evidence. A connection error
# that is not "nobody answers" (a wrong password, a missing database) says nothing about
# whether it takes writes: that ends the step rather than pass for unreachable.
probe() {
  local err rec
  evidence=""
  if ! rec=$(psql -w -X -q -tA --dbname=postgres -c 'SELECT pg_is_in_recovery()' 2>&1); then
    err=$(printf '%s' "$rec" | tr '\n' ' ')
    # A server starting up, shutting down or in crash recovery is not down: in a moment it
    # takes writes again (a service manager restarting what the fence stopped, say). Such an
    # answer is no evidence either way; `settle` waits for one that is.
    if [[ $err =~ the\ database\ system\ is\ (shutting\ down|starting\ up|not\ accepting\ connections|in\ recovery\ mode|not\ yet\ accepting\ connections) ]]; then
      state=unsettled
      evidence="$err"
      return 0
    fi
    if [[ $err =~ (Connection\ refused|timeout\ expired|could\ not\ translate\ host|No\ route\ to\ host|Network\ is\ unreachable|No\ such\ file\ or\ directory|server\ closed\ the\ connection) ]]; then
      state=unreachable
      evidence="no connection: $err"
      return 0
    fi
    die "cannot tell whether $target takes writes: $err; fix the connection (the old primary's service) or fence it by hand and run with --strategy check"
  fi
  if [ "$rec" = f ]; then
    # Not in recovery is a primary: default_transaction_read_only would only ask clients to
    # behave, so nothing short of recovery counts as refusing writes.
    state=writable
    evidence="pg_is_in_recovery() is false"
    return 0
  fi
  if err=$(psql -w -X -q -tA --dbname=postgres -v ON_ERROR_STOP=1 \
      -c 'BEGIN' -c 'CREATE TEMP TABLE runbook_fence_probe (x int)' -c 'ROLLBACK' 2>&1); then
    state=writable
    evidence="in recovery, yet a write in a rolled-back transaction succeeded"
    return 0
  fi
  state=read-only
  evidence="in recovery; a write was refused: $(printf '%s' "$err" | tr '\n' ' ' | sed 's/^psql:[^:]*: //')"
}

# settle: probe until the answer is evidence (writable, read-only or nobody answers), for up to
# --settle seconds; a server still starting up or shutting down then stops the step: it cannot
# be judged.
settle() {
  local i
  for i in $(seq 1 "$settle_s"); do
    probe
    [ "$state" = unsettled ] || return 0
    [ "$i" = 1 ] && echo "$target is changing state ($evidence): waiting for it to settle"
    sleep 1
  done
  die "$target is still starting up or shutting down after ${settle_s}s ($evidence): whether it takes writes cannot be told; stop it for good (or cut it off at the network) and run this step again"
}

# whois: which server the connection reaches and whether it takes writes. A promoted standby
# shares its old primary's system identifier, so address, port and start time tell them apart.
whois() { psql -w -X -q -tA --dbname=postgres -c "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port') || ' started ' || pg_postmaster_start_time() || ' ' || CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END" 2>&1; }

settle
before=$state
echo "$target: $state ($evidence)"
out state "$before"

# successor_state: what --successor reaches, in $successor_state, with the evidence in
# $successor_evidence. Read before the old primary is acted on (while it still answers).
successor_state=""
if [ -n "$successor" ]; then
  old_id=""
  [ "$before" = unreachable ] || old_id=$(whois) || old_id=""
  if new_id=$(PGSERVICE=$successor whois); then
    if [ -n "$old_id" ] && [ "${new_id% *}" = "${old_id% *}" ]; then successor_state=the-old-primary
    else successor_state=${new_id##* }; fi
    successor_evidence="service $successor reaches ${new_id% *}"
  else
    successor_state=unreachable
    successor_evidence="service $successor: $(printf '%s' "$new_id" | tr '\n' ' ')"
  fi
  echo "successor: $successor_state ($successor_evidence)"
  out successor "$successor_state"
fi
# found CMD: the program the command line starts is there (a path, or in PATH).
found() { local first; read -r first _ <<< "$1"; [ -n "$first" ] && type -P -- "$first" >/dev/null; }
if [ "$strategy" = probe ]; then
  [ "$state" = unreachable ] && echo "unreachable: a fence cannot be checked on it; it may come back writable when its region does"
  case "$ready_for" in
    stop)
      [ -n "$stop_cmd" ] || die "no stop command: set the fence_stop_cmd variable"
      found "$stop_cmd" || die "the stop command's program is not found: $stop_cmd (fix the fence_stop_cmd variable)"
      if [ -z "$data_dir" ]; then warn "no fence_data_dir: the fence cannot keep a restarted old primary read-only"; fi ;;
    command)
      [ -n "$fence_cmd" ] || die "no fence command: set the fence_cmd variable"
      found "$fence_cmd" || die "the fence command's program is not found: $fence_cmd (fix the fence_cmd variable)" ;;
  esac
  if [ -n "$ready_for" ]; then
    [ "$state" != unreachable ] || die "$target cannot be reached now: in a failover the fence could not prove anything through it; fix the service"
    echo "the $ready_for fence could run now: its command is found and $target answers"
  fi
  out fenced none
  out how "probe only: nothing done"
  exit 0
fi

how="checked only"
act=true
[ "$strategy" = check ] && act=false
if $act && $only_if_writable && [ "$before" != writable ]; then
  act=false
  how="nothing to do: already $before"
fi
if $act && [ -n "$successor" ] && [ "$before" = writable ] && [ "$successor_state" != primary ]; then
  case "$successor_state" in
    the-old-primary) why="it reaches this very server" ;;
    standby) why="it reaches a standby: nothing was promoted" ;;
    *) why="it cannot be reached" ;;
  esac
  die "no failover happened that $successor shows ($why; $successor_evidence): $target is the only primary, and fencing it would leave none; nothing was done. Promote the standby first (the region-failure runbook), or re-point $successor at the new primary, then run this step again"
fi
acted_ok=false
if $act; then
  case "$strategy" in
    stop)
      echo "stopping $target: $stop_cmd"
      if bash -c "$stop_cmd"; then acted_ok=true; how="stopped ($stop_cmd)"
      else warn "the stop command failed: $stop_cmd"; how="stop command failed"; fi
      if [ -n "$data_dir" ]; then
        # Even after a failed stop: if it is down and comes back, it comes back as a standby.
        touch -- "$data_dir/standby.signal"
        chown --reference="$data_dir" -- "$data_dir/standby.signal"
        echo "wrote $data_dir/standby.signal: a restart brings it back read-only"
        how="$how; standby.signal in $data_dir"
      else
        warn "no --data-dir: nothing keeps the old primary from coming back writable if it is restarted (set the fence_data_dir variable, or fence it with a site command)"
      fi
      ;;
    command)
      echo "fencing $target: $fence_cmd"
      if bash -c "$fence_cmd"; then acted_ok=true; how="fence command ($fence_cmd)"
      else warn "the fence command failed: $fence_cmd"; how="fence command failed"; fi
      ;;
  esac
fi

settle
echo "$target after the fence: $state ($evidence)"
case "$state" in
  writable)
    die "$target still takes writes ($evidence): promoting now would make two primaries; fence it by hand (stop it, or cut it off at the network) and run this step again" ;;
  read-only)
    fenced=read-only ;;
  unreachable)
    if $acted_ok; then fenced=stopped
    else
      fenced=unreachable
      warn "$target cannot be reached, so the fence is not proven: it may come back writable when its region does; fence it at the network or cloud level (firewall, instance stopped) before then"
    fi ;;
esac
echo "fenced: $fenced ($how)"
out fenced "$fenced"
out how "$how"
