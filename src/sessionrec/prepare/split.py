"""Split sessions into train / val / test, then fit every data-derived encoder on train only.

``temporal`` orders sessions by their start time (ties by session id) and cuts the sequence at the split fractions, so
every validation session starts after every training one, and every test session after every validation one.
``random`` shuffles sessions with a seed. ``last_days`` is the official GRU4Rec split: sessions starting in the last
``test_days`` are test, those starting in the ``val_days`` before are validation, and train / validation keep only
their clicks before the next cut (``last_days`` below).

Fitted on the training events only, then applied to all three splits:

* the item catalogue: training products get ids 1..N (0 is padding); val/test events of other products are dropped,
  then val/test sessions left with fewer than 2 events (no input/target pair) are dropped; both counted;
* the category / sub_category / element / brand vocabularies: training labels get ids 2.., a label never seen in
  training maps to 1 (``unseen``), 0 is padding; the number of such rows is counted;
* the price scaler (``min_max`` or ``zscore``); a missing price becomes the training mean, counted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
CATEGORICAL = ("category", "sub_category", "element", "brand")
MIN_SESSION_EVENTS = 2


def assign_sessions(starts: np.ndarray, sessions: np.ndarray, method: str, fractions: tuple, seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per session. ``starts`` are start times, ``sessions`` tie-breaking ids."""
    n = len(sessions)
    if method == "temporal":
        order = np.lexsort((sessions, starts))
    else:
        order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round((fractions[0] + fractions[1]) * n)) - n_train
    split = np.empty(n, dtype=np.int8)
    split[order[:n_train]] = 0
    split[order[n_train:n_train + n_val]] = 1
    split[order[n_train + n_val:]] = 2
    return split


DAY = 24 * 3600


def last_days(ts: np.ndarray, event_session: np.ndarray, starts: np.ndarray, sessions: np.ndarray,
              days: tuple) -> tuple[np.ndarray, np.ndarray, dict]:
    """The official GRU4Rec split (``rees46_preproc.py``): with ``end`` one second after the last click, sessions
    starting in the last ``test_days`` are test, those starting in the ``val_days`` before are validation, the rest
    train; train keeps only its clicks before the validation cut and validation only those before the test cut (a
    session running across a cut is truncated there). Returns (split per session, events kept, the cut times)."""
    val_days, test_days = days
    end = int(ts.max()) + 1
    test_cut = end - int(round(test_days * DAY))
    val_cut = test_cut - int(round(val_days * DAY))
    split = np.where(starts >= test_cut, 2, np.where(starts >= val_cut, 1, 0)).astype(np.int8)
    ev_split = split[np.searchsorted(sessions, event_session)]
    keep = ((ev_split == 0) & (ts < val_cut)) | ((ev_split == 1) & (ts < test_cut)) | (ev_split == 2)
    # training sessions left with one click go before the catalogue is taken from train, as the official script
    # drops them before training (its item set is that of the final train)
    s_ids, s_len = np.unique(event_session[keep & (ev_split == 0)], return_counts=True)
    short = np.isin(event_session, s_ids[s_len < MIN_SESSION_EVENTS]) & keep
    return split, keep & ~short, {"val_cut": val_cut, "test_cut": test_cut, "end": end,
                                  "rows_dropped_after_cut": int((~keep).sum()),
                                  "train_sessions_dropped_too_short_after_cut": int((s_len < MIN_SESSION_EVENTS).sum())}


def carve_validation(given: np.ndarray, starts: np.ndarray, sessions: np.ndarray, fractions: tuple) -> np.ndarray:
    """Fixed splits (``given``: 0 train, 2 test per session): the last ``val / (train + val)`` share of the given
    training sessions by start time becomes validation; the test sessions stay as given."""
    out = given.astype(np.int8).copy()
    tr = np.flatnonzero(given == 0)
    order = tr[np.lexsort((sessions[tr], starts[tr]))]
    n_val = int(round(fractions[1] / (fractions[0] + fractions[1]) * len(tr)))
    out[order[len(order) - n_val:]] = 1
    return out


def fit_scaler(prices: np.ndarray, method: str) -> dict:
    """Price scaling statistics from training prices (NaN ignored)."""
    p = prices[~np.isnan(prices)].astype(np.float64)
    if len(p) == 0:
        return {"method": method, "shift": 0.0, "scale": 1.0, "fill": 0.0}
    if method == "min_max":
        shift, scale = float(p.min()), float(p.max() - p.min())
    else:
        shift, scale = float(p.mean()), float(p.std())
    scale = scale if scale > 0 else 1.0
    return {"method": method, "shift": shift, "scale": scale, "fill": float((p.mean() - shift) / scale)}


def apply_scaler(prices: np.ndarray, scaler: dict) -> np.ndarray:
    out = (prices.astype(np.float64) - scaler["shift"]) / scaler["scale"]
    return np.where(np.isnan(out), scaler["fill"], out).astype(np.float32)


def apply_vocab(codes: np.ndarray, vocab: np.ndarray, first_id: int, unseen_id: int) -> np.ndarray:
    """Map ``codes`` into the sorted training ``vocab`` (``np.unique`` of training values): the i-th entry gets
    ``first_id + i``, a code not in it gets ``unseen_id``."""
    pos = np.minimum(np.searchsorted(vocab, codes), max(len(vocab) - 1, 0))
    hit = (vocab[pos] == codes) if len(vocab) else np.zeros(len(codes), bool)
    return np.where(hit, pos + first_id, unseen_id).astype(np.int32)


