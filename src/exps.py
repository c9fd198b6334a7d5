"""Experiments helper over ``dvc exp show --json`` (not a stage): pick the best by validation, tabulate, plot.

    python src/exps.py best                    # name of the finished experiment with the best val MRR@20
    dvc exp apply $(python src/exps.py best)   # promote it into the workspace (or: dvc exp branch NAME BRANCH)
    python src/exps.py table                   # Markdown: varying params and val R@20 / MRR@20, best first
    python src/exps.py table --test            # ... plus test metrics: for the run you picked, after the pick
    python src/exps.py plot EXP [EXP ...] -o plots/compare.png   # per-epoch curves overlaid, as a PNG
"""

import argparse
import logging
from pathlib import Path

from sessionrec.cli import run
from sessionrec.tools import experiments as ex

log = logging.getLogger("exps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-A", "--all-commits", action="store_true",
                    help="experiments of every commit, not only those based on the current one")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("best", help="print the name of the best finished experiment on validation")
    b.add_argument("--metric", default="MRR@20")
    t = sub.add_parser("table", help="Markdown table of experiments, best validation first")
    t.add_argument("--metric", default="MRR@20")
    t.add_argument("--test", action="store_true", help="add the test columns")
    t.add_argument("--top", type=int, default=0, help="only the first N finished experiments")
    p = sub.add_parser("plot", help="overlay per-epoch curves of experiments (names, branches or revs) as PNG")
    p.add_argument("revs", nargs="+")
    p.add_argument("--metrics", nargs="+", default=["val/MRR@20", "val/R@20", "val/loss", "train/loss"])
    p.add_argument("-o", "--out", default="plots/compare.png")
    args = ap.parse_args()

    rows = ex.dvc_exp_show(all_commits=args.all_commits)
    if args.cmd == "best":
        row = ex.best(rows, args.metric)
        failed = sum(r.state == "failed" for r in rows)
        log.info("best by val %s: %s (val %s %.4f; %d finished, %d failed not considered)", args.metric, row.name,
                 args.metric, row.val[args.metric], sum(r.state == "success" for r in rows), failed)
        print(row.name)
    elif args.cmd == "table":
        params = ex.varying_params([r for r in rows if r.state != "workspace"])
        if args.top:
            rows = ex.ranked(rows, args.metric)[:args.top]
        print(ex.table(rows, sort_by=args.metric, with_test=args.test, params=params))
    else:
        by_name = {r.name: r.rev for r in rows}
        curves = {rev: {m: ex.read_curve(by_name.get(rev, rev), m) for m in args.metrics} for rev in args.revs}
        ex.plot_curves(curves, Path(args.out))
        log.info("wrote %s (%d experiments x %d metrics)", args.out, len(curves), len(args.metrics))


if __name__ == "__main__":
    run(main)
