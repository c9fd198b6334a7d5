"""Choosing a composite model's weights on validation (the hybrid's, ``models.hybrid``): training logic, kept out of
the model, which only pools its parts with the weights it is given."""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import torch
from tqdm import tqdm

from sessionrec.metrics import metrics_from_counts, rank_counts
from sessionrec.models.layers import mask_padding
from sessionrec.scoring import chunk_rows, scoring_batch_size

log = logging.getLogger(__name__)
STEP = 10  # grid resolution: weights are multiples of 1 / STEP


def simplex_grid(parts: int, step: int = STEP) -> list[tuple[float, ...]]:
    """Every weight vector of ``parts`` non-negative multiples of ``1 / step`` summing to 1."""
    return [tuple(c / step for c in combo) for combo in itertools.product(range(step + 1), repeat=parts)
            if sum(combo) == step]


def per_part_for(n_items: int) -> int:
    """Candidates per part: each part's best items are scored at every grid point, the whole catalogue only for the
    pairs they leave undecided. More candidates cost every pair a little, fewer leave more pairs to the whole
    catalogue; about the square root of the catalogue balanced the two at 4k and 200k products
    (``benchmarks/speed/weight_search.py``)."""
    return max(32, round(n_items ** 0.5))


# A bound must clear the float64 rounding of a blended score by this much. With M + 3 = 6 parts a score is 6 products
# and 6 sums of values of magnitude at most |log(1e-6)| = 13.82, each rounding by at most half an ulp of 16
# (8.9e-16), and logs off by at most 1 ulp (1.8e-15) under weights summing to 1: a computed score is within 1.3e-14
# of its exact value, two scores within 2.6e-14 of their exact difference, and 1e-12 is 38 times that. It was 1e-10:
# where only the repeat parts have weight, the rest of the catalogue is ordered by the 1e-9 tie-break term alone, and
# that margin left 3.02% of the second stage's pairs to the whole catalogue at 126k products (docs/scale.md).
MARGIN = 1e-12
CUTOFF = 20  # the weights are chosen on MRR@20
GRID_BUDGET = 1 << 18  # candidate scores made at once (2 MB of float64)


