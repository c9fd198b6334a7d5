"""Scoring a graph store with a model: the loss and ranking metrics (with the tie rule) over the full catalogue.
Shared by validation in the training loop, the evaluate stage, the benchmark and serving."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from sessionrec.graphs.store import GraphStore
from sessionrec.metrics import RankingMetrics


@torch.no_grad()
def score_store(model, store: GraphStore, batch_size: int, ks, ties: str, device, keep_examples: bool = False,
                n_items: int | None = None, desc: str = "eval"):
    """Mean loss and ranking metrics of ``model`` on every example of ``store``; returns (loss, RankingMetrics)."""
    model.eval()
    acc = RankingMetrics(ks, ties, n_items=n_items, keep_examples=keep_examples)
    total, n = 0.0, 0
    for batch in tqdm(store.iter_batches(batch_size), total=-(-len(store) // batch_size), desc=desc, leave=False):
        batch = batch.to(device)
        scores = model(batch)
        total += float(F.cross_entropy(scores, batch.target, reduction="sum"))
        n += batch.size
        acc.update(scores, batch.target, length=batch.length)  # on the model's device; no (B, N) copy
    return total / max(n, 1), acc


def evaluate_test(model, store, ks, ties, batch_size, device, n_items) -> tuple[dict, dict]:
    """Flat metrics ``{"R@20": .., "MRR@20": .., "NDCG@20": .., "coverage@20": .., "examples": ..}`` and
    per-example values (for breakdowns)."""
    loss, acc = score_store(model, store, batch_size, ks, ties, device, keep_examples=True, n_items=n_items,
                            desc="test")
    metrics = {k: round(v, 6) for k, v in acc.result().items()}
    metrics["loss"] = round(loss, 6)
    metrics["examples"] = acc.count
    return metrics, acc.per_example()
