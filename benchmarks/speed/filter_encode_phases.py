"""Where ``filter_encode``'s time goes, against the parse floor: one process, the same CSV, phase by phase.

Floors: DuckDB's ``count(*)`` scan (the reference of README's table), DuckDB's scan that reads every field (``max`` of
each column, so no field can be skipped), and pyarrow's threaded parse of the whole file into string columns (the
parser ``filter_encode`` uses, without its streaming, row numbers or staged Parquet). And the floor of any DuckDB
design of the stage (``filter_encode.py``'s ``FLOOR``, in a fresh process, after the stage): parse every field, keep
the share of rows the stage kept (whole sessions, by a hash of the key: no rule, no encoding) and write them typed
and sorted by session and time to Parquet, as the stage's output must be. Then ``filter_encode`` itself
in its two parts: staging (the streaming parse, row numbers and the staged all-string Parquet: ``stage_csv``) and the
rules (every DuckDB statement of ``_rules``, each timed; those with a median under 50 ms are summed as "other
statements").
An untimed ``count(*)`` scan first warms the page cache; every figure is the median of ``--repeats`` rounds (each
round every phase once, in this order). Run it alone.

    python benchmarks/speed/filter_encode_phases.py [--rows 2000000] [--repeats 3] [--output FILE.json]

The input is ``filter_encode.py``'s: the real October head repeated to ``--rows`` rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from filter_encode import FLOOR, make_input
from sessionrec.params import FilterEncodeParams
from sessionrec.prepare import filter_encode as fe
from sessionrec.sources.rees46 import COLUMNS
from versions import machine, markdown_table, run_snippet


class TimedConnection:
    """A DuckDB connection whose ``execute`` times each statement (results fetched inside the clock)."""

    def __init__(self, con):
        self.con, self.times = con, []

    def execute(self, sql: str, *args):
        t0 = time.perf_counter()
        result = self.con.execute(sql, *args)
        rows = result.fetchall() if result.description else None
        self.times.append((" ".join(sql.split()), time.perf_counter() - t0))
        return _Fetched(rows)

    def close(self):
        self.con.close()


class _Fetched:
    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return self.rows

    def fetchone(self):
        return self.rows[0]


def label(sql: str) -> str:
    """A statement's short name: what it creates or copies, else the start of its text."""
    words = sql.split()
    if words[0] == "CREATE":
        return f"create {words[2] if words[1] in ('TABLE', 'VIEW') else words[1]}"
    if words[0] == "COPY":
        return "copy events.parquet" if "events.parquet" in sql else "copy vocab.parquet"
    return f"select over {sql.rsplit(' FROM ', 1)[-1].split()[0]}"


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(csv: Path, tmp: Path) -> dict:
    """One round: every phase once, in seconds."""
    scan = f"read_csv('{csv}', all_varchar=true)"
    out = {"duckdb_count_scan": seconds(lambda: duckdb.sql(f"SELECT count(*) FROM {scan}").fetchall()),
           "duckdb_every_field_scan": seconds(lambda: duckdb.sql(
               "SELECT " + ", ".join(f"max({c})" for c in COLUMNS) + f" FROM {scan}").fetchall()),
           "pyarrow_parse": seconds(lambda: pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(
               column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=True, null_values=[""])))}
    report = fe.Report()
    work = Path(tempfile.mkdtemp(dir=tmp))
    t0 = time.perf_counter()
    staged = fe.stage_csv([csv], work, report)
    out["stage_csv"] = time.perf_counter() - t0
    con = TimedConnection(duckdb.connect(str(work / "work.duckdb")))
    t0 = time.perf_counter()
    fe._rules(con, staged, FilterEncodeParams(), work, report)
    out["rules"] = time.perf_counter() - t0
    con.close()
    statements = {}
    for sql, s in con.times:
        name = label(sql)
        while name in statements:
            name += "'"
        statements[name] = s
    out["rules_statements"] = statements
    out["rows_kept"] = report.as_dict()["rows_kept"]
    # the least any DuckDB design does: the same share of rows, parsed, sorted and written (a fresh process)
    out["duckdb_floor"] = run_snippet(FLOOR, [csv, work / "floor", out["rows_kept"] / report.rows_read])["seconds"]
    return out


def median_of(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds (the statements by name)."""
    out = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0] if k != "rules_statements"}
    med = {k: statistics.median(r["rules_statements"][k] for r in rounds) for k in rounds[0]["rules_statements"]}
    out["rules_statements"] = {k: round(v, 3) for k, v in med.items() if v >= 0.05}
    out["rules_statements"]["other statements"] = round(sum(v for v in med.values() if v < 0.05), 3)
    return out


def table(r: dict) -> str:
    """docs/scale.md's table of one run's JSON: each phase's seconds and its multiple of the count(*) scan."""
    floor = r["duckdb_count_scan"]
    rows = [["DuckDB scan, `count(*)` (the reference)", floor, "1.0x"],
            ["DuckDB scan reading every field", r["duckdb_every_field_scan"],
             f"{r['duckdb_every_field_scan'] / floor:.1f}x"],
            ["pyarrow threaded parse, every field as a string", r["pyarrow_parse"],
             f"{r['pyarrow_parse'] / floor:.1f}x"],
            ["DuckDB: parse, keep the same share of rows (whole sessions), write them typed and sorted by session and "
             "time (the least any DuckDB design does)", r["duckdb_floor"], f"{r['duckdb_floor'] / floor:.1f}x"],
            ["filter_encode: staging (streaming parse, row numbers, staged Parquet)", r["stage_csv"],
             f"{r['stage_csv'] / floor:.1f}x"],
            ["filter_encode: the rules (DuckDB)", r["rules"], f"{r['rules'] / floor:.1f}x"]]
    rows += [[f"&nbsp;&nbsp;{name}", s, f"{s / floor:.1f}x"] for name, s in r["rules_statements"].items()]
    total = r["stage_csv"] + r["rules"]
    rows.append(["filter_encode, both parts", round(total, 3),
                 f"{total / floor:.1f}x ({total / r['duckdb_floor']:.1f}x the floor)"])
    return markdown_table(["phase", "seconds", "x the scan"], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fe-phases-") as tmp:
        tmp = Path(tmp)
        csv = tmp / "2019-Oct.csv"
        make_input(csv, args.rows)
        duckdb.sql(f"SELECT count(*) FROM read_csv('{csv}', all_varchar=true)").fetchall()  # warm-up
        r = {"rows": args.rows, "repeats": args.repeats,
             **median_of([measure(csv, tmp) for _ in range(args.repeats)])}
    out = {"command": "python benchmarks/speed/filter_encode_phases.py " + " ".join(sys.argv[1:]),
           "machine": machine(), **r}
    print(table(r))
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"filter_encode at {args.rows:,} rows: staging {r['stage_csv']:.2f} s + rules {r['rules']:.2f} s = "
          f"{(r['stage_csv'] + r['rules']) / r['duckdb_count_scan']:.1f}x the count(*) scan "
          f"({r['duckdb_count_scan']:.2f} s), {(r['stage_csv'] + r['rules']) / r['duckdb_floor']:.1f}x the floor of "
          f"any design ({r['duckdb_floor']:.2f} s); reading every field {r['duckdb_every_field_scan']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
