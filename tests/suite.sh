#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it is missing (as
# root, from Debian's packages), starts the sandbox (PostgreSQL and Redis on loopback, see
# examples/sandbox/up.sh) and an sshd on 127.0.0.1 with a generated host key and an
# authorized key, runs every test, and stops everything it started — on failure too.
#
#   tests/suite.sh            # all tests
#   tests/suite.sh --test it run:: # extra arguments go to `cargo test` (here: the run module)
#
# Tests that need a server read its address from the environment set here, and fail (never
# skip) when it is missing.
set -euo pipefail
cd "$(dirname -- "$0")/.."
root=$(pwd)

need=()
have() { command -v "$1" >/dev/null 2>&1; }
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || have pg_ctl || need+=(postgresql)
have psql || need+=(postgresql-client)
have redis-server || need+=(redis-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
have ssh || need+=(openssh-client)
have rclone || need+=(rclone)
have curl || need+=(curl)
have chromium || need+=(chromium)
have python3 || need+=(python3)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "suite: installing ${need[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
  else
    echo "suite: missing ${need[*]}: install them (or run this as root, which installs them)" >&2
    exit 1
  fi
fi

ssh_dir=$(mktemp -d)
sshd_pid=""
summary=""
cleanup() {
  local rc=$?
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
  examples/sandbox/down.sh >&2 || true
  rm -rf "$ssh_dir"
  # The suite's closing line comes last, after the services have stopped.
  [ -z "$summary" ] || echo "$summary"
  exit "$rc"
}
trap cleanup EXIT INT TERM

eval "$(examples/sandbox/up.sh)"

# An sshd on loopback, for the `on:` tests: its own host key, one authorized key.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/client_key"
cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
chmod 700 "$ssh_dir"; chmod 600 "$ssh_dir/authorized_keys"
ssh_port=$(free_port)
mkdir -p /run/sshd 2>/dev/null || true
# It also listens on 127.0.0.2-127.0.0.5, so that fan-out tests reach distinct addresses.
/usr/sbin/sshd -D -e -f /dev/null \
  -o ListenAddress=127.0.0.1 -o ListenAddress=127.0.0.2 -o ListenAddress=127.0.0.3 \
  -o ListenAddress=127.0.0.4 -o ListenAddress=127.0.0.5 -o Port="$ssh_port" -o HostKey="$ssh_dir/host_key" \
  -o AuthorizedKeysFile="$ssh_dir/authorized_keys" -o StrictModes=no \
  -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o UsePAM=no \
  -o PermitRootLogin=prohibit-password -o PidFile="$ssh_dir/sshd.pid" \
  2>"$ssh_dir/sshd.log" &
sshd_pid=$!
for a in 1 2 3 4 5; do
  printf '[127.0.0.%s]:%s %s\n' "$a" "$ssh_port" "$(cut -d' ' -f1,2 "$ssh_dir/host_key.pub")"
done > "$ssh_dir/known_hosts"
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null && break
  sleep 0.1
done
export RUNBOOK_TEST_SSH_HOST=127.0.0.1 RUNBOOK_TEST_SSH_PORT="$ssh_port"
export RUNBOOK_TEST_SSH_USER="$(id -un)" RUNBOOK_TEST_SSH_KEY="$ssh_dir/client_key"
export RUNBOOK_TEST_SSH_KNOWN_HOSTS="$ssh_dir/known_hosts"
export RUNBOOK_TEST_CHROMIUM="$(command -v chromium)"

echo "suite: sandbox up (PostgreSQL ${PGPORT:-?}, Redis ${REDIS_PORT:-?}), sshd on 127.0.0.1:$ssh_port" >&2
out="$ssh_dir/cargo-test.out"
set +e
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "suite: %d passed, %d failed\n", p, f }' "$out")
exit "$rc"
