"""What a benchmark cell was made from, as two short fingerprints, so that a report only aggregates cells of the same
data and params (``benchmark_report`` refuses the others by name).

- ``data``: SHA-256 over the three graph stores' meta records (each holds its shards' CRC-32s, so it changes with
  any example) and ``data/split/encoders.json`` (catalogue size, vocabularies, price scaler);
- ``params``: SHA-256 over the canonical JSON of the params a cell's stage depends on besides the model name and seed:
  ``model`` (all but ``name``, ``seed``, ``num_threads`` and ``refit``, which a cell takes from ``benchmark.refit``),
  ``evaluate`` and ``benchmark.refit``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

from sessionrec import paths
from sessionrec.graphs.store import read_meta


def data_fingerprint() -> str:
    h = hashlib.sha256()
    for split in ("train", "val", "test"):
        path = paths.graph_store(split)
        if not path.exists():
            raise FileNotFoundError(f"{path}: graph store not found (run the build_graphs stage)")
        h.update(read_meta(path))
    h.update((paths.SPLIT / "encoders.json").read_bytes())
    return h.hexdigest()[:16]


def params_fingerprint(params) -> str:
    skip = ("name", "seed", "num_threads", "refit")
    model = {k: v for k, v in dataclasses.asdict(params.model).items() if k not in skip}
    key = {"model": model, "evaluate": dataclasses.asdict(params.evaluate),
           "benchmark.refit": params.benchmark.refit}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def inputs(params) -> dict:
    """``{"data": ..., "params": ...}`` of the working folder's data and ``params``; call it before this process
    opens a graph store (``store.read_meta``)."""
    return {"data": data_fingerprint(), "params": params_fingerprint(params)}
