"""Choosing a composite model's weights on validation (the hybrid's, ``models.hybrid``): training logic, kept out of
the model, which only pools its parts with the weights it is given."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from sessionrec.metrics import metrics_from_counts, rank_counts
from sessionrec.scoring import scoring_batch_size

STEP = 10  # grid resolution: weights are multiples of 1 / STEP


def simplex_grid(parts: int, step: int = STEP) -> list[tuple[float, ...]]:
    """Every weight vector of ``parts`` non-negative multiples of ``1 / step`` summing to 1."""
    return [tuple(c / step for c in combo) for combo in itertools.product(range(step + 1), repeat=parts)
            if sum(combo) == step]


@torch.no_grad()
def validation_curve(model, store, batch_size: int, ties: str, device, grid: list) -> dict:
    """Validation MRR@20 of ``model`` with every weight vector of ``grid``. Each batch's parts are computed once;
    per point only the target's rank is counted, so the grid costs a few passes over each (B, N) batch (B at most
    ``scoring.chunk_rows``: the parts are (M + 3, B, N) float64)."""
    ws = torch.tensor(grid, dtype=torch.float64, device=device)
    sums, n = torch.zeros(len(grid), dtype=torch.float64), 0
    for batch in store.iter_batches(scoring_batch_size(model, batch_size, model.n_items)):
        batch = batch.to(device)
        logs, tie = model.pool_inputs(model.parts(batch))
        for i, w in enumerate(ws):
            scores = model.pool(logs, tie, w)
            mrr = metrics_from_counts(*rank_counts(scores, batch.target, masked=True, within=20), [20], ties)["MRR@20"]
            sums[i] += mrr.sum().cpu()
        n += batch.size
    return {w: float(v) / max(n, 1) for w, v in zip(grid, sums)}


@torch.no_grad()
def choose_weights(model, store, batch_size: int, ties: str, device) -> dict:
    """Set ``model.weights`` to the best point on ``store`` (validation) by MRR@20, in two stages; returns
    ``{weights: MRR@20}`` of every point tried.

    1. the networks' and STAN's mix ``u`` on their simplex grid (repeat weights 0); ties go to the mix nearest the
       uniform one;
    2. the repeat weights ``(r_last, r_earlier)`` on their grid of step 0.1 (sum at most 1), the parts of ``u``
       scaled by ``1 - r_last - r_earlier``; ``(0, 0)`` is a candidate and wins ties, so the repeat parts enter only
       when they raise validation MRR@20.
    The full grid over all M + 3 parts has 3,003 points for M = 3 (about 4 min per seed on the synthetic default on
    2 cores, 10 times these two stages' 286 + 66)."""
    model.eval()
    n_base = len(model.nets) + 1
    base = simplex_grid(n_base)
    first = validation_curve(model, store, batch_size, ties, device, [(*u, 0.0, 0.0) for u in base])
    uniform = np.full(n_base, 1 / n_base)
    u = max(base, key=lambda u: (first[(*u, 0.0, 0.0)], -float(np.abs(np.array(u) - uniform).sum())))
    repeat = [(a / STEP, b / STEP) for a in range(STEP + 1) for b in range(STEP + 1 - a)]
    second = validation_curve(model, store, batch_size, ties, device,
                              [(*(round((1 - a - b) * x, 12) for x in u), a, b) for a, b in repeat])
    best = max(second, key=lambda w: (second[w], -(w[-2] + w[-1]), -w[-2]))
    model.weights.copy_(torch.tensor(best, dtype=torch.float64))
    return {**first, **second}
