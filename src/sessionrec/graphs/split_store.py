"""A split's graph store from its Parquet (the ``build_graphs`` stage): whole sessions read a chunk at a time, each
chunk's examples built (``build.build_blocks``) and written in order (``store.write_blocks``).

Apart from ``store``, which training reads stores through, so that a change to how stores are built is not a
change to what training depends on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from sessionrec.graphs.build import build_blocks
from sessionrec.graphs.store import write_blocks

ROWS_PER_READ = 1 << 20  # events read from a split's Parquet at once (whole sessions are passed on)


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


def write_split_graphs(parquet: Path, out: Path, targets: str, shard_size: int, rows: int = ROWS_PER_READ) -> dict:
    """Build every example of one split (Parquet sorted by session, time) into the store ``out``, reading ``rows``
    events at a time; the store is the same bytes whatever ``rows``.

    One process: two worker processes built graphs 1.05-1.17x faster on 2 cores, as sending a chunk's examples
    back costs about 40% of building them and the LMDB writes are serial."""
    n_rows = pq.ParquetFile(parquet).metadata.num_rows
    counts = {"sessions": 0}

    def blocks(bar):
        for cols in parquet_sessions(parquet, rows):
            counts["sessions"] += int(np.count_nonzero(np.diff(cols["session"]))) + 1
            yield from build_blocks(cols["session"], cols, targets)
            bar.update(len(cols["session"]))

    with tqdm(total=n_rows, desc=f"graphs {Path(parquet).stem}", unit=" events", leave=False) as bar:
        n = write_blocks(out, blocks(bar), shard_size, meta={"targets": targets})
    return {"sessions": counts["sessions"], "examples": n}
