"""GRU4Rec: Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks", ICLR 2016, in the form
the official implementation recommends (Hidasi & Czapp, "The effect of third party implementations on
reproducibility", RecSys 2023).

.. math::
    x_t = \\mathrm{drop}_{e}(E_{i_t}) \\qquad h_t = \\mathrm{GRU}(x_t, h_{t-1}) \\qquad
    \\hat z = W_y \\, \\mathrm{drop}_{h}(h_L) + b_y

over the input clicks ``i_1..i_L`` of a session (the state starts at zero for every session). As with the official
code's ``constrained_embedding`` option, the input embedding is the output matrix ``W_y`` itself (``E = W_y``,
``d_e = d``), so an item's input and output representations are one vector.

Where third-party versions are known to go wrong, this follows the official design: the hidden state never carries
over from one session to another (here every prefix is its own sequence); the loss is a softmax cross-entropy
(over the full catalogue, as for every model here, where the official code samples negatives for speed); there is a
bias per output item; dropout sits on the input embedding and on the final hidden state. Differences: Adam (our one
training loop) instead of the official Adagrad, and full backpropagation through each prefix instead of
session-parallel mini-batches with one step per click.

Args: n_items (N incl. padding 0); hidden_dim (d); dropout_rate (embedding and hidden dropout).
Shapes: ``encode(batch)`` -> ``(B, d)``; ``score`` -> ``(B, N)``, padding at -inf.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from sessionrec.graphs.batch import Batch
from sessionrec.models import NETWORK
from sessionrec.models.layers import CatalogueOutput, Dropout, no_explanation


class GRU4Rec(CatalogueOutput, nn.Module):
    kind = NETWORK

    def __init__(self, n_items: int, hidden_dim: int = 100, dropout_rate: float = 0.0):
        super().__init__()
        self.n_items = n_items
        self.w_y = nn.Embedding(n_items, hidden_dim, padding_idx=0)  # output matrix, also the input embedding
        self.b_y = nn.Parameter(torch.zeros(n_items))
        self.gru = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.dropout = Dropout(dropout_rate)
        nn.init.normal_(self.w_y.weight, std=hidden_dim ** -0.5)

    def encode(self, batch: Batch) -> torch.Tensor:
        items = batch.item[batch.alias].masked_fill(~batch.mask, 0)  # (B, L) click sequence, 0-padded
        packed = pack_padded_sequence(self.w_y(items), batch.length.cpu(), batch_first=True, enforce_sorted=False)
        # input dropout on the real clicks only (packed.data is (sum of lengths, d)), not on the padding
        packed = PackedSequence(self.dropout(packed.data), packed.batch_sizes, packed.sorted_indices,
                                packed.unsorted_indices)
        _, h = self.gru(packed)  # (1, B, d): the state after the last real click
        return self.dropout(h[-1])

    def output_layer(self):
        return self.w_y.weight, self.b_y  # (N, d), (N,)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.score(self.encode(batch))

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        return no_explanation("gru4rec", "has no attention: its final GRU state carries the whole session")
