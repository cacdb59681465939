#!/usr/bin/env python3
"""Writes a synthetic runbook of N steps for benches/compile.sh.

Each step needs 0-3 distinct random earlier steps, has a budget, a `run` command template that
interpolates a variable, and a `drill`. Every tenth step that needs something also passes an
output of one of the steps it needs, so the check of templates against upstream outputs is
measured too. The RTO is set high enough that the critical path always fits: the benchmark
times compiling, not printing a warning.

usage: gen_runbook.py N OUT.yaml [--seed S]
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    scenario = os.path.splitext(os.path.basename(args.out))[0]
    width = len(str(args.n))
    ids = [f"s{i:0{width}d}" for i in range(args.n)]
    lines = [
        f"scenario: {scenario}",
        f"title: Synthetic runbook of {args.n} steps",
        f"rto: {30 * args.n}m",
        "vars:",
        "  database: omni",
        "steps:",
    ]
    for i, sid in enumerate(ids):
        needs = sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))
        lines.append(f"  - id: {sid}")
        if needs:
            lines.append("    needs: [" + ", ".join(ids[j] for j in needs) + "]")
        lines.append(f"    budget: {rng.randint(1, 30)}m")
        run = f"./steps/bench/step.sh {sid} {{{{ database }}}}"
        if needs and i % 10 == 0:
            run += f" {{{{ steps['{ids[rng.choice(needs)]}'].outputs.file }}}}"
        lines.append(f'    run: "{run}"')
        lines.append("    drill: " + ("run" if i % 3 else "skip"))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
