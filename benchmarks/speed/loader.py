"""Batches per second: packed LMDB shards (ours) vs one record per example decoded per sample (the original design),
and ours against the same store gathered with one Python loop per shard (how ``GraphStore.batch`` read until the
views across the memory map: fine when a batch touches a few shards, slow when a shuffled epoch over millions of
examples puts every example of a batch in another shard).

Both stores hold the same examples and both decode with numpy (no pickle here either, so the ratio measures the
layout and the per-sample work, not pickle). ``--store PATH`` times batches drawn at random from an existing store
instead (e.g. ``data/graphs/train.lmdb`` of a full-size run), both ways, and checks they are the same tensors; with
``--checkpoint models/model.pt --train-split data/split/train.parquet`` of that run also the loader's share of a
training step there (the checkpoint's network, the sampled loss and ``lazy_adam`` as a 200k-product run trains).

    python benchmarks/speed/loader.py [--sessions 20000] [--batch-size 128]
        [--store PATH [--batches 300] [--checkpoint PT --train-split PARQUET]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lmdb
import numpy as np
import torch

from sessionrec.graphs.build import build_examples
from sessionrec.graphs.ranges import ranges
from sessionrec.graphs.store import EDGE_ARRAYS, NODE_ARRAYS, GraphStore, pack, unpack, write_store


class PerShardLoop(GraphStore):
    """The same store gathered with a Python loop over the shards a batch touches (the earlier ``batch``)."""

    def gather(self, shard, local):
        parts = []
        for o in np.split(np.arange(len(shard)), np.flatnonzero(np.diff(shard)) + 1):
            s, idx, out = self.shards[shard[o[0]]], local[o], {}
            for ptr, names in (("node_ptr", NODE_ARRAYS), ("seq_ptr", ("alias",)), ("edge_ptr", EDGE_ARRAYS)):
                p = s[ptr]
                counts = p[idx + 1] - p[idx]
                rows = ranges(p[idx].astype(np.int64), counts.astype(np.int64))
                out[ptr] = counts
                for n in names:
                    out[n] = s[n][rows]
            for n in ("target", "session", "time"):
                out[n] = s[n][idx]
            parts.append(out)
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def time_batches(store: GraphStore, batches: list) -> tuple[float, list]:
    t = time.perf_counter()
    out = [store.batch(idx) for idx in batches]
    return time.perf_counter() - t, out


def compare_on(path: Path, batch_size: int, n_batches: int) -> None:
    """Random batches of an existing store, gathered both ways in turn (LMDB allows one open environment per file
    and process), after one untimed pass over the same batches so both read from a warm page cache."""
    ours = GraphStore(path)
    n = len(ours)
    batches = np.array_split(np.random.default_rng(0).permutation(n)[:batch_size * n_batches], n_batches)
    per_shard = [len(np.unique(np.searchsorted(ours.starts, b, side="right"))) for b in batches]
    time_batches(ours, batches)
    t_ours, a = time_batches(ours, batches)
    ours.close()
    loop = PerShardLoop(path)
    t_loop, b = time_batches(loop, batches)
    loop.close()
    same = all(torch.equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b) for f in x.__dataclass_fields__)
    m = batch_size * n_batches
    print(f"{path}: {n:,} examples in {len(ours.starts) - 1:,} shards; {n_batches} random batches of {batch_size}, "
          f"{np.mean(per_shard):.0f} shards per batch; same tensors both ways: {same}")
    for label, t in (("views across the memory map (ours)", t_ours), ("one loop per shard", t_loop)):
        print(f"{label:36s}{m / t:12,.0f} examples/s  ({1000 * t / n_batches:.2f} ms/batch)")
    print(f"speed-up: {t_loop / t_ours:.1f}x")


def synthetic_sessions(n_sessions: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.minimum(np.ceil(np.exp(rng.normal(1.0, 0.8, n_sessions))).astype(int) + 2, 50)
    session = np.repeat(np.arange(n_sessions), lengths)
    items = rng.integers(1, 5000, len(session))
    feats = {f: items % m for f, m in (("item", 10**9), ("category", 300), ("sub_category", 50), ("element", 80),
                                      ("brand", 700))}
    feats["price"] = rng.random(len(session)).astype(np.float32)
    return session, feats


def per_example_store(path: Path, examples) -> None:
    env = lmdb.open(str(path), subdir=False, map_size=1 << 36)
    with env.begin(write=True) as txn:
        for i, e in enumerate(examples):
            txn.put(str(i).encode(), pack({k: np.atleast_1d(v) for k, v in e.items()}))
    env.close()


def per_example_epoch(path: Path, n: int, batch_size: int) -> int:
    """The original design's access pattern: open the record per sample, decode, collate in Python."""
    seen = 0
    order = np.random.default_rng(0).permutation(n)
    for i in range(0, n, batch_size):
        graphs = []
        for j in order[i:i + batch_size]:
            env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
            with env.begin() as txn:
                graphs.append({k: torch.from_numpy(v.copy()) for k, v in unpack(txn.get(str(j).encode())).items()})
            env.close()
        offsets = np.cumsum([0] + [len(g["item"]) for g in graphs[:-1]])
        torch.cat([g["item"] for g in graphs])
        torch.cat([torch.stack([g["src"], g["dst"]]) + int(o) for g, o in zip(graphs, offsets)], dim=1)
        seen += len(graphs)
    return seen