def best_of_part(part, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` (B, k) of one part ``part`` (B, N) as ``candidate_counts`` reads ``part[:, 1:].topk(k)``:
    each row's ``k``-th largest value (padding aside) last, and every item that scores above it, with its value and
    its index into ``part[:, 1:]``, among the first ``k - 1``.

    A ``SparsePart`` (STAN's, the repeat indicators': non-negative, a few hundred of 200k products listed a session)
    answers from its listed entries alone: a row's values beyond them are 0, so its ``k``-th largest is its ``k``-th
    largest listed value, or 0 where it lists fewer than ``k``; and an item above that is a listed one. The places
    past a row's listed entries hold 0, which is at most the ``k``-th value, so they name no candidate, and no pass
    over the row's N entries is made (docs/speed.md, "Making the parts")."""
    if not hasattr(part, "key"):
        top = part[:, 1:].topk(k, dim=1)
        return top.values, top.indices
    B, N = part.shape
    rows, cols, vals = part.key // N, part.key % N, part.values  # by row
    order = vals.argsort(descending=True, stable=True)
    order = order[rows[order].argsort(stable=True)]  # by row, each row's values descending
    rows, cols, vals = rows[order], cols[order], vals[order]
    rank = torch.arange(len(rows), device=vals.device) - torch.searchsorted(rows, rows)  # place within its row
    keep = rank < k
    values = vals.new_zeros(B, k)
    indices = torch.zeros(B, k, dtype=torch.long, device=vals.device)
    values[rows[keep], rank[keep]] = vals[keep]
    indices[rows[keep], rank[keep]] = cols[keep] - 1
    return values, indices


def dense(part):
    """A part as a ``(B, N)`` tensor: itself, or a ``SparsePart`` (``Hybrid.part_chunks(sparse=True)``) made dense."""
    return part.dense() if hasattr(part, "dense") else part


def candidate_counts(model, parts, target: torch.Tensor, ws: torch.Tensor, per_part: int):
    """``(g, e, decided)`` (G, B) for every weight vector of ``ws`` (G, M + 3) at once: the counts of
    ``metrics.rank_counts(model.pool(*model.pool_inputs(parts), w), target, within=CUTOFF)`` wherever ``decided``,
    from a few candidate items per session instead of the whole catalogue.

    The candidates are the union of every part's ``per_part`` best items (those tied with a part's ``per_part``-th
    best score left to the bound). An item outside it scores at most ``kth`` (each part's ``per_part``-th best score)
    in every part, so under weights ``w`` (non-negative) its pooled score is at most ``bound = w . log(kth + eps) +
    tie_bound(kth)``. Where the target scores above ``bound`` (by ``MARGIN``), no item outside the candidates
    reaches it, and counting over the candidates is exact; where ``CUTOFF`` candidates already score above it, every
    metric at ``CUTOFF`` is 0, exact too. The other (point, session) pairs are left undecided, for the caller to
    score over the whole catalogue. Only the candidates' and the target's parts go through ``model.pool_inputs``
    and ``model.weighted_sum``, both elementwise in part order: a candidate's score is bit for bit its score in
    ``model.pool``, and the logs of the whole ``(M + 3, B, N)`` are never taken.

    ``parts``: the ``M + 3`` parts, a ``(M + 3, B, N)`` tensor or a list of ``(B, N)`` ones (never stacked here: at
    200k products a fresh 96 MB stack of 10 sessions' parts is mapped and zeroed page by page); a part may be a
    ``SparsePart`` (``Hybrid.part_chunks(sparse=True)``), whose best items come from its listed entries
    (``best_of_part``) and which is read at the target and the candidates only (made dense where every item is a
    candidate)."""
    P, (B, N) = len(parts), parts[0].shape
    rows = torch.arange(B, device=target.device)
    wg = ws.T.reshape(P, -1, 1, 1)  # (P, G, 1, 1): the grid against (P, 1, B, ...) scores
    t_logs, t_tie = model.pool_inputs(torch.stack([p[rows, target] for p in parts]))  # (P, B), (B,)
    s_t = model.weighted_sum(wg[..., 0], t_logs.unsqueeze(1)) + t_tie  # (G, B)
    k = min(per_part, N - 1)
    if k == N - 1:
        parts = [dense(p) for p in parts]
    tops = [best_of_part(p, k) for p in parts]  # padding (item 0) is never ranked
    values, indices = torch.stack([v for v, _ in tops]), torch.stack([i for _, i in tops])  # (P, B, k)
    kth = values[:, :, -1]  # (P, B)
    if k == N - 1:  # every item is a candidate
        valid = torch.ones_like(values, dtype=torch.bool)
        bound = torch.full_like(s_t, -torch.inf)
    else:  # an item at a part's kth score is covered by the bound: the rest of each list are the candidates
        valid = values > kth.unsqueeze(2)
        kth_logs, _ = model.pool_inputs(kth)
        bound = model.weighted_sum(wg[..., 0], kth_logs.unsqueeze(1)) + model.tie_bound(kth)
    idx = torch.where(valid, indices + 1, N).permute(1, 0, 2).reshape(B, P * k).sort(dim=1).values
    keep = (idx < N) & (idx != target.unsqueeze(1))
    keep[:, 1:] &= idx[:, 1:] != idx[:, :-1]  # each candidate once
    first = (~keep).to(torch.int8).argsort(dim=1, stable=True)[:, :max(int(keep.sum(1).max()), 1)]  # kept first
    idx, keep = idx.gather(1, first), keep.gather(1, first)  # (B, C)
    at = torch.where(keep, idx, 0)
    cand_logs, cand_tie = model.pool_inputs(torch.stack([p.gather(1, at) for p in parts]))
    cand_logs, cand_tie = cand_logs.unsqueeze(1), cand_tie.masked_fill(~keep, -torch.inf)  # (P, 1, B, C), (B, C)
    g = torch.empty_like(s_t, dtype=torch.long)
    e = torch.empty_like(g)
    span = max(1, GRID_BUDGET // idx.numel())  # grid points at once: their (span, B, C) scores stay in cache
    for g0 in range(0, len(ws), span):
        scores = model.weighted_sum(wg[:, g0:g0 + span], cand_logs) + cand_tie
        st = s_t[g0:g0 + span].unsqueeze(2)
        g[g0:g0 + span] = (scores > st).sum(2)
        e[g0:g0 + span] = 1 + (scores == st).sum(2)
    beyond = g >= CUTOFF
    g = torch.where(beyond, torch.full_like(g, CUTOFF), g)
    e = torch.where(beyond, torch.ones_like(e), e)
    return g, e, beyond | (s_t > bound + MARGIN)


def batch_curve(model, parts, target: torch.Tensor, ws: torch.Tensor, ties: str, per_part: int | None = None
                ) -> tuple[torch.Tensor, int]:
    """``(sums, undecided)``: the MRR@20 summed over a batch's sessions for every weight vector of ``ws`` (G, M + 3)
    from the batch's ``parts`` (M + 3, B, N) (or a list of M + 3 parts, as ``candidate_counts`` takes them) and
    ``target`` (B,), and how many (point, session) pairs the candidates
    (``candidate_counts``) left to the whole catalogue. ``per_part``: candidates per part (None: ``per_part_for``
    the catalogue; 0: none, every pair over the whole catalogue, the reference the candidates equal bit for bit)."""
    N = parts[0].shape[1]
    if per_part is None:
        per_part = per_part_for(N)
    if per_part == 0:  # every point over the whole batch: the logs once, then one pooling per point
        logs, tie = model.pool_inputs(torch.stack([dense(p) for p in parts]))
        counts = [rank_counts(model.pool(logs, tie, w), target, masked=True, within=CUTOFF) for w in ws]
        g, e = torch.stack([c[0] for c in counts]), torch.stack([c[1] for c in counts])
        return metrics_from_counts(g, e, [CUTOFF], ties)[f"MRR@{CUTOFF}"].sum(dim=1).cpu(), g.numel()
    g, e, decided = candidate_counts(model, parts, target, ws, per_part)
    points, rows = (~decided).nonzero(as_tuple=True)
    if len(points):  # the undecided pairs over the whole catalogue: their sessions' logs once, pairs in chunks
        open_rows, at = rows.unique(return_inverse=True)
        logs, tie = model.pool_inputs(torch.stack([p[open_rows] for p in parts]))  # (P, rows, N)
        step = chunk_rows(N)
        for c0 in range(0, len(points), step):
            i, r, a = points[c0:c0 + step], rows[c0:c0 + step], at[c0:c0 + step]
            scores = mask_padding(model.weighted_sum(ws[i].T.unsqueeze(2), logs[:, a]) + tie[a])  # (pairs, N)
            g[i, r], e[i, r] = rank_counts(scores, target[r], masked=True, within=CUTOFF)
    return metrics_from_counts(g, e, [CUTOFF], ties)[f"MRR@{CUTOFF}"].sum(dim=1).cpu(), len(points)


@torch.no_grad()
def validation_curve(model, store, batch_size: int, ties: str, device, grid: list,
                     per_part: int | None = None) -> dict:
    """Validation MRR@20 of ``model`` with every weight vector of ``grid``. Each batch's parts are computed once;
    every grid point is then counted over a few candidate items per session (``candidate_counts``), and over the
    whole catalogue only for the (session, point) pairs the candidates leave undecided. The result is exactly the
    full-catalogue count's (tests/test_models.py compares them point by point), and the cost per point no longer
    grows with the catalogue (``benchmarks/speed/weight_search.py``)."""
    t0 = time.perf_counter()
    ws = torch.tensor(grid, dtype=torch.float64, device=device)
    sums, n, undecided = torch.zeros(len(grid), dtype=torch.float64), 0, 0
    bs = scoring_batch_size(model, batch_size, model.n_items)
    step, buffers = chunk_rows(model.n_items), {}
    for batch in tqdm(store.iter_batches(bs), total=-(-len(store) // bs), desc=f"weight search ({len(grid)} points)",
                      leave=False):
        batch = batch.to(device)
        for rows, parts in model.part_chunks(batch, step, buffers, sparse=per_part != 0):
            parts = [parts[m] for m in range(len(parts))]
            batch_sums, open_pairs = batch_curve(model, parts, batch.target[rows], ws, ties, per_part)
            sums += batch_sums
            undecided += open_pairs
        n += batch.size
    if per_part != 0:
        log.info("weight search: %d points x %d sessions, %.2f%% of the pairs scored over the whole catalogue "
                 "(%.1fs, the parts included)", len(grid), n, 100 * undecided / max(len(grid) * n, 1),
                 time.perf_counter() - t0)
    return {w: float(v) / max(n, 1) for w, v in zip(grid, sums)}


def repeat_grid(u: tuple) -> list[tuple[float, ...]]:
    """The second stage's points: the repeat weights ``(r_last, r_earlier)`` on their grid of step ``1 / STEP`` (sum
    at most 1), the mix ``u`` scaled by ``1 - r_last - r_earlier``."""
    repeat = [(a / STEP, b / STEP) for a in range(STEP + 1) for b in range(STEP + 1 - a)]
    return [(*(round((1 - a - b) * x, 12) for x in u), a, b) for a, b in repeat]


@torch.no_grad()
def choose_weights(model, store, batch_size: int, ties: str, device) -> dict:
    """Set ``model.weights`` to the best point on ``store`` (validation) by MRR@20, in two stages; returns
    ``{weights: MRR@20}`` of every point tried.

    1. the networks' and STAN's mix ``u`` on their simplex grid (repeat weights 0); ties go to the mix nearest the
       uniform one;
    2. the repeat weights ``(r_last, r_earlier)`` on their grid of step 0.1 (sum at most 1), the parts of ``u``
       scaled by ``1 - r_last - r_earlier``; ``(0, 0)`` is a candidate and wins ties, so the repeat parts enter only
       when they raise validation MRR@20.
    The full grid over all M + 3 parts has 3,003 points for M = 3, 10 times these two stages' 286 + 66."""
    model.eval()
    n_base = len(model.nets) + 1
    base = simplex_grid(n_base)
    first = validation_curve(model, store, batch_size, ties, device, [(*u, 0.0, 0.0) for u in base])
    uniform = np.full(n_base, 1 / n_base)
    u = max(base, key=lambda u: (first[(*u, 0.0, 0.0)], -float(np.abs(np.array(u) - uniform).sum())))
    second = validation_curve(model, store, batch_size, ties, device, repeat_grid(u))
    best = max(second, key=lambda w: (second[w], -(w[-2] + w[-1]), -w[-2]))
    model.weights.copy_(torch.tensor(best, dtype=torch.float64))
    return {**first, **second}
