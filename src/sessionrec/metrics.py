"""Ranking metrics over the full catalogue, with an explicit rule for ties. Used by train, evaluate and serving.

For one example let ``g`` be the number of catalogue items scored strictly above the target and ``e`` the number
scored equal to it, the target included. The target's rank is then

* ``expected`` (default): uniform on ``g+1 .. g+e`` (the expectation under random tie-breaking; the rule of
  ``../shared/data/splits/README.md``), so each metric is the mean of its value over those ranks;
* ``pessimistic``: ``g+e``;  ``optimistic``: ``g+1``.

With one relevant item: R@K = 1[rank <= K], MRR@K = 1[rank <= K] / rank, NDCG@K = 1[rank <= K] / log2(rank + 1).
Each is averaged per example. Column 0 (padding) is never ranked.
"""

from __future__ import annotations

import numpy as np
import torch

TIES = ("expected", "pessimistic", "optimistic")


def without_padding(scores: torch.Tensor) -> torch.Tensor:
    """A copy of ``scores`` (B, N) with the padding column 0 at ``-inf``."""
    scores = scores.clone()
    scores[:, 0] = -torch.inf
    return scores


def rank_counts(scores: torch.Tensor, target: torch.Tensor, masked: bool = False,
                within: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g, e)`` per example. ``scores`` (B, N) over item ids 0..N-1 (0 = padding, ignored unless ``masked`` says
    the caller already set it to ``-inf``); ``target`` (B,).

    With ``within``, the counts are exact wherever the target can rank within the first ``within`` (``g <
    within``); elsewhere ``g = within``, ``e = 1``, which gives every metric at a cut-off ``K <= within`` its true
    value 0. They come from one top-``within`` pass (``counts_from_top``) instead of two full comparisons: at 200k
    products the comparisons' boolean sums were over half of the evaluation's time."""
    if not masked:
        scores = without_padding(scores)
    s_t = scores.gather(1, target.view(-1, 1))  # (B, 1)
    if within is None or within >= scores.shape[1]:
        return (scores > s_t).sum(1), (scores == s_t).sum(1)
    return counts_from_top(scores, s_t, top_n(scores, within)[0])


TOP_BLOCK = 128  # columns per block in ``top_n``; 64-256 were within 15% of each other at 200k products


def top_n(scores: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores.topk(n, dim=1)`` (values, indices; largest first) for ``scores`` (B, N), several times faster at
    200k products (``benchmarks/speed/scoring_chunks.py``): ``topk`` over a long row costs far more per element than
    a maximum.

    Each row is cut into blocks of ``TOP_BLOCK`` columns; the ``n`` blocks with the largest maxima hold the row's
    ``n`` largest values (an element outside them is at most each of their ``n`` maxima, so it cannot displace
    any), and ``topk`` runs over those ``n * TOP_BLOCK`` candidates only. Values are then exactly ``topk``'s. The
    indices are too wherever the row has no tie among its ``n + 1`` largest values; ``topk``'s choice among tied
    values is its own, so a row with such a tie (or a NaN) is given to ``topk`` whole: session-kNN's and
    popularity's many equal scores take that path, a network's rarely do."""
    N = scores.shape[1]
    blocks = N // TOP_BLOCK
    if 8 * (n + 1) * TOP_BLOCK > N:  # the candidates would be over an eighth of the row: topk is as fast
        top = scores.topk(n, dim=1)
        return top.values, top.indices
    kept = blocks * TOP_BLOCK
    bmax = scores[:, :kept].unflatten(1, (blocks, TOP_BLOCK)).amax(2)  # (B, blocks): a fast reduction
    if kept < N:
        bmax = torch.cat([bmax, scores[:, kept:].amax(1, keepdim=True)], 1)
    best = bmax.topk(n + 1, dim=1)  # the (n + 1)-th only to see whether a block outside may hold a tie
    cols = (best.indices[:, :n, None] * TOP_BLOCK + torch.arange(TOP_BLOCK, device=scores.device)).flatten(1)
    outside = cols >= N  # the short last block's missing columns
    cand = scores.gather(1, cols.clamp(max=N - 1)).masked_fill_(outside, -torch.inf)  # (B, n * TOP_BLOCK)
    top = cand.topk(n + 1, dim=1)
    values, indices = top.values[:, :n], cols.gather(1, top.indices[:, :n])
    v = top.values
    tied = (v[:, 1:] == v[:, :-1]).any(1) | (best.values[:, n] >= v[:, n - 1]) | v[:, :n].isnan().any(1)
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        exact = scores[rows].topk(n, dim=1)
        values, indices = values.clone(), indices.clone()
        values[rows], indices[rows] = exact.values, exact.indices
    return values, indices


