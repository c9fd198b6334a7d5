"""Temporal order of the split, and no leakage: everything fitted comes from train only."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessionrec.prepare.split import apply_scaler, assign_sessions, fit_scaler, session_chunks, split_events


def make_events(path, sessions):
    """sessions: list of (start_ts, [(item, brand, price), ...])."""
    rows = []
    for s, (start, events) in enumerate(sessions):
        for j, (item, brand, price) in enumerate(events):
            rows.append({"session": s, "ts": start + j, "row": len(rows), "item": item, "product_id": 1000 + item,
                         "category": 1, "sub_category": 1, "element": 1, "brand": brand, "price": price})
    pq.write_table(pa.Table.from_pylist(rows), path)


def base_sessions():
    # 10 sessions; starts deliberately not in session-id order
    starts = [50, 10, 90, 30, 70, 20, 60, 40, 80, 100]
    return [(t * 100, [(1 + (t + j) % 4, 1, 10.0 * (1 + j)) for j in range(3)]) for t in starts]


def test_temporal_split_orders_by_start_time(tmp_path):
    make_events(tmp_path / "ev.parquet", base_sessions())
    rep = split_events(tmp_path / "ev.parquet", tmp_path / "out", "temporal", (0.6, 0.2, 0.2), 0, "min_max")
    parts = {s: pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "val", "test")}
    starts = {s: df.groupby("session").ts.min() for s, df in parts.items()}
    assert starts["train"].max() < starts["val"].min() and starts["val"].max() < starts["test"].min()
    assert [rep[s]["sessions"] for s in ("train", "val", "test")] == [6, 2, 2]


def test_random_split_is_seeded():
    starts, ids = np.arange(100), np.arange(100)
    a = assign_sessions(starts, ids, "random", (0.8, 0.1, 0.1), 7)
    assert (a == assign_sessions(starts, ids, "random", (0.8, 0.1, 0.1), 7)).all()
    assert (a != assign_sessions(starts, ids, "random", (0.8, 0.1, 0.1), 8)).any()
    assert np.bincount(a).tolist() == [80, 10, 10]


def test_test_values_cannot_change_fitted_encoders(tmp_path):
    sessions = base_sessions()
    make_events(tmp_path / "a.parquet", sessions)
    split_events(tmp_path / "a.parquet", tmp_path / "a", "temporal", (0.6, 0.2, 0.2), 0, "zscore")
    # the last-starting session (t=100) is in test: give it an extreme price, a new brand and a new product
    changed = list(sessions)
    changed[-1] = (sessions[-1][0], [(1, 99, 1e6), (2, 99, 5.0), (77, 1, 3.0), (3, 1, 4.0)])
    make_events(tmp_path / "b.parquet", changed)
    rep = split_events(tmp_path / "b.parquet", tmp_path / "b", "temporal", (0.6, 0.2, 0.2), 0, "zscore")
    enc_a = json.loads((tmp_path / "a" / "encoders.json").read_text())
    enc_b = json.loads((tmp_path / "b" / "encoders.json").read_text())
    assert enc_a == enc_b  # scaler statistics, vocabulary sizes and catalogue untouched
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "catalogue.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "catalogue.parquet"))
    test = pd.read_parquet(tmp_path / "b" / "test.parquet")
    assert rep["val_test_rows_dropped_unseen_item"]["test"] == 1  # product 77 never seen in train
    assert (test.brand == 1).sum() == 2  # brand 99 unseen in train -> the 'unseen' id
    assert rep["rows_with_label_unseen_in_train"]["brand"] == 2


def test_scaler_fitted_on_train_prices_only():
    s = fit_scaler(np.array([10.0, 20.0, 30.0, np.nan]), "min_max")
    assert (s["shift"], s["scale"]) == (10.0, 20.0)
    assert apply_scaler(np.array([10.0, 30.0, 50.0, np.nan]), s).tolist() == pytest.approx([0, 1, 2, 0.5])
    z = fit_scaler(np.array([1.0, 3.0]), "zscore")
    assert apply_scaler(np.array([1.0, 3.0]), z).tolist() == pytest.approx([-1, 1])


def test_sessions_too_short_after_unseen_drop_are_counted(tmp_path):
    sessions = base_sessions()
    sessions[-1] = (sessions[-1][0], [(1, 1, 1.0), (55, 1, 1.0), (56, 1, 1.0)])  # test session, 2 unseen items
    make_events(tmp_path / "ev.parquet", sessions)
    rep = split_events(tmp_path / "ev.parquet", tmp_path / "out", "temporal", (0.6, 0.2, 0.2), 0, "min_max")
    assert rep["sessions_dropped_too_short"]["test"] == 1 and rep["rows_dropped_too_short"]["test"] == 1
    assert rep["test"]["sessions"] == 1


def test_last_days_split_is_gru4recs(tmp_path):
    """Sessions by start time against cuts one and two days before the end; a session running across a cut keeps
    only its clicks before it (as the official rees46_preproc.py does)."""
    day = 86400
    end = 10 * day
    sessions = [(1 * day, [(1, 1, 1.0), (2, 1, 1.0), (3, 1, 1.0)]),  # train
                (end - 2 * day - 1, [(1, 1, 1.0), (2, 1, 1.0), (3, 1, 1.0)]),  # train, 2 clicks after the val cut
                (end - 2 * day + 5, [(2, 1, 1.0), (3, 1, 1.0)]),  # val
                (end - day - 2, [(3, 1, 1.0), (1, 1, 1.0), (2, 1, 1.0)]),  # val, its last click after the test cut
                (end - day, [(1, 1, 1.0), (2, 1, 1.0)]),  # test
                (end - 3, [(2, 1, 1.0), (3, 1, 1.0), (1, 1, 1.0)])]  # test, the last click is the end
    make_events(tmp_path / "ev.parquet", sessions)
    rep = split_events(tmp_path / "ev.parquet", tmp_path / "out", "last_days", (0.8, 0.1, 0.1), 0, "min_max",
                       days=(1.0, 1.0))
    parts = {s: pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "val", "test")}
    assert rep["end"] == end and rep["test_cut"] == end - day and rep["val_cut"] == end - 2 * day
    assert [rep[s]["sessions"] for s in ("train", "val", "test")] == [1, 2, 2]  # session 1: 1 click left
    assert rep["rows_dropped_after_cut"] == 3  # 2 of session 1, 1 of session 3
    assert parts["val"].groupby("session").size().tolist() == [2, 2] and parts["train"].ts.max() < end - 2 * day
    assert parts["test"].groupby("session").size().tolist() == [2, 3]
    assert rep["train_sessions_dropped_too_short_after_cut"] == 1


def random_events(path, n_sessions=80, seed=0, fixed=False):
    """Sessions of 1-6 clicks over ten days, ids not in time order, clicks sharing a second (ties broken by row),
    some prices missing; with ``fixed``, a given train / test label per session."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in rng.permutation(n_sessions):
        start = int(rng.integers(0, 10 * 86400))
        for j in range(int(rng.integers(1, 7))):
            item = int(rng.integers(1, 150))
            rows.append({"session": int(s), "ts": start + j * int(rng.integers(0, 2)), "row": len(rows),
                         "item": item, "product_id": 1000 + item, "category": item % 3, "sub_category": item % 4,
                         "element": item % 5, "brand": int(rng.integers(0, 9)),
                         "price": None if rng.random() < 0.1 else float(rng.random() * 100),
                         **({"fixed_split": 2 * int(s % 5 == 0)} if fixed else {})})
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("method,normalization,fixed", [("temporal", "min_max", False), ("random", "zscore", False),
                                                        ("last_days", "min_max", False), ("temporal", "zscore", True)])
