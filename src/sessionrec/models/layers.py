"""Layers shared by the models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sessionrec.graphs.batch import Batch

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
        self.dropout = Dropout(dropout)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = [self.item_embedding(batch.item)] + [self.side[f](getattr(batch, f)) for f in SIDE_FEATURES]
        parts.append(self.price(batch.price.unsqueeze(-1)))
        return self.proj(self.dropout(torch.cat(parts, dim=-1)))  # (V, d)


def no_explanation(model: str, why: str) -> dict:
    """What ``explain`` returns for a model without per-click weights (see ``models/__init__``)."""
    return {"what": f"none: {model} {why}", "clicks": None, "parts": None}


def per_position(node_weights: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(V,) node weights -> (B, L) weights of the clicks (a repeated product's weight at each of its positions)."""
    return node_weights[batch.alias] * batch.mask


class Dropout(nn.Module):
    """Inverted dropout whose CPU keep mask takes 16 random bits per element, four elements per 64-bit draw.

    Written here because it is measurably faster than the library's: on CPU, ``nn.Dropout`` draws one Bernoulli per
    element from torch's Mersenne Twister, and on the graph models' node inputs ((V, 6 d_e) per batch) that was 17% of
    a training step. One 64-bit draw here decides four elements: 2.9x faster, forward and backward
    (``python benchmarks/speed/training_step.py``).
    An element is dropped with probability ``q = round(p * 65536) / 65536`` (0.199997 for p = 0.2) and kept values
    are scaled by ``1 / (1 - q)``, so the expectation is exact. In eval mode, for p = 0 and off the CPU (where
    torch's fused kernel is fast) it is ``nn.Dropout``'s behaviour exactly. Same seed, same mask.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536)  # drop where the 16-bit draw (as unsigned) is below this
        if not 0.0 <= p < 1.0 or self.threshold == 65536:  # p that rounds to 1 would drop everything
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, 2 ** 63 - 1)
        draws = bits.view(torch.int16)[:n].view(x.shape)  # uniform on -32768 .. 32767
        keep = draws >= self.threshold - 32768
        return x * (keep.to(x.dtype) * (65536 / (65536 - self.threshold)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def gather_rows(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``h[index]`` for node states ``h`` (V, d) and any integer ``index`` shape, as ``index_select``: the same
    values, but its backward is an ``index_add_`` instead of advanced indexing's ``index_put_(accumulate=True)``,
    which on CPU took 27% of an SR-GNN training step (5x slower on these shapes)."""
    return h.index_select(0, index.reshape(-1)).view(*index.shape, h.shape[-1])


def padded_nodes(h: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-position node states ``(B, L, d)`` from node states ``(V, d)``; padded positions are zero."""
    return gather_rows(h, batch.alias) * batch.mask.unsqueeze(-1)


class CatalogueOutput:
    """Mixin of the networks: scores from a tied output layer ``output_layer() -> (W (N, d), b (N,) or None)``.

    ``score(h)`` is ``h W^T (+ b)`` over the full catalogue, padding id 0 at ``-inf``; with ``out`` (a reused
    ``(rows, N)`` buffer, under ``torch.no_grad``) it is written there: at 200k products a fresh ``(rows, N)``
    allocation page-faults and halves the matmul's speed. ``score_items(h, items)`` scores only ``items`` (K,) for
    every row: ``(B, K)``, the sampled loss's logits (``training.loss``).

    ``sparse_catalogue(True)``: the ``(N, d)`` table's gradient becomes a sparse tensor holding only the rows a batch
    looked up (its clicks in, its candidates out), for a lazy optimizer (``training.loop.make_optimizer``); only for
    losses that never score the full catalogue in training (``score`` would give it a dense gradient)."""

    sparse = False

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def sparse_catalogue(self, on: bool) -> None:
        w = self.output_layer()[0]
        tables = [m for m in self.modules() if isinstance(m, nn.Embedding) and m.weight is w]
        if len(tables) != 1:
            raise TypeError(f"{type(self).__name__}: its output layer is not one nn.Embedding's weight")
        tables[0].sparse = self.sparse = on

    def score(self, h: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.output_layer()
        if out is None:
            s = h @ w.T if b is None else h @ w.T + b
        else:  # addmm adds the bias inside the matmul's pass, not in a second one over (B, N) scores
            s = torch.mm(h, w.T, out=out) if b is None else torch.addmm(b, h, w.T, out=out)
        return mask_padding(s)  # (B, N)

    def score_items(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        w, b = self.output_layer()
        rows = F.embedding(items, w, sparse=True) if self.sparse else w[items]  # (K, d)
        s = h @ rows.T  # (B, K)
        return s if b is None else s + b[items]


def mask_padding(scores: torch.Tensor) -> torch.Tensor:
    """Never recommend padding id 0. ``scores`` (B, N)."""
    scores[:, 0] = -torch.inf
    return scores
