"""Run every learned-quality check of ``tests/quality.py`` over seeds and thread counts and print, per bound, the
spread of the measured value and its margin to the threshold, so a change that eats a margin shows before it fails
for a user on another CPU.

    python tests/margins.py                          # seeds 1-10, 1 and 2 threads, every check
    python tests/margins.py --seeds 1 2 --threads 1 --checks hybrid_repeat_parts --output margins.json

spread = max - min of the value over all runs; margin = distance from the worst value to the threshold. A bound is
``ok`` when its margin is at least twice its spread. Exits 1 when a bound is not ok. Run it alone: two jobs on two
cores distort nothing here (results do not depend on speed) but double the time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from quality import BOUNDS, CHECKS, margin


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--checks", nargs="+", default=sorted(CHECKS), help=f"any of {sorted(CHECKS)}")
    ap.add_argument("--output", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        ap.error(f"unknown check(s) {unknown}; available: {sorted(CHECKS)}")
    values = {c: {v: [] for v in BOUNDS[c]} for c in args.checks}
    t0 = time.perf_counter()
    runs = [(c, s, t) for c in args.checks for t in args.threads for s in args.seeds]
    for check, seed, threads in tqdm(runs, desc="checks"):
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            got = CHECKS[check](seed, Path(tmp))
        for v in values[check]:
            values[check][v].append(got[v])
    rows, bad = [], 0
    for check, per_value in values.items():
        for v, xs in per_value.items():
            bound = BOUNDS[check][v]
            worst = min(margin(bound, x) for x in xs)
            spread = max(xs) - min(xs)
            ok = worst > 0 and worst >= 2 * spread
            bad += not ok
            rows.append({"check": check, "value": v, "bound": f"{bound[0]} {bound[1]:g}", "min": min(xs),
                         "max": max(xs), "spread": spread, "margin": worst, "ok": ok})
    print(f"\n{'check':44} {'value':32} {'bound':8} {'min':>7} {'max':>7} {'spread':>7} {'margin':>7}  ok")
    for r in rows:
        print(f"{r['check']:44} {r['value']:32} {r['bound']:8} {r['min']:7.4f} {r['max']:7.4f} {r['spread']:7.4f} "
              f"{r['margin']:7.4f}  {'yes' if r['ok'] else 'NO'}")
    if args.output:
        args.output.write_text(json.dumps({"seeds": args.seeds, "threads": args.threads, "torch": torch.__version__,
                                           "rows": rows}, indent=1) + "\n")
    print(f"margins: {len(rows) - bad} of {len(rows)} bounds keep a margin of at least twice their spread over "
          f"{len(args.seeds)} seeds x {args.threads} threads ({time.perf_counter() - t0:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
