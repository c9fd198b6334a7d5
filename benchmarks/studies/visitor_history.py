"""How well the returning-visitor fallback predicts a session's first click, against plain popularity, on the test
split of the pipeline in the working folder (run ``dvc repro`` first).

    python benchmarks/studies/visitor_history.py [--output FILE]

Examples: every test session whose user has training sessions; the target is the session's first click (known to
the catalogue, as every test click is); nothing of the session is seen. Ranked over the full catalogue with the
metrics module's tie rule (expected rank).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from sessionrec import paths
from sessionrec.metrics import metrics_from_counts, rank_counts
from sessionrec.serving.history import VisitorHistory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    n_items = json.loads((paths.SPLIT / "encoders.json").read_text())["n_items"]
    history = VisitorHistory.from_pipeline(Path("."), n_items)
    train_items = pq.read_table(paths.SPLIT / "train.parquet", columns=["item"]).column("item").to_numpy()
    popularity = np.log1p(np.bincount(train_items, minlength=n_items)).astype(np.float64)
    test = pq.read_table(paths.SPLIT / "test.parquet", columns=["session", "ts", "item"]).to_pydict()
    ev = pq.read_table(paths.EVENTS, columns=["session", "user_id"]).to_pydict()
    user_of = dict(zip(ev["session"], ev["user_id"]))
    first = {}
    for s, t, i in zip(test["session"], test["ts"], test["item"]):
        if s not in first or t < first[s][0]:
            first[s] = (t, i)
    scored = ((history.scores(user_of[s]), i) for s, (_, i) in first.items())  # each history scored once
    rows = [(h, i) for h, i in scored if h is not None]
    out = {"test_sessions": len(first), "examples": len(rows)}
    if rows:
        target = torch.tensor([i for _, i in rows])
        for name, scores in (("visitor_history", np.stack([h for h, _ in rows])),
                             ("popularity", np.tile(popularity, (len(rows), 1)))):
            s = torch.from_numpy(scores)
            s[:, 0] = -torch.inf  # padding
            m = metrics_from_counts(*rank_counts(s, target, masked=True), [20], "expected")
            out[name] = {"R@20": round(float(m["R@20"].mean()), 4), "MRR@20": round(float(m["MRR@20"].mean()), 4)}
    print(json.dumps(out, indent=1))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
