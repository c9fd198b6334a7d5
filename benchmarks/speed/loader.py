"""Batches per second: packed LMDB shards (ours) vs one record per example decoded per sample (the original design).

Both stores hold the same examples and both decode with numpy (no pickle here either, so the ratio measures the
layout and the per-sample work, not pickle). Run: ``python benchmarks/speed/loader.py [--sessions 20000]``.
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
from sessionrec.graphs.store import GraphStore, pack, unpack, write_store


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
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
        t = time.perf_counter()
        n_single = per_example_epoch(single, len(examples), args.batch_size)
        t_single = time.perf_counter() - t
    print(f"{len(examples)} examples, batch {args.batch_size}")
    print(f"packed shards (ours):        {n_packed / t_packed:12,.0f} examples/s  ({t_packed:.2f} s per epoch)")
    print(f"one record per example:      {n_single / t_single:12,.0f} examples/s  ({t_single:.2f} s per epoch)")
    print(f"speed-up: {t_single / t_packed:.1f}x")


if __name__ == "__main__":
    main()