def split_events(events_path: Path, out_dir: Path, method: str, fractions: tuple, seed: int,
                 normalization: str, days: tuple = (1.0, 1.0)) -> dict:
    """Write ``{train,val,test}.parquet``, ``catalogue.parquet`` and ``encoders.json``; return the split report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    fixed = "fixed_split" in pq.read_schema(events_path).names
    ev = con.execute(f"""SELECT session, ts, row, item, product_id, category, sub_category, element, brand, price
        {", fixed_split" if fixed else ""} FROM read_parquet('{events_path}') ORDER BY session, ts, row""").fetchnumpy()
    ev["price"] = np.ma.filled(np.ma.asarray(ev["price"], dtype=np.float64), np.nan)  # NULL -> NaN, counted below
    sess_ids, first = np.unique(ev["session"], return_index=True)
    starts = ev["ts"][first]
    if fixed:
        split_of_session = carve_validation(ev["fixed_split"][first], starts, sess_ids, fractions)
        method = "fixed (validation carved from the end of the given train)"
    elif method == "last_days":
        split_of_session, in_time, cuts = last_days(ev["ts"], ev["session"], starts, sess_ids, days)
        ev = {k: v[in_time] for k, v in ev.items()}
    else:
        split_of_session = assign_sessions(starts, sess_ids, method, fractions, seed)
    split = split_of_session[np.searchsorted(sess_ids, ev["session"])]
    train = split == 0
    report = {"split_method": method, "sessions_in": int(len(sess_ids))}
    if method == "last_days":
        report.update(cuts)

    # the catalogue: training products; with fixed splits, those of the given train (validation included), so test
    # examples are ranked over the same N items as the reference's
    catalogue = np.unique(ev["item"][split <= 1] if fixed else ev["item"][train])
    new_item = apply_vocab(ev["item"], catalogue, first_id=1, unseen_id=0)  # 1..N, 0 = not in the catalogue
    known = new_item > 0
    scaler = fit_scaler(ev["price"][train], normalization)
    price = apply_scaler(ev["price"], scaler)
    report["rows_missing_price_filled"] = int(np.isnan(ev["price"]).sum())
    encoded = {}
    vocab_sizes = {}
    report["rows_with_label_unseen_in_train"] = {}
    for col in CATEGORICAL:
        vocab = np.unique(ev[col][train])
        encoded[col] = apply_vocab(ev[col], vocab, first_id=2, unseen_id=1)  # 0 padding, 1 unseen
        vocab_sizes[col] = int(len(vocab) + 2)
        report["rows_with_label_unseen_in_train"][col] = int((encoded[col][~train] == 1).sum())

    keep = train | known
    report["val_test_rows_dropped_unseen_item"] = {s: int(((split == i) & ~known).sum())
                                                   for i, s in enumerate(SPLITS) if s != "train"}
    # sessions left too short after the drop
    kept_sessions, kept_len = np.unique(ev["session"][keep], return_counts=True)
    long_enough = kept_sessions[kept_len >= MIN_SESSION_EVENTS]
    keep &= np.isin(ev["session"], long_enough)
    report["sessions_dropped_too_short"] = {}
    report["rows_dropped_too_short"] = {}
    for i, s in enumerate(SPLITS):
        in_split = split == i
        before = np.unique(ev["session"][in_split & (train | known)])
        after = np.unique(ev["session"][in_split & keep])
        report["sessions_dropped_too_short"][s] = int(len(before) - len(after))
        report["rows_dropped_too_short"][s] = int((in_split & (train | known) & ~keep).sum())

    for i, s in enumerate(SPLITS):
        m = keep & (split == i)
        table = pa.table({"session": ev["session"][m], "ts": ev["ts"][m], "item": new_item[m],
                          **{c: encoded[c][m] for c in CATEGORICAL}, "price": price[m]})
        pq.write_table(table, out_dir / f"{s}.parquet")
        n_sess = len(np.unique(ev["session"][m]))
        report[s] = {"sessions": int(n_sess), "events": int(m.sum()),
                     "start": int(ev["ts"][m].min()) if m.any() else None,
                     "end": int(ev["ts"][m].max()) if m.any() else None}
        if n_sess == 0:
            assigned = len(np.unique(ev["session"][split == i]))
            raise ValueError(
                f"split: the {s} split is empty: {assigned} session(s) assigned to it by split.method "
                f"{method!r}" + (f", {report['val_test_rows_dropped_unseen_item'][s]} row(s) dropped as "
                                        f"their product is not in train, {report['sessions_dropped_too_short'][s]} "
                                        f"session(s) left under {MIN_SESSION_EVENTS} clicks" if s != "train" else "")
                + "; use more data (data.*) or other split fractions (split.*)")
    # catalogue: the features of each training product at its last training event
    tr = np.flatnonzero(train)
    rev = tr[np.argsort(ev["ts"][tr], kind="stable")][::-1]
    last = rev[np.unique(new_item[rev], return_index=True)[1]]  # last training event per item, ordered by item id
    cat_table = pa.table({"item": new_item[last], "product_id": ev["product_id"][last],
                          **{c: encoded[c][last] for c in CATEGORICAL}, "price": price[last]})
    pq.write_table(cat_table, out_dir / "catalogue.parquet")
    encoders = {"n_items": int(len(catalogue) + 1), "vocab_sizes": vocab_sizes, "price_scaler": scaler}
    (out_dir / "encoders.json").write_text(json.dumps(encoders, indent=1) + "\n")
    report["catalogue_items"] = int(len(catalogue))
    return report
