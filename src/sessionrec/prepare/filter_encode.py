"""Filter and encode raw REES46 events, streaming: pyarrow parses, DuckDB filters out of core.

Why two engines: pyarrow's streaming CSV reader hands every malformed line (wrong field count, e.g. the
half-written last line of a truncated file) to a callback, so each one is counted and reported instead of lost;
DuckDB then runs the window / group-by work with a memory limit and spills to disk, so the full October+November
2019 files (~110 M rows, 14 GB) fit in 24 GB of RAM. Nothing here holds the event table in pandas.

Parsing: ``event_time`` as REES46 writes it (``2019-10-01 00:00:00 UTC``) or ISO 8601 (``T`` or a space, fractional
seconds, ``Z`` or an offset such as ``+02:00``; a time without a zone is UTC); a UTF-8 byte-order mark, CRLF line ends
and quoted fields are read as such. A line with the wrong number of fields is skipped and reported with its file and
line number (``malformed_examples``); an empty line (or one of empty fields) is dropped as ``blank_line``.

Rules, applied in this order, each counted in the report (rows and sessions it dropped):
``unparseable_value.FIELD`` (a required field, ``event_time``, ``product_id`` or the ``user_id`` session key, that
does not parse as its type; each dropped row counted once, under its first such field), ``missing_required`` (no
event_time, event_type, product_id or session key), ``limit_to_view_event``, ``drop_listwise_nulls`` (one rule per
column), then (with
``session_key: user_id``) sessions re-cut from each user's clicks at gaps over ``session_gap_minutes``,
``dedup_consecutive``, ``min_item_support`` (with ``iterative_filter``: ``min_session_events`` and
``min_item_support`` alternately until neither drops a row, as the official GRU4Rec preprocessing does),
``max_session_length`` (keep the last N events), ``min_products_per_session`` (distinct products) and
``min_session_events`` (events, repeats included).

Encoding: product ids -> 1..N (0 is padding); ``category_code`` -> category / sub_category / element (``unknown`` for
a missing level; levels past the third stay in element); category, sub_category, element and brand label-encoded
(0 padding, labels sorted). These ids are bookkeeping over all rows; everything a model learns from data is
re-fitted on the training split only (``sessionrec.prepare.split``).

An optional field that does not parse (``price`` not a non-negative number, ``category_id``, or ``user_id`` when it is
not the session key) does not drop its click, which would silently join the clicks on either side into one session:
the field becomes missing, counted in ``values_made_missing`` with examples, and ``drop_listwise_nulls`` decides.

The report accounts for every input line: ``rows_read`` = ``rows_kept`` + the sum of ``rows_dropped`` +
``malformed_lines_skipped``. It holds no timings, so identical inputs give an identical report.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
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
    made_missing: dict = field(default_factory=dict)
    value_examples: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    # per file: (name, its first global row number, its parsed rows, the sorted line numbers it skipped)
    spans: list = field(default_factory=list)

    def where(self, row: int) -> tuple[str, int]:
        """The file and 1-based line of the global ``row`` number (the header is line 1)."""
        for name, row0, n, skipped in self.spans:
            if row0 <= row < row0 + n:
                line = row - row0 + 2
                while line != (nxt := row - row0 + 2 + sum(1 for s in skipped if s <= line)):
                    line = nxt
                return name, line
        raise IndexError(row)

    def as_dict(self) -> dict:
        return {"files": self.files, "rows_read": self.rows_read,
                "malformed_lines_skipped": self.malformed_lines_skipped,
                "malformed_examples": self.malformed_examples, "rows_dropped": self.dropped,
                "sessions_dropped": self.sessions_dropped, "values_made_missing": self.made_missing,
                "value_examples": self.value_examples, **self.result}


def _stage_file(path: Path, dst: Path, row0: int, block_size: int, threads: bool) -> tuple[int, list]:
    """Parse one CSV into ``dst`` (all columns as strings plus the global ``row`` number from ``row0``); return the
    rows parsed and the malformed lines skipped (pyarrow's InvalidRow; ``number`` is None when ``threads``)."""
    bad = []

    def on_invalid(row):
        bad.append(row)
        return "skip"

    # an empty line stays a row (all fields missing, dropped as blank_line), so row numbers map to line numbers
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_size, use_threads=threads),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False,
                                         ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS},
                                             strings_can_be_null=True, null_values=[""]),
    )
    writer = None
    n = 0
    with tqdm(desc=f"read {path.name}", unit=" rows", unit_scale=True, leave=False) as bar:
        for batch in reader:
            if bad and threads:  # to be parsed again on one thread
                break
            rows = pa.array(np.arange(row0 + n, row0 + n + batch.num_rows, dtype=np.int64))
            table = pa.Table.from_batches([batch]).append_column("row", rows)
            if writer is None:
                writer = pq.ParquetWriter(dst, table.schema)
            writer.write_table(table)
            n += batch.num_rows
            bar.update(batch.num_rows)
    if writer is not None:
        writer.close()
    return n, bad


