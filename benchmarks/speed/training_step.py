"""The three CPU training-step choices of our models against the library defaults they replace, side by side.

* dropout: ``sessionrec.models.layers.Dropout`` (16 random bits per element, four per 64-bit draw) vs ``nn.Dropout``
  (one Bernoulli draw per element), forward and backward, on a graph model's node inputs (V, 6 d_e);
* gather: ``gather_rows`` (``index_select``, backward ``index_add_``) vs advanced indexing ``h[index]`` (backward
  ``index_put_(accumulate=True)``), on SR-GNN's edge gathers;
* Adam: ``make_optimizer`` (fused) vs ``torch.optim.Adam`` with its default per-parameter loop, on a graph model's
  parameters;

then one epoch of each neural model on a synthetic store, whole (data, forward, backward, step), once with the three
library defaults patched back in and once as shipped.
Run: ``python benchmarks/speed/training_step.py [--repeats 200]``; it prints milliseconds per call and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sessionrec.graphs.build import build_examples
from sessionrec.graphs.store import GraphStore, write_store
from sessionrec.models import build_model, graph_embeddings, layers, srgnn
from sessionrec.models.registry import model_config
from sessionrec.models.layers import Dropout, gather_rows
from sessionrec.training.loop import make_optimizer

VOCAB = {"category": 150, "sub_category": 60, "element": 80, "brand": 300}
KNOBS = {"vocab_sizes": VOCAB, "embedding_dim": 64, "hidden_dim": 64, "num_iterations": 1, "dropout_rate": 0.2}


def rees46_like_sessions(rng, n: int, n_items: int, t0: float, t1: float):
    """``(session, item, ts)`` of ``n`` sessions with REES46-like lengths (median 3 clicks, cut at 50) and a power-law
    product popularity (rank ``r`` drawn with weight ``1 / (r + 10)``: the most viewed product about 1% of the
    clicks, as in the real October head), their first clicks uniform over ``[t0, t1)`` seconds, one click a second."""
    popularity = 1.0 / (np.arange(1, n_items) + 10.0)
    popularity /= popularity.sum()
    lengths = np.minimum(2 + rng.geometric(0.45, n), 50)
    session = np.repeat(np.arange(n), lengths)
    item = rng.choice(n_items - 1, len(session), p=popularity) + 1
    start = np.sort(rng.uniform(t0, t1, n)).astype(np.int64)
    ts = start[session] + np.arange(len(session)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return session, item.astype(np.int64), ts


@contextlib.contextmanager
def library_defaults():
    """``nn.Dropout``'s kernel and advanced indexing inside our models, for the side-by-side epoch."""
    saved = Dropout.forward, {m: m.gather_rows for m in (layers, srgnn, graph_embeddings)}
    Dropout.forward = lambda self, x: F.dropout(x, self.p, self.training)
    for m in saved[1]:
        m.gather_rows = lambda h, index: h[index]
    try:
        yield
    finally:
        Dropout.forward = saved[0]
        for m, f in saved[1].items():
            m.gather_rows = f


def per_call_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - t0) / repeats


def dropout_step(drop: nn.Module, x: torch.Tensor):
    def run():
        x.grad = None
        drop(x).sum().backward()
    return run


def gather_step(gather, h: torch.Tensor, index: torch.Tensor, grad: torch.Tensor):
    def run():
        (g,) = torch.autograd.grad(gather(h, index), h, grad)
        return g
    return run


def adam_step(opt, params):
    def run():
        opt.step()
    for p in params:
        p.grad = torch.randn_like(p)
    return run


def graph_model_params(n_items: int) -> list[torch.Tensor]:
    model = build_model(model_config("graph_with_embeddings_and_attention", n_items, KNOBS))
    return list(model.parameters())


def synthetic_store(path: Path, n_sessions: int, n_items: int, seed: int = 0, shard_size: int = 4096) -> GraphStore:
    rng = np.random.default_rng(seed)
    lengths = np.minimum(np.ceil(np.exp(rng.normal(1.0, 0.8, n_sessions))).astype(int) + 2, 50)
    session = np.repeat(np.arange(n_sessions), lengths)
    items = rng.integers(1, n_items, len(session))
    cols = {"item": items, "category": items % 150, "sub_category": items % 60, "element": items % 80,
            "brand": items % 300, "price": rng.random(len(session)).astype(np.float32),
            "ts": np.arange(len(session), dtype=np.int64)}
    write_store(path, build_examples(session, cols, "all_prefixes"), shard_size)
    return GraphStore(path)


def epoch_seconds(name: str, store: GraphStore, n_items: int, ours: bool) -> float:
    torch.manual_seed(0)
    model = build_model(model_config(name, n_items, KNOBS)).train()
    opt = make_optimizer(model, 1e-3, 1e-5) if ours else torch.optim.Adam(model.parameters(), 1e-3, weight_decay=1e-5)
    t0 = time.perf_counter()
    for batch in store.iter_batches(128, shuffle=True, seed=0, epoch=1):
        loss = F.cross_entropy(model(batch), batch.target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=8000, help="sessions of the store for the epoch timings")
    args = ap.parse_args()
    torch.manual_seed(0)
    n_items, V, B, E = 4000, 640, 128, 560  # about one batch of the synthetic default (128 sessions of ~5 nodes)
    rows = []

    x = torch.randn(V, 6 * 64, requires_grad=True)
    rows.append(("dropout (V, 6 d_e), fwd + bwd", per_call_ms(dropout_step(nn.Dropout(0.2).train(), x), args.repeats),
                 per_call_ms(dropout_step(Dropout(0.2).train(), x), args.repeats)))

    h = torch.randn(V, 100, requires_grad=True)
    index = torch.randint(0, V, (E,))
    grad = torch.randn(E, 100)
    rows.append(("gather rows (E, d), fwd + bwd", per_call_ms(gather_step(lambda t, i: t[i], h, index, grad), args.repeats),
                 per_call_ms(gather_step(gather_rows, h, index, grad), args.repeats)))

    params = graph_model_params(n_items)
    default = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-5)
    fused = make_optimizer(nn.ParameterList(params), 1e-3, 1e-5)
    rows.append(("Adam step, graph model", per_call_ms(adam_step(default, params), args.repeats),
                 per_call_ms(adam_step(fused, params), args.repeats)))

    print(f"{'operation':34s} {'library ms':>11s} {'ours ms':>9s} {'speed-up':>9s}")
    for name, lib, ours in rows:
        print(f"{name:34s} {lib:11.3f} {ours:9.3f} {lib / ours:8.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        store = synthetic_store(Path(tmp) / "train.lmdb", args.sessions, n_items)
        print(f"\none epoch over {len(store):,} examples (batch 128, {torch.get_num_threads()} threads)")
        print(f"{'model':50s} {'library s':>10s} {'ours s':>7s} {'speed-up':>9s}")
        epochs = []
        for name in ("gru4rec", "srgnn", "graph_with_embeddings", "graph_with_embeddings_and_attention",
                     "graph_with_embeddings_and_attentional_aggregation"):
            with library_defaults():
                lib = epoch_seconds(name, store, n_items, ours=False)
            ours = epoch_seconds(name, store, n_items, ours=True)
            epochs.append(lib / ours)
            print(f"{name:50s} {lib:10.2f} {ours:7.2f} {lib / ours:8.2f}x")
        store.close()
    print("summary: " + ", ".join(f"{name.split(',')[0]} {lib / ours:.1f}x" for name, lib, ours in rows)
          + f"; whole epochs {min(epochs):.2f}x to {max(epochs):.2f}x")


if __name__ == "__main__":
    main()
