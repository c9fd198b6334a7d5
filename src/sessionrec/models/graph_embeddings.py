"""The original design's gated session-graph models over item / category / brand / price embeddings.

A family of three close variants that differ only in the readout:

* ``graph_with_embeddings``: mean pooling over the session graph's nodes;
* ``graph_with_embeddings_and_attention``: soft attention keyed on the last click (SR-GNN's readout);
* ``graph_with_embeddings_and_attentional_aggregation``: gated attentional aggregation (Li et al., "Gated Graph
  Sequence Neural Networks", ICLR 2016, Eq. 7; PyG ``AttentionalAggregation``).

Propagation (gated graph neural network, Li et al. 2016; PyG ``GatedGraphConv``), for ``T = num_iterations`` steps:

.. math::
    h_i^{(0)} = x_i \\qquad
    m_i^{(t)} = \\sum_{j \\to i} w^{in}_{ji} \\, W h_j^{(t-1)} \\qquad
    h_i^{(t)} = \\mathrm{GRU}(m_i^{(t)}, h_i^{(t-1)})

with :math:`x_i` from :class:`NodeFeatureEmbedding` and :math:`w^{in}_{ji} = 1/\\mathrm{indeg}(i)` on the edge of two
consecutive clicks ``j -> i``. Readouts, with :math:`v_n` the state of the last click's node:

.. math::
    s^{mean} = \\frac{1}{K} \\sum_i h_i \\qquad
    \\alpha_i = q^\\top \\sigma(W_1 v_n + W_2 h_i + c), \\; s^{att} = W_3 [v_n \\| \\sum_i \\alpha_i h_i] \\qquad
    s^{agg} = \\sum_i \\mathrm{softmax}_i(g(h_i)) \\, f(h_i)

Scores over the full catalogue: :math:`\\hat z = (W_o s) E^\\top`, ``E`` the item embedding table (tied).

Args:
    n_items (int): catalogue size N including padding 0.  vocab_sizes (dict): side-feature vocabulary sizes.
    embedding_dim (int, 64): ``d_e``.  hidden_dim (int, 64): ``d``.  num_iterations (int, 1): ``T``.
    dropout_rate (float, 0.2): on the node inputs and the session vector.

Shapes: ``encode(batch)`` -> ``(B, d_e)``; ``score(s)`` -> ``(B, N)``, padding id 0 at ``-inf``.

Differences from the original design: edges are built over distinct products with an alias array (the original
mixed unique-item edge indices with per-event node rows); every encoder and the price scaler are fitted on
training data only; the output layer is tied to the item embedding table, as in SR-GNN, so the model scores the
full catalogue without a separate ``d x N`` matrix.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import GatedGraphConv, global_mean_pool
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.utils import scatter, softmax

from sessionrec.graphs.batch import Batch
from sessionrec.models import NETWORK
from sessionrec.models.layers import (CatalogueOutput, Dropout, NodeFeatureEmbedding, gather_rows, no_explanation,
                                      per_position)

READOUTS = ("mean", "attention", "attentional_aggregation")


class GraphWithEmbeddings(CatalogueOutput, nn.Module):
    kind = NETWORK
    readout = "mean"

    def __init__(self, n_items: int, vocab_sizes: dict, embedding_dim: int = 64, hidden_dim: int = 64,
                 num_iterations: int = 1, dropout_rate: float = 0.2):
        super().__init__()
        self.n_items = n_items
        self.nodes = NodeFeatureEmbedding(n_items, vocab_sizes, embedding_dim, hidden_dim, dropout_rate)
        self.ggnn = GatedGraphConv(hidden_dim, num_layers=num_iterations)
        d = hidden_dim
        if self.readout == "attention":
            self.w1, self.w2 = nn.Linear(d, d), nn.Linear(d, d, bias=False)
            self.q = nn.Linear(d, 1, bias=False)
            self.w3 = nn.Linear(2 * d, d)
        elif self.readout == "attentional_aggregation":
            self.aggregate = AttentionalAggregation(
                gate_nn=nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1)),
                nn=nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)))
        self.out = nn.Linear(d, embedding_dim)
        self.dropout = Dropout(dropout_rate)

    def _alpha(self, h: torch.Tensor, v_n: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(V, 1) last-click attention of every node."""
        return self.q(torch.sigmoid(gather_rows(self.w1(v_n), batch.node_batch) + self.w2(h)))

    def encode(self, batch: Batch) -> torch.Tensor:
        x = self.nodes(batch)  # (V, d)
        h = self.ggnn(x, batch.edge_index, batch.w_in)  # (V, d)
        B = batch.size
        if self.readout == "mean":
            s = global_mean_pool(h, batch.node_batch, size=B)  # (B, d)
        elif self.readout == "attention":
            v_n = gather_rows(h, batch.last)  # (B, d)
            alpha = self._alpha(h, v_n, batch)  # (V, 1)
            s_g = scatter(alpha * h, batch.node_batch, dim=0, dim_size=B, reduce="sum")  # (B, d)
            s = self.w3(torch.cat([v_n, s_g], dim=-1))  # (B, d)
        else:
            s = self.aggregate(h, batch.node_batch, dim_size=B)  # (B, d)
        return self.out(self.dropout(s))  # (B, d_e)

    def output_layer(self):
        return self.nodes.item_embedding.weight, None  # (N, d_e): tied to the item embedding

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.score(self.encode(batch))

    def explain(self, batch: Batch, items: torch.Tensor) -> dict:
        """Each click's weight in the session vector: the last-click attention ``alpha_i`` (unnormalised) or the
        attentional aggregation's gate ``softmax_i(g(h_i))`` (sums to 1 over the session's products); the mean
        readout weighs every product alike and says so."""
        if self.readout == "mean":
            return no_explanation(type(self).__name__, "averages its products: every one weighs 1 / K")
        h = self.ggnn(self.nodes(batch), batch.edge_index, batch.w_in)  # (V, d)
        if self.readout == "attention":
            w, what = self._alpha(h, gather_rows(h, batch.last), batch).squeeze(-1), "last-click attention alpha_i"
        else:
            w = softmax(self.aggregate.gate_nn(h).squeeze(-1), batch.node_batch, num_nodes=batch.size)
            what = "attentional aggregation gate softmax_i(g(h_i)), over the session's distinct products"
        return {"what": what, "clicks": per_position(w, batch), "parts": None}


class GraphWithEmbeddingsAndAttention(GraphWithEmbeddings):
    readout = "attention"


class GraphWithEmbeddingsAndAttentionalAggregation(GraphWithEmbeddings):
    readout = "attentional_aggregation"
