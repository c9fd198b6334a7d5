"""``filter_encode`` for ``data.source: splits``: the reference's sessions as encoded events, no filter applied.

The reference already filtered and split; re-filtering would change its examples. This writes the same
``events.parquet`` columns as the REES46 path plus ``fixed_split`` (0 train, 2 test), which the split stage honours.
Side information comes from the REES46 CSVs (``data.local_dir``) joined through ``item_map.tsv``: each product's
category_code, brand and price at its last event in those files; for DIGINETICA, its category from
``item_categories.tsv`` (the category id as the category label; no brand, no price). Products without side
information (no item map, or not in the CSVs) get ``unknown`` labels and a missing price, counted in the report.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from sessionrec.prepare.filter_encode import (ENCODED_COLUMNS, VOCAB_JOINS, Report, create_levels_and_vocab, stage_csv,
                                              work_dir)
from sessionrec.sources.splits import read_item_categories, read_item_map, read_split


def events_from_splits(split_dir: Path, side_csvs: list[Path], out_dir: Path, memory_limit: str) -> dict:
    report = Report()
    parts, offset = [], 0
    for code, split in ((0, "train"), (2, "test")):
        d = read_split(split_dir, split)
        n_sessions = int(d["session_index"].max()) + 1 if len(d["item"]) else 0
        parts.append(pa.table({"session": (d["session_index"] + offset).astype(np.int32),
                               "user_session": d["session_key"].astype(str), "ts": d["ts"],
                               "row": np.arange(len(d["item"]), dtype=np.int64), "item": d["item"].astype(np.int32),
                               "fixed_split": np.full(len(d["item"]), code, np.int8)}))
        report.result[f"{split}_sessions"], report.result[f"{split}_examples"] = n_sessions, d["examples"]
        offset += n_sessions
    events = pa.concat_tables(parts)
    item_map = read_item_map(split_dir)
    items = np.unique(events.column("item").to_numpy())
    product = np.array([item_map.get(int(i), -1) for i in items]) if item_map else -np.ones(len(items), np.int64)
    report.result["items"] = int(len(items))
    report.result["items_without_product_id"] = int((product < 0).sum())
    with work_dir(out_dir) as tmp:
        con = duckdb.connect(str(tmp / "work.duckdb"))
        con.execute(f"SET memory_limit='{memory_limit}'")
        con.register("ev", events)
        con.register("pm", pa.table({"item": items.astype(np.int32), "product_id": product.astype(np.int64)}))
        staged = stage_csv(side_csvs, tmp, report) if side_csvs else []
        if staged:
            files = ", ".join(f"'{p}'" for p in staged)
            con.execute(f"""CREATE TABLE side AS SELECT product_id, category_id, category_code, brand, price FROM (
                SELECT TRY_CAST(product_id AS BIGINT) AS product_id, TRY_CAST(category_id AS BIGINT) AS category_id,
                       category_code, brand, TRY_CAST(price AS DOUBLE) AS price,
                       row_number() OVER (PARTITION BY product_id ORDER BY event_time DESC, row DESC) AS rk
                FROM read_parquet([{files}])) WHERE rk = 1 AND product_id IS NOT NULL""")
        elif (cats := read_item_categories(split_dir)) is not None:  # DIGINETICA: a category id per product
            con.register("cats", pa.table({"product_id": pa.array(list(cats), pa.int64()),
                                           "category_id": pa.array(list(cats.values()), pa.int64()),
                                           "category_code": pa.array([str(c) for c in cats.values()], pa.string()),
                                           "brand": pa.nulls(len(cats), pa.string()),
                                           "price": pa.nulls(len(cats), pa.float64())}))
            con.execute("CREATE TABLE side AS SELECT * FROM cats")
        else:
            con.execute("""CREATE TABLE side (product_id BIGINT, category_id BIGINT, category_code VARCHAR,
                           brand VARCHAR, price DOUBLE)""")
        con.execute("""CREATE TABLE joined AS SELECT ev.*, pm.product_id, coalesce(s.category_id, -1) AS category_id,
                       s.category_code, s.brand, s.price, s.product_id IS NOT NULL AS has_side, 0::BIGINT AS user_id
                       FROM ev JOIN pm USING (item) LEFT JOIN side s ON s.product_id = pm.product_id""")
        create_levels_and_vocab(con, "joined")
        report.result["items_without_side_information"] = con.execute(
            "SELECT count(DISTINCT item) FROM levels WHERE NOT has_side").fetchone()[0]
        con.execute(f"""COPY (
            SELECT l.session, l.user_session, l.ts, l.row, l.item, l.product_id, l.category_id, {ENCODED_COLUMNS},
                   CAST(l.price AS FLOAT) AS price, l.user_id, l.fixed_split
            FROM levels l {VOCAB_JOINS}
            ORDER BY l.session, l.ts, l.row) TO '{tmp / "events.parquet"}' (FORMAT parquet)""")
        con.execute(f"COPY (SELECT * FROM vocab ORDER BY field, code) TO '{tmp / 'vocab.parquet'}' (FORMAT parquet)")
        report.result["rows_kept"], report.result["categories"], report.result["brands"] = con.execute(
            "SELECT count(*), count(DISTINCT lc.category) FILTER (WHERE has_side), "
            f"count(DISTINCT lb.code) FILTER (WHERE has_side AND l.brand IS NOT NULL) FROM levels l {VOCAB_JOINS}"
        ).fetchone()
        con.close()
        for name in ("events.parquet", "vocab.parquet"):  # complete: into place
            (tmp / name).replace(out_dir / name)
    report.result.update(source="splits", split_dir=str(split_dir), filters="none (the reference's own)")
    return report.as_dict()

