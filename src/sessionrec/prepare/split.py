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
from tqdm import tqdm

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


def last_days_cuts(last_ts: int, days: tuple) -> dict:
    """The cut times of ``last_days``: ``end`` one second after the last click (``last_ts``), the test cut
    ``test_days`` before it, the validation cut ``val_days`` before that."""
    val_days, test_days = days
    end = int(last_ts) + 1
    test_cut = end - int(round(test_days * DAY))
    return {"val_cut": test_cut - int(round(val_days * DAY)), "test_cut": test_cut, "end": end}


def last_days_split(starts: np.ndarray, cuts: dict) -> np.ndarray:
    """Split per session of ``last_days``: by start time against the cuts."""
    return np.where(starts >= cuts["test_cut"], 2, np.where(starts >= cuts["val_cut"], 1, 0)).astype(np.int8)


def last_days_keep(ts: np.ndarray, ev_split: np.ndarray, event_session: np.ndarray,
                   cuts: dict) -> tuple[np.ndarray, int, int]:
    """The events ``last_days`` keeps (of whole sessions): train keeps only its clicks before the validation cut,
    validation only those before the test cut; then training sessions left with one click go, before the catalogue
    is taken from train, as the official script drops them before training (its item set is that of the final
    train). Returns (kept, rows dropped after a cut, training sessions dropped as too short)."""
    keep = (((ev_split == 0) & (ts < cuts["val_cut"])) | ((ev_split == 1) & (ts < cuts["test_cut"]))
            | (ev_split == 2))
    s_ids, s_len = np.unique(event_session[keep & (ev_split == 0)], return_counts=True)
    short = np.isin(event_session, s_ids[s_len < MIN_SESSION_EVENTS]) & keep
    return keep & ~short, int((~keep).sum()), int((s_len < MIN_SESSION_EVENTS).sum())


def last_days(ts: np.ndarray, event_session: np.ndarray, starts: np.ndarray, sessions: np.ndarray,
              days: tuple) -> tuple[np.ndarray, np.ndarray, dict]:
    """The official GRU4Rec split (``rees46_preproc.py``) over events in memory: sessions starting in the last
    ``test_days`` are test, those starting in the ``val_days`` before are validation, the rest train, each cut
    as ``last_days_keep`` says. Returns (split per session, events kept, the cut times and drop counts)."""
    cuts = last_days_cuts(ts.max(), days)
    split = last_days_split(starts, cuts)
    keep, after_cut, short = last_days_keep(ts, split[np.searchsorted(sessions, event_session)], event_session, cuts)
    return split, keep, {**cuts, "rows_dropped_after_cut": after_cut,
                         "train_sessions_dropped_too_short_after_cut": short}


def carve_validation(given: np.ndarray, starts: np.ndarray, sessions: np.ndarray, fractions: tuple) -> np.ndarray:
    """Fixed splits (``given``: 0 train, 2 test per session): the last ``val / (train + val)`` share of the given
    training sessions by start time becomes validation; the test sessions stay as given."""
    out = given.astype(np.int8).copy()
    tr = np.flatnonzero(given == 0)
    order = tr[np.lexsort((sessions[tr], starts[tr]))]
    n_val = int(round(fractions[1] / (fractions[0] + fractions[1]) * len(tr)))
    out[order[len(order) - n_val:]] = 1
    return out


