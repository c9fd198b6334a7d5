"""SR-GNN as published: Wu et al., "Session-based Recommendation with Graph Neural Networks", AAAI 2019, following the
official PyTorch code (CRIPAC-DIG/SR-GNN) in every modelling choice.

Session graph (``sessionrec.graphs.build``): nodes are the distinct items of the input, an edge per distinct pair of
consecutive clicks, ``A^{in}_{ji} = 1/indeg(j)`` and ``A^{out}_{ij} = 1/outdeg(i)`` for an edge ``i -> j``.

Gated GNN, one step per ``num_iterations`` (paper Eq. 1-5, official ``GNNCell``), node states ``v`` (K, d):

.. math::
    a^{in} = A^{in} (W_{in} v + b_{in}) + b_{iah} \\qquad a^{out} = A^{out} (W_{out} v + b_{out}) + b_{oah}
    \\qquad a = [a^{in} \\| a^{out}]

    r = \\sigma(W_{ir} a + W_{hr} v) \\quad z = \\sigma(W_{iz} a + W_{hz} v) \\quad
    n = \\tanh(W_{in} a + r \\odot W_{hn} v) \\quad v' = n + z \\odot (v - n)

(all with biases). Readout over the input positions ``t`` (repeats included, as the official code does), ``v_n``
the state of the last click:

.. math::
    \\alpha_t = q^\\top \\sigma(W_1 v_n + W_2 v_t + c) \\qquad s_g = \\sum_t \\alpha_t v_t \\qquad
    s_h = W_3 [s_g \\| v_n] \\qquad \\hat z_i = s_h^\\top e_i

over every item embedding ``e_i`` (the same table as the node inputs). All parameters start uniform in
``(-1/sqrt(d), 1/sqrt(d))``. The official training recipe (Adam 1e-3, L2 1e-5, lr x0.1 every 3 epochs, batch 100,
d = 100) is params here; our loop's ReduceLROnPlateau replaces the step decay when ``model.use_scheduler`` is on.

Args: n_items (N incl. padding 0); hidden_dim (d); num_iterations (steps); dropout_rate (unused by the
original; kept 0 to be faithful). Shapes: ``encode(batch)`` -> ``(B, d)``; ``score`` -> ``(B, N)``, padding -inf.
The in/out aggregation is two ``index_add_`` calls: PyG has no layer with SR-GNN's two normalised directions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sessionrec.graphs.batch import Batch
from sessionrec.models import NETWORK
from sessionrec.models.layers import CatalogueOutput, Dropout, gather_rows, padded_nodes


class SRGNNCell(nn.Module):
    """One gated propagation step over the in and out adjacency (official ``GNNCell``)."""

    def __init__(self, d: int):
        super().__init__()
        self.edge_in, self.edge_out = nn.Linear(d, d), nn.Linear(d, d)
        self.b_iah, self.b_oah = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))
        self.w_ih, self.b_ih = nn.Parameter(torch.zeros(3 * d, 2 * d)), nn.Parameter(torch.zeros(3 * d))
        self.w_hh, self.b_hh = nn.Parameter(torch.zeros(3 * d, d)), nn.Parameter(torch.zeros(3 * d))

    def aggregate(self, v: torch.Tensor, edge_index: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor):
        """``(A^{in} (W_{in} v + b_{in}) + b_{iah}, A^{out} (W_{out} v + b_{out}) + b_{oah})``, each (K, d)."""
        src, dst = edge_index
        h_in, h_out = self.edge_in(v), self.edge_out(v)
        a_in = torch.zeros_like(v).index_add_(0, dst, w_in.unsqueeze(-1) * gather_rows(h_in, src)) + self.b_iah
        a_out = torch.zeros_like(v).index_add_(0, src, w_out.unsqueeze(-1) * gather_rows(h_out, dst)) + self.b_oah
        return a_in, a_out

    def forward(self, v, edge_index, w_in, w_out):
        a = torch.cat(self.aggregate(v, edge_index, w_in, w_out), dim=-1)  # (K, 2d)
        gi = a @ self.w_ih.T + self.b_ih
        gh = v @ self.w_hh.T + self.b_hh
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (v - n)


class SRGNN(CatalogueOutput, nn.Module):
    kind = NETWORK

    def __init__(self, n_items: int, hidden_dim: int = 100, num_iterations: int = 1, dropout_rate: float = 0.0):
        super().__init__()
        self.n_items = n_items
        d = hidden_dim
        self.embedding = nn.Embedding(n_items, d)
        self.cell = SRGNNCell(d)  # the official code reuses one cell for every step
        self.steps = num_iterations
        self.w1, self.w2 = nn.Linear(d, d), nn.Linear(d, d)
        self.q = nn.Linear(d, 1, bias=False)
        self.w3 = nn.Linear(2 * d, d)
        self.dropout = Dropout(dropout_rate)
        stdv = 1.0 / math.sqrt(d)
        for p in self.parameters():
            nn.init.uniform_(p, -stdv, stdv)

    def _readout_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The click states ``seq`` (B, L, d), the last click's ``v_n`` (B, d) and the attention ``alpha`` (B, L, 1)."""
        v = self.dropout(self.embedding(batch.item))  # (K, d)
        for _ in range(self.steps):
            v = self.cell(v, batch.edge_index, batch.w_in, batch.w_out)
        seq = padded_nodes(v, batch)  # (B, L, d)
        v_n = gather_rows(v, batch.last)  # (B, d)
        alpha = self.q(torch.sigmoid(self.w1(v_n).unsqueeze(1) + self.w2(seq)))  # (B, L, 1)
        return seq, v_n, alpha

    def encode(self, batch: Batch) -> torch.Tensor:
        seq, v_n, alpha = self._readout_inputs(batch)
        s_g = (alpha * seq * batch.mask.unsqueeze(-1)).sum(1)  # (B, d)
        return self.dropout(self.w3(torch.cat([s_g, v_n], dim=-1)))  # (B, d)

    def output_layer(self):
        return self.embedding.weight, None  # (N, d): tied to the input embedding

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.score(self.encode(batch))

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        """Each click's weight in the global session vector: ``alpha_i`` of the last-click attention (unnormalised,
        as in the paper; it can be negative)."""
        return {"what": "last-click attention alpha_i (SR-GNN, unnormalised)",
                "clicks": self._readout_inputs(batch)[2].squeeze(-1) * batch.mask, "parts": None}
