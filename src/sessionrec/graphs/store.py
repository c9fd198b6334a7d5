"""Packed LMDB shards of session graphs, read zero-copy, and vectorised batching into tensors.

Layout: one LMDB file (``subdir=False``); key ``meta`` holds JSON (``format``, example count, shard sizes, each
shard's CRC-32), key ``meta-crc32`` the CRC-32 of ``meta``; key ``shard-000000`` ... holds one shard of up to
``shard_size`` examples as flat numpy buffers (CSR style: per-example pointers into node / position / edge arrays).
Each value is ``<u8 header length><JSON header><8-byte-aligned arrays>``; no pickle anywhere. Opening a store checks
its format and every checksum (about 1 GB/s): a flipped byte, a truncated or a foreign file is refused with a
``StoreError`` naming the file, never read as other tensors. A store is written under a temporary name and renamed
into place when complete (``atomic``). Readers open the file ``readonly=True, lock=False`` (no lock file, so
``dvc status`` stays clean) and keep one read transaction open, so ``np.frombuffer`` views point straight into the
memory map, and a batch gathers across all shards at once (``_Segment``).

This replaces the original design's one pickled graph per record, opened per sample, which starved the GPU.
"""

from __future__ import annotations

import ctypes
import json
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import lmdb
import numpy as np

from sessionrec import atomic
from sessionrec.graphs.ranges import ranges

if TYPE_CHECKING:
    from sessionrec.graphs.batch import Batch
from sessionrec.graphs.build import NODE_INT_FEATURES, block_len, concat_blocks, example_block, slice_block

FORMAT = "sessionrec-graphs/2"
NODE_ARRAYS = (*NODE_INT_FEATURES, "price")
EDGE_ARRAYS = ("src", "dst", "w_in", "w_out")
STORE_DTYPES = {"price": np.float32, "w_in": np.float32, "w_out": np.float32, "time": np.int64}  # else int32
SHARD_ORDER = ("node_ptr", "seq_ptr", "edge_ptr", *NODE_ARRAYS, "alias", *EDGE_ARRAYS, "target", "session", "time")


class StoreError(ValueError):
    """A graph store that cannot be trusted: unreadable, of another format, or failing a checksum."""


