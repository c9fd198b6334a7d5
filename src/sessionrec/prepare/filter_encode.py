"""Filter and encode raw REES46 events, streaming: pyarrow parses, DuckDB filters out of core.

Why two engines: pyarrow's streaming CSV reader hands every malformed line (wrong field count, e.g. the
half-written last line of a truncated file) to a callback, so each one is counted and reported instead of lost;
DuckDB then runs the window / group-by work with a memory limit and spills to disk, so the full October+November
2019 files (~110 M rows, 14 GB) fit in 24 GB of RAM. Nothing here holds the event table in pandas.

Rules, applied in this order, each counted in the report (rows and sessions it dropped):
``unparseable_value`` (a field that does not parse as its type), ``missing_required`` (no event_time, event_type,
product_id or session key), ``limit_to_view_event``, ``drop_listwise_nulls`` (one rule per column), then (with
``session_key: user_id``) sessions re-cut from each user's clicks at gaps over ``session_gap_minutes``,
``dedup_consecutive``, ``min_item_support`` (with ``iterative_filter``: ``min_session_events`` and
``min_item_support`` alternately until neither drops a row, as the official GRU4Rec preprocessing does),
``max_session_length`` (keep the last N events), ``min_products_per_session`` (distinct products) and
``min_session_events`` (events, repeats included).

Encoding: product ids -> 1..N (0 is padding); ``category_code`` -> category / sub_category / element (``unknown`` for
a missing level; levels past the third stay in element); category, sub_category, element and brand label-encoded
(0 padding, labels sorted). These ids are bookkeeping over all rows; everything a model learns from data is
re-fitted on the training split only (``sessionrec.prepare.split``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from sessionrec.params import FilterEncodeParams
from sessionrec.sources.rees46 import COLUMNS, check_header

log = logging.getLogger(__name__)
MAX_EXAMPLES = 5


@dataclass
class Report:
    files: list = field(default_factory=list)
    rows_read: int = 0
    malformed_lines_skipped: int = 0
    malformed_examples: list = field(default_factory=list)
    dropped: dict = field(default_factory=dict)
    sessions_dropped: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"files": self.files, "rows_read": self.rows_read,
                "malformed_lines_skipped": self.malformed_lines_skipped,
                "malformed_examples": self.malformed_examples, "rows_dropped": self.dropped,
                "sessions_dropped": self.sessions_dropped, **self.result}


def stage_csv(paths: list[Path], out_dir: Path, report: Report, block_size: int = 1 << 24) -> list[Path]:
    """Stream CSVs into Parquet (all columns as strings plus a global ``row`` number); count malformed lines."""
    out = []
    row0 = 0
    for fi, path in enumerate(paths):
        check_header(path)
        bad = []

        def on_invalid(row, bad=bad, path=path):
            bad.append(row)
            return "skip"

        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=block_size, use_threads=True),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS},
                                                 strings_can_be_null=True, null_values=[""]),
        )
        dst = out_dir / f"part-{fi:03d}.parquet"
        writer = None
        n = 0
        with tqdm(desc=f"read {path.name}", unit=" rows", unit_scale=True, leave=False) as bar:
            for batch in reader:
                rows = pa.array(range(row0 + n, row0 + n + batch.num_rows), pa.int64())
                table = pa.Table.from_batches([batch]).append_column("row", rows)
                if writer is None:
                    writer = pq.ParquetWriter(dst, table.schema)
                writer.write_table(table)
                n += batch.num_rows
                bar.update(batch.num_rows)
        if writer is not None:
            writer.close()
            out.append(dst)
        row0 += n
        report.files.append({"file": path.name, "rows_parsed": n, "malformed_lines": len(bad)})
        report.rows_read += n + len(bad)
        report.malformed_lines_skipped += len(bad)
        for r in bad[:MAX_EXAMPLES]:
            report.malformed_examples.append({
                "file": path.name, "line": r.number, "fields": r.actual_columns, "expected_fields": r.expected_columns,
                "text": r.text[:200]})
            log.warning("%s line %s: %d fields instead of %d, skipped: %r", path.name, r.number, r.actual_columns,
                        r.expected_columns, r.text[:120])
    return out


def _rows_and_sessions(con, table: str) -> tuple[int, int]:
    return con.execute(f"SELECT count(*), count(DISTINCT user_session) FROM {table}").fetchone()


def create_levels_and_vocab(con, src: str) -> None:
    """Tables ``levels`` (``src`` plus category_l / sub_category_l / element_l / brand_l labels, ``unknown`` where
    missing) and ``vocab`` (field, label, code 1.. in label order)."""
    con.execute(f"""CREATE TABLE levels AS SELECT *,
        coalesce(nullif(split_part(category_code, '.', 1), ''), 'unknown') AS category_l,
        coalesce(nullif(split_part(category_code, '.', 2), ''), 'unknown') AS sub_category_l,
        coalesce(nullif(array_to_string(string_split(category_code, '.')[3:], '.'), ''), 'unknown') AS element_l,
        coalesce(brand, 'unknown') AS brand_l FROM {src}""")
    con.execute(" UNION ALL ".join(
        f"""{'CREATE TABLE vocab AS ' if i == 0 else ''}SELECT '{f}' AS field, label,
            CAST(row_number() OVER (ORDER BY label) AS INTEGER) AS code FROM (SELECT DISTINCT {f}_l AS label FROM levels)"""
        for i, f in enumerate(("category", "sub_category", "element", "brand"))))


ENCODED_COLUMNS = """vc.code AS category, vs.code AS sub_category, ve.code AS element, vb.code AS brand"""
VOCAB_JOINS = """JOIN vocab vc ON vc.field = 'category' AND vc.label = l.category_l
            JOIN vocab vs ON vs.field = 'sub_category' AND vs.label = l.sub_category_l
            JOIN vocab ve ON ve.field = 'element' AND ve.label = l.element_l
            JOIN vocab vb ON vb.field = 'brand' AND vb.label = l.brand_l"""


def filter_encode(raw_files: list[Path], params: FilterEncodeParams, out_dir: Path) -> dict:
    """Write ``events.parquet`` and ``vocab.parquet`` into ``out_dir``; return the data report."""
    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="sessionrec-fe-") as tmp:
        tmp = Path(tmp)
        staged = stage_csv(raw_files, tmp, report)
        if not staged:
            raise ValueError(f"no rows could be parsed from {[str(p) for p in raw_files]}")
        con = duckdb.connect(str(tmp / "work.duckdb"))
        con.execute(f"SET memory_limit='{params.memory_limit}'")
        con.execute(f"SET temp_directory='{tmp / 'spill'}'")
        files = ", ".join(f"'{p}'" for p in staged)
        con.execute(f"""
            CREATE TABLE t0 AS SELECT
              row, event_time AS event_time_raw, price AS price_raw, product_id AS product_id_raw,
              category_id AS category_id_raw, user_id AS user_id_raw,
              try_strptime(event_time, '%Y-%m-%d %H:%M:%S UTC') AS ts,
              event_type, TRY_CAST(product_id AS BIGINT) AS product_id,
              TRY_CAST(category_id AS BIGINT) AS category_id, category_code, brand,
              TRY_CAST(price AS DOUBLE) AS price, TRY_CAST(user_id AS BIGINT) AS user_id, user_session
            FROM read_parquet([{files}])""")
        cur = "t0"
        rows, sessions = _rows_and_sessions(con, cur)
        report.result["sessions_read"] = sessions

        n_tables = 0

        def step(name: str, sql: str) -> None:
            """Replace the current table by ``sql`` over it and count the rows and sessions the rule dropped."""
            nonlocal cur, rows, sessions, n_tables
            n_tables += 1
            new = f"s{n_tables}"
            con.execute(f"CREATE TABLE {new} AS {sql.format(src=cur)}")
            con.execute(f"DROP TABLE {cur}")
            cur = new
            n, s = _rows_and_sessions(con, cur)
            # a rule applied more than once (iterative_filter) adds up its counts
            report.dropped[name] = report.dropped.get(name, 0) + rows - n
            report.sessions_dropped[name] = report.sessions_dropped.get(name, 0) + sessions - s
            rows, sessions = n, s

        raw_cols = "event_time_raw, price_raw, product_id_raw, category_id_raw, user_id_raw"
        step("unparseable_value", f"""SELECT * EXCLUDE ({raw_cols}) FROM {{src}} WHERE NOT (
                 (event_time_raw IS NOT NULL AND ts IS NULL)
                 OR (product_id_raw IS NOT NULL AND product_id IS NULL)
                 OR (category_id_raw IS NOT NULL AND category_id IS NULL)
                 OR (price_raw IS NOT NULL AND (price IS NULL OR price < 0 OR isnan(price)))
                 OR (user_id_raw IS NOT NULL AND user_id IS NULL))""")
        step("missing_required", "SELECT * FROM {src} WHERE ts IS NOT NULL AND event_type IS NOT NULL "
                                 f"AND product_id IS NOT NULL AND {params.session_key} IS NOT NULL")
        if params.limit_to_view_event:
            step("limit_to_view_event", "SELECT * FROM {src} WHERE event_type = 'view'")
        for col in params.drop_listwise_nulls:
            step(f"drop_listwise_nulls.{col}", f"SELECT * FROM {{src}} WHERE {col} IS NOT NULL")
        if params.session_key == "user_id":  # GRU4Rec's sessions: a user's clicks, cut where the gap exceeds the limit
            gap = params.session_gap_minutes * 60
            con.execute(f"""CREATE TABLE by_user AS SELECT * EXCLUDE (user_session, cut),
                CAST(user_id AS VARCHAR) || '-' || CAST(sum(cut) OVER (PARTITION BY user_id ORDER BY ts, row)
                    AS VARCHAR) AS user_session FROM (
                SELECT *, CASE WHEN epoch(ts) - epoch(lag(ts) OVER (PARTITION BY user_id ORDER BY ts, row)) <= {gap}
                    THEN 0 ELSE 1 END AS cut FROM {cur})""")
            con.execute(f"DROP TABLE {cur}")
            cur = "by_user"
            before = sessions
            rows, sessions = _rows_and_sessions(con, cur)
            report.result["sessions_from_user_id"] = {"kaggle_user_sessions": before, "sessions": sessions,
                                                      "gap_minutes": params.session_gap_minutes}
        if params.dedup_consecutive:
            step("dedup_consecutive", """SELECT * EXCLUDE (prev) FROM (
                SELECT *, lag(product_id) OVER (PARTITION BY user_session ORDER BY ts, row) AS prev FROM {src})
                WHERE prev IS NULL OR prev <> product_id""")
        item_support = f"""SELECT * FROM {{src}} WHERE product_id IN (
            SELECT product_id FROM {{src}} GROUP BY product_id HAVING count(*) >= {params.min_item_support})"""
        session_products = f"""SELECT * FROM {{src}} WHERE user_session IN (
            SELECT user_session FROM {{src}} GROUP BY user_session
            HAVING count(DISTINCT product_id) >= {params.min_products_per_session})"""
        session_events = f"""SELECT * FROM {{src}} WHERE user_session IN (
            SELECT user_session FROM {{src}} GROUP BY user_session HAVING count(*) >= {params.min_session_events})"""
        if params.iterative_filter:  # GRU4Rec's: short sessions, then rare items, until neither drops a row
            rounds = 0
            while True:
                rows0, rounds = rows, rounds + 1
                step("min_session_events", session_events)
                step("min_item_support", item_support)
                if rows == rows0 or rows == 0:
                    break
            report.result["iterative_filter_rounds"] = rounds
        elif params.min_item_support > 1:
            step("min_item_support", item_support)
        step("max_session_length", f"""SELECT * EXCLUDE (rk) FROM (
            SELECT *, row_number() OVER (PARTITION BY user_session ORDER BY ts DESC, row DESC) AS rk FROM {{src}})
            WHERE rk <= {params.max_session_length}""")
        step("min_products_per_session", session_products)
        if params.min_session_events > 1:
            step("min_session_events", session_events)
        if rows == 0:
            raise ValueError("every row was filtered out; see the counts: " + repr(report.dropped))

        create_levels_and_vocab(con, cur)
        con.execute("""CREATE TABLE sess AS SELECT user_session,
            CAST(row_number() OVER (ORDER BY min(ts), user_session) - 1 AS INTEGER) AS session
            FROM levels GROUP BY user_session""")
        con.execute("""CREATE TABLE items AS SELECT product_id,
            CAST(row_number() OVER (ORDER BY product_id) AS INTEGER) AS item FROM levels GROUP BY product_id""")
        con.execute(f"""COPY (
            SELECT s.session, l.user_session, CAST(epoch(l.ts) AS BIGINT) AS ts, l.row, i.item, l.product_id,
                   l.category_id, {ENCODED_COLUMNS}, CAST(l.price AS FLOAT) AS price, l.user_id
            FROM levels l JOIN sess s USING (user_session) JOIN items i USING (product_id)
            {VOCAB_JOINS}
            ORDER BY s.session, l.ts, l.row) TO '{out_dir / "events.parquet"}' (FORMAT parquet)""")
        con.execute(f"COPY (SELECT * FROM vocab ORDER BY field, code) TO '{out_dir / 'vocab.parquet'}' (FORMAT parquet)")
        counts = con.execute("""SELECT count(*), count(DISTINCT user_session), count(DISTINCT product_id),
            count(DISTINCT category_id), count(DISTINCT category_l), count(DISTINCT sub_category_l),
            count(DISTINCT element_l), count(DISTINCT brand_l), count(*) FILTER (WHERE price IS NULL)
            FROM levels""").fetchone()
        con.close()
    keys = ("rows", "sessions", "items", "category_ids", "categories", "sub_categories", "elements", "brands",
            "rows_missing_price")
    report.result.update({"rows_kept": counts[0], **dict(zip(keys[1:], counts[1:]))})
    report.result["seconds"] = round(time.time() - t0, 2)
    return report.as_dict()
