"""STAN (the hybrid's session-kNN part) as the training clicks grow toward full REES46 size: fit time, peak memory
and milliseconds per scored test session at a 200k-product catalogue, each size in a fresh process.

The sessions are synthetic with REES46-like lengths (``build_graphs.py``'s: median 3 clicks, cut at 50) and a
power-law product popularity (rank ``r`` drawn with weight ``1 / (r + 10)``: the most viewed product takes about 1%
of the clicks, as in the real October head), their last clicks spread over two months; the test sessions are drawn
the same way after them, each scored on its whole input (every click but the last) as the evaluate stage scores a
batch, at most ``scoring.chunk_rows`` sessions at once (10 at 200k products: a kNN model's scores are dense
``(rows, N)``), and again in the hybrid's batches: the terms of 512 sessions at once, made dense 10 rows at a
time (the hybrid's weight search reads them so; its scoring now pools them sparse, ``Hybrid.add_stan``). An untimed
small run first warms the caches.
STAN's candidates are the ``knn_sample_size`` most recent training sessions sharing an item with the query. Drawn
from the whole item-session matrix, a query cost as much as its products' sessions, which grow with the clicks; each
product's sessions are now cut to its ``knn_sample_size`` most recent first (``SessionKNN._most_recent``, the same
candidates). The full run's training split holds about 8.2M sessions (33.4M examples). Not a test: run it alone.

    python benchmarks/speed/stan_scale.py [--sessions 250000 1000000 4000000] [--items 200000] [--queries 2000]
        [--baseline REV] [--output FILE.json]

``--baseline REV``: each size also with that commit's ``src/`` (``git archive``), right after this code's run, on the
same sessions (same seed), and the two models' scores on the first batch compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import contextlib  # noqa: E402

from versions import machine, markdown_table, run_snippet, workspace  # noqa: E402

RUN = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, HERE_DIR)
from training_step import rees46_like_sessions
from sessionrec.graphs.build import build_examples
from sessionrec.graphs.store import GraphStore
from sessionrec.models.knn import STAN
from sessionrec.scoring import chunk_rows

n_sessions, n_items, n_queries = map(int, sys.argv[1:4])
rng = np.random.default_rng(0)

def sessions(n, t0, t1):
    return rees46_like_sessions(rng, n, n_items, t0, t1)

day = 24 * 3600
session, item, ts = sessions(n_sessions, 0, 61 * day)
t0 = time.perf_counter()
model = STAN(n_items)
model.fit_events(session, item, ts)
model._build_index()
fit = time.perf_counter() - t0
del session, item, ts
q_session, q_item, q_ts = sessions(n_queries, 61 * day, 62 * day)
feats = {"item": q_item, "category": q_item % 7, "sub_category": q_item % 5, "element": q_item % 3,
         "brand": q_item % 11, "price": np.zeros(len(q_item), np.float32), "ts": q_ts}
store = GraphStore.from_examples(list(build_examples(q_session, feats, "last")))
rows = chunk_rows(n_items)
t0 = time.perf_counter()
for i, batch in enumerate(store.iter_batches(rows)):
    out = model(batch)
    if i == 0:
        first = out.numpy()
score = time.perf_counter() - t0
t0 = time.perf_counter()
for batch in store.iter_batches(512):  # the hybrid's batches: a batch's terms at once, dense a chunk at a time
    terms = model.terms(batch)
    for r0 in range(0, batch.size, rows):
        model.dense(terms, r0, min(r0 + rows, batch.size), "cpu")
batched = time.perf_counter() - t0
np.save(sys.argv[4], first)
print(json.dumps({"clicks": int(model.seq_items.numel()), "fit_seconds": fit, "queries": len(store),
                  "ms_per_query": 1000 * score / len(store), "rows_per_batch": rows,
                  "ms_per_query_batches_of_512": 1000 * batched / len(store),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def table(r: dict) -> str:
    """docs/scale.md's table of one run's JSON."""
    base = "baseline" in r
    hybrid = "ms_per_query_batches_of_512" in r["cells"][0]  # runs since the column was added
    rows = []
    for c in r["cells"]:
        row = [f"{c['sessions']:,}", f"{c['clicks']:,}", round(c["fit_seconds"], 1), round(c["peak_mib"] / 1024, 2),
               round(c["ms_per_query"], 2), round(c["ms_per_query"] * 1e6 / 3.6e6, 1)]
        if base:
            b = c["baseline"]
            row[4:] = [f"{c['ms_per_query']:.2f} (was {b['ms_per_query']:.2f}; "
                       f"{b['ms_per_query'] / c['ms_per_query']:.1f}x{'' if c['same_scores'] else ', SCORES DIFFER'})",
                       f"{c['ms_per_query'] * 1e6 / 3.6e6:.1f} (was {b['ms_per_query'] * 1e6 / 3.6e6:.1f})"]
        if hybrid:
            now, was = c["ms_per_query_batches_of_512"], c.get("baseline", {}).get("ms_per_query_batches_of_512")
            row.append(f"{now:.2f}" + (f" (was {was:.2f}; {was / now:.1f}x)" if was else ""))
        rows.append(row)
    return markdown_table(["training sessions", "clicks", "fit s", "peak GiB", "ms per test session",
                           "hours per 1M test sessions"] + ["ms per test session in batches of 512 (the hybrid's)"]
                          * hybrid, rows)


def main() -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--baseline", help="a git revision whose src/ also runs, side by side")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    cells, run = [], RUN.replace("HERE_DIR", repr(str(HERE)))
    with (workspace(args.baseline, "stan-bench-") if args.baseline else contextlib.nullcontext((None, None))) as (
            tmp, base):
        tmp = Path(tmp) if tmp else Path(".")
        run_snippet(run, [1000, args.items, 10, tmp / "now.npy"])  # warm-up
        for n in args.sessions:
            r = run_snippet(run, [n, args.items, args.queries, tmp / "now.npy"])
            cell = {"sessions": n, **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}}
            if base:
                b = run_snippet(run, [n, args.items, args.queries, tmp / "base.npy"], src=base)
                cell["baseline"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in b.items()}
                cell["same_scores"] = bool(np.array_equal(np.load(tmp / "now.npy"), np.load(tmp / "base.npy")))
            (tmp / "now.npy").unlink(missing_ok=True)
            cells.append(cell)
            print(json.dumps(cells[-1]), flush=True)
    out = {"command": "python benchmarks/speed/stan_scale.py " + " ".join(sys.argv[1:]), "machine": machine(),
           "items": args.items, "cells": cells, **({"baseline": args.baseline} if args.baseline else {})}
    print(table(out))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    last = cells[-1]
    print(f"stan: {last['sessions']:,} training sessions, {args.items:,} products: fit {last['fit_seconds']:.1f} s, "
          f"{last['ms_per_query']:.2f} ms per test session, peak {last['peak_mib'] / 1024:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
