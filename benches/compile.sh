#!/usr/bin/env bash
# Times `runbook check` and `runbook plan --format json` on synthetic runbooks of 1,000, 10,000
# and 100,000 steps (benches/gen_runbook.py: each step needs 0-3 random earlier steps) with
# hyperfine, on the release build, and prints the medians as a markdown table for
# benches/RESULTS.md.
#
# usage: benches/compile.sh [SIZE...]      (default: 1000 10000 100000)
# env:   RUNBOOK_BIN=path   time this binary instead of building target/release/runbook
#
# Target (issue 2): 10,000 steps checked in under 1 s on a 2-core machine, and cost growing
# linearly: 100,000 steps within 12x of 10,000.
set -euo pipefail

root="$(cd -- "$(dirname -- "$0")/.." && pwd)"
cd "$root"

source "$root/benches/common.sh"
need_tools hyperfine python3

release_bin

sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 10000 100000)

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/runbooks"

for n in "${sizes[@]}"; do
    file="runbooks/steps-$n.yaml"
    python3 "$root/benches/gen_runbook.py" "$n" "$work/$file"
    # Fewer runs where one run takes seconds; hyperfine fails on a non-zero exit.
    runs=10
    ((n < 100000)) || runs=5
    (cd "$work" && hyperfine --shell=none --warmup 1 --runs "$runs" \
        --export-json "$work/result-$n.json" \
        --command-name "check $n" "$bin check $file" \
        --command-name "plan $n" "$bin plan $file --format json")
done

python3 - "$work" "${sizes[@]}" <<'EOF'
import json, os, statistics, sys
work, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
med = {}
for n in sizes:
    for r in json.load(open(os.path.join(work, f"result-{n}.json")))["results"]:
        cmd, size = r["command"].split()
        med[(cmd, int(size))] = r["median"]
print()
print("| steps | file size | `check` median | `plan --format json` median |")
print("|---:|---:|---:|---:|")
for n in sizes:
    size = os.path.getsize(os.path.join(work, "runbooks", f"steps-{n}.yaml"))
    print(f"| {n:,} | {size / 1e6:.1f} MB | {med[('check', n)]:.3f} s | {med[('plan', n)]:.3f} s |")
if 10000 in sizes:
    ok = med[("check", 10000)] < 1.0
    print(f"\n10,000 steps checked in {med[('check', 10000)]:.3f} s: {'under' if ok else 'OVER'} the 1 s target")
if 10000 in sizes and 100000 in sizes:
    for cmd in ("check", "plan"):
        ratio = med[(cmd, 100000)] / med[(cmd, 10000)]
        print(f"`{cmd}` 100k/10k = {ratio:.1f}x: {'within' if ratio <= 12 else 'OVER'} the 12x target")
EOF