def timed_steps(store: GraphStore, step, opt, batches) -> tuple[float, float]:
    """Seconds spent batching, and in the rest of the training step, over ``batches`` (index arrays)."""
    load = rest = 0.0
    for idx in batches:
        t0 = time.perf_counter()
        batch = store.batch(idx)
        t1 = time.perf_counter()
        loss = step(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        load, rest = load + t1 - t0, rest + time.perf_counter() - t1
    return load, rest


def step_share(path: Path, checkpoint: Path, train_split: Path, batch_size: int, n_batches: int) -> None:
    """Batching against the rest of a training step on random batches of the store at ``path`` (20 warm-up steps)."""
    import pyarrow.parquet as pq

    from sessionrec.training.checkpoint import load_model
    from sessionrec.training.loop import TrainStep, make_optimizer
    from sessionrec.training.loss import make_loss

    store = GraphStore(path)
    model, _ = load_model(checkpoint)
    items = pq.read_table(train_split, columns=["item"]).column("item").to_numpy()
    step = TrainStep(model, make_loss("sampled", model.n_items, items, 2048, 0.5, 1.0))
    step.train()
    opt = make_optimizer(model, 1e-3, 1e-5, "lazy_adam")
    batches = np.array_split(np.random.default_rng(1).permutation(len(store))[:batch_size * (n_batches + 20)],
                             n_batches + 20)
    timed_steps(store, step, opt, batches[:20])  # warm-up
    load, rest = timed_steps(store, step, opt, batches[20:])
    store.close()
    print(f"training steps ({model.n_items - 1:,} products, sampled loss, lazy_adam, "
          f"{torch.get_num_threads()} threads): batching {1000 * load / n_batches:.2f} ms, "
          f"the rest {1000 * rest / n_batches:.2f} ms per batch: "
          f"the loader {load / (load + rest):.1%} of a step, {batch_size * n_batches / (load + rest):,.0f} examples/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--store", type=Path, help="time random batches of this existing graph store instead")
    ap.add_argument("--batches", type=int, default=300, help="with --store: how many")
    ap.add_argument("--checkpoint", type=Path, help="with --store: also time training steps of this model.pt")
    ap.add_argument("--train-split", type=Path, help="with --checkpoint: the run's data/split/train.parquet")
    args = ap.parse_args()
    if args.store:
        compare_on(args.store, args.batch_size, args.batches)
        if args.checkpoint:
            step_share(args.store, args.checkpoint, args.train_split, args.batch_size, args.batches)
        return
    session, feats = synthetic_sessions(args.sessions)
    examples = list(build_examples(session, feats, "all_prefixes"))
    with tempfile.TemporaryDirectory() as tmp:
        packed, single = Path(tmp) / "packed.lmdb", Path(tmp) / "single.lmdb"
        write_store(packed, iter(examples), 4096)
        per_example_store(single, examples)
        store = GraphStore(packed)
        t = time.perf_counter()
        n_packed = sum(b.size for b in store.iter_batches(args.batch_size, shuffle=True))
        t_packed = time.perf_counter() - t
        store.close()
        loop = PerShardLoop(packed)
        t = time.perf_counter()
        n_loop = sum(b.size for b in loop.iter_batches(args.batch_size, shuffle=True))
        t_loop = time.perf_counter() - t
        loop.close()
        t = time.perf_counter()
        n_single = per_example_epoch(single, len(examples), args.batch_size)
        t_single = time.perf_counter() - t
    print(f"{len(examples)} examples, batch {args.batch_size}")
    print(f"packed shards (ours):        {n_packed / t_packed:12,.0f} examples/s  ({t_packed:.2f} s per epoch)")
    print(f"  gathered shard by shard:   {n_loop / t_loop:12,.0f} examples/s  ({t_loop:.2f} s per epoch)")
    print(f"one record per example:      {n_single / t_single:12,.0f} examples/s  ({t_single:.2f} s per epoch)")
    print(f"speed-up: {t_single / t_packed:.1f}x")


if __name__ == "__main__":
    main()
