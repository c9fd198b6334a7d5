"""Scoring a graph store with a model: the loss and ranking metrics (with the tie rule) over the full catalogue.
Shared by validation in the training loop, the evaluate stage, the hybrid's weight search, the benchmark and serving.

At a large catalogue a batch's ``(B, N)`` scores do not fit in cache (at 200k products and a batch of 512 they are
400 MB of float32), and every metric is another pass over them, so scores are made and consumed in row chunks:

* a network (a model with ``encode``) encodes the whole batch once, then its matmul writes ``matmul_rows`` sessions
  at a time into one reused buffer (fresh allocations of that size page-fault; at 200k products the matmul runs at
  half its speed on fewer than ~200 rows);
* the loss and the metrics read ``chunk_rows`` sessions at a time (8 MB of scores, which stay in cache between the
  top-K pass, the loss and the target's score);
* the hybrid (a model with ``score_chunks``) chunks its own: its networks encode the whole batch and score it in
  spans, its float64 parts are made and pooled a few rows at a time (``hybrid.pool_rows``: 2 at 200k products) and
  handed on ``chunk_rows`` sessions at a time;
* a model with neither (session-kNN) is given batches of at most ``chunk_rows`` sessions: its forward makes all of
  a batch's scores at once.

At the default catalogue (4k products) a chunk holds over 500 rows, at least a batch, so nothing is split there.
``python benchmarks/speed/evaluate.py`` measures the whole, ``benchmarks/speed/scoring_chunks.py`` each choice.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sessionrec.graphs.store import GraphStore
from sessionrec.metrics import RankingMetrics

CHUNK_BUDGET = 1 << 21  # score entries the metrics read at once: 8 MB of float32
MATMUL_BUDGET = 1 << 26  # score entries one matmul writes: 256 MB of float32


def chunk_rows(n_items: int) -> int:
    """Sessions whose ``(rows, n_items)`` scores fit ``CHUNK_BUDGET``, at least 1."""
    return max(1, CHUNK_BUDGET // max(n_items, 1))


def matmul_rows(n_items: int) -> int:
    """Sessions a network's scoring matmul covers at once: ``MATMUL_BUDGET``, at least 1."""
    return max(1, MATMUL_BUDGET // max(n_items, 1))


def scoring_batch_size(model, batch_size: int, n_items: int) -> int:
    """The batch size to read a store with: ``batch_size`` for a model that encodes or scores in chunks of its own
    (its scoring is chunked by ``score_chunks``), else at most ``chunk_rows(n_items)``."""
    chunked = hasattr(model, "encode") or hasattr(model, "score_chunks")
    return batch_size if chunked else min(batch_size, chunk_rows(n_items))


def reused_buffer(buffers: dict | None, key: str, rows: int, n_items: int, device,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A ``(rows, n_items)`` scoring buffer kept in ``buffers[key]`` for every span of every batch (a fresh one would
    page-fault each time), made anew only when the kept one is too short or elsewhere."""
    buf = None if buffers is None else buffers.get(key)
    if buf is None or buf.shape[0] < rows or buf.device != device or buf.dtype != dtype:
        buf = torch.empty(rows, n_items, device=device, dtype=dtype)
        if buffers is not None:
            buffers[key] = buf
    return buf


def score_chunks(model, batch, n_items: int, buffers: dict | None = None):
    """Yield ``(rows, scores)`` for consecutive row slices of ``batch``: ``scores`` (rows, N) as ``model(batch)``
    gives them (padding at ``-inf``), valid until the next item is drawn. ``buffers``: a dict the caller keeps across
    batches, holding the matmul's buffer (allocated once, on the first batch that needs it). Call under
    ``torch.no_grad``."""
    step = chunk_rows(n_items)
    if hasattr(model, "score_chunks"):  # a composite model (the hybrid) chunks its own scoring
        yield from model.score_chunks(batch, step, buffers)
        return
    if not hasattr(model, "encode"):
        scores = model(batch)
        for r0 in range(0, batch.size, step):
            yield slice(r0, min(r0 + step, batch.size)), scores[r0:r0 + step]
        return
    h = model.encode(batch)  # (B, d)
    spans = -(-batch.size // matmul_rows(n_items))
    span = -(-batch.size // spans)  # equal spans: a short last one would run the matmul at a fraction of its speed
    buf = reused_buffer(buffers, "scores", span, n_items, h.device) if span < batch.size else None
    for m0 in range(0, batch.size, span):
        hs = h[m0:m0 + span]
        scores = model.score(hs) if buf is None else model.score(hs, out=buf[:hs.shape[0]])
        for r0 in range(0, hs.shape[0], step):
            part = scores[r0:r0 + step]
            yield slice(m0 + r0, m0 + r0 + part.shape[0]), part


@torch.no_grad()
def score_store(model, store: GraphStore, batch_size: int, ks, ties: str, device, keep_examples: bool = False,
                n_items: int | None = None, desc: str = "eval"):
    """Mean loss and ranking metrics of ``model`` on every example of ``store``; returns (loss, RankingMetrics).
    ``n_items`` (the catalogue size, ``model.n_items``) turns on item coverage."""
    model.eval()
    acc = RankingMetrics(ks, ties, n_items=n_items, keep_examples=keep_examples)
    total, n = 0.0, 0
    size = n_items or model.n_items
    bs = scoring_batch_size(model, batch_size, size)
    buffers: dict = {}
    for batch in tqdm(store.iter_batches(bs), total=-(-len(store) // bs), desc=desc, leave=False):
        batch = batch.to(device)
        for rows, scores in score_chunks(model, batch, size, buffers):
            target = batch.target[rows]
            total += float(F.cross_entropy(scores, target, reduction="sum"))
            acc.update(scores, target, masked=True, length=batch.length[rows])  # on the model's device
        n += batch.size
    return total / max(n, 1), acc


TEST_SAMPLE_SEED = 0  # evaluate.test_examples: one sample for every model and seed


def sample_test(store: GraphStore, examples: int) -> int:
    """Restrict the test ``store`` to the seeded sample of ``examples`` (``evaluate.test_examples``; 0: every
    example), the same for every model and seed; returns the number of test examples in all."""
    total = len(store)
    store.sample(examples, TEST_SAMPLE_SEED)
    return total


def evaluate_test(model, store, ks, ties, batch_size, device, n_items, total: int | None = None
                  ) -> tuple[dict, dict]:
    """Flat metrics ``{"R@20": .., "MRR@20": .., "NDCG@20": .., "coverage@20": .., "examples": ..}`` and
    per-example values (for breakdowns). ``total``: the test examples in all when ``store`` is a sample of them
    (``sample_test``); the metrics then also give ``sampled_from`` and each ranking metric's standard error over
    the sample (``"R@20_se"``: the per-example values' standard deviation over the square root of their count; at
    100k examples at most 0.16 points of R@20 or MRR@20)."""
    loss, acc = score_store(model, store, batch_size, ks, ties, device, keep_examples=True, n_items=n_items,
                            desc="test")
    metrics = {k: round(v, 6) for k, v in acc.result().items()}
    metrics["loss"] = round(loss, 6)
    metrics["examples"] = n = acc.count
    per_example = acc.per_example()
    if total is not None and n < total:
        metrics["sampled_from"] = total
        metrics.update({f"{k}_se": round(float(np.std(per_example[k], ddof=1) / np.sqrt(n)), 6) if n > 1 else None
                        for k in acc.values()})
    return metrics, per_example
