"""build_graphs now against an earlier commit's, side by side in one run: sessions per second of building one split's
graph store (``write_split_graphs``, every prefix an example), on the same sessions.

    python benchmarks/speed/build_graphs.py --baseline aa13e2a [--sessions 200000] [--repeats 3] [--threads 1 2]
        [--output F.json]

The sessions are synthetic with REES46-like lengths (median 3 clicks after filtering, a long tail cut at 50) over a
50k-product catalogue. The baseline's ``src/`` comes from ``git archive``; each run is a fresh process, the baseline
on one thread, this code on each of ``--threads`` (``OMP_NUM_THREADS``, which ``write_split_graphs`` reads), all
alternating; the median is reported, and the stores must be the same bytes. The original design built about 500
sessions/s. Not a test: run it alone.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from versions import parse_args, run_snippet, workspace
RUN = """
import json, resource, sys, time
from pathlib import Path
try:
    from sessionrec.graphs.split_store import write_split_graphs
except ImportError:  # a baseline from before it moved
    from sessionrec.graphs.store import write_split_graphs
t0 = time.perf_counter()
r = write_split_graphs(Path(sys.argv[1]), Path(sys.argv[2]), "all_prefixes", 4096)
print(json.dumps({"seconds": time.perf_counter() - t0, **r,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_split(path: Path, n_sessions: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lengths = np.minimum(2 + rng.geometric(0.45, n_sessions), 50)
    session = np.repeat(np.arange(n_sessions, dtype=np.int32), lengths)
    n = len(session)
    item = (rng.zipf(1.3, n) % 50_000 + 1).astype(np.int32)
    pq.write_table(pa.table({"session": session, "ts": np.arange(n, dtype=np.int64), "item": item,
                             "category": (item % 150 + 2).astype(np.int32),
                             "sub_category": (item % 60 + 2).astype(np.int32),
                             "element": (item % 80 + 2).astype(np.int32), "brand": (item % 700 + 2).astype(np.int32),
                             "price": (item % 997 / 997).astype(np.float32)}), path)


def main() -> int:
    args = parse_args(__doc__, "sessions", 200_000, more=lambda ap: ap.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="this code's thread counts (the baseline runs on one)"))
    names = [f"now@{t}" for t in args.threads]
    with workspace(args.baseline, "graphs-bench-") as (tmp, base):
        parquet = tmp / "train.parquet"
        make_split(parquet, args.sessions)
        runs = {"baseline": [], **{n: [] for n in names}}
        stores = set()
        for i in range(args.repeats):
            runs["baseline"].append(run_snippet(RUN, [parquet, tmp / f"base-{i}.lmdb"], base, threads=1))
            stores.add((tmp / f"base-{i}.lmdb").read_bytes())
            for n, t in zip(names, args.threads):
                runs[n].append(run_snippet(RUN, [parquet, tmp / f"{n}-{i}.lmdb"], threads=t))
                stores.add((tmp / f"{n}-{i}.lmdb").read_bytes())
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    rate = {k: round(args.sessions / v) for k, v in med.items()}
    out = {"sessions": args.sessions, "examples": runs[names[0]][0]["examples"], "baseline": args.baseline,
           "repeats": args.repeats, "seconds_median": {k: round(v, 2) for k, v in med.items()},
           "sessions_per_second": rate,
           "peak_mib": {k: round(max(r["peak_mib"] for r in v), 1) for k, v in runs.items()},
           "over_baseline": {n: round(med["baseline"] / med[n], 2) for n in names},
           "over_original_500": {n: round(rate[n] / 500) for n in names}, "same_bytes": len(stores) == 1}
    assert all(r[0]["examples"] == out["examples"] for r in runs.values())
    print(f"| sessions (examples) | threads | baseline ({args.baseline}, 1 thread) sessions/s | now sessions/s | "
          "speed-up | over the original's 500/s |")
    print("|---|---|---|---|---|---|")
    for n, t in zip(names, args.threads):
        print(f"| {args.sessions:,} ({out['examples']:,}) | {t} | {rate['baseline']:,} | {rate[n]:,} | "
              f"{out['over_baseline'][n]}x | {out['over_original_500'][n]}x |")
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print("build_graphs: " + ", ".join(f"{rate[n]:,} sessions/s on {t} thread(s)" for n, t in zip(names, args.threads))
          + f" against {rate['baseline']:,} at {args.baseline}; the same store bytes: {out['same_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
