#!/usr/bin/env bash
# The executor against make on the same DAG of 1,000 `true` steps (issue 3, "Performance").
#
#   wide:  1,000 independent steps and a join, `runbook run --max-parallel 2` vs `make -j2`
#   chain: 1,000 steps each needing the one before,  `runbook run` vs `make -j1`
#
# Runs alternate (runbook, make, make, runbook, ...) so drift in the machine's load hits both
# sides alike; each run starts from an empty state folder. Prints medians, the ratio, and the
# peak RSS of runbook through /usr/bin/time -v.
#
# The journal stays durable: every batch of events is fdatasync'd, as in production, with the
# state folder on the file system of the working folder (the target). For attribution only,
# the same runs are then timed with the state folder on tmpfs (/dev/shm), where an fdatasync
# costs nothing, and one chain run is traced for the duration of each of its fdatasyncs; and
# benches/floor.rs, a program that does nothing but the journal's rule, gives the floor.
#
# usage: benches/executor.sh [ROUNDS]      (default 11 rounds per shape)
# needs: a release build (cargo build --release), rustc, python3, make, /usr/bin/time
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${RUNBOOK_BIN:-$ROOT/target/release/runbook}
ROUNDS=${1:-11}
N=1000

[ -x "$BIN" ] || { echo "no release binary at $BIN: run cargo build --release" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install -y time)" >&2; exit 2; }

WORK=$(mktemp -d)
SHM=$(mktemp -d -p /dev/shm 2>/dev/null || true)
trap 'rm -rf "$WORK" ${SHM:+"$SHM"}' EXIT
# A private copy: a `cargo build` elsewhere must not swap the binary mid-benchmark. The step
# supervisor `runbook-step` goes along when it sits beside `runbook` (the engine looks for it
# there; without it, the engine starts `runbook __supervise`).
cp -p "$BIN" "$WORK/runbook"
[ -x "$(dirname "$BIN")/runbook-step" ] && cp -p "$(dirname "$BIN")/runbook-step" "$WORK/runbook-step"
BIN=$WORK/runbook
SUPERVISOR=$([ -x "$WORK/runbook-step" ] && echo "runbook-step --supervise" || echo "runbook __supervise")

for shape in wide chain; do
  python3 "$ROOT/benches/gen_executor.py" "$shape" "$N" "$WORK/$shape"
done
rustc --edition 2024 -O -o "$WORK/floor" "$ROOT/benches/floor.rs" \
  || echo "benches/floor.rs did not build: no floor figures" >&2

echo "date: $(date -u +%FT%TZ)"
echo "machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(uname -sr)"
echo "runbook: $ROOT/target/release/runbook ($("$BIN" --version), built $(date -u -r "$BIN" +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- engine Cargo.toml || echo " + uncommitted engine changes")), make: $(make --version | head -1)"
echo "step supervisor: $SUPERVISOR"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "state folder on: $(df -T "$WORK" | awk 'NR==2 {print $2" "$7}')${SHM:+; attribution runs on $(df -T "$SHM" | awk 'NR==2 {print $2" "$7}')}"
echo

python3 - "$BIN" "$WORK" "$ROUNDS" "$SHM" "$N" <<'EOF'
import os, re, shutil, statistics, subprocess, sys, time

bin_, work, rounds, shm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
shapes = [
    ("wide", ["--max-parallel", "2"], ["make", "-s", "-j2"]),
    ("chain", [], ["make", "-s", "-j1"]),
]

def timed(cmd, cwd, env=None):
    """Wall time of one run, exit status checked."""
    t0 = time.perf_counter()
    with open(os.path.join(work, "stderr.txt"), "w") as err:
        p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err,
                             env=dict(os.environ, NO_COLOR="1", **(env or {})))
        _, status, _ = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        tail = open(os.path.join(work, "stderr.txt")).read()[-2000:]
        sys.exit(f"{cmd} exited {p.returncode}:\n{tail}")
    return dt

