"""Ours: a session-graph network blended with STAN, the blend weight chosen on validation.

The weighted hybrid the original design left as future work. Published comparisons (and the reference table next to
``../shared/data/splits``) find session-kNN hard to beat on e-commerce logs, and the two err differently: STAN
is sharp on sessions whose items co-occur in recent neighbours and silent (all-zero, tied) elsewhere; the network
ranks every item, rarely seen ones included. The blend of their normalised scores:

.. math::
    \\hat y = (1 - w) \\, \\mathrm{softmax}(\\hat z_{net}) + w \\, \\frac{\\hat z_{stan}}{\\max_j \\hat z_{stan, j}}

* the network (``hybrid_base``, SR-GNN by default) is trained alone, its epochs chosen on validation;
* ``w`` is then chosen on validation MRR@20 over a grid (``tune``), so ``w = 0`` (the network alone) and ``w = 1``
  (STAN alone, the network breaking its ties: a ``1e-9 * softmax`` term orders the items STAN scores equally, most
  often the many it scores 0) are both candidates and the blend is never chosen blind;
* with ``model.refit``, both parts are refitted on train + validation and ``w`` is kept.

Args: n_items; hybrid_base (a trainable registry name); the base's and STAN's own arguments.
Shapes: ``forward(batch)`` -> ``(B, N)`` (training mode, or ``w = 0``: the network's logits; otherwise the log of
the blend).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sessionrec.graphs.store import Batch
from sessionrec.models.knn import STAN
from sessionrec.models.layers import mask_padding

GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))
TIE = 1e-9


class Hybrid(nn.Module):
    trainable = True
    tuned_buffers = ("blend",)  # chosen on validation; a refit keeps them

    def __init__(self, n_items: int, hybrid_base: str = "srgnn", **kw):
        super().__init__()
        from sessionrec.models import REGISTRY  # late: the registry imports this module

        if hybrid_base not in REGISTRY or not REGISTRY[hybrid_base].trainable or hybrid_base == "hybrid":
            raise ValueError(f"model.hybrid_base: {hybrid_base!r} is not a trainable model of the registry")
        self.net = REGISTRY[hybrid_base](n_items, **kw)
        self.knn = STAN(n_items, **kw)
        self.register_buffer("blend", torch.tensor(0.0))

    def fit_events(self, session, item, ts) -> None:
        self.knn.fit_events(session, item, ts)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.knn.load_state_dict({k[4:]: v for k, v in state_dict.items() if k.startswith("knn.")})
        rest = {k: v for k, v in state_dict.items() if not k.startswith("knn.")}
        return nn.Module.load_state_dict(self, {**rest, **{f"knn.{k}": v for k, v in self.knn.state_dict().items()}},
                                         strict=strict, assign=assign)

    def parts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(network probabilities, STAN scores / their row maximum), both (B, N) float64 with 0 at padding."""
        p = torch.softmax(self.net(batch).double(), dim=-1)
        k = self.knn(batch).double().clamp_min(0.0)  # padding -inf -> 0
        k = k / k.amax(dim=-1, keepdim=True).clamp_min(1e-12)
        return p, k

    @staticmethod
    def blended(p: torch.Tensor, k: torch.Tensor, w) -> torch.Tensor:
        """The log of the blend, plus ``TIE * p`` so the network orders what STAN leaves tied (at ``w = 1`` too);
        float64 keeps that term from changing any order the blend itself decides. The log changes no ranking and
        keeps the scores usable as logits for the validation loss."""
        return mask_padding(torch.log((1 - w) * p + w * k + TIE * p))

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.training or self.blend == 0:  # w = 0 ranks as the network alone: STAN is not scored at all
            return self.net(batch)  # (the epochs are chosen at w = 0, so validation never pays for STAN)
        p, k = self.parts(batch)
        return self.blended(p, k, self.blend)

    @torch.no_grad()
    def tune(self, store, batch_size: int, ks, ties: str, device) -> dict:
        """Choose ``blend`` on ``store`` (validation) by MRR@20 over ``GRID``; returns {w: MRR@20}."""
        from sessionrec.metrics import RankingMetrics

        self.eval()
        accs = {w: RankingMetrics(ks, ties) for w in GRID}
        for batch in store.iter_batches(batch_size):
            batch = batch.to(device)
            p, k = self.parts(batch)
            for w, acc in accs.items():
                acc.update(self.blended(p, k, w), batch.target)
        curve = {float(w): acc.result()["MRR@20"] for w, acc in accs.items()}
        self.blend.fill_(max(curve, key=lambda w: (curve[w], -abs(w - 0.5))))
        return curve