def counts_from_top(scores: torch.Tensor, s_t: torch.Tensor, top: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``rank_counts(..., within=n)`` from the target scores ``s_t`` (B, 1) and each row's ``n`` largest scores
    ``top`` (B, n). A row whose tie group with the target may run past the top ``n`` (the list is all at or above the
    target) is counted over its full row; session-kNN's and popularity's many equal scores take that path."""
    n = top.shape[1]
    greater = (top > s_t).sum(1)
    equal = (top == s_t).sum(1)
    beyond = greater >= n  # the target ranks below the list: every metric within n is 0
    equal = torch.where(beyond, torch.ones_like(equal), equal)
    open_ties = (greater + equal >= n) & ~beyond
    if bool(open_ties.any()):
        rows = open_ties.nonzero().squeeze(1)
        equal[rows] = (scores[rows] == s_t[rows]).sum(1)
    return greater, equal


def _cumulative(n: int, kind: str, device) -> torch.Tensor:
    """``C[r] = sum_{i<=r} f(i)``, ``C[0] = 0``; f = 1 (recall), 1/i (MRR), 1/log2(i+1) (NDCG)."""
    r = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    f = {"R": torch.ones_like(r), "MRR": 1.0 / r, "NDCG": 1.0 / torch.log2(r + 1)}[kind]
    return torch.cat([torch.zeros(1, dtype=torch.float64, device=device), torch.cumsum(f, 0)])


def metrics_from_counts(greater: torch.Tensor, equal: torch.Tensor, ks, ties: str = "expected") -> dict:
    """Per-example metric values ``{"R@K": (B,), "MRR@K": (B,), "NDCG@K": (B,)}`` as float64 tensors."""
    if ties not in TIES:
        raise ValueError(f"ties: {ties!r} is not one of {TIES}")
    g, e = greater.to(torch.float64), equal.to(torch.float64)
    lo = {"expected": g + 1, "pessimistic": g + e, "optimistic": g + 1}[ties]
    hi = {"expected": g + e, "pessimistic": g + e, "optimistic": g + 1}[ties]
    kmax = max(ks)
    out = {}
    for kind in ("R", "MRR", "NDCG"):
        c = _cumulative(kmax, kind, greater.device)
        for k in ks:
            top = torch.minimum(hi, torch.full_like(hi, k))
            valid = lo <= k
            lo_i = torch.clamp(lo - 1, max=kmax).long()
            top_i = torch.clamp(top, min=0).long()
            val = (c[top_i] - c[lo_i]) / (hi - lo + 1)
            out[f"{kind}@{k}"] = torch.where(valid, val, torch.zeros_like(val))
    return out


class RankingMetrics:
    """Accumulates examples over batches; ``result()`` gives the metrics' means and item coverage.

    ``update`` keeps only each example's ``(g, e)`` counts; the metrics are computed from all of them at once when
    asked for (per chunk, their few dozen small operations were a visible share of an evaluation at 200k products)."""

    def __init__(self, ks, ties: str = "expected", n_items: int | None = None, keep_examples: bool = False):
        if ties not in TIES:
            raise ValueError(f"ties: {ties!r} is not one of {TIES}")
        self.ks, self.ties, self.keep = list(ks), ties, keep_examples
        self.counts: list[torch.Tensor] = []  # (2, B) int64 per update, merged as they pile up
        self.count = 0
        self.examples: dict = {}
        self.recommended = None if n_items is None else torch.zeros(n_items, dtype=torch.bool)
        self._values: dict | None = None

    def update(self, scores: torch.Tensor, target: torch.Tensor, masked: bool = False, **per_example) -> None:
        """Add a batch: ``scores`` (B, N), padding column included (already at ``-inf`` when ``masked``),
        ``target`` (B,), and any per-example values to keep. One top-K pass gives both the ranks that matter (K the
        largest cut-off, at least 20) and the top 20 for coverage."""
        if not masked:
            scores = without_padding(scores)
        n = min(max(*self.ks, 20), scores.shape[1] - 1)
        values, indices = top_n(scores, n)
        s_t = scores.gather(1, target.view(-1, 1))
        self.counts.append(torch.stack(counts_from_top(scores, s_t, values)))  # stays on the device until asked
        if len(self.counts) >= 1024:
            self.counts = [torch.cat(self.counts, 1)]
        self.count += target.shape[0]
        self._values = None
        if self.recommended is not None:
            self.recommended[indices[:, :20].flatten().cpu()] = True  # (B*20,) ids only cross devices
        if self.keep:
            for k, v in per_example.items():
                self.examples.setdefault(k, []).append(v.detach().cpu().numpy())

    def values(self) -> dict:
        """Per-example metric values ``{"R@K": (n,), ...}`` of every example so far, as float64 tensors."""
        if self.count == 0:
            raise ValueError("no examples to evaluate")
        if self._values is None:
            self.counts = [torch.cat(self.counts, 1)]
            self._values = metrics_from_counts(*self.counts[0], self.ks, self.ties)
        return self._values

    def result(self) -> dict:
        out = {k: float(v.sum()) / self.count for k, v in self.values().items()}
        if self.recommended is not None:
            out["coverage@20"] = float(self.recommended[1:].float().mean())
        return out

    def per_example(self) -> dict:
        return {**{k: v.cpu().numpy() for k, v in self.values().items()},
                **{k: np.concatenate(v) for k, v in self.examples.items()}}
