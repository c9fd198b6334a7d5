"""The batch every model takes: B session graphs as tensors. A module of its own, so that models import it and never
the store that builds it (``sessionrec.graphs.store``)."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, fields

import torch

from sessionrec.graphs.ranges import ranges

__all__ = ["Batch", "prefetched", "ranges"]  # ranges re-exported: the models import it from here


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

    def pinned(self, pin: bool = True) -> "Batch":
        """In page-locked memory (when ``pin``), so ``to`` a GPU copies asynchronously."""
        return Batch(**{f.name: getattr(self, f.name).pin_memory() for f in fields(self)}) if pin else self

    @property
    def size(self) -> int:
        return self.target.shape[0]


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items, depth: int = 2):
    """The items of the iterator ``items``, made up to ``depth`` ahead on a background thread, in order: on a GPU the
    next batches are read from the store, collated and pinned while the device trains on this one. An exception in
    ``items`` is raised here; a consumer that stops early stops the thread at its next item."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                ready.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put(x):
                    return
        except BaseException as e:  # handed to the consumer
            put(_Failed(e))
            return
        put(end)

    thread = threading.Thread(target=work, daemon=True, name="prefetch")
    thread.start()
    try:
        while (x := ready.get()) is not end:
            if isinstance(x, _Failed):
                raise x.error
            yield x
    finally:
        stop.set()
