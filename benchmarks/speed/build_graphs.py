"""build_graphs now against an earlier commit's, side by side in one run: sessions per second of building one split's
graph store (``write_split_graphs``, every prefix an example), on the same sessions.

    python benchmarks/speed/build_graphs.py --baseline aa13e2a [--sessions 200000] [--repeats 3] [--output F.json]

The sessions are synthetic with REES46-like lengths (median 3 clicks after filtering, a long tail cut at 50) over a
50k-product catalogue. The baseline's ``src/`` comes from ``git archive``; each run is a fresh process (one thread),
the two versions alternating; the median is reported. The original design built about 500 sessions/s. Not a test:
run it alone.
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
                             "category": (item % 150 + 2).astype(np.int32), "sub_category": (item % 60 + 2).astype(np.int32),
                             "element": (item % 80 + 2).astype(np.int32), "brand": (item % 700 + 2).astype(np.int32),
                             "price": (item % 997 / 997).astype(np.float32)}), path)


def main() -> int:
    args = parse_args(__doc__, "sessions", 200_000)
    with workspace(args.baseline, "graphs-bench-") as (tmp, base):
        parquet = tmp / "train.parquet"
        make_split(parquet, args.sessions)
        runs = {"now": [], "baseline": []}
        for i in range(args.repeats):
            runs["now"].append(run_snippet(RUN, [parquet, tmp / f"now-{i}.lmdb"], threads=1))
            runs["baseline"].append(run_snippet(RUN, [parquet, tmp / f"base-{i}.lmdb"], base, threads=1))
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    rate = {k: round(args.sessions / v) for k, v in med.items()}
    out = {"sessions": args.sessions, "examples": runs["now"][0]["examples"], "baseline": args.baseline,
           "repeats": args.repeats, "seconds_median": {k: round(v, 2) for k, v in med.items()},
           "sessions_per_second": rate, "peak_mib": {k: round(max(r["peak_mib"] for r in v), 1) for k, v in runs.items()},
           "now_over_baseline": round(med["baseline"] / med["now"], 1), "now_over_original_500": round(rate["now"] / 500)}
    assert runs["now"][0]["examples"] == runs["baseline"][0]["examples"]
    print(f"| sessions (examples) | baseline ({args.baseline}) sessions/s | now sessions/s | speed-up | "
          "over the original's 500/s |")
    print("|---|---|---|---|---|")
    print(f"| {args.sessions:,} ({out['examples']:,}) | {rate['baseline']:,} | {rate['now']:,} | "
          f"{out['now_over_baseline']}x | {out['now_over_original_500']}x |")
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"build_graphs: {rate['now']:,} sessions/s against {rate['baseline']:,} at {args.baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
