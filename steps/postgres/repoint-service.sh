#!/usr/bin/env bash
# Re-point a libpq service at another server after a failover: the clients' service (their
# connection path) and the backups' primary_service, which otherwise keep naming the old,
# fenced primary (backups then fail, or worse, read a server that came back).
#
# Either rewrites the host, hostaddr and port of the [--service] section of a pg_service.conf
# to those of the [--to] section (a temporary file beside it, then a rename: a client reading
# the file at that moment sees the old one or the new one, never half of each), or runs the
# site's command (--command: a pooler's or a service registry's reconfiguration, a DNS change),
# which sees REPOINT_SERVICE and REPOINT_TO. Either way it then checks, within --within, that a
# connection through --service reaches the same server as one through --to.
#
# Safe to re-run: a service that already names the target's host and port is left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/pg.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"

usage() {
  cat <<'EOF2'
usage: repoint-service.sh --service NAME --to NAME [--file PATH] [--command CMD]
                          [--within DURATION]

  --service NAME   the service to re-point (e.g. the clients' `omni`)
  --to NAME        the service naming the new primary, whose host and port it takes
  --file PATH      the pg_service.conf to rewrite (default: $PGSERVICEFILE, else
                   ~/.pg_service.conf)
  --command CMD    instead of rewriting a file: the site's command (sees $REPOINT_SERVICE,
                   $REPOINT_TO)
  --within DUR     how long the check may wait for the change to take (default 60s)

outputs: changed (true|false), host, port
EOF2
}

service=""
to=""
file=""
command_=""
within="60s"
parse_args --service=service --to=to --file=file --command=command_ --within=within -- "$@"
name_re='^[A-Za-z0-9_][A-Za-z0-9_.-]*$'
[[ $service =~ $name_re ]] || usage_error "--service must name a libpq service (got '$service')"
[[ $to =~ $name_re ]] || usage_error "--to must name a libpq service (got '$to')"
[ "$service" != "$to" ] || usage_error "--service and --to are the same service ($to)"
within_s=$(duration --within "$within")
pg_need psql

# section_value FILE SECTION KEY: the key's value in that section (empty when missing).
section_value() {
  awk -v sec="[$2]" -v key="$3" '
    /^[ \t]*\[/ { gsub(/[ \t]/, ""); in_sec = ($0 == sec); next }
    in_sec && $0 ~ "^[ \t]*" key "[ \t]*=" { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]+$/, ""); v = $0 }
    END { print v }' "$1"
}

changed=false
if [ -n "$command_" ]; then
  export REPOINT_SERVICE="$service" REPOINT_TO="$to"
  echo "re-pointing $service at $to: $command_"
  bash -c "$command_" || die "the re-point command failed: $command_"
  changed=true
  host="" port=""
else
  file=${file:-${PGSERVICEFILE:-$HOME/.pg_service.conf}}
  [ -f "$file" ] || die "no service file $file: give --file, set PGSERVICEFILE, or set the site's re-point command"
  # Two services re-pointed at once (the clients' and the backups') each read, rewrite and
  # rename the same file: unlocked, the second rename puts back what the first changed. The
  # lock is on the folder, since the file itself is replaced.
  exec 9< "$(dirname -- "$file")"
  flock -w 30 9 || die "$file stayed locked for 30s by another re-pointing"
  # Compared as text, not as a pattern: a `.` in a service name matches only a `.`.
  has_section() { awk -v s="[$2]" '{ gsub(/^[ \t]+|[ \t]+$/, "") } $0 == s { found = 1 } END { exit !found }' "$1"; }
  has_section "$file" "$service" || die "$file has no [$service] section: name the service to re-point (or add it)"
  has_section "$file" "$to" || die "$file has no [$to] section: name the service of the new primary"
  host=$(section_value "$file" "$to" host)
  hostaddr=$(section_value "$file" "$to" hostaddr)
  port=$(section_value "$file" "$to" port)
  [ -n "$host$hostaddr" ] || die "[$to] in $file names no host or hostaddr: nothing to point $service at"
  if [ "$(section_value "$file" "$service" host)" = "$host" ] \
     && [ "$(section_value "$file" "$service" hostaddr)" = "$hostaddr" ] \
     && [ "$(section_value "$file" "$service" port)" = "$port" ]; then
    echo "[$service] in $file already names ${host:-$hostaddr}:${port:-default}: no change"
  else
    tmp=$(mktemp "$file.XXXXXX")
    trap 'rm -f -- "$tmp"' EXIT
    # host, hostaddr and port lines of the section are dropped and the target's written right
    # after its header: every other line (user, dbname, sslmode, comments) stays as it was.
    awk -v sec="[$service]" -v host="$host" -v hostaddr="$hostaddr" -v port="$port" '
      /^[ \t]*\[/ {
        s = $0; gsub(/[ \t]/, "", s); in_sec = (s == sec); print
        if (in_sec) {
          if (host != "") print "host=" host
          if (hostaddr != "") print "hostaddr=" hostaddr
          if (port != "") print "port=" port
        }
        next
      }
      in_sec && /^[ \t]*(host|hostaddr|port)[ \t]*=/ { next }
      { print }' "$file" > "$tmp"
    chmod --reference="$file" -- "$tmp"
    chown --reference="$file" -- "$tmp" 2>/dev/null || true
    mv -f -- "$tmp" "$file"
    trap - EXIT
    changed=true
    echo "[$service] in $file now names ${host:-$hostaddr}:${port:-default} (as [$to] does)"
  fi
  exec 9<&-
fi

# Which server a service reaches: address, port and start time (a promoted standby shares its
# old primary's system identifier, so that cannot tell them apart).
whois() { PGSERVICE=$1 PGCONNECT_TIMEOUT=10 psql -w -X -q -tA --dbname=postgres -c \
  "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port') || ' started ' || pg_postmaster_start_time()" 2>&1; }
want=$(whois "$to") || die "cannot connect through $to: $want"
deadline=$(( $(date +%s) + within_s ))
while :; do
  got=$(whois "$service") && [ "$got" = "$want" ] && break
  [ "$(date +%s)" -lt "$deadline" ] \
    || die "$service still does not reach the server $to reaches ($want) after ${within_s}s; it reaches: $got"
  sleep 2
done
echo "$service reaches the same server as $to: $want"
out changed "$changed"
out host "$host"
out port "$port"