class PriceStats:
    """Training prices' scaling statistics, gathered chunk by chunk (NaN ignored): ``add`` every chunk once, then for
    ``zscore`` ``add_squares`` every chunk once more (deviations from the mean). From one chunk they are numpy's
    ``mean`` / ``std`` bit for bit; over several they differ from those in the last bits at most."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, 0.0, 0.0
        self.lo, self.hi = np.inf, -np.inf

    @staticmethod
    def _finite(prices: np.ndarray) -> np.ndarray:
        return prices[~np.isnan(prices)].astype(np.float64)

    def add(self, prices: np.ndarray) -> None:
        p = self._finite(prices)
        if len(p):
            self.n += len(p)
            self.total += np.add.reduce(p)
            self.lo, self.hi = min(self.lo, p.min()), max(self.hi, p.max())

    @property
    def mean(self) -> float:
        return self.total / self.n

    def add_squares(self, prices: np.ndarray) -> None:
        x = self._finite(prices) - self.mean
        self.squares += np.add.reduce(x * x)

    def scaler(self, method: str) -> dict:
        if self.n == 0:
            return {"method": method, "shift": 0.0, "scale": 1.0, "fill": 0.0}
        if method == "min_max":
            shift, scale = float(self.lo), float(self.hi - self.lo)
        else:
            shift, scale = float(self.mean), float(np.sqrt(self.squares / self.n))
        scale = scale if scale > 0 else 1.0
        return {"method": method, "shift": shift, "scale": scale, "fill": float((self.mean - shift) / scale)}


def fit_scaler(prices: np.ndarray, method: str) -> dict:
    """Price scaling statistics from training prices (NaN ignored)."""
    stats = PriceStats()
    stats.add(prices)
    if method == "zscore" and stats.n:
        stats.add_squares(prices)
    return stats.scaler(method)


def apply_scaler(prices: np.ndarray, scaler: dict) -> np.ndarray:
    out = (prices.astype(np.float64) - scaler["shift"]) / scaler["scale"]
    return np.where(np.isnan(out), scaler["fill"], out).astype(np.float32)


def apply_vocab(codes: np.ndarray, vocab: np.ndarray, first_id: int, unseen_id: int) -> np.ndarray:
    """Map ``codes`` into the sorted training ``vocab`` (``np.unique`` of training values): the i-th entry gets
    ``first_id + i``, a code not in it gets ``unseen_id``."""
    pos = np.minimum(np.searchsorted(vocab, codes), max(len(vocab) - 1, 0))
    hit = (vocab[pos] == codes) if len(vocab) else np.zeros(len(codes), bool)
    return np.where(hit, pos + first_id, unseen_id).astype(np.int32)


ROWS_PER_CHUNK = 1 << 22  # events read at once (whole sessions): about 0.5 GB of columns and their encodings
EVENT_COLUMNS = "session, ts, item, product_id, category, sub_category, element, brand, price"


def session_chunks(rows: np.ndarray, rows_per_chunk: int) -> list[tuple[int, int]]:
    """Consecutive session index ranges ``[a, b)`` of about ``rows_per_chunk`` events each (``rows``: events per
    session; a session longer than that is a chunk of its own)."""
    ends = np.cumsum(rows)
    cuts, a = [], 0
    while a < len(rows):
        b = max(int(np.searchsorted(ends, (ends[a - 1] if a else 0) + rows_per_chunk, side="right")), a + 1)
        cuts.append((a, b))
        a = b
    return cuts


class _Events:
    """``events.parquet`` read a chunk of whole sessions at a time, each chunk's events ordered by (session, ts, row),
    with the split of each event (``last_days``: only the events it keeps)."""

    def __init__(self, path: Path, method: str, fractions: tuple, seed: int, days: tuple, rows_per_chunk: int):
        self.con = duckdb.connect()
        self.src = f"read_parquet('{path}')"
        self.fixed = "fixed_split" in pq.read_schema(path).names
        first = ", first(fixed_split ORDER BY ts, row) AS fixed_split" if self.fixed else ""
        s = self.con.execute(f"""SELECT session, min(ts) AS start, max(ts) AS last, count(*) AS n {first}
            FROM {self.src} GROUP BY session ORDER BY session""").fetchnumpy()
        self.sessions, starts = s["session"], s["start"]
        self.report: dict = {}  # last_days: its cuts and drop counts
        self.cuts, self.counted = None, False
        if self.fixed:
            self.split = carve_validation(s["fixed_split"], starts, self.sessions, fractions)
            self.method = "fixed (validation carved from the end of the given train)"
        elif method == "last_days":
            self.cuts = last_days_cuts(s["last"].max(), days) if len(starts) else last_days_cuts(0, days)
            self.split = last_days_split(starts, self.cuts)
            self.method = method
            self.report = {**self.cuts, "rows_dropped_after_cut": 0, "train_sessions_dropped_too_short_after_cut": 0}
        else:
            self.split = assign_sessions(starts, self.sessions, method, fractions, seed)
            self.method = method
        self.chunks = session_chunks(s["n"], rows_per_chunk)

    def __iter__(self):
        """Yield ``(events, split)``: a dict of (n,) arrays and the split of each event. The ``last_days`` drop counts
        go to ``report`` on the first pass only."""
        counting = self.cuts is not None and not self.counted
        for a, b in self.chunks:
            lo, hi = int(self.sessions[a]), int(self.sessions[b - 1])
            ev = self.con.execute(f"""SELECT {EVENT_COLUMNS} FROM {self.src} WHERE session BETWEEN {lo} AND {hi}
                ORDER BY session, ts, row""").fetchnumpy()
            ev["price"] = np.ma.filled(np.ma.asarray(ev["price"], dtype=np.float64), np.nan)  # NULL -> NaN, counted
            split = self.split[a:b][np.searchsorted(self.sessions[a:b], ev["session"])]
            if self.cuts is not None:
                keep, after_cut, short = last_days_keep(ev["ts"], split, ev["session"], self.cuts)
                if counting:
                    self.report["rows_dropped_after_cut"] += after_cut
                    self.report["train_sessions_dropped_too_short_after_cut"] += short
                ev, split = {k: v[keep] for k, v in ev.items()}, split[keep]
            yield ev, split
        self.counted = self.counted or counting


def _distinct(sorted_ids: np.ndarray) -> int:
    """How many distinct values a sorted array holds (a chunk's events are ordered by session)."""
    return int(np.count_nonzero(sorted_ids[1:] != sorted_ids[:-1])) + 1 if len(sorted_ids) else 0


def _fit(events: _Events, normalization: str) -> tuple[np.ndarray, dict, dict, int]:
    """Fitted on the training events: the catalogue (with fixed splits, the given train's, validation included, so
    test examples are ranked over the same N items as the reference's), the vocabularies, the price scaler; and the
    number of rows with a missing price."""
    seen_items, seen_labels = [], {c: [] for c in CATEGORICAL}
    stats, missing_price = PriceStats(), 0
    for ev, split in tqdm(events, total=len(events.chunks), desc="split: fit", unit=" chunks", leave=False):
        train = split == 0
        seen_items.append(np.unique(ev["item"][split <= 1] if events.fixed else ev["item"][train]))
        for col in CATEGORICAL:
            seen_labels[col].append(np.unique(ev[col][train]))
        stats.add(ev["price"][train])
        missing_price += int(np.isnan(ev["price"]).sum())
    if normalization == "zscore" and stats.n:
        for ev, split in events:
            stats.add_squares(ev["price"][split == 0])
    return (np.unique(np.concatenate(seen_items)), {c: np.unique(np.concatenate(v)) for c, v in seen_labels.items()},
            stats.scaler(normalization), missing_price)


def split_events(events_path: Path, out_dir: Path, method: str, fractions: tuple, seed: int,
                 normalization: str, days: tuple = (1.0, 1.0), rows_per_chunk: int = ROWS_PER_CHUNK) -> dict:
    """Write ``{train,val,test}.parquet``, ``catalogue.parquet`` and ``encoders.json``; return the split report.

    Memory is bounded by ``rows_per_chunk``, not by the input: one query gives each session's start (the split is
    decided per session, over all of them), then chunks of whole sessions are read twice, once to fit the encoders
    on their training events (three times for ``zscore``: the deviations from the mean), once to apply them and
    append each split's rows to its file. A chunk holding all of the input gives what one pass over it in memory
    gives; more chunks give the same files, bar the Parquet row groups and a ``zscore`` scaler's last bits."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events = _Events(events_path, method, fractions, seed, days, rows_per_chunk)
    if not events.chunks:
        raise ValueError(f"split: {events_path} holds no events; use more data (data.*) or looser filters "
                         "(filter_encode.*)")
    method = events.method
    report = {"split_method": method, "sessions_in": int(len(events.sessions))}
    catalogue, vocabs, scaler, missing_price = _fit(events, normalization)
    report.update(events.report)
    report["rows_missing_price_filled"] = missing_price

    # apply, chunk by chunk, counting every drop
    n_items = len(catalogue) + 1
    unseen = dict.fromkeys(CATEGORICAL, 0)
    dropped_unseen = {s: 0 for s in SPLITS if s != "train"}
    too_short = {s: 0 for s in SPLITS}
    rows_too_short = {s: 0 for s in SPLITS}
    per_split = {s: {"sessions": 0, "events": 0, "start": None, "end": None} for s in SPLITS}
    assigned = dict.fromkeys(SPLITS, 0)
    writers: dict = {}
    last_ts = np.full(n_items, np.iinfo(np.int64).min)  # per item id: its last training event's time, if any
    in_train = np.zeros(n_items, bool)
    cat_cols = ("product_id", *CATEGORICAL, "price")
    cat = {c: np.zeros(n_items, np.float32 if c == "price" else np.int64 if c == "product_id" else np.int32)
           for c in cat_cols}
    try:
        for ev, split in tqdm(events, total=len(events.chunks), desc="split: apply", unit=" chunks", leave=False):
            train = split == 0
            new_item = apply_vocab(ev["item"], catalogue, first_id=1, unseen_id=0)  # 1..N, 0 = not in the catalogue
            known = new_item > 0
            price = apply_scaler(ev["price"], scaler)
            encoded = {c: apply_vocab(ev[c], vocabs[c], first_id=2, unseen_id=1)  # 0 padding, 1 unseen
                       for c in CATEGORICAL}
            for c in CATEGORICAL:
                unseen[c] += int((encoded[c][~train] == 1).sum())
            seen = train | known
            for i, s in enumerate(SPLITS):
                if s != "train":
                    dropped_unseen[s] += int(((split == i) & ~known).sum())
            # sessions left too short after the drop
            kept_sessions, kept_len = np.unique(ev["session"][seen], return_counts=True)
            keep = seen & np.isin(ev["session"], kept_sessions[kept_len >= MIN_SESSION_EVENTS])
            for i, s in enumerate(SPLITS):
                in_split = split == i
                after = _distinct(ev["session"][in_split & keep])
                too_short[s] += _distinct(ev["session"][in_split & seen]) - after
                rows_too_short[s] += int((in_split & seen & ~keep).sum())
                assigned[s] += _distinct(ev["session"][in_split])
                m = keep & in_split
                if not m.any():
                    continue
                table = pa.table({"session": ev["session"][m], "ts": ev["ts"][m], "item": new_item[m],
                                  **{c: encoded[c][m] for c in CATEGORICAL}, "price": price[m]})
                if s not in writers:
                    writers[s] = pq.ParquetWriter(out_dir / f"{s}.parquet", table.schema)
                writers[s].write_table(table)
                rep = per_split[s]
                rep["sessions"] += after
                rep["events"] += int(m.sum())
                t0, t1 = int(ev["ts"][m].min()), int(ev["ts"][m].max())
                rep["start"] = t0 if rep["start"] is None else min(rep["start"], t0)
                rep["end"] = t1 if rep["end"] is None else max(rep["end"], t1)
            # the catalogue's features: each training product's at its last training event (a later chunk wins a tie
            # in time, as a later row does within a chunk)
            tr = np.flatnonzero(train)
            rev = tr[np.argsort(ev["ts"][tr], kind="stable")][::-1]
            items, first = np.unique(new_item[rev], return_index=True)
            rows = rev[first]
            newer = ev["ts"][rows] >= last_ts[items]
            items, rows = items[newer], rows[newer]
            last_ts[items] = ev["ts"][rows]
            in_train[items] = True
            for c in cat_cols:
                cat[c][items] = {"product_id": ev["product_id"], "price": price, **encoded}[c][rows]
    finally:
        for w in writers.values():
            w.close()
        events.con.close()
    report["rows_with_label_unseen_in_train"] = unseen
    report["val_test_rows_dropped_unseen_item"] = dropped_unseen
    report["sessions_dropped_too_short"] = too_short
    report["rows_dropped_too_short"] = rows_too_short
    for s in SPLITS:
        report[s] = per_split[s]
        if per_split[s]["sessions"] == 0:
            raise ValueError(
                f"split: the {s} split is empty: {assigned[s]} session(s) assigned to it by split.method "
                f"{method!r}" + (f", {dropped_unseen[s]} row(s) dropped as their product is not in train, "
                                 f"{too_short[s]} session(s) left under {MIN_SESSION_EVENTS} clicks"
                                 if s != "train" else "")
                + "; use more data (data.*) or other split fractions (split.*)")
    ids = np.flatnonzero(in_train)  # the training products, by item id
    cat_table = pa.table({"item": ids.astype(np.int32), **{c: cat[c][ids] for c in cat_cols}})
    pq.write_table(cat_table, out_dir / "catalogue.parquet")
    vocab_sizes = {c: int(len(v) + 2) for c, v in vocabs.items()}
    encoders = {"n_items": int(n_items), "vocab_sizes": vocab_sizes, "price_scaler": scaler}
    (out_dir / "encoders.json").write_text(json.dumps(encoders, indent=1) + "\n")
    report["catalogue_items"] = int(len(catalogue))
    return report
