r"""The training loss of the networks: full-catalogue cross-entropy, or a sampled softmax with a log-Q correction.

``full`` (default): :math:`-\log \mathrm{softmax}(\hat z)_{y}` over all ``N`` products, ``model(batch)`` (B, N).
Its cost grows with the catalogue: at 4k products the output layer is about half of a training step; at 200k it is
nearly all of it.

``sampled``: the candidates of a batch are its ``B`` targets (in-batch negatives) and ``S = n_sample`` products drawn
with replacement with probability :math:`\propto \mathrm{pop}^{\alpha}` (``sample_alpha``; ``pop`` = training clicks),
as the official GRU4Rec trains on large catalogues (Hidasi & Karatzoglou, "Recurrent Neural Networks with Top-k Gains
for Session-based Recommendations", CIKM 2018). Logits over the ``B + S`` candidates, corrected for how often each was
likely to be drawn (``logq``, the official code's ``logq``; Yi et al., "Sampling-Bias-Corrected Neural Modeling for
Large Corpus Item Recommendations", RecSys 2019):

.. math::
    o_{bj} = h_b^\top w_{c_j} + b_{c_j} - \mathrm{logq} \cdot \log Q_{c_j}, \qquad
    Q_c = P_0(c) \text{ for the in-batch columns}, \; P_0(c)^{\alpha} \text{ for the sampled ones}

with :math:`P_0` the training popularity, exactly as the official code corrects, and the loss :math:`-\log \mathrm{softmax}(o_b)_b`
(the target is column ``b``). Unlike the official code, a candidate that equals the row's target but is not its own
column (an accidental hit: a popular product drawn again, or two examples with one target) is masked out of that row,
as TensorFlow's ``sampled_softmax_loss(remove_accidental_hits=True)`` does; otherwise the target is also counted as
its own negative. Draws use torch's global RNG, so they are seeded with the weights and saved in a checkpoint.

Shapes: ``h`` (B, d); candidates (B + S,); logits (B, B + S). Cost per step ``O(B (B + S) d)`` instead of ``O(B N d)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("full", "sampled")


class FullSoftmax:
    """Cross-entropy over the whole catalogue."""

    def __call__(self, model, batch) -> torch.Tensor:
        return F.cross_entropy(model(batch), batch.target)


class SampledSoftmax:
    """In-batch plus popularity-sampled negatives with a log-Q correction (see the module docstring).

    Args: counts (N,) training clicks per product (padding 0 included); n_sample ``S``; sample_alpha ``alpha``;
    logq the correction's weight (0 = none)."""

    def __init__(self, counts: np.ndarray, n_sample: int, sample_alpha: float, logq: float):
        p0 = torch.as_tensor(np.asarray(counts, np.float64))
        p0[0] = 0.0  # padding is never a candidate
        if not bool((p0 > 0).any()):
            raise ValueError("sampled loss: no product has a training click to sample from")
        p0 = p0 / p0.sum()
        q = p0 ** sample_alpha
        q[p0 == 0] = 0.0  # 0 ** 0 = 1: a product never clicked is never drawn, even at alpha 0
        self.cdf = torch.cumsum(q / q.sum(), 0).float()
        self.log_p0 = torch.log(p0.clamp_min(1e-30)).float()  # an in-batch target always has a click
        self.n_sample, self.alpha, self.logq = n_sample, sample_alpha, logq

    def draw(self, n: int, device) -> torch.Tensor:
        """``n`` product ids drawn with probability ``pop ** alpha`` (uniforms from the CPU generator, so a run draws
        the same ids on any device)."""
        u = torch.rand(n) * self.cdf[-1]
        return torch.searchsorted(self.cdf, u, right=True).clamp_max(len(self.cdf) - 1).to(device)

    def _log_p0(self, device) -> torch.Tensor:
        """``log_p0`` on ``device``, moved there once (not on every step)."""
        if self.log_p0.device != device:
            self.log_p0 = self.log_p0.to(device)
        return self.log_p0

    def __call__(self, model, batch) -> torch.Tensor:
        h = model.encode(batch)  # (B, d)
        target = batch.target
        B = target.shape[0]
        cand = torch.cat([target, self.draw(self.n_sample, target.device)])  # (B + S,)
        logits = model.score_items(h, cand)  # (B, B + S)
        if self.logq:
            log_p0 = self._log_p0(h.device)
            correction = torch.cat([log_p0[target], self.alpha * log_p0[cand[B:]]])
            logits = logits - self.logq * correction
        hits = cand.unsqueeze(0) == target.unsqueeze(1)  # (B, B + S)
        hits[torch.arange(B, device=hits.device), torch.arange(B, device=hits.device)] = False
        logits = logits.masked_fill(hits, -torch.inf)
        return F.cross_entropy(logits, torch.arange(B, device=logits.device))


def make_loss(kind: str, n_items: int, train_items: np.ndarray | None, n_sample: int, sample_alpha: float,
              logq: float):
    """The loss ``kind`` (``model.loss``); the sampled one counts popularity on ``train_items`` (the training
    clicks' product ids)."""
    if kind == "full":
        return FullSoftmax()
    if kind != "sampled":
        raise ValueError(f"model.loss: expected one of {LOSSES}, got {kind!r}")
    if train_items is None:
        raise ValueError("model.loss=sampled needs the training clicks to count popularity")
    return SampledSoftmax(np.bincount(np.asarray(train_items, np.int64), minlength=n_items), n_sample, sample_alpha,
                          logq)
