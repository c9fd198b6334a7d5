"""filter_encode now against an earlier commit's, side by side in one run, on the same CSV: wall time and peak memory,
with a bare DuckDB scan of the file as the parse floor. ``FLOOR`` times what any DuckDB design of the stage does at
least (``benchmarks/run.py`` and ``filter_encode_phases.py`` report it).

    python benchmarks/speed/filter_encode.py --baseline aa13e2a [--rows 1000000] [--repeats 3] [--output F.json]

The input is the real October head (``../shared/data``) repeated to ``--rows`` rows, each copy with its own session
ids (the synthetic generator's month when the head is absent). The baseline's ``src/`` comes from ``git archive``;
each run is a fresh process (``python -c``, the library imported before the clock starts), the two versions
alternating, and the median is reported. Not a test: run it alone.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from versions import ROOT, parse_args, run_snippet, workspace

HEAD = ROOT.parent / "shared" / "data" / "rees46-2019-oct-head" / "2019-Oct.csv"

RUN = """
import json, resource, sys, time
from pathlib import Path
from sessionrec.params import FilterEncodeParams
from sessionrec.prepare.filter_encode import filter_encode
t0 = time.perf_counter()
report = filter_encode([Path(sys.argv[1])], FilterEncodeParams(), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - t0, "rows_kept": report["rows_kept"],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
SCAN = """
import resource, sys, time, duckdb
t0 = time.perf_counter()
n = duckdb.sql(f"SELECT count(*) FROM read_csv('{sys.argv[1]}', all_varchar=true)").fetchall()[0][0]
print('{"seconds": %f, "rows_kept": %d, "peak_mib": %f}' % (time.perf_counter() - t0, n,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""

# The least any DuckDB design of this stage does: parse every field (event_time in filter_encode's formats), keep the
# same share of the rows in whole sessions (a hash of the session key: no rule, no encoding), and write them typed
# and sorted by session and time to Parquet. argv: the CSV, a work folder, the share of rows filter_encode kept.
FLOOR = """
import resource, sys, time, duckdb
from pathlib import Path
from sessionrec.prepare.filter_encode import TIME_FORMATS
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
formats = ", ".join(f"'{f}'" for f in TIME_FORMATS)
keep = round(float(sys.argv[3]) * 1_000_000)
con = duckdb.connect()
con.execute("SET preserve_insertion_order=false")
t0 = time.perf_counter()
con.execute(f\"\"\"COPY (SELECT user_session, try_strptime(event_time, [{formats}]) AS ts,
    TRY_CAST(product_id AS BIGINT) AS product_id, TRY_CAST(category_id AS BIGINT) AS category_id, category_code, brand,
    TRY_CAST(price AS FLOAT) AS price, TRY_CAST(user_id AS BIGINT) AS user_id
    FROM read_csv('{sys.argv[1]}', all_varchar=true) WHERE hash(user_session) % 1000000 < {keep}
    ORDER BY user_session, ts) TO '{out / "floor.parquet"}' (FORMAT parquet)\"\"\")
seconds = time.perf_counter() - t0
n = con.execute(f"SELECT count(*) FROM '{out / 'floor.parquet'}'").fetchall()[0][0]
print('{"seconds": %f, "rows_kept": %d, "peak_mib": %f}' % (seconds, n,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""


def make_input(path: Path, rows: int) -> None:
    if HEAD.exists():
        header, *body = HEAD.read_text().splitlines()
        body = [ln for ln in body if ln.count(",") == 8]  # the head's truncated last line is not repeated
    else:
        from sessionrec.sources import synthetic

        cat = synthetic.make_catalogue(3000, 30, 100, 0)
        synthetic.write_month(synthetic.generate_month(cat, "2019-10", 30000, 1), path)
        header, *body = path.read_text().splitlines()
    with open(path, "w") as f:
        f.write(header + "\n")
        written, copy = 0, 0
        while written < rows:
            part = body[: rows - written]
            f.write("\n".join(f"{ln}-{copy}" for ln in part) + "\n")  # user_session (last field): a copy's own
            written += len(part)
            copy += 1


def main() -> int:
    args = parse_args(__doc__, "rows", 1_000_000)
    with workspace(args.baseline, "fe-bench-") as (tmp, base):
        csv = tmp / "2019-Oct.csv"
        make_input(csv, args.rows)
        runs = {"now": [], "baseline": [], "duckdb_scan": []}
        for i in range(args.repeats):
            runs["duckdb_scan"].append(run_snippet(SCAN, [csv, tmp / "scan"]))
            runs["now"].append(run_snippet(RUN, [csv, tmp / f"now-{i}"]))
            runs["baseline"].append(run_snippet(RUN, [csv, tmp / f"base-{i}"], base))
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    peak = {k: round(max(r["peak_mib"] for r in v), 1) for k, v in runs.items()}
    kept = {k: v[0]["rows_kept"] for k, v in runs.items()}
    out = {"rows": args.rows, "baseline": args.baseline, "repeats": args.repeats,
           "seconds_median": {k: round(v, 3) for k, v in med.items()},
           "peak_mib": peak, "rows_kept": kept, "now_over_baseline": round(med["now"] / med["baseline"], 3),
           "now_over_scan": round(med["now"] / med["duckdb_scan"], 2)}
    print(f"| rows | DuckDB scan s | baseline ({args.baseline}) s, peak MiB | now s, peak MiB | now / baseline | "
          "now / scan |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.rows:,} | {med['duckdb_scan']:.2f} | {med['baseline']:.2f}, {peak['baseline']} | "
          f"{med['now']:.2f}, {peak['now']} | {out['now_over_baseline']:.3f} | {out['now_over_scan']:.1f} |")
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"filter_encode: {args.rows:,} rows, now {med['now']:.2f} s against {med['baseline']:.2f} s at "
          f"{args.baseline} ({out['now_over_baseline']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
