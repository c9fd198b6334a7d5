"""Test-set evaluation and its plots (shared by the evaluate stage and benchmarks)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sessionrec.plotting import line_panels
from sessionrec.training.loop import score_store

LENGTH_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50)


def evaluate_test(model, store, ks, ties, batch_size, device, n_items) -> tuple[dict, dict]:
    """Flat metrics ``{"R@20": .., "MRR@20": .., "NDCG@20": .., "coverage@20": .., "examples": ..}`` and
    per-example values (for breakdowns)."""
    loss, acc = score_store(model, store, batch_size, ks, ties, device, keep_examples=True, n_items=n_items,
                            desc="test")
    metrics = {k: round(v, 6) for k, v in acc.result().items()}
    metrics["loss"] = round(loss, 6)
    metrics["examples"] = acc.count
    return metrics, acc.per_example()


def _bucket(length: np.ndarray) -> np.ndarray:
    edges = np.array(LENGTH_BUCKETS)
    return edges[np.searchsorted(edges, length, side="right") - 1]


def write_plots(out_dir: Path, metrics: dict, per_example: dict, ks) -> None:
    """``recall_at_k.csv`` (R@K, MRR@K, NDCG@K by K), ``recall_by_length.csv`` (R@20 by input length bucket) and
    both as ``test_metrics.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "recall_at_k.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["k", "recall", "mrr", "ndcg"])
        for k in sorted(ks):
            w.writerow([k, metrics[f"R@{k}"], metrics[f"MRR@{k}"], metrics[f"NDCG@{k}"]])
    bucket = _bucket(per_example["length"])
    with open(out_dir / "recall_by_length.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["length", "recall_20", "examples"])
        for b in np.unique(bucket):
            m = bucket == b
            w.writerow([int(b), round(float(per_example["R@20"][m].mean()), 6), int(m.sum())])
    ks = sorted(ks)
    buckets = [int(b) for b in np.unique(bucket)]
    by_k = {name: (ks, [metrics[f"{name}@{k}"] for k in ks]) for name in ("R", "MRR", "NDCG")}
    by_length = {"R@20": (buckets, [float(per_example["R@20"][bucket == b].mean()) for b in buckets])}
    line_panels({"test metrics by K": by_k, "test R@20 by input length": by_length}, out_dir / "test_metrics.png",
                {"test metrics by K": "K", "test R@20 by input length": "input length (bucket start)"})

