"""A split's graph store from its Parquet (the ``build_graphs`` stage): whole sessions read a chunk at a time, each
chunk's examples built (``build.build_blocks``) and written in order (``store.write_blocks``).

Apart from ``store``, which training reads stores through, so that a change to how stores are built is not a
change to what training depends on."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from sessionrec.graphs.build import build_blocks
from sessionrec.graphs.store import write_blocks

ROWS_PER_READ = 1 << 18  # events read from a split's Parquet at once (whole sessions are passed on)
MAX_BUILDERS = 2  # graph-building threads at most: the number measured (2 cores); more are untried


def parquet_sessions(parquet: Path, rows: int = ROWS_PER_READ):
    """Yield ``{column: (n,) array}`` of consecutive whole sessions, about ``rows`` events each, from a Parquet file
    sorted by session: memory bounded by ``rows``, not by the file (a session cut by a read waits for the next)."""
    held = None
    for batch in pq.ParquetFile(parquet).iter_batches(batch_size=rows):
        cols = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in batch.schema.names}
        if held is not None:
            cols = {c: np.concatenate([held[c], v]) for c, v in cols.items()}
        s = cols["session"]
        change = np.flatnonzero(s[1:] != s[:-1])
        cut = int(change[-1]) + 1 if len(change) else 0  # the last session's first row
        held = {c: v[cut:] for c, v in cols.items()}
        if cut:
            yield {c: v[:cut] for c, v in cols.items()}
    if held is not None and len(held["session"]):
        yield held


def builder_threads() -> int:
    """Threads that build graphs: ``OMP_NUM_THREADS`` where set (the share of the cores a caller gives a process, as
    the test workers and the training stage read it), else the CPUs this process may run on; at most
    ``MAX_BUILDERS``."""
    n = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or len(os.sched_getaffinity(0))
    return max(1, min(n, MAX_BUILDERS))


def write_split_graphs(parquet: Path, out: Path, targets: str, shard_size: int, rows: int = ROWS_PER_READ,
                       threads: int | None = None) -> dict:
    """Build every example of one split (Parquet sorted by session, time) into the store ``out``, reading ``rows``
    events at a time; the store is the same bytes whatever ``rows`` and ``threads``.

    ``threads`` (default ``builder_threads()``) > 1: chunks are built on that many threads, at most one more chunk
    in flight than threads, while this thread packs and writes the finished ones in order. numpy releases the GIL in
    most of ``graph_block``'s work on whole chunks, so on 2 cores 2 threads built 1M sessions 1.49x faster than one,
    the same bytes (``python benchmarks/speed/build_graphs.py --threads 1 2``). Two worker processes had given only
    1.05-1.17x: sending a chunk's examples back cost about 40% of building them."""
    n_rows = pq.ParquetFile(parquet).metadata.num_rows
    threads = threads or builder_threads()
    counts = {"sessions": 0}

    def chunks():
        for cols in parquet_sessions(parquet, rows):
            counts["sessions"] += int(np.count_nonzero(np.diff(cols["session"]))) + 1
            yield cols

    def built(cols) -> tuple[list, int]:
        return list(build_blocks(cols["session"], cols, targets)), len(cols["session"])

    def results():
        """Each chunk's blocks and its event count, in order."""
        if threads == 1:
            yield from map(built, chunks())
            return
        with ThreadPoolExecutor(threads) as pool:
            pending = deque()
            for cols in chunks():
                pending.append(pool.submit(built, cols))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def blocks(bar):
        for done, n in results():
            yield from done
            bar.update(n)

    with tqdm(total=n_rows, desc=f"graphs {Path(parquet).stem}", unit=" events", leave=False) as bar:
        n = write_blocks(out, blocks(bar), shard_size, meta={"targets": targets})
    return {"sessions": counts["sessions"], "examples": n}
