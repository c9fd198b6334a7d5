"""Layers shared by the models."""

from __future__ import annotations

import torch
from torch import nn

from sessionrec.graphs.store import Batch

SIDE_FEATURES = ("category", "sub_category", "element", "brand")


class NodeFeatureEmbedding(nn.Module):
    """Node input of the original design: item, category, sub_category, element and brand embeddings plus a
    linear map of the scaled price, concatenated and projected to ``hidden_dim``.

    .. math:: x_i = W_x [e^{item}_i \\| e^{cat}_i \\| e^{sub}_i \\| e^{elem}_i \\| e^{brand}_i \\| w_p p_i] + b_x

    Args:
        n_items: catalogue size including padding id 0.
        vocab_sizes: ``{"category": .., "sub_category": .., "element": .., "brand": ..}`` including padding.
        embedding_dim: ``d_e``, size of each embedding. hidden_dim: ``d``, output size.

    Shapes: a :class:`Batch` with ``V`` nodes -> ``(V, d)``. ``item_embedding.weight`` is ``(N, d_e)``.
    """

    def __init__(self, n_items: int, vocab_sizes: dict, embedding_dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, embedding_dim, padding_idx=0)
        self.side = nn.ModuleDict({f: nn.Embedding(vocab_sizes[f], embedding_dim, padding_idx=0)
                                   for f in SIDE_FEATURES})
        self.price = nn.Linear(1, embedding_dim)
        self.proj = nn.Linear(embedding_dim * (2 + len(SIDE_FEATURES)), hidden_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.item_embedding(batch.item)] + [self.side[f](getattr(batch, f)) for f in SIDE_FEATURES]
        parts.append(self.price(batch.price.unsqueeze(-1)))
        return self.proj(self.dropout(torch.cat(parts, dim=-1)))  # (V, d)


def padded_nodes(h: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-position node states ``(B, L, d)`` from node states ``(V, d)``; padded positions are zero."""
    return h[batch.alias] * batch.mask.unsqueeze(-1)


def mask_padding(scores: torch.Tensor) -> torch.Tensor:
    """Never recommend padding id 0. ``scores`` (B, N)."""
    scores[:, 0] = -torch.inf
    return scores
