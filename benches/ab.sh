#!/usr/bin/env bash
# Two builds of runbook on the executor benchmark's shapes, alternating in the same rounds, so
# that what a change costs is measured on one machine at one time. benches/executor.sh compares
# against make; on a machine whose speed drifts (a shared host), only this A/B tells a change's
# cost from the drift.
#
#   wide:  1,000 independent steps and a join, `run --max-parallel 2`
#   chain: 1,000 steps each needing the one before
#
# Each run starts from an empty state folder on the working folder's file system (durable:
# every batch fdatasync'd, as in production). Prints each build's median per shape and B/A.
#
# usage: benches/ab.sh OLD_RUNBOOK NEW_RUNBOOK [ROUNDS]   (default 9 rounds; release builds,
#        each with its runbook-step beside it)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { sed -n 2,14p "$0" >&2; exit 2; }
A=$1 B=$2 ROUNDS=${3:-9} N=1000
for bin in "$A" "$B"; do
  [ -x "$bin" ] || { echo "no runbook at $bin" >&2; exit 2; }
  [ -x "$(dirname "$bin")/runbook-step" ] || echo "note: no runbook-step beside $bin: it supervises itself" >&2
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Private copies: a build elsewhere must not swap a binary mid-benchmark.
for side in a b; do
  src=$([ $side = a ] && echo "$A" || echo "$B")
  mkdir -p "$WORK/$side"
  cp -p "$src" "$WORK/$side/runbook"
  [ -x "$(dirname "$src")/runbook-step" ] && cp -p "$(dirname "$src")/runbook-step" "$WORK/$side/"
done
for shape in wide chain; do
  python3 "$ROOT/benches/gen_executor.py" "$shape" "$N" "$WORK/$shape"
done

echo "date: $(date -u +%FT%TZ)"
echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -sr)"
echo "A: $A ($("$WORK/a/runbook" --version)); B: $B ($("$WORK/b/runbook" --version))"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

python3 - "$WORK" "$ROUNDS" <<'EOF'
import os, shutil, statistics, subprocess, sys, time

work, rounds = sys.argv[1], int(sys.argv[2])
shapes = [("wide", ["--max-parallel", "2"]), ("chain", [])]

def timed(side, shape, args):
    cwd = os.path.join(work, shape)
    state = os.path.join(cwd, ".runbook-" + side)
    shutil.rmtree(state, ignore_errors=True)
    cmd = [os.path.join(work, side, "runbook"), "run", shape, *args, "--state-dir", state]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=dict(os.environ, NO_COLOR="1"))
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd} exited {p.returncode}:\n{p.stderr.decode()[-2000:]}")
    return dt

for shape, args in shapes:
    timed("a", shape, args); timed("b", shape, args)  # warm-up
    t = {"a": [], "b": []}
    for r in range(rounds):
        for side in (["a", "b"] if r % 2 == 0 else ["b", "a"]):
            t[side].append(timed(side, shape, args))
    ma, mb = statistics.median(t["a"]), statistics.median(t["b"])
    print(f"{shape}: {rounds} rounds, alternating")
    for side, m in (("A", ma), ("B", mb)):
        xs = t[side.lower()]
        print(f"  {side} median {m*1000:8.1f} ms   (min {min(xs)*1000:.1f}, max {max(xs)*1000:.1f})")
    print(f"  B/A {mb/ma:.2f}x")
EOF
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
