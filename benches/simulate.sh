#!/usr/bin/env bash
# Times `runbook plan --simulate 10000` on a generated 1,000-step DAG (benches/gen_runbook.py:
# each step needs 0-3 random earlier steps) with hyperfine, on the release build. The time
# includes loading and compiling the runbook (about 0.02 s at this size, see RESULTS.md).
#
# usage: benches/simulate.sh [STEPS] [ITERATIONS]    (default: 1000 10000)
# env:   RUNBOOK_BIN=path   time this binary instead of building target/release/runbook
#
# Target (issue 5): 10,000 iterations on a 1,000-step DAG in under 1 s on this 2-core machine.
set -euo pipefail

root="$(cd -- "$(dirname -- "$0")/.." && pwd)"
cd "$root"
source "$root/benches/common.sh"
need_tools hyperfine python3
release_bin
steps=${1:-1000}
iterations=${2:-10000}

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/runbooks"
python3 "$root/benches/gen_runbook.py" "$steps" "$work/runbooks/sim-$steps.yaml"
cd "$work"
# An empty state folder: estimates only, no history.
export RUNBOOK_STATE_DIR="$work/state"
hyperfine --shell=none --warmup 1 --runs 10 --export-json "$work/sim.json" \
    "$bin plan runbooks/sim-$steps.yaml --simulate $iterations --seed 1 --format json" >&2
python3 - "$work/sim.json" "$steps" "$iterations" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"| {int(sys.argv[2]):,} steps | {int(sys.argv[3]):,} iterations | median {r['median']:.3f} s | "
      f"min {r['min']:.3f} s | max {r['max']:.3f} s |")
PY