def pack(arrays: dict) -> bytes:
    header, chunks, offset = {}, [], 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        header[name] = [arr.dtype.str, arr.shape[0], offset]
        raw = arr.tobytes()
        pad = (-len(raw)) % 8
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    head = json.dumps(header).encode()
    head += b" " * ((-len(head) - 8) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def unpack(buf) -> dict:
    """Zero-copy views of the arrays in ``buf`` (bytes or memoryview)."""
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(bytes(buf[8:8 + n]))
    base = 8 + n
    return {name: np.frombuffer(buf, dtype=np.dtype(dt), count=count, offset=base + off)
            for name, (dt, count, off) in header.items()}


def shards_of(blocks, shard_size: int):
    """Blocks of any sizes (``build.graph_block``, ``build.example_block``) re-cut into shards of exactly
    ``shard_size`` examples (the last one smaller), with the store's arrays in its order and dtypes."""
    def shard(parts):
        joined = concat_blocks(parts)
        return {k: np.asarray(joined[k]).astype(STORE_DTYPES.get(k, np.int32), copy=False) for k in SHARD_ORDER}

    pending, n = [], 0
    for block in blocks:
        i, m = 0, block_len(block)
        while i < m:
            take = min(shard_size - n, m - i)
            pending.append(block if take == m else slice_block(block, i, i + take))
            n, i = n + take, i + take
            if n == shard_size:
                yield shard(pending)
                pending, n = [], 0
    if n:
        yield shard(pending)


def write_store(path: Path, examples, shard_size: int, meta: dict | None = None) -> int:
    """Write an iterable of example dicts (see ``build.build_examples``) to ``path``; return the example count."""
    return write_blocks(path, map(example_block, examples), shard_size, meta)


def write_blocks(path: Path, blocks, shard_size: int, meta: dict | None = None) -> int:
    """Write blocks of examples (``build.graph_block``) to ``path`` as shards of ``shard_size`` examples; return the
    example count."""
    path = Path(path)
    Path(f"{path}-lock").unlink(missing_ok=True)
    with atomic.replacing(path) as tmp:
        lock = Path(f"{tmp}-lock")
        try:
            # meminit: zeroed page slack, so the same examples always give the same bytes (and the same DVC hash)
            env = lmdb.open(str(tmp), subdir=False, map_size=1 << 40, meminit=True, map_async=True)
            sizes, crcs = [], []
            for shard in shards_of(blocks, shard_size):
                value = pack(shard)
                with env.begin(write=True) as txn:
                    txn.put(f"shard-{len(sizes):06d}".encode(), value)
                sizes.append(len(shard["target"]))
                crcs.append(zlib.crc32(value))
            head = json.dumps({"format": FORMAT, "n_examples": sum(sizes), "shard_sizes": sizes, "shard_crc32": crcs,
                               **(meta or {})}).encode()
            with env.begin(write=True) as txn:
                txn.put(b"meta", head)
                txn.put(b"meta-crc32", b"%08x" % zlib.crc32(head))
            env.sync(True)
            env.close()
        finally:
            lock.unlink(missing_ok=True)
    return sum(sizes)


LMDB_MAGIC = 0xBEEFC0DE


def check_lmdb_file(path: Path, redo: str) -> None:
    """Refuse a file that is not LMDB, or shorter than its own meta page says, before mapping it: LMDB trusts the
    file, and reading a page past the end of a truncated one kills the process (SIGBUS), no exception raised.

    The meta pages (0 and 1; the one with the higher transaction id is current) hold, after the 16-byte page header:
    magic u32, version u32, address u64, map size u64, two 48-byte database records (the first one's leading u32
    is the page size), last page number u64, transaction id u64."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(160)
        if len(head) < 160 or struct.unpack_from("<I", head, 16)[0] != LMDB_MAGIC:
            raise StoreError(f"{path}: not an LMDB file, so not a graph store: {redo}")
        psize = struct.unpack_from("<I", head, 40)[0]
        f.seek(psize)
        second = f.read(160)
    metas = [m for m in (head, second) if len(m) == 160 and struct.unpack_from("<I", m, 16)[0] == LMDB_MAGIC]
    last_pg, _ = max((struct.unpack_from("<QQ", m, 136) for m in metas), key=lambda t: t[1])
    if psize not in (4096, 8192, 16384, 32768, 65536) or size < (last_pg + 1) * psize:
        raise StoreError(f"{path}: truncated ({size} bytes, its pages need {(last_pg + 1) * psize}): {redo}")


def read_meta(path: Path) -> bytes:
    """The raw ``meta`` record of the store at ``path``. It opens and closes the file, so call it before a
    ``GraphStore`` of this process opens the same one (LMDB allows one environment per file and process)."""
    check_lmdb_file(Path(path), "rebuild it: `dvc repro --force build_graphs`")
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return bytes(txn.get(b"meta") or b"")
    finally:
        env.close()


def open_store(path: Path):
    """``(env, txn, meta, shards)`` of the store at ``path``, every checksum verified."""
    redo = "rebuild it: `dvc repro --force build_graphs`"
    check_lmdb_file(path, redo)
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False)
    except lmdb.Error as e:
        raise StoreError(f"{path}: unreadable as a graph store ({type(e).__name__}: {str(e)[:160]}): {redo}") from None
    try:
        txn = env.begin(buffers=True)
        head, head_crc = txn.get(b"meta"), txn.get(b"meta-crc32")
        if head is None or head_crc is None:
            raise StoreError(f"{path}: not a {FORMAT} store (no checksummed meta record); written by another program "
                             f"or an older sessionrec: {redo}")
        if b"%08x" % zlib.crc32(head) != bytes(head_crc):
            raise StoreError(f"{path}: the meta record fails its checksum; the file was altered or damaged: {redo}")
        meta = json.loads(bytes(head))
        if meta.get("format") != FORMAT:
            raise StoreError(f"{path}: format {meta.get('format')!r}, this sessionrec reads {FORMAT}: {redo}")
        shards = []
        for i, crc in enumerate(meta["shard_crc32"]):
            value = txn.get(f"shard-{i:06d}".encode())
            if value is None or zlib.crc32(value) != crc:
                raise StoreError(f"{path}: shard {i} is {'missing' if value is None else 'altered or damaged'} "
                                 f"(checksum): {redo}")
            shards.append(unpack(value))
    except (StoreError, lmdb.Error) as e:
        env.close()
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"{path}: unreadable as a graph store ({type(e).__name__}: {str(e)[:160]}): {redo}") from None
    return env, txn, meta, shards


class _Segment:
    """Every shard of one store file (or one in-memory shard) read as one: for each array name, numpy views over the
    address range that the shards' arrays of that name span in the file's memory map, and each shard's element
    offset into them. A batch of B examples from B different shards (a shuffled epoch over millions of examples) is
    then gathered by a fixed number of vectorised numpy indexings, not a Python loop over its shards: written here
    because LMDB gives one buffer per record and numpy no view across buffers; measured in
    ``benchmarks/speed/loader.py``. The views borrow the memory map: they live as long as the store is open
    (``GraphStore.close``).

    Shards of more than a few kB sit on LMDB's overflow pages, so their arrays all fall on one element grid; a small
    shard sits inside a leaf page at any 2-byte boundary, so each name keeps one view per byte residue in use
    (usually one)."""

    def __init__(self, first: int, shards: list, path: Path | None = None):
        self.first, self.flat = first, {}
        if not shards:
            return
        for name in SHARD_ORDER:
            arrays = [s[name] for s in shards]
            dtype, live = arrays[0].dtype, np.array([a.size > 0 for a in arrays])
            addr = np.array([a.__array_interface__["data"][0] for a in arrays], np.int64)
            base = int(addr[live].min()) if live.any() else 0
            end = max((int(a) + arr.nbytes for a, arr, ok in zip(addr, arrays, live) if ok), default=0)
            if path is not None and end - base > path.stat().st_size:
                raise StoreError(f"{path}: the {name!r} arrays of its shards span more than the file: "
                                 f"rebuild it: `dvc repro --force build_graphs`")
            rel = np.where(live, addr - base, 0)
            residue = rel % dtype.itemsize
            views = {int(r): np.frombuffer((ctypes.c_char * (end - base - int(r))).from_address(base + int(r)),
                                           dtype=dtype, count=(end - base - int(r)) // dtype.itemsize)
                     for r in np.unique(residue)} if live.any() else {0: np.zeros(0, dtype)}
            for v in views.values():
                v.flags.writeable = False
            self.flat[name] = (views, rel // dtype.itemsize, residue)

    def take(self, name: str, k: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Element ``i[j]`` of shard ``k[j]``'s array ``name`` (shards numbered within this segment)."""
        views, off, residue = self.flat[name]
        if len(views) == 1:
            return next(iter(views.values()))[off[k] + i]
        r = residue[k]
        out = np.empty(len(i), next(iter(views.values())).dtype)
        for res, view in views.items():
            m = r == res
            out[m] = view[off[k[m]] + i[m]]
        return out

    def gather(self, shard: np.ndarray, local: np.ndarray) -> dict:
        """The arrays of examples ``local`` of shards ``shard`` (global shard numbers of this segment), in that
        order: per-example counts for the pointer arrays, node / position / edge rows concatenated."""
        k, out = shard - self.first, {}
        for ptr, names in (("node_ptr", NODE_ARRAYS), ("seq_ptr", ("alias",)), ("edge_ptr", EDGE_ARRAYS)):
            start = self.take(ptr, k, local)
            counts = self.take(ptr, k, local + 1) - start
            rows = ranges(start.astype(np.int64), counts.astype(np.int64))
            k_row = np.repeat(k, counts)
            out[ptr] = counts
            for n in names:
                out[n] = self.take(n, k_row, rows)
        for n in ("target", "session", "time"):
            out[n] = self.take(n, k, local)
        return out


class GraphStore:
    """Read-only view of a graph store; ``batch(indices)`` builds a :class:`Batch` with vectorised numpy."""

    def __init__(self, path: str | Path | list):
        """One store, or several read as one (their shards in order), e.g. train + validation for a refit."""
        self.envs, self.shards, sizes, self.segments = [], [], [], []
        self.index = None  # ``sample``: the example indices this store reads, ascending (None: every one)
        for p in (path if isinstance(path, (list, tuple)) else [path]):
            p = Path(p)
            if not p.exists():
                raise FileNotFoundError(f"{p}: graph store not found (run the build_graphs stage)")
            env, txn, meta, shards = open_store(p)
            self.segments.append(_Segment(len(self.shards), shards, p))
            self.shards += shards
            sizes += meta["shard_sizes"]
            self.envs.append((env, txn))
        self._index(sizes)

    def _index(self, sizes: list) -> None:
        """Example offsets of the shards and each shard's segment."""
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.segment_of = np.zeros(len(self.shards), np.int64)
        for i, seg in enumerate(self.segments):
            self.segment_of[seg.first:] = i

    @classmethod
    def from_examples(cls, examples: list[dict]) -> "GraphStore":
        """An in-memory store of ``examples`` (``build.build_examples`` dicts): the service batches live sessions
        with the very code that batches the test split."""
        store = cls([])
        store.shards = list(shards_of(map(example_block, examples), max(len(examples), 1)))
        store.segments = [_Segment(i, [shard]) for i, shard in enumerate(store.shards)]
        store._index([len(examples)] if examples else [])
        return store

    def __len__(self) -> int:
        return int(self.starts[-1]) if self.index is None else len(self.index)

    def sample(self, n: int, seed: int = 0) -> "GraphStore":
        """Restrict this store to ``n`` of its examples drawn without replacement by ``seed``, kept in store order
        (``n`` = 0 or at least the store's size: every example); returns the store. ``model.val_examples``: at
        millions of validation examples each pass over all of them costs more than the epoch it judges (36 minutes
        per network at 200k products on 2 cores), while a mean over 100k examples has a standard error of at most
        0.16 points of R@20 or MRR@20."""
        total = int(self.starts[-1])
        if 0 < n < total:
            self.index = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
        return self

    def close(self) -> None:
        self.shards, self.segments = [], []
        for env, txn in self.envs:
            txn.abort()
            env.close()
        self.envs = []

    def gather(self, shard: np.ndarray, local: np.ndarray) -> dict:
        """The stored arrays of examples ``local`` of shards ``shard`` (ascending), in that order: per-example node,
        position and edge counts (``node_ptr``, ``seq_ptr``, ``edge_ptr``), their rows concatenated, and
        ``target``, ``session``, ``time``."""
        seg = self.segment_of[shard]
        bounds = np.flatnonzero(np.diff(seg)) + 1  # one part per segment (one per store file), in shard order
        parts = [self.segments[seg[o[0]]].gather(shard[o], local[o]) for o in np.split(np.arange(len(shard)), bounds)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if len(parts) > 1 else parts[0]

    def batch(self, indices: np.ndarray) -> Batch:
        indices = np.asarray(indices, np.int64)
        shard_of = np.searchsorted(self.starts, indices, side="right") - 1
        order = np.argsort(shard_of, kind="stable")  # gather shard by shard: merged example j is requested row order[j]
        merged = self.gather(shard_of[order], indices[order] - self.starts[shard_of[order]])
        inv = np.argsort(order)
        n_nodes, n_pos, n_edges = merged["node_ptr"], merged["seq_ptr"], merged["edge_ptr"]
        node_off = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
        B, L = len(indices), int(n_pos.max())
        src = merged["src"] + np.repeat(node_off, n_edges)
        dst = merged["dst"] + np.repeat(node_off, n_edges)
        alias_flat = merged["alias"] + np.repeat(node_off, n_pos)
        pos_in_seq = np.arange(len(alias_flat)) - np.repeat(np.concatenate([[0], np.cumsum(n_pos)[:-1]]), n_pos)
        row = np.repeat(np.arange(B), n_pos)
        alias = np.zeros((B, L), np.int64)
        alias[row, pos_in_seq] = alias_flat
        mask = np.zeros((B, L), bool)
        mask[row, pos_in_seq] = True
        last = alias[np.arange(B), n_pos - 1]
        # per-example tensors are permuted back to the requested order with `inv`; node and edge rows stay grouped by
        # merged example and carry their requested row in node_batch
        import torch  # here, not at the top: writing a store (the build_graphs stage) needs no torch

        from sessionrec.graphs.batch import Batch

        t = torch.from_numpy
        return Batch(
            item=t(merged["item"].astype(np.int64)), category=t(merged["category"].astype(np.int64)),
            sub_category=t(merged["sub_category"].astype(np.int64)), element=t(merged["element"].astype(np.int64)),
            brand=t(merged["brand"].astype(np.int64)), price=t(merged["price"]),
            node_batch=t(np.repeat(order, n_nodes)), edge_index=t(np.stack([src, dst]).astype(np.int64)),
            w_in=t(merged["w_in"]), w_out=t(merged["w_out"]),
            alias=t(alias[inv]), mask=t(mask[inv]), last=t(last[inv]), length=t(n_pos[inv].astype(np.int64)),
            target=t(merged["target"][inv].astype(np.int64)), session=t(merged["session"][inv].astype(np.int64)),
            time=t(merged["time"][inv].astype(np.int64)),
        )

    def batch_order(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0, per_epoch: int = 0):
        """The example indices of each batch: in store order, or shuffled by ``seed`` and ``epoch``.

        ``per_epoch`` > 0 (shuffled, ``epoch`` >= 1): epoch ``e`` is examples ``(e - 1) * per_epoch`` to
        ``e * per_epoch - 1`` of one endless stream of shuffled passes over the store, pass ``p`` (from 0) in the order
        epoch ``p + 1`` has without a cap; so every example is seen once before any is seen twice, an epoch may span
        two passes, and ``per_epoch = len(self)`` gives the uncapped epochs."""
        n = len(self)  # positions 0..n-1, in ``self.index`` when sampled
        if not shuffle:
            idx = np.arange(n)
        elif not per_epoch:
            idx = np.random.default_rng([seed, epoch]).permutation(n)
        else:
            if epoch < 1:
                raise ValueError(f"batch_order: per_epoch needs epoch >= 1, got {epoch}")
            parts, pos, end = [], (epoch - 1) * per_epoch, epoch * per_epoch
            while n and pos < end:
                p, off = divmod(pos, n)
                take = min(n - off, end - pos)
                parts.append(np.random.default_rng([seed, p + 1]).permutation(n)[off:off + take])
                pos += take
            idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        if self.index is not None:
            idx = self.index[idx]
        for i in range(0, len(idx), batch_size):
            yield idx[i:i + batch_size]

    def iter_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0):
        for idx in self.batch_order(batch_size, shuffle, seed, epoch):
            yield self.batch(idx)
