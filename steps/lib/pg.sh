# shellcheck shell=bash
# Helpers shared by the postgres steps. Sourced after common.sh (they use die):
#
#   # shellcheck source=../lib/pg.sh
#   . "$(dirname -- "${BASH_SOURCE[0]}")/../lib/pg.sh"
#
# Connection: libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD or PGPASSFILE, PGSERVICE).

# pg_service NAME: connect through the libpq service NAME (pg_service.conf), when one is given;
# else the PG* variables apply.
pg_service() { [ -z "$1" ] || export PGSERVICE="$1"; }

# pg_need TOOL...: each must be in PATH.
pg_need() {
  local bin
  for bin in "$@"; do
    command -v "$bin" >/dev/null || die "$bin not found in PATH (install the PostgreSQL client tools)"
  done
}

# pg_target: the server as messages name it: its service, else host:port.
pg_target() {
  if [ -n "${PGSERVICE:-}" ]; then printf 'service %s' "$PGSERVICE"
  else printf '%s:%s' "${PGHOST:-local socket}" "${PGPORT:-5432}"; fi
}
