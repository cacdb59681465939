#!/usr/bin/env bash
# After a failover: protect the new primary with a standby again. Until one streams from it, a
# second failure loses every write since the last WAL segment that reached the archive.
#
# With --command (the site's way to make a standby: a rebuild of the old primary from the new
# one with pg_basebackup -R, a new instance from a template), runs it, then waits until
# pg_stat_replication on the new primary shows a standby streaming. Without one, or when it
# fails or no standby streams in time, the step says what is unprotected, pages for it
# (steps/notify/webhook.sh on --page-channel) and fails: runbooks let it fail and continue, so
# the report shows it as "failed, continued" instead of hiding it in a success.
#
# Safe to re-run: a primary that already has a streaming standby is left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: new-standby.sh [--service NAME] [--command CMD] [--within DURATION]
                      [--page-channel NAME] [--page-url-env VAR] [--page-required true|false]
                      [--page-log FILE]

  --service NAME        libpq service of the new primary (default: the PG* variables)
  --command CMD         the site's command that starts a standby of it (sees
                        $STANDBY_PRIMARY_SERVICE); empty: there is none, page instead
  --within DUR          how long to wait for the standby to stream (default 10m)
  --page-channel NAME   the channel paged when no standby streams (default devops-lead)
  --page-url-env VAR    the variable holding that channel's webhook URL
                        (default DEVOPS_LEAD_WEBHOOK_URL)
  --page-required BOOL  fail the page when that variable is unset (default true)
  --page-log FILE       also append the page to this file

outputs: standbys (streaming), standby (the first one's application_name@address)
EOF2
}

service=""
command_=""
within="10m"
page_channel="devops-lead"
page_url_env="DEVOPS_LEAD_WEBHOOK_URL"
page_required=true
page_log=""
parse_args --service=service --command=command_ --within=within --page-channel=page_channel \
  --page-url-env=page_url_env --page-required=page_required:bool --page-log=page_log -- "$@"
within_s=$(duration --within "$within")
pg_service "$service"
pg_need psql

q() { psql -w -X -q -tA -F ' ' --dbname=postgres -c "$1"; }
target=$(pg_target)

streaming() { q "SELECT count(*), coalesce(min(application_name || '@' || coalesce(host(client_addr), 'local')), '')
                   FROM pg_stat_replication WHERE state = 'streaming'"; }

[ "$(q 'SELECT pg_is_in_recovery()')" = f ] \
  || die "$target is not a primary (it is in recovery): give the new primary's service"

# unprotected REASON: says what is at risk, pages for it, and fails the step.
unprotected() {
  local wal msg
  wal=$(q "SELECT coalesce(last_archived_wal || ' at ' || last_archived_time, 'none yet') FROM pg_stat_archiver" 2>/dev/null || echo unknown)
  msg="UNPROTECTED: the new primary ($target) has no standby ($1). A second failure now loses every write since the last archived WAL segment ($wal). Start a standby of it (pg_basebackup -R from it), or set the standby_cmd variable for next time."
  echo "$msg"
  "$(dirname -- "${BASH_SOURCE[0]}")/../notify/webhook.sh" --message "$msg" --channel "$page_channel" \
    --url-env "$page_url_env" --required "$page_required" --log "$page_log" \
    || warn "the page to $page_channel failed too: tell them by other means"
  out standbys 0
  die "no standby streams from $target ($1); $page_channel paged"
}

read -r n first < <(streaming)
if [ "$n" -gt 0 ]; then
  echo "$target already has $n streaming standby(s) ($first): protected"
  out standbys "$n"; out standby "$first"
  exit 0
fi

[ -n "$command_" ] || unprotected "no standby_cmd is configured"
export STANDBY_PRIMARY_SERVICE="$service"
echo "starting a standby of $target: $command_"
bash -c "$command_" || unprotected "the standby command failed: $command_"

deadline=$(( $(date +%s) + within_s ))
while :; do
  read -r n first < <(streaming)
  [ "$n" -gt 0 ] && break
  [ "$(date +%s)" -lt "$deadline" ] || unprotected "none streaming ${within_s}s after the standby command"
  sleep 2
done
echo "$target is protected: $n standby(s) streaming ($first)"
out standbys "$n"
out standby "$first"