def compare(label, state_of):
    for shape, rb_args, make_cmd in shapes:
        cwd = os.path.join(work, shape)
        state = state_of(shape)
        rb_cmd = [bin_, "run", shape, *rb_args, "--state-dir", state]

        def runbook():
            shutil.rmtree(state, ignore_errors=True)
            return timed(rb_cmd, cwd)

        def make():
            return timed(make_cmd, cwd)

        runbook(); make()  # warm-up: page cache, binary loaded
        rb, mk = [], []
        for r in range(rounds):
            order = [runbook, make] if r % 2 == 0 else [make, runbook]
            for f in order:
                (rb if f is runbook else mk).append(f())
        # The journal must hold the whole run: N (+1) starts and finishes.
        runs = os.listdir(os.path.join(state, "runs"))
        with open(os.path.join(state, "runs", runs[0], "journal.jsonl")) as j:
            lines = sum(1 for _ in j)
        mr, mm = statistics.median(rb), statistics.median(mk)
        print(f"{label} {shape}: runbook {' '.join(rb_cmd[1:-2])}  vs  {' '.join(make_cmd)}  ({rounds} rounds, alternating)")
        print(f"  runbook median {mr*1000:8.1f} ms   (min {min(rb)*1000:.1f}, max {max(rb)*1000:.1f})")
        print(f"  make    median {mm*1000:8.1f} ms   (min {min(mk)*1000:.1f}, max {max(mk)*1000:.1f})")
        print(f"  ratio runbook/make {mr/mm:.2f}x")
        print(f"  journal lines in the last run: {lines}")

compare("durable", lambda shape: os.path.join(work, shape, ".runbook"))

# The floor: benches/floor.rs does only what the journal requires of a run's durability (engine/journal/mod.rs) (the
# records of a step appended and fdatasync'd before it is spawned), with `sh -c true` as
# runbook runs a step and with `true` exec'd directly as make does, against make on the real
# disk. Whatever of runbook's ratio the floor already has is the journal's rule, not runbook.
floor = os.path.join(work, "floor")
if os.access(floor, os.X_OK):
    print()
    for shape, _, make_cmd in shapes:
        cwd = os.path.join(work, shape)
        journal = os.path.join(work, f"floor-{shape}.jsonl")
        contenders = {
            "make": make_cmd,
            "floor, sh -c, fdatasync": [floor, shape, n, "sync", "sh", journal],
            "floor, direct, fdatasync": [floor, shape, n, "sync", "direct", journal],
            "floor, sh -c, no fdatasync": [floor, shape, n, "nosync", "sh", journal],
        }
        times = {k: [] for k in contenders}
        for r in range(rounds):
            names = list(contenders) if r % 2 == 0 else list(reversed(contenders))
            for k in names:
                if os.path.exists(journal):
                    os.unlink(journal)
                times[k].append(timed(contenders[k], cwd))
        mm = statistics.median(times["make"])
        print(f"floor {shape}: {rounds} rounds, alternating, against {' '.join(make_cmd)}")
        for k, v in times.items():
            m = statistics.median(v)
            print(f"  {k:27} median {m*1000:8.1f} ms   (min {min(v)*1000:.1f}, max {max(v)*1000:.1f})   {m/mm:.2f}x make")
if shm:
    print()
    compare("attribution, state on tmpfs:", lambda shape: os.path.join(shm, shape))
    # How long each fdatasync of the journal takes during a chain run on the real disk.
    state = os.path.join(work, "chain", ".runbook-traced")
    shutil.rmtree(state, ignore_errors=True)
    timed([bin_, "run", "chain", "--state-dir", state], os.path.join(work, "chain"),
          env={"RUST_LOG": "runbook::journal=trace"})
    text = open(os.path.join(work, "stderr.txt")).read()
    us = sorted(int(m) for m in re.findall(r"fsync_us=(\d+)", text))
    if us:
        q = lambda p: us[min(len(us) - 1, int(p * len(us)))]
        print()
        print(f"attribution: the chain's {len(us)} journal fdatasyncs on the real disk: "
              f"p10 {q(0.1)} us, median {q(0.5)} us, p90 {q(0.9)} us, mean {sum(us)/len(us):.0f} us")
EOF

echo
for shape in wide chain; do
  args=(run "$shape")
  [ "$shape" = wide ] && args+=(--max-parallel 2)
  rm -rf "$WORK/$shape/.runbook"
  rss=$(cd "$WORK/$shape" && NO_COLOR=1 /usr/bin/time -v "$BIN" "${args[@]}" </dev/null 2>&1 >/dev/null \
        | awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}')
  echo "$shape: /usr/bin/time -v peak RSS of runbook ${args[*]}: ${rss} KiB ($((rss / 1024)) MiB)"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