def stage_csv(paths: list[Path], out_dir: Path, report: Report, block_size: int = 1 << 24) -> list[Path]:
    """Stream CSVs into Parquet (all columns as strings plus a global ``row`` number); count malformed lines."""
    out = []
    row0 = 0
    for fi, path in enumerate(paths):
        check_header(path)
        dst = out_dir / f"part-{fi:03d}.parquet"
        # threads first (1.5x the one-thread parse of a 3M-row file on 2 cores); a multithreaded parse does not
        # know the line numbers of the lines it skips, so a file with any is parsed again on one thread for them
        n, bad = _stage_file(path, dst, row0, block_size, threads=True)
        if bad:
            n, bad = _stage_file(path, dst, row0, block_size, threads=False)
        if n:
            out.append(dst)
        report.spans.append((path.name, row0, n, sorted(r.number for r in bad)))
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
        if len(bad) > MAX_EXAMPLES:
            log.warning("%s: %d malformed lines skipped in all (see metrics/data_report.json)", path.name, len(bad))
    return out


def create_levels_and_vocab(con, src: str) -> None:
    """Tables ``levels`` (the rows of ``src``), ``vocab`` (field, label, code 1.. in label order; ``unknown`` for a
    missing level or brand), ``codes`` (each distinct ``category_code``, keyed ``coalesce(category_code, '')``: its
    category, sub_category and element codes) and ``brands`` (each brand label's code). ``VOCAB_JOINS`` joins a row
    of ``levels l`` to its codes, ``ENCODED_COLUMNS`` selects them. The labels are split once per distinct
    category_code, not once per row, and rows join their codes on one key each instead of four label strings: at 2M
    rows the two statements took 0.91 s instead of 1.65 s of about 6 (``benchmarks/speed/filter_encode_phases.py``)."""
    con.execute(f"CREATE TABLE levels AS SELECT * FROM {src}")
    con.execute("""CREATE TABLE code_levels AS SELECT key,
        coalesce(nullif(split_part(key, '.', 1), ''), 'unknown') AS category_l,
        coalesce(nullif(split_part(key, '.', 2), ''), 'unknown') AS sub_category_l,
        coalesce(nullif(array_to_string(string_split(key, '.')[3:], '.'), ''), 'unknown') AS element_l
        FROM (SELECT DISTINCT coalesce(category_code, '') AS key FROM levels)""")
    con.execute("CREATE TABLE brand_levels AS SELECT DISTINCT coalesce(brand, 'unknown') AS brand_l FROM levels")
    con.execute(" UNION ALL ".join(
        f"""{'CREATE TABLE vocab AS ' if i == 0 else ''}SELECT '{f}' AS field, label,
            CAST(row_number() OVER (ORDER BY label) AS INTEGER) AS code FROM (SELECT DISTINCT {f}_l AS label
            FROM {'brand_levels' if f == 'brand' else 'code_levels'})"""
        for i, f in enumerate(("category", "sub_category", "element", "brand"))))
    con.execute("""CREATE TABLE codes AS SELECT c.key, vc.code AS category, vs.code AS sub_category, ve.code AS element
        FROM code_levels c JOIN vocab vc ON vc.field = 'category' AND vc.label = c.category_l
            JOIN vocab vs ON vs.field = 'sub_category' AND vs.label = c.sub_category_l
            JOIN vocab ve ON ve.field = 'element' AND ve.label = c.element_l""")
    con.execute("CREATE TABLE brands AS SELECT label AS key, code FROM vocab WHERE field = 'brand'")
    con.execute("DROP TABLE code_levels")
    con.execute("DROP TABLE brand_levels")


ENCODED_COLUMNS = """lc.category, lc.sub_category, lc.element, lb.code AS brand"""
VOCAB_JOINS = """JOIN codes lc ON lc.key = coalesce(l.category_code, '')
            JOIN brands lb ON lb.key = coalesce(l.brand, 'unknown')"""


