"""Offline batch: the top-k next products for every session of a REES46-format CSV, through the service's own code
path (``Recommender.recommend``), so each session's ranks equal what ``POST /recommend`` answers for its clicks.

    python src/recommend.py --input sessions.csv --output recs.csv [--k 20] [--keep-seen]

Input: the REES46 columns (``event_time``, ``event_type``, ``product_id``, ``user_session`` are used; only ``view``
events count). Output: ``user_session, rank, product_id, score, strategy``, sessions in order of first appearance.
"""

import argparse
import csv
import logging
from pathlib import Path

from tqdm import tqdm

from sessionrec.cli import run
from sessionrec.serving.batch import read_sessions
from sessionrec.serving.recommender import Recommender


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--output", required=True, type=Path)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--keep-seen", action="store_true", help="allow the session's own products in its top-k")
    args = ap.parse_args()
    if args.k < 1:
        raise ValueError(f"--k: {args.k} is out of range; allowed [1, inf)")
    sessions = read_sessions(args.input)
    rec = Recommender.from_pipeline()
    strategies: dict = {}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_session", "rank", "product_id", "score", "strategy"])
        for sid, clicks in tqdm(sessions, desc="recommend", unit=" sessions"):
            out = rec.recommend(clicks, args.k, exclude_seen=not args.keep_seen)
            strategies[out["strategy"]] = strategies.get(out["strategy"], 0) + 1
            for r in out["items"]:
                w.writerow([sid, r["rank"], r["product_id"], repr(r["score"]), out["strategy"]])
    tmp.replace(args.output)
    logging.info("recommend: %d sessions (%s) -> %s", len(sessions), strategies, args.output)


if __name__ == "__main__":
    run(main)