def test_chunked_split_equals_one_chunk(tmp_path, method, normalization, fixed):
    """Reading whole sessions a few events at a time (bounded memory) gives the files and report of one read:
    the same rows, encodings, catalogue features (the last training event of each product, ties in time broken
    by row across chunks) and counts; a ``zscore`` scaler to its last bits."""
    random_events(tmp_path / "ev.parquet", fixed=fixed)
    args = (method, (0.7, 0.15, 0.15), 3, normalization)
    one = split_events(tmp_path / "ev.parquet", tmp_path / "one", *args, days=(2.0, 2.0))
    many = split_events(tmp_path / "ev.parquet", tmp_path / "many", *args, days=(2.0, 2.0), rows_per_chunk=7)
    assert one == many
    assert one["rows_missing_price_filled"] > 0 and sum(one["val_test_rows_dropped_unseen_item"].values()) > 0
    for name in ("train", "val", "test", "catalogue"):
        a, b = (pq.read_table(tmp_path / d / f"{name}.parquet") for d in ("one", "many"))
        assert a.equals(b), name
    enc = [json.loads((tmp_path / d / "encoders.json").read_text()) for d in ("one", "many")]
    scalers = [e.pop("price_scaler") for e in enc]
    assert enc[0] == enc[1] and scalers[0].pop("method") == scalers[1].pop("method") == normalization
    assert scalers[0] == pytest.approx(scalers[1], rel=1e-12)


def test_session_chunks_keep_sessions_whole():
    assert session_chunks(np.array([3, 1, 5, 2, 2]), 4) == [(0, 2), (2, 3), (3, 5)]
    assert session_chunks(np.array([9]), 4) == [(0, 1)]


def test_no_events_is_a_clear_error(tmp_path):
    make_events(tmp_path / "one.parquet", base_sessions()[:1])
    pq.write_table(pq.read_table(tmp_path / "one.parquet").slice(0, 0), tmp_path / "ev.parquet")
    with pytest.raises(ValueError, match="ev.parquet holds no events"):
        split_events(tmp_path / "ev.parquet", tmp_path / "out", "temporal", (0.6, 0.2, 0.2), 0, "min_max")