# event_time: the REES46 form first (the fast path), then ISO 8601; a format without a zone is read as UTC
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z",
                "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")
EXPECTED = {"event_time": "a time like '2019-10-01 00:00:00 UTC' or ISO 8601 ('2019-10-01T00:00:00Z', '+02:00')",
            "product_id": "an integer", "category_id": "an integer", "user_id": "an integer",
            "price": "a number >= 0"}
PARSED = {"event_time": "ts", "product_id": "product_id", "category_id": "category_id", "user_id": "user_id",
          "price": "price"}


def _bad(col: str) -> str:
    """SQL: ``col``'s raw text is there but did not parse (for price: or is negative or NaN)."""
    extra = " OR price < 0 OR isnan(price)" if col == "price" else ""
    return f"({col}_raw IS NOT NULL AND ({PARSED[col]} IS NULL{extra}))"


def filter_encode(raw_files: list[Path], params: FilterEncodeParams, out_dir: Path) -> dict:
    """Write ``events.parquet`` and ``vocab.parquet`` into ``out_dir``; return the data report.

    All temporary work (the staged Parquet, DuckDB's database and spill files) lives in ``out_dir/.tmp``, removed at
    the end and, after a kill, at the start of the next run; the two outputs are renamed into place only when
    complete."""
    report = Report()
    with work_dir(out_dir) as tmp:
        _filter_encode(raw_files, params, out_dir, tmp, report)
    return report.as_dict()


@contextlib.contextmanager
def work_dir(out_dir: Path):
    """``out_dir/.tmp``, fresh (a killed run's leftovers removed first) and removed when done, failed or not."""
    tmp = out_dir / ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _filter_encode(raw_files: list[Path], params: FilterEncodeParams, out_dir: Path, tmp: Path,
                   report: Report) -> None:
    staged = stage_csv(raw_files, tmp, report)
    if not staged:
        raise ValueError(f"no rows could be parsed from {[str(p) for p in raw_files]}")
    con = duckdb.connect(str(tmp / "work.duckdb"))
    try:
        _rules(con, staged, params, tmp, report)
    finally:
        con.close()  # also on an error: DuckDB keeps one database per path and process
    for name in ("events.parquet", "vocab.parquet"):  # complete: into place
        (tmp / name).replace(out_dir / name)


# a session key's 64-bit hash stands for the key string in the working tables; _rules checks that no two keys share a
# hash (their distinct counts agree) and otherwise numbers the keys exactly
SESSION_HASH = "hash({col})"


