#!/usr/bin/env python3
"""Writes the executor benchmark's two shapes, each as a runbook and a Makefile of the same DAG,
for benches/executor.sh.

  wide:  N independent steps and a `join` step that needs them all (N + 1 steps)
  chain: N steps, each needing the one before

Every step runs `true`. Budgets are generous and the RTO is far away, so no budget warning or
RTO projection fires: the benchmark times scheduling, spawning and the journal, not alerts.
The Makefile's targets are phony, so make runs every recipe on every invocation.

usage: gen_executor.py wide|chain N OUT_DIR
       (writes OUT_DIR/runbooks/<shape>.yaml and OUT_DIR/Makefile)
"""
import os
import sys


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("wide", "chain"):
        sys.exit(__doc__)
    shape, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    width = len(str(n))
    ids = [f"s{i:0{width}d}" for i in range(n)]
    if shape == "wide":
        needs = {i: [] for i in ids}
        needs["join"] = list(ids)
        order = ids + ["join"]
        goal = "join"
    else:
        needs = {i: ([ids[k - 1]] if k else []) for k, i in enumerate(ids)}
        order = ids
        goal = ids[-1]

    lines = [
        f"scenario: {shape}",
        f"title: Executor benchmark, {shape} shape, {len(order)} steps",
        "rto: 1000h",
        "steps:",
    ]
    for s in order:
        lines.append(f"  - id: {s}")
        if needs[s]:
            lines.append(f"    needs: [{', '.join(needs[s])}]")
        lines.append("    budget: 1h")
        lines.append('    run: "true"')
        lines.append("    drill: run")
    os.makedirs(os.path.join(out, "runbooks"), exist_ok=True)
    with open(os.path.join(out, "runbooks", f"{shape}.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")

    mk = [f".PHONY: all {' '.join(order)}", f"all: {goal}", ""]
    for s in order:
        mk.append(f"{s}: {' '.join(needs[s])}".rstrip())
        mk.append("\ttrue")
    with open(os.path.join(out, "Makefile"), "w") as f:
        f.write("\n".join(mk) + "\n")


if __name__ == "__main__":
    main()
