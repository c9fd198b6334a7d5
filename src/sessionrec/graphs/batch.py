"""The batch every model takes: B session graphs as tensors. A module of its own, so that models import it and never
the store that builds it (``sessionrec.graphs.store``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from sessionrec.graphs.ranges import ranges

__all__ = ["Batch", "ranges"]  # ranges re-exported: the models import it from here


@dataclass
class Batch:
    """A batch of B session graphs with ``V`` nodes, ``E`` edges, padded length ``L`` in total."""

    item: torch.Tensor  # (V,) product id of each node
    category: torch.Tensor  # (V,)
    sub_category: torch.Tensor  # (V,)
    element: torch.Tensor  # (V,)
    brand: torch.Tensor  # (V,)
    price: torch.Tensor  # (V,) float
    node_batch: torch.Tensor  # (V,) graph of each node
    edge_index: torch.Tensor  # (2, E) src -> dst, batch-global node ids
    w_in: torch.Tensor  # (E,)
    w_out: torch.Tensor  # (E,)
    alias: torch.Tensor  # (B, L) batch-global node id of each position, 0 where padded
    mask: torch.Tensor  # (B, L) bool, True on real positions
    last: torch.Tensor  # (B,) batch-global node id of the last click
    length: torch.Tensor  # (B,) input length
    target: torch.Tensor  # (B,)
    session: torch.Tensor  # (B,)
    time: torch.Tensor  # (B,) unix seconds of the last input click

    def to(self, device) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    @property
    def size(self) -> int:
        return self.target.shape[0]