def _rules(con, staged: list[Path], params: FilterEncodeParams, tmp: Path, report: Report) -> None:
    """Parse the staged Parquet and apply the rules in DuckDB (``con``), counting into ``report``; write
    ``events.parquet`` and ``vocab.parquet`` into ``tmp``.

    One pass per kind of work: one scan counts the unparseable values; one pass gives every row the first row-level
    rule that drops it (parsing, missing fields, event type, listwise nulls), from which every such rule's row and
    session counts follow; the session rules then rewrite a narrow table of integers only (``row``, ``sid`` = the
    session key's 64-bit hash, or its number where two keys share a hash, ``ts``, ``product_id``), never the
    strings; the last pass joins the kept rows back to their parsed fields and writes the output. At 110M rows the
    one-table-rewrite-per-rule design moved every string column once per rule (25 GB of temporary database)."""
    con.execute(f"SET memory_limit='{params.memory_limit}'")
    con.execute(f"SET temp_directory='{tmp / 'spill'}'")
    con.execute("SET TimeZone='UTC'")
    con.execute("SET preserve_insertion_order=false")  # every output below is ordered explicitly
    files = ", ".join(f"'{p}'" for p in staged)
    formats = ", ".join(f"'{f}'" for f in TIME_FORMATS)
    required = ["event_time", "product_id"] + (["user_id"] if params.session_key == "user_id" else [])
    optional = [c for c in ("price", "category_id", "user_id") if c not in required]
    # views, not tables: the raw text is parsed where it is read (at 110M rows a table of it was 16 GB of temp disk)
    con.execute(f"""
        CREATE VIEW t0 AS SELECT
          row, event_time AS event_time_raw, price AS price_raw, product_id AS product_id_raw,
          category_id AS category_id_raw, user_id AS user_id_raw,
          try_strptime(event_time, [{formats}]) AS ts,
          event_type, TRY_CAST(product_id AS BIGINT) AS product_id,
          TRY_CAST(category_id AS BIGINT) AS category_id, category_code, brand,
          TRY_CAST(price AS DOUBLE) AS price, TRY_CAST(user_id AS BIGINT) AS user_id, user_session
        FROM read_parquet([{files}])""")
    sid_hash = f"CASE WHEN user_session IS NOT NULL THEN {SESSION_HASH.format(col='user_session')} END"

    # one pass counts them all: required fields (the row goes, counted under its first unparseable field), optional
    # fields (the value goes, the click stays), blank lines, and the distinct session keys and their hashes
    firsts = [f"{_bad(c)} AND NOT ({' OR '.join(_bad(p) for p in required[:i]) or 'false'})"
              for i, c in enumerate(required)]
    blank = " AND ".join(f"{c} IS NULL" for c in ("event_time_raw", "event_type", "product_id_raw", "category_id_raw",
                                                  "category_code", "brand", "price_raw", "user_id_raw",
                                                  "user_session"))
    rows, sessions, hashes, *counts = con.execute(
        f"SELECT count(*), count(DISTINCT user_session), count(DISTINCT {sid_hash}), " + ", ".join(
            f"count(*) FILTER (WHERE {f})" for f in [*firsts, *(_bad(c) for c in optional), blank]) + " FROM t0"
    ).fetchone()
    report.result["sessions_read"] = sessions
    if hashes == sessions:
        sid, key_join = sid_hash, ""
    else:  # two keys share a hash: number the keys exactly (a join more)
        log.info("filter_encode: %d session keys share %d hashes; numbering them exactly", sessions, hashes)
        con.execute("""CREATE TABLE keys AS SELECT user_session, row_number() OVER () AS sid
                       FROM (SELECT DISTINCT user_session FROM t0 WHERE user_session IS NOT NULL)""")
        sid, key_join = "k.sid", "LEFT JOIN keys k USING (user_session)"
    by = {"blank_line": counts[-1], **{f"unparseable_value.{c}": n for c, n in zip(required, counts)}}
    report.made_missing = dict(zip(optional, counts[len(required):-1]))
    for col, n in zip(required + optional, counts[:-1]):  # a few examples of each field's bad values, file and line
        if n:
            examples = con.execute(f"SELECT row, {col}_raw FROM t0 WHERE {_bad(col)} ORDER BY row LIMIT 3").fetchall()
            report.value_examples[col] = [{"file": f, "line": ln, "value": v[:100]}
                                          for r, v in examples for f, ln in [report.where(r)]]
    for col, n in {**by, **{f"made_missing.{c}": n for c, n in report.made_missing.items()}}.items():
        if not n or col == "blank_line":
            continue
        field_ = col.split(".")[1]
        ex = report.value_examples.get(field_, [])
        log.warning("%s: %d row(s) whose %s is not %s, e.g. %s", "dropped" if col in by else "kept, value missing",
                    n, field_, EXPECTED[field_], ", ".join(f"{e['file']} line {e['line']}: {e['value']!r}"
                                                           for e in ex))
    # an optional field that does not parse becomes missing (the raw text stays beside it for the first rule)
    con.execute("CREATE VIEW t1 AS SELECT * REPLACE ({}) FROM t0".format(
        ", ".join(f"CASE WHEN {_bad(c)} THEN NULL ELSE {PARSED[c]} END AS {PARSED[c]}" for c in optional)))

    # the row-level rules, in order: each row's code is the index of the first rule that drops it (kept_code if none)
    row_rules = [("unparseable_value", f"{' OR '.join(_bad(c) for c in required)} OR ({blank})"),
                 ("missing_required", f"ts IS NULL OR event_type IS NULL OR product_id IS NULL "
                                      f"OR {params.session_key} IS NULL")]
    if params.limit_to_view_event:
        row_rules.append(("limit_to_view_event", "event_type <> 'view'"))
    row_rules += [(f"drop_listwise_nulls.{col}", f"{col} IS NULL") for col in params.drop_listwise_nulls]
    kept_code = len(row_rules)
    code = ("CASE " + " ".join(f"WHEN {cond} THEN {i}" for i, (_, cond) in enumerate(row_rules))
            + f" ELSE {kept_code} END")
    user_id = ", user_id" if params.session_key == "user_id" else ""
    con.execute(f"""CREATE TABLE coded AS SELECT row, {sid} AS sid, ts, product_id{user_id},
        CAST({code} AS TINYINT) AS code FROM t1 {key_join}""")
    row_counts = dict(con.execute("SELECT code, count(*) FROM coded GROUP BY code").fetchall())
    # a session outlives rule i when one of its rows is dropped by a later rule or kept: its largest code > i
    last_codes = dict(con.execute("""SELECT last, count(*) FROM (
        SELECT max(code) AS last FROM coded WHERE sid IS NOT NULL GROUP BY sid) GROUP BY last""").fetchall())
    for i, (name, _) in enumerate(row_rules):
        n = rows - row_counts.get(i, 0)
        s = sessions - last_codes.get(i, 0)
        for key, count in (by if i == 0 else {name: rows - n}).items():
            report.dropped[key] = report.dropped.get(key, 0) + count
        report.sessions_dropped[name] = report.sessions_dropped.get(name, 0) + sessions - s
        if n == 0 and rows > 0:
            raise ValueError(_lost_everything(name, report, by if i == 0 else None))
        rows, sessions = n, s
    con.execute(f"CREATE TABLE w0 AS SELECT * EXCLUDE (code) FROM coded WHERE code = {kept_code}")
    con.execute("DROP TABLE coded")
    cur = "w0"
    n_tables = 0

    def step(name: str, sql: str) -> None:
        """Replace the working table by ``sql`` over it and count the rows and sessions the rule dropped."""
        nonlocal cur, rows, sessions, n_tables
        n_tables += 1
        new = f"w{n_tables}"
        con.execute(f"CREATE TABLE {new} AS {sql.format(src=cur)}")
        con.execute(f"DROP TABLE {cur}")
        cur = new
        n, s = con.execute(f"SELECT count(*), count(DISTINCT sid) FROM {cur}").fetchone()
        # a rule applied more than once (iterative_filter) adds up its counts
        report.dropped[name] = report.dropped.get(name, 0) + rows - n
        report.sessions_dropped[name] = report.sessions_dropped.get(name, 0) + sessions - s
        if n == 0 and rows > 0:
            raise ValueError(_lost_everything(name, report, None))
        rows, sessions = n, s

    if params.session_key == "user_id":  # GRU4Rec's sessions: a user's clicks, cut where the gap exceeds the limit;
        # the session's number is its first click's row, its name user_id-N (the user's N-th session from 1)
        gap = params.session_gap_minutes * 60
        n_tables += 1
        con.execute(f"""CREATE TABLE w{n_tables} AS SELECT row, ts, product_id, user_id,
            last_value(CASE WHEN cut = 1 THEN row END IGNORE NULLS) OVER w AS sid, sum(cut) OVER w AS n FROM (
            SELECT *, CASE WHEN epoch(ts) - epoch(lag(ts) OVER (PARTITION BY user_id ORDER BY ts, row)) <= {gap}
                THEN 0 ELSE 1 END AS cut FROM {cur})
            WINDOW w AS (PARTITION BY user_id ORDER BY ts, row ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)""")
        con.execute(f"DROP TABLE {cur}")
        cur = f"w{n_tables}"
        before = sessions
        rows, sessions = con.execute(f"SELECT count(*), count(DISTINCT sid) FROM {cur}").fetchone()
        report.result["sessions_from_user_id"] = {"kaggle_user_sessions": before, "sessions": sessions,
                                                  "gap_minutes": params.session_gap_minutes}
    if params.dedup_consecutive:
        step("dedup_consecutive", """SELECT * EXCLUDE (prev) FROM (
            SELECT *, lag(product_id) OVER (PARTITION BY sid ORDER BY ts, row) AS prev FROM {src})
            WHERE prev IS NULL OR prev <> product_id""")
    item_support = f"""SELECT * FROM {{src}} WHERE product_id IN (
        SELECT product_id FROM {{src}} GROUP BY product_id HAVING count(*) >= {params.min_item_support})"""
    session_products = f"""SELECT * FROM {{src}} WHERE sid IN (
        SELECT sid FROM {{src}} GROUP BY sid HAVING count(DISTINCT product_id) >= {params.min_products_per_session})"""
    session_events = f"""SELECT * FROM {{src}} WHERE sid IN (
        SELECT sid FROM {{src}} GROUP BY sid HAVING count(*) >= {params.min_session_events})"""
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
        SELECT *, row_number() OVER (PARTITION BY sid ORDER BY ts DESC, row DESC) AS rk FROM {{src}})
        WHERE rk <= {params.max_session_length}""")
    step("min_products_per_session", session_products)
    if params.min_session_events > 1:
        step("min_session_events", session_events)

    # the kept rows' fields, joined back once by row
    user_session = ("CAST(t1.user_id AS VARCHAR) || '-' || CAST(w.n AS VARCHAR)" if params.session_key == "user_id"
                    else "t1.user_session")
    raw_cols = "event_time_raw, price_raw, product_id_raw, category_id_raw, user_id_raw"
    # ts and product_id come parsed from the working table
    create_levels_and_vocab(con, f"""(SELECT t1.* EXCLUDE ({raw_cols}, user_session, ts, product_id), w.ts,
        w.product_id, {user_session} AS user_session FROM t1 JOIN {cur} w USING (row))""")
    con.execute(f"DROP TABLE {cur}")
    con.execute("DROP VIEW t1")
    con.execute("DROP VIEW t0")
    for path in staged:  # read for the last time: their disk is the output's
        path.unlink()
    con.execute("""CREATE TABLE sess AS SELECT user_session,
        CAST(row_number() OVER (ORDER BY min(ts), user_session) - 1 AS INTEGER) AS session
        FROM levels GROUP BY user_session""")
    con.execute("""CREATE TABLE items AS SELECT product_id,
        CAST(row_number() OVER (ORDER BY product_id) AS INTEGER) AS item FROM levels GROUP BY product_id""")
    # the joins into a table, then the sort into the file: at 52M rows kept, joins and sort in one query ran out of
    # DuckDB's 8 GB (the sort of the whole output, strings included, waiting on the joins' hash tables)
    con.execute(f"""CREATE TABLE encoded AS
        SELECT s.session, l.user_session, l.ts, l.row, i.item, l.product_id,
               l.category_id, {ENCODED_COLUMNS}, CAST(l.price AS FLOAT) AS price, l.user_id
        FROM levels l JOIN sess s USING (user_session) JOIN items i USING (product_id)
        {VOCAB_JOINS}""")
    counts = con.execute("""SELECT count(*), count(DISTINCT user_session), count(DISTINCT product_id),
        count(DISTINCT category_id), (SELECT count(*) FROM vocab WHERE field = 'category'),
        (SELECT count(*) FROM vocab WHERE field = 'sub_category'), (SELECT count(*) FROM vocab WHERE field = 'element'),
        (SELECT count(*) FROM vocab WHERE field = 'brand'), count(*) FILTER (WHERE price IS NULL)
        FROM levels""").fetchone()
    con.execute("DROP TABLE levels")
    con.execute(f"""COPY (SELECT * REPLACE (CAST(epoch(ts) AS BIGINT) AS ts) FROM encoded e
        ORDER BY e.session, e.ts, e.row) TO '{tmp / "events.parquet"}' (FORMAT parquet)""")
    con.execute(f"COPY (SELECT * FROM vocab ORDER BY field, code) TO '{tmp / 'vocab.parquet'}' (FORMAT parquet)")
    keys = ("rows", "sessions", "items", "category_ids", "categories", "sub_categories", "elements", "brands",
            "rows_missing_price")
    report.result.update({"rows_kept": counts[0], **dict(zip(keys[1:], counts[1:]))})


def _lost_everything(rule: str, report: Report, by: dict | None) -> str:
    """The error for a rule that removed the last rows: which rule, and what to look at."""
    msg = f"filter_encode: rule {rule} removed every remaining row"
    by = {k: n for k, n in (by or {}).items() if k.startswith("unparseable_value.")}
    if by:
        field_, n = max(by.items(), key=lambda kv: kv[1])
        field_ = field_.split(".", 1)[1]
        ex = report.value_examples.get(field_, [])
        msg += (f" ({n} rows whose {field_} is not {EXPECTED[field_]}; e.g. " +
                ", ".join(f"{e['file']} line {e['line']}: {e['value']!r}" for e in ex) + ")")
    elif rule.startswith(("min_", "max_")) or rule.startswith("drop_listwise_nulls"):
        msg += f" (filter_encode.{rule.split('.')[0]} in params.yaml; counts so far: {report.dropped})"
    else:
        msg += f" (counts so far: {report.dropped})"
    return msg
