"""Popularity: every session gets the training catalogue ranked by training click count."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sessionrec.graphs.batch import Batch
from sessionrec.models import CLICKS
from sessionrec.models.layers import mask_padding, no_explanation


class Popularity(nn.Module):
    """Scores item ``i`` by ``log(1 + count_i)``, counts of training events; the same list for every session.

    Args: n_items: catalogue size including padding id 0.
    Shapes: ``encode`` -> ``(B, 1)`` (no session state); ``score`` -> ``(B, N)``.
    """

    kind = CLICKS

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.register_buffer("counts", torch.zeros(n_items))

    def fit_events(self, session: np.ndarray, item: np.ndarray, ts: np.ndarray) -> None:
        item = np.asarray(item, np.int64)
        if len(item) and (item.min() < 0 or item.max() >= self.counts.shape[0]):
            raise ValueError(f"training items must lie in 0..{self.counts.shape[0] - 1}")
        counts = np.bincount(item, minlength=self.counts.shape[0]).astype(np.float32)
        self.counts.copy_(torch.from_numpy(counts))

    def encode(self, batch: Batch) -> torch.Tensor:
        return torch.zeros(batch.size, 1, device=self.counts.device)  # (B, 1)

    def score(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        rows = torch.log1p(self.counts).expand(h.shape[0], -1)
        return mask_padding(rows.clone() if out is None else out.copy_(rows))  # (B, N)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.score(self.encode(batch))

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        return no_explanation("pop", "ranks by training clicks, whatever the session")
